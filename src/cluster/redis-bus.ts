/**
 * The Redis bus: pub/sub between nodes with interest-based routing (a node subscribes to a
 * channel's Redis channel only while it has local subscribers), a self-publish probe that proves
 * the path, and per-channel sequence numbers that reveal events missed while the subscription
 * was down (docs/architecture.md, "Honest acceptance").
 */
import type { Redis } from "ioredis";
import { errorMessage, type Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { type RedisLink, unavailable } from "./redis-link.ts";
import { messageHead, parseMessage } from "./bus-message.ts";
import { ProbeMarkers } from "./bus-markers.ts";
import { ChannelSequence } from "./sequence.ts";
import { type Bus, ClusterUnavailable, type KeepPolicy, type LocalDelivery } from "./types.ts";

/** How often a node checks that its own publishes come back through its subscriber. */
export const PROBE_INTERVAL_MS = 500;
/** Silence after which the path counts as lost. */
const PROBE_STALE_MS = 1_500;
/** Relays held while the publisher reconnects, at most (then the oldest are dropped, logged). */
const MAX_HELD_RELAYS = 10_000;

interface Route {
  appId: string;
  channel: string;
  /** Key of the channel's sequence counter. */
  seqKey: string;
  sequence: ChannelSequence;
}

export class RedisBus implements Bus {
  deliver: LocalDelivery = () => {};
  onEventsMissed: (appId: string, channel: string) => void = () => {};
  /** Redis channel -> the app and Pusher channel it carries. */
  readonly #routes = new Map<string, Route>();
  /** Redis channels this node subscribed (or is subscribing) to, with the pending SUBSCRIBE. */
  readonly #active = new Map<string, Promise<void>>();
  /** Those of `#active` whose SUBSCRIBE is done: `listen` has nothing to wait for. */
  readonly #listening = new Set<string>();
  readonly #toSubscribe = new Set<string>();
  readonly #toUnsubscribe = new Set<string>();
  readonly #waiters = new Map<string, (() => void)[]>();
  #flushScheduled = false;
  /**
   * A channel only this node listens on. The node publishes to it on the primary and must hear
   * itself through its subscriber: that proves the path, including a replica's replication link.
   */
  readonly probeKey: string;
  #probeHeardAt = 0;
  /** Relays made while the publisher was not connected, sent when it is. */
  #heldRelays: {
    appId: string;
    channel: string;
    frame: string;
    exceptSocketId?: string;
    keep?: KeepPolicy;
  }[] = [];
  #subscribedOnce = false;
  /** Every subscription is made again after a reconnect and what it missed is known. */
  #subscribed = false;
  #subscriberGeneration = 0;
  readonly #markers: ProbeMarkers;

  constructor(
    readonly link: RedisLink,
    readonly publisher: Redis,
    readonly subscriber: Redis,
    readonly metrics: Metrics,
    readonly log: Logger,
  ) {
    this.probeKey = link.keys.probe(link.nodeId);
    this.#markers = new ProbeMarkers(publisher, this.probeKey, PROBE_STALE_MS);
    subscriber.on("message", (redisChannel: string, message: string) => {
      if (redisChannel !== this.probeKey) return this.#receive(redisChannel, message);
      this.#probeHeardAt = Date.now();
      this.#markers.heard(message);
    });
    subscriber.on("ready", () => this.#onSubscriberReady());
    subscriber.on("close", () => {
      this.#subscribed = false;
      this.#subscriberGeneration++;
    });
    publisher.on("ready", () => this.#sendHeldRelays());
  }

  get ready(): boolean {
    return this.publisher.status === "ready" && this.subscriber.status === "ready" &&
      this.link.commands.status === "ready" && this.link.shareWritten && this.#subscribed &&
      Date.now() - this.#probeHeardAt < PROBE_STALE_MS;
  }

  get probeHeard(): boolean {
    return this.#probeHeardAt > 0;
  }

  /** Publishes a probe (fire and forget: the answer is whether it comes back). */
  probe(): void {
    if (this.publisher.status !== "ready") return;
    this.publisher.publish(this.probeKey, String(Date.now())).catch(() => {
      // reported through `ready`
    });
  }

  reconnect(): void {
    this.log.warn("redis subscriber silent: reconnecting it");
    this.subscriber.disconnect(true);
  }

  #sendHeldRelays(): void {
    const held = this.#heldRelays;
    this.#heldRelays = [];
    // Written in order on one connection, so they arrive in the order they were made.
    for (const { appId, channel, frame, exceptSocketId, keep } of held) {
      this.#publishToOthers(appId, channel, frame, exceptSocketId, keep).catch((error) =>
        this.log.warn("held relay to other nodes failed", { channel, error: errorMessage(error) })
      );
    }
  }

  channelKey(appId: string, channel: string): string {
    return this.link.keys.events(appId, channel);
  }

  async publish(
    appId: string,
    channel: string,
    frame: string,
    exceptSocketId?: string,
    keep?: KeepPolicy,
  ): Promise<void> {
    if (!this.ready) {
      this.metrics.publishFailures++;
      throw new ClusterUnavailable("Redis is not connected");
    }
    await this.#publishToOthers(appId, channel, frame, exceptSocketId, keep);
    // A kept event is delivered here when it comes back through the subscriber, as on every
    // node: then every node delivers a channel's kept events in serial order.
    if (!keep) this.deliver(appId, channel, frame, exceptSocketId);
  }

  async relay(
    appId: string,
    channel: string,
    frame: string,
    exceptSocketId?: string,
    keep?: KeepPolicy,
  ): Promise<void> {
    if (!keep) this.deliver(appId, channel, frame, exceptSocketId);
    if (this.publisher.status !== "ready") {
      // Member and watchlist events decided while the publisher reconnects (the command
      // connection can be back first) must still reach the other nodes: held, in order.
      if (
        this.#heldRelays.push({ appId, channel, frame, exceptSocketId, keep }) > MAX_HELD_RELAYS
      ) {
        this.#heldRelays.shift();
        this.log.warn("relay dropped: too many held while Redis is not connected", { channel });
      }
      return;
    }
    try {
      await this.#publishToOthers(appId, channel, frame, exceptSocketId, keep);
    } catch (error) {
      this.log.warn("relay to other nodes failed", { channel, error: errorMessage(error) });
    }
  }

  /**
   * Sends the event in the bus's message format (src/cluster/bus-message.ts); the script numbers
   * the channel's events so a receiver can tell when it missed some.
   */
  async #publishToOthers(
    appId: string,
    channel: string,
    frame: string,
    exceptSocketId: string | undefined,
    keep: KeepPolicy | undefined,
  ): Promise<void> {
    const except = exceptSocketId ?? "";
    const head = messageHead(this.link.nodeId, except, Date.now());
    let numbered: unknown;
    try {
      numbered = keep === undefined
        ? await this.link.runOn(this.publisher, "PUBLISH", appId, channel, head, frame)
        : await this.link.runOn(
          this.publisher,
          "PUBLISH",
          appId,
          channel,
          head,
          frame,
          keep.maxMessages,
          keep.ttlMs,
          except,
        );
    } catch (error) {
      this.metrics.publishFailures++;
      throw unavailable(error);
    }
    if (keep) return; // delivered here only through the subscriber: a gap if it never arrives
    const [epoch, seq] = numbered as [string, number];
    // Delivered here already: if the subscriber never sees it, that is no gap.
    this.#routes.get(this.channelKey(appId, channel))?.sequence.published(epoch, seq);
  }

  #receive(redisChannel: string, message: string): void {
    const route = this.#routes.get(redisChannel);
    if (!route) return;
    const parsed = parseMessage(message);
    if (!parsed) return;
    const { position } = parsed;
    // Our own publishes were delivered locally already, but for kept events (`publish`).
    const deliveredHere = position === undefined && parsed.origin === this.link.nodeId;
    this.#reportMissed(route, route.sequence.arrived(parsed.epoch, parsed.seq, deliveredHere));
    if (deliveredHere) return;
    this.deliver(route.appId, route.channel, parsed.frame, parsed.exceptSocketId, position);
    this.metrics.deliveryLatency.observe(Math.max(0, Date.now() - parsed.sentAt) / 1000);
  }

  #reportMissed(route: Route, missed: number): void {
    if (missed <= 0) return;
    this.log.warn("events missed while the subscription was down", {
      app: route.appId,
      channel: route.channel,
      missed,
    });
    this.onEventsMissed(route.appId, route.channel);
  }

  listen(appId: string, channel: string): Promise<void> | undefined {
    const key = this.channelKey(appId, channel);
    if (this.#listening.has(key)) {
      this.#toUnsubscribe.delete(key);
      return;
    }
    if (!this.#routes.has(key)) {
      const seqKey = this.link.keys.sequence(appId, channel);
      this.#routes.set(key, { appId, channel, seqKey, sequence: new ChannelSequence() });
    }
    if (this.#toUnsubscribe.delete(key)) return this.#active.get(key) ?? Promise.resolve();
    const active = this.#active.get(key);
    if (active) return active;
    this.#toSubscribe.add(key);
    this.#scheduleFlush();
    const subscribed = new Promise<void>((resolve) => {
      const waiters = this.#waiters.get(key) ?? [];
      waiters.push(resolve);
      this.#waiters.set(key, waiters);
    });
    // While Redis is away the subscription is made on reconnect; the local socket need not wait.
    return this.ready ? subscribed : Promise.resolve();
  }

  unlisten(appId: string, channel: string): void {
    const key = this.channelKey(appId, channel);
    if (this.#toSubscribe.delete(key)) {
      this.#routes.delete(key);
      this.#release(key);
      return;
    }
    if (this.#active.has(key)) {
      this.#toUnsubscribe.add(key);
      this.#scheduleFlush();
    }
  }

  /** Batches SUBSCRIBE / UNSUBSCRIBE churn into one command each per tick. */
  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setTimeout(() => this.#flush(), 0);
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#toSubscribe.size > 0) {
      const keys = [...this.#toSubscribe];
      this.#toSubscribe.clear();
      const done = this.subscriber.subscribe(...keys).then(
        () => {
          keys.forEach((key) => this.#release(key));
          return this.#compareSequences(keys);
        },
        (error) => {
          // Made again when the subscriber reconnects (`#onSubscriberReady`).
          this.log.warn("redis subscribe failed", { error: errorMessage(error) });
          keys.forEach((key) => this.#release(key));
        },
      );
      for (const key of keys) this.#active.set(key, done);
      done.then(() => {
        for (const key of keys) if (this.#active.get(key) === done) this.#listening.add(key);
      });
    }
    if (this.#toUnsubscribe.size > 0) {
      const keys = [...this.#toUnsubscribe];
      this.#toUnsubscribe.clear();
      for (const key of keys) {
        this.#active.delete(key);
        this.#listening.delete(key);
        this.#routes.delete(key);
      }
      this.subscriber.unsubscribe(...keys).catch((error) =>
        this.log.warn("redis unsubscribe failed", { error: errorMessage(error) })
      );
    }
  }

  #release(key: string): void {
    const waiters = this.#waiters.get(key);
    this.#waiters.delete(key);
    waiters?.forEach((resolve) => resolve());
  }

  /**
   * The subscriber (re)connected: subscribe to everything again (ioredis's own resubscribe is
   * off, so we know when it is done), then check what was published while we were away.
   */
  async #onSubscriberReady(): Promise<void> {
    const generation = this.#subscriberGeneration;
    const keys = [...this.#active.keys()];
    try {
      await this.subscriber.subscribe(this.probeKey, ...keys);
    } catch (error) {
      // The connection broke again (the next "ready" retries), or the probe stays silent and
      // BusWatch (src/reconnect.ts) reconnects it.
      this.log.warn("redis resubscribe failed", { error: errorMessage(error) });
      return;
    }
    const again = this.#subscribedOnce;
    this.#subscribedOnce = true;
    if (again) await this.#compareSequences(keys);
    if (generation === this.#subscriberGeneration) this.#subscribed = true;
  }

  /**
   * Reads the channels' counters once subscribed: the first time that is the baseline; after a
   * reconnect, a counter that moved while we were not subscribed means missed events.
   */
  async #compareSequences(keys: string[]): Promise<void> {
    const routes = keys.map((key) => this.#routes.get(key)).filter((r) => r !== undefined);
    if (routes.length === 0) return;
    const before = routes.map(({ sequence }) => `${sequence.epoch}/${sequence.last}`);
    const current = await this.#readCounters(routes.map((r) => r.seqKey));
    if (current === undefined) return;
    const [epoch, ...counters] = current;
    // Events the counters include may still be on their way to the subscriber.
    await this.#markers.heardEverything();
    routes.forEach((route, i) => {
      const { sequence } = route;
      // An event that arrived meanwhile was already compared on the way in.
      if (
        `${sequence.epoch}/${sequence.last}` !== before[i] ||
        this.#routes.get(this.channelKey(route.appId, route.channel)) !== route
      ) return;
      this.#reportMissed(route, sequence.counted(epoch, counters[i]));
    });
  }

  /**
   * Reads counters and their epoch, trying again while the command connection is away (it can come back after
   * the subscriber): a miss must not go unnoticed because of it. Undefined once the subscriber
   * reconnected meanwhile (it compares again itself).
   */
  async #readCounters(keys: string[]): Promise<[string, ...number[]] | undefined> {
    const generation = this.#subscriberGeneration;
    for (let attempt = 0; generation === this.#subscriberGeneration; attempt++) {
      try {
        this.link.assertReady();
        return await this.link.run("COUNTERS", ...keys) as [string, ...number[]];
      } catch (error) {
        if (attempt === 0) {
          this.log.warn("reading event sequences failed; trying again", {
            error: errorMessage(error),
          });
        }
        await new Promise((resolve) => setTimeout(resolve, PROBE_INTERVAL_MS / 5));
      }
    }
    return undefined;
  }
}
