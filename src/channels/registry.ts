/** This process's channels: which local connections are subscribed to what. */
import type { Subscriber } from "../runtime.ts";

export class LocalChannel<S extends Subscriber = Subscriber> {
  readonly subscribers = new Set<S>();
  /** Native fan-out topic name, unique across apps. */
  readonly topic: string;
  /** Bytes published into this channel under backpressure since its sockets were last scanned. */
  bytesSinceSlowConsumerCheck = 0;

  constructor(readonly appId: string, readonly name: string) {
    this.topic = `${appId}:${name}`;
  }
}

export class ChannelRegistry<S extends Subscriber = Subscriber> {
  readonly #apps = new Map<string, Map<string, LocalChannel<S>>>();

  get(appId: string, name: string): LocalChannel<S> | undefined {
    return this.#apps.get(appId)?.get(name);
  }

  /** Adds a subscriber; `first` when it is the channel's first on this node. */
  add(appId: string, name: string, subscriber: S): { channel: LocalChannel<S>; first: boolean } {
    let channels = this.#apps.get(appId);
    if (!channels) this.#apps.set(appId, channels = new Map());
    let channel = channels.get(name);
    const first = channel === undefined;
    if (!channel) channels.set(name, channel = new LocalChannel(appId, name));
    channel.subscribers.add(subscriber);
    subscriber.socket.subscribe(channel.topic);
    return { channel, first };
  }

  /** Removes a subscriber; `last` when the channel has no subscriber left on this node. */
  remove(channel: LocalChannel<S>, subscriber: S): { last: boolean } {
    if (!channel.subscribers.delete(subscriber)) return { last: false };
    subscriber.socket.unsubscribe(channel.topic);
    if (channel.subscribers.size > 0) return { last: false };
    this.#apps.get(channel.appId)?.delete(channel.name);
    return { last: true };
  }

  /** Every local channel of an app, for node-local questions (e.g. who to terminate). */
  channels(appId: string): Iterable<LocalChannel<S>> {
    return this.#apps.get(appId)?.values() ?? [];
  }
}
