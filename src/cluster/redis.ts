/**
 * The Redis cluster: pub/sub between nodes with interest-based routing, shared state kept atomic
 * with Lua, node leases so a dead node's share is removed, and re-registration after an outage.
 *
 * Three connections per node: `commands` (state; queues while Redis is away, so a subscribe
 * waits rather than fails), `publisher` (fails fast, so the HTTP API can answer 503) and
 * `subscriber` (optionally a regional replica).
 */
import { Redis, type RedisOptions } from "ioredis";
import { isPresence } from "../channels/kinds.ts";
import type { ClusterConfig } from "../config.ts";
import { errorMessage, type Logger } from "../log.ts";
import { Metrics } from "../metrics.ts";
import { RedisWebhookQueue } from "../webhooks/redis-queue.ts";
import * as scripts from "./redis-scripts.ts";
import { COUNT_ANNOUNCE_INTERVAL_MS } from "./local.ts";
import type {
  Bus,
  CachedEvent,
  ChannelCounts,
  Cluster,
  ClusterChange,
  ClusterHost,
  CountClaim,
  JoinResult,
  LocalDelivery,
  State,
} from "./types.ts";

type ScriptName = keyof typeof scripts;

/** How often a node checks that its own publishes come back through its subscriber. */
const PROBE_INTERVAL_MS = 1_000;
const PROBES_MISSED_BEFORE_NOT_READY = 3;

/** ioredis connection options shared by all three connections. */
function connectionOptions(extra: RedisOptions): RedisOptions {
  return {
    // Reconnect with capped backoff, forever: the node stays up and reports not-ready meanwhile.
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2_000),
    lazyConnect: true,
    ...extra,
  };
}

class RedisBus implements Bus {
  deliver: LocalDelivery = () => {};
  /** Redis channel -> the app and Pusher channel it carries. */
  readonly #routes = new Map<string, { appId: string; channel: string }>();
  /** Redis channels this node subscribed (or is subscribing) to, with the pending SUBSCRIBE. */
  readonly #active = new Map<string, Promise<void>>();
  readonly #toSubscribe = new Set<string>();
  readonly #toUnsubscribe = new Set<string>();
  #waiters = new Map<string, (() => void)[]>();
  #flushScheduled = false;
  readonly #ownPrefix: string;
  /**
   * A channel only this node listens on. The node publishes to it on the primary and must hear
   * itself through its subscriber: that proves the path, including a replica's replication link.
   */
  readonly probeKey: string;
  #probeHeardAt = 0;

  constructor(
    readonly cluster: RedisCluster,
    readonly publisher: Redis,
    readonly subscriber: Redis,
    readonly log: Logger,
  ) {
    this.#ownPrefix = `${cluster.nodeId}\n`;
    this.probeKey = `${cluster.root}:probe:${cluster.nodeId}`;
    subscriber.on("message", (redisChannel: string, message: string) => {
      if (redisChannel === this.probeKey) this.#probeHeardAt = Date.now();
      else this.#receive(redisChannel, message);
    });
  }

  get ready(): boolean {
    return this.publisher.status === "ready" && this.subscriber.status === "ready" &&
      this.cluster.commands.status === "ready" &&
      Date.now() - this.#probeHeardAt < PROBE_INTERVAL_MS * PROBES_MISSED_BEFORE_NOT_READY;
  }

  /** Publishes a probe; waits (briefly) for it on the first call so `ready` starts true. */
  async probe(): Promise<void> {
    if (this.publisher.status !== "ready") return;
    const sentAt = Date.now();
    try {
      await this.publisher.publish(this.probeKey, String(sentAt));
    } catch {
      // reported through `ready`
    }
  }

  get probeHeard(): boolean {
    return this.#probeHeardAt > 0;
  }

  channelKey(appId: string, channel: string): string {
    return `${this.cluster.root}:${appId}:ev:${channel}`;
  }

  async publish(
    appId: string,
    channel: string,
    frame: string,
    exceptSocketId?: string,
  ): Promise<void> {
    if (!this.ready) {
      this.cluster.metrics.publishFailures++;
      throw new Error("Redis is not connected");
    }
    await this.#publishToOthers(appId, channel, frame, exceptSocketId);
    this.deliver(appId, channel, frame, exceptSocketId);
  }

  async relay(
    appId: string,
    channel: string,
    frame: string,
    exceptSocketId?: string,
  ): Promise<void> {
    this.deliver(appId, channel, frame, exceptSocketId);
    if (this.publisher.status !== "ready") {
      this.log.warn("relay not sent to other nodes: Redis is not connected", {
        app: appId,
        channel,
      });
      return;
    }
    try {
      await this.#publishToOthers(appId, channel, frame, exceptSocketId);
    } catch (error) {
      this.log.warn("relay to other nodes failed", { channel, error: errorMessage(error) });
    }
  }

  /** Sends `{origin node}\n{excluded socket}\n{publish time ms}\n{frame}` over Redis. */
  async #publishToOthers(
    appId: string,
    channel: string,
    frame: string,
    exceptSocketId: string | undefined,
  ): Promise<void> {
    const envelope = `${this.#ownPrefix}${exceptSocketId ?? ""}\n${Date.now()}\n${frame}`;
    try {
      await this.publisher.publish(this.channelKey(appId, channel), envelope);
    } catch (error) {
      this.cluster.metrics.publishFailures++;
      throw error;
    }
  }

  #receive(redisChannel: string, message: string): void {
    // Our own publishes were delivered locally already.
    if (message.startsWith(this.#ownPrefix)) return;
    const route = this.#routes.get(redisChannel);
    if (!route) return;
    const originEnd = message.indexOf("\n");
    const exceptEnd = message.indexOf("\n", originEnd + 1);
    const timeEnd = message.indexOf("\n", exceptEnd + 1);
    if (originEnd < 0 || exceptEnd < 0 || timeEnd < 0) return;
    const except = exceptEnd > originEnd + 1 ? message.slice(originEnd + 1, exceptEnd) : undefined;
    this.deliver(route.appId, route.channel, message.slice(timeEnd + 1), except);
    const sentAt = Number(message.slice(exceptEnd + 1, timeEnd));
    this.cluster.metrics.deliveryLatency.observe(Math.max(0, Date.now() - sentAt) / 1000);
  }

  listen(appId: string, channel: string): Promise<void> {
    const key = this.channelKey(appId, channel);
    this.#routes.set(key, { appId, channel });
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
    // While Redis is away, ioredis subscribes on reconnect; the local socket need not wait.
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
        () => keys.forEach((key) => this.#release(key)),
        (error) => {
          this.log.warn("redis subscribe failed", { error: errorMessage(error) });
          keys.forEach((key) => this.#release(key));
        },
      );
      for (const key of keys) this.#active.set(key, done);
    }
    if (this.#toUnsubscribe.size > 0) {
      const keys = [...this.#toUnsubscribe];
      this.#toUnsubscribe.clear();
      for (const key of keys) {
        this.#active.delete(key);
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
}

class RedisState implements State {
  constructor(readonly cluster: RedisCluster) {}

  async addConnection(appId: string, socketId: string, max: number | null): Promise<boolean> {
    return await this.cluster.run("CONNECTION_ADD", appId, socketId, max ?? -1) === 1;
  }

  async removeConnection(appId: string, socketId: string): Promise<void> {
    await this.cluster.run("CONNECTION_REMOVE", appId, socketId);
  }

  async connectionCount(appId: string): Promise<number> {
    this.cluster.assertReady();
    return await this.cluster.commands.scard(`${this.cluster.root}:${appId}:conns`);
  }

  async addSubscription(
    appId: string,
    channel: string,
    socketId: string,
  ): Promise<{ occupied: boolean }> {
    return { occupied: await this.cluster.run("SUBSCRIPTION_ADD", appId, channel, socketId) === 1 };
  }

  async removeSubscription(
    appId: string,
    channel: string,
    socketId: string,
  ): Promise<{ vacated: boolean }> {
    return {
      vacated: await this.cluster.run("SUBSCRIPTION_REMOVE", appId, channel, socketId) === 1,
    };
  }

  async joinPresence(
    appId: string,
    channel: string,
    socketId: string,
    userId: string,
    userInfo: unknown,
    maxMembers: number,
  ): Promise<JoinResult> {
    const reply = await this.cluster.run(
      "PRESENCE_JOIN",
      appId,
      channel,
      socketId,
      userId,
      JSON.stringify(userInfo),
      maxMembers,
    ) as (string | number)[];
    const code = Number(reply[0]);
    if (code < 0) return { ok: false, reason: "full" };
    return { ok: true, first: code === 1, members: memberMap(reply, 1) };
  }

  async leavePresence(
    appId: string,
    channel: string,
    socketId: string,
    userId: string,
  ): Promise<{ last: boolean }> {
    return {
      last: await this.cluster.run("PRESENCE_LEAVE", appId, channel, socketId, userId) === 1,
    };
  }

  async presenceMembers(appId: string, channel: string): Promise<Map<string, unknown>> {
    this.cluster.assertReady();
    const flat = await this.cluster.commands.call(
      "HGETALL",
      `${this.cluster.root}:${appId}:pinfo:${channel}`,
    );
    return memberMap(toFlatList(flat), 0);
  }

  async channels(appId: string, prefix = ""): Promise<Map<string, ChannelCounts>> {
    this.cluster.assertReady();
    const reply = await this.cluster.run("CHANNELS", appId, prefix) as (string | number)[];
    const channels = new Map<string, ChannelCounts>();
    for (let i = 0; i + 2 < reply.length; i += 3) {
      const userCount = Number(reply[i + 2]);
      channels.set(String(reply[i]), {
        subscriptionCount: Number(reply[i + 1]),
        ...(userCount >= 0 ? { userCount } : {}),
      });
    }
    return channels;
  }

  async signIn(appId: string, userId: string, socketId: string): Promise<{ first: boolean }> {
    return { first: await this.cluster.run("USER_ADD", appId, socketId, userId) === 1 };
  }

  async signOut(appId: string, userId: string, socketId: string): Promise<{ last: boolean }> {
    return { last: await this.cluster.run("USER_REMOVE", appId, socketId, userId) === 1 };
  }

  async onlineUsers(appId: string, userIds: readonly string[]): Promise<string[]> {
    if (userIds.length === 0) return [];
    return (await this.cluster.run("USERS_ONLINE", appId, ...userIds) as unknown[]).map(String);
  }

  async setCache(
    appId: string,
    channel: string,
    event: CachedEvent,
    ttlSeconds: number,
  ): Promise<void> {
    this.cluster.assertReady();
    await this.cluster.commands.set(
      this.#cacheKey(appId, channel),
      JSON.stringify(event),
      "EX",
      ttlSeconds,
    );
  }

  async getCache(
    appId: string,
    channel: string,
  ): Promise<(CachedEvent & { ttl: number }) | undefined> {
    const key = this.#cacheKey(appId, channel);
    const [json, ttlMs] = await Promise.all([
      this.cluster.commands.get(key),
      this.cluster.commands.pttl(key),
    ]);
    if (json === null || ttlMs <= 0) return undefined;
    const { event, data } = JSON.parse(json) as CachedEvent;
    return { event, data, ttl: Math.ceil(ttlMs / 1000) };
  }

  #cacheKey(appId: string, channel: string): string {
    return `${this.cluster.root}:${appId}:cache:${channel}`;
  }

  async claimCountAnnouncement(appId: string, channel: string): Promise<CountClaim> {
    const reply = Number(
      await this.cluster.run("COUNT_CLAIM", appId, channel, COUNT_ANNOUNCE_INTERVAL_MS),
    );
    if (reply === -1) return { kind: "wait" };
    if (reply === -2) return { kind: "unchanged" };
    return { kind: "announce", count: reply };
  }

  async channel(appId: string, channel: string): Promise<ChannelCounts> {
    this.cluster.assertReady();
    const key = `${this.cluster.root}:${appId}`;
    const subscriptionCount = await this.cluster.commands.scard(`${key}:subs:${channel}`);
    if (!isPresence(channel)) return { subscriptionCount };
    return {
      subscriptionCount,
      userCount: await this.cluster.commands.hlen(`${key}:pinfo:${channel}`),
    };
  }
}

function toChange(
  kind: string,
  appId: string,
  channel: string,
  userId: string,
  info: string,
  direction: "joined" | "left",
): ClusterChange {
  const joined = direction === "joined";
  switch (kind) {
    case "p":
      return joined
        ? { kind: "member_added", appId, channel, userId, userInfo: parseInfo(info) }
        : { kind: "member_removed", appId, channel, userId };
    case "u":
      return { kind: joined ? "user_online" : "user_offline", appId, userId };
    case "n":
      return { kind: "subscription_count_changed", appId, channel };
    default:
      return { kind: kind === "o" ? "channel_occupied" : "channel_vacated", appId, channel };
  }
}

/** HGETALL comes back as a flat list (RESP2, Lua) or a map object (RESP3). */
function toFlatList(reply: unknown): unknown[] {
  if (Array.isArray(reply)) return reply;
  if (reply instanceof Map) return [...reply].flat();
  if (reply && typeof reply === "object") return Object.entries(reply).flat();
  return [];
}

function memberMap(flat: readonly unknown[], from: number): Map<string, unknown> {
  const members = new Map<string, unknown>();
  for (let i = from; i + 1 < flat.length; i += 2) {
    members.set(String(flat[i]), parseInfo(String(flat[i + 1])));
  }
  return members;
}

function parseInfo(json: string): unknown {
  try {
    return JSON.parse(json);
  } catch {
    return null;
  }
}

export class RedisCluster implements Cluster {
  readonly nodeId: string;
  readonly region: string;
  readonly root: string;
  readonly commands: Redis;
  readonly metrics = new Metrics();
  readonly bus: RedisBus;
  readonly state: RedisState;
  readonly webhooks: RedisWebhookQueue;
  readonly #leaseMs: number;
  readonly #log: Logger;
  readonly #shas = new Map<ScriptName, string>();
  #host: ClusterHost | undefined;
  #timers: ReturnType<typeof setInterval>[] = [];
  #connectedOnce = false;
  #stopping = false;

  constructor(config: ClusterConfig, nodeId: string, log: Logger) {
    this.nodeId = nodeId;
    this.region = config.region;
    this.root = `chorus:${config.prefix}`;
    this.#leaseMs = config.leaseMs;
    this.#log = log;
    const url = config.redisUrl!;
    this.commands = new Redis(url, connectionOptions({ maxRetriesPerRequest: null }));
    const publisher = new Redis(
      url,
      connectionOptions({
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
      }),
    );
    const subscriber = new Redis(
      config.redisSubscribeUrl ?? url,
      connectionOptions({ maxRetriesPerRequest: null }),
    );
    this.bus = new RedisBus(this, publisher, subscriber, log);
    this.state = new RedisState(this);
    this.webhooks = new RedisWebhookQueue(this.commands, this.root);
  }

  assertReady(): void {
    if (this.commands.status !== "ready") throw new Error("Redis is not connected");
  }

  /** Runs a Lua script by name with ARGV = root, node id, ...args. */
  async run(name: ScriptName, ...args: (string | number)[]): Promise<unknown> {
    const argv = [this.root, this.nodeId, ...args];
    const sha = this.#shas.get(name);
    if (sha) {
      try {
        return await this.commands.evalsha(sha, 0, ...argv);
      } catch (error) {
        // Redis restarted and forgot the script: load it again below.
        if (!errorMessage(error).includes("NOSCRIPT")) throw error;
      }
    }
    const loaded = await this.commands.script("LOAD", scripts[name]) as string;
    this.#shas.set(name, loaded);
    return await this.commands.evalsha(loaded, 0, ...argv);
  }

  async start(host: ClusterHost): Promise<void> {
    this.#host = host;
    this.bus.deliver = host.deliver;
    const connections = [this.commands, this.bus.publisher, this.bus.subscriber];
    for (const connection of connections) {
      connection.on("error", () => {}); // reported through the status events below
    }
    this.commands.on("ready", () => this.#onReady());
    this.commands.on("close", () => {
      if (!this.#stopping && this.#connectedOnce) this.#log.warn("redis connection lost");
    });
    await Promise.all(connections.map((connection) => connection.connect()));
    await this.bus.subscriber.subscribe(this.bus.probeKey);
    this.#timers.push(setInterval(() => this.bus.probe(), PROBE_INTERVAL_MS));
    // Ready once the first probe came back (normally a millisecond).
    for (let i = 0; i < 50 && !this.bus.probeHeard; i++) {
      await this.bus.probe();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    this.#timers.push(setInterval(() => this.#heartbeat(), Math.max(250, this.#leaseMs / 3)));
    this.#timers.push(setInterval(() => this.#sweep(), Math.max(250, this.#leaseMs / 2)));
  }

  async #onReady(): Promise<void> {
    const first = !this.#connectedOnce;
    this.#connectedOnce = true;
    try {
      await this.#register();
      if (!first) this.#log.info("redis connection regained; node state re-registered");
    } catch (error) {
      this.#log.error("registering node state failed", { error: errorMessage(error) });
    }
  }

  /** Writes this node's whole share again (idempotent); announces members that were lost. */
  async #register(): Promise<void> {
    const snapshot = this.#host!.snapshot();
    const args: (string | number)[] = [this.#leaseMs];
    for (const c of snapshot.connections) args.push("c", c.appId, c.socketId);
    for (const s of snapshot.subscriptions) args.push("s", s.appId, s.channel, s.socketId);
    for (const p of snapshot.presence) {
      args.push("p", p.appId, p.channel, p.socketId, p.userId, JSON.stringify(p.userInfo));
    }
    for (const u of snapshot.users) args.push("u", u.appId, u.socketId, u.userId);
    await this.#announce(await this.run("REGISTER", ...args) as string[], "joined");
  }

  async #heartbeat(): Promise<void> {
    if (this.commands.status !== "ready") return;
    try {
      const known = await this.run("HEARTBEAT", this.#leaseMs);
      // Our lease ran out (a long stall) and another node swept us: put our share back.
      if (known === 0) await this.#register();
    } catch (error) {
      this.#log.warn("lease renewal failed", { error: errorMessage(error) });
    }
  }

  async #sweep(): Promise<void> {
    if (this.commands.status !== "ready") return;
    try {
      await this.#announce(await this.run("SWEEP") as string[], "left");
    } catch (error) {
      this.#log.warn("sweeping dead nodes failed", { error: errorMessage(error) });
    }
  }

  /** Hands the changes a script found (groups of five) to the node to announce. */
  async #announce(changes: string[], direction: "joined" | "left"): Promise<void> {
    const announcements: Promise<void>[] = [];
    for (let i = 0; i + 4 < changes.length; i += 5) {
      const [kind, appId, channel, userId, info] = changes.slice(i, i + 5);
      announcements.push(
        this.#host!.announce(toChange(kind, appId, channel, userId, info, direction)),
      );
    }
    await Promise.all(announcements);
  }

  async leave(): Promise<void> {
    this.#stopping = true;
    this.#timers.forEach(clearInterval);
    if (this.commands.status !== "ready") return;
    try {
      await this.#announce(await this.run("REMOVE_SELF") as string[], "left");
    } catch (error) {
      this.#log.warn("removing node state failed", { error: errorMessage(error) });
    }
  }

  disconnect(): Promise<void> {
    for (const connection of [this.commands, this.bus.publisher, this.bus.subscriber]) {
      connection.disconnect();
    }
    return Promise.resolve();
  }
}
