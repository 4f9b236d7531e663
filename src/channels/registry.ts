/** This process's channels: which local connections are subscribed to what. */
import type { FanOut, Subscriber } from "../runtime.ts";
import { subscriptionSucceededFrame } from "../protocol/index.ts";
import type { KeptPosition } from "./recovery.ts";
import { type ChannelKind, channelType } from "./kinds.ts";

/** A frame delivered to a channel while one of its subscribers is being resumed. */
export interface Held {
  frame: string;
  position: KeptPosition | undefined;
}

export class LocalChannel<S extends Subscriber = Subscriber> {
  readonly subscribers = new Set<S>();
  /** The socket server's fan-out topic for it, unique across apps. */
  readonly topic: string;
  /** Undefined for node-internal channels (src/channels/internal.ts). */
  readonly kind: ChannelKind | undefined;
  /** Bytes published into this channel under backpressure since its sockets were last scanned. */
  bytesSinceSlowConsumerCheck = 0;
  /** A recovery channel's last kept event delivered here, and how many were (docs/recovery.md). */
  position: KeptPosition | undefined;
  keptDeliveries = 0;
  /**
   * Subscribers being resumed: in the channel but not yet in its topic; what is delivered
   * meanwhile waits here for them (src/session/resume-channel.ts).
   */
  replaying: Map<S, Held[]> | undefined;
  #succeeded: string | undefined;

  constructor(readonly appId: string, readonly name: string) {
    this.topic = `${appId}:${name}`;
    this.kind = channelType(name)?.kind;
  }

  /** subscription_succeeded without a member list: the same bytes for every subscriber. */
  get succeededFrame(): string {
    return this.#succeeded ??= subscriptionSucceededFrame(this.name);
  }

  /**
   * A channel is its own subscription record (src/session/ports.ts) for a socket that joined it
   * without a member: one object less per such subscription.
   */
  get channel(): this {
    return this;
  }
}

/**
 * What the core needs to know of local channels: first and last local subscriber, and who is
 * in one (terminate, slow-consumer scans). Membership of the socket server's topic follows it.
 */
export class ChannelRegistry<S extends Subscriber = Subscriber> {
  readonly #apps = new Map<string, Map<string, LocalChannel<S>>>();

  /** The socket server's topics; none before it serves (and then no socket can subscribe). */
  fanOut: FanOut | undefined;

  get(appId: string, name: string): LocalChannel<S> | undefined {
    return this.#apps.get(appId)?.get(name);
  }

  /**
   * Adds a subscriber; `first` when it is the channel's first on this node. `resuming`: it joins
   * the fan-out topic only at `resumed`, and what is delivered until then is held for it (adding
   * it so again keeps what is held).
   */
  add(
    appId: string,
    name: string,
    subscriber: S,
    resuming = false,
  ): { channel: LocalChannel<S>; first: boolean } {
    let channels = this.#apps.get(appId);
    if (!channels) this.#apps.set(appId, channels = new Map());
    let channel = channels.get(name);
    const first = channel === undefined;
    if (!channel) channels.set(name, channel = new LocalChannel(appId, name));
    channel.subscribers.add(subscriber);
    if (resuming) {
      const replaying = channel.replaying ??= new Map();
      if (!replaying.has(subscriber)) replaying.set(subscriber, []);
    } else this.fanOut?.join(channel.topic, subscriber.socket);
    return { channel, first };
  }

  /** A resumed subscriber joins the topic: what was held for it, to send first. */
  resumed(channel: LocalChannel<S>, subscriber: S): Held[] {
    const held = channel.replaying?.get(subscriber);
    if (held === undefined) return [];
    channel.replaying!.delete(subscriber);
    if (channel.replaying!.size === 0) channel.replaying = undefined;
    if (channel.subscribers.has(subscriber)) this.fanOut?.join(channel.topic, subscriber.socket);
    return held;
  }

  /** Stops the channel's fan-out to a subscriber that stays in it (it is about to close). */
  hold(channel: LocalChannel<S>, subscriber: S): void {
    if (channel.subscribers.has(subscriber)) this.fanOut?.leave(channel.topic, subscriber.socket);
  }

  /** Removes a subscriber; `last` when the channel has no subscriber left on this node. */
  remove(channel: LocalChannel<S>, subscriber: S): { last: boolean } {
    if (!channel.subscribers.delete(subscriber)) return { last: false };
    if (channel.replaying?.delete(subscriber) && channel.replaying.size === 0) {
      channel.replaying = undefined;
    }
    this.fanOut?.leave(channel.topic, subscriber.socket);
    if (channel.subscribers.size > 0) return { last: false };
    this.#apps.get(channel.appId)?.delete(channel.name);
    return { last: true };
  }

  /** Every local channel of an app, for node-local questions (e.g. who to terminate). */
  channels(appId: string): Iterable<LocalChannel<S>> {
    return this.#apps.get(appId)?.values() ?? [];
  }
}
