/**
 * The Redis cluster: a node's three connections, its lease, and its share of the shared state,
 * written again whenever Redis may have lost it or a write failed. The bus
 * (src/cluster/redis-bus.ts) and the state (src/cluster/redis-state.ts) are its parts.
 *
 * Three connections per node: `commands` (state; queues while reconnecting), `publisher` (fails
 * fast, so the HTTP API can answer 503) and `subscriber` (optionally a regional replica). Every
 * command is bounded by `redisTimeoutMs`.
 */
import { Redis } from "ioredis";
import type { ClusterConfig } from "../config.ts";
import { errorMessage, type Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { PROBE_INTERVAL_MS, RedisBus } from "./redis-bus.ts";
import { RedisKeys } from "./keys.ts";
import { RedisHistory } from "./redis-history.ts";
import { RedisSessions } from "./redis-sessions.ts";
import { connectionOptions, RedisLink } from "./redis-link.ts";
import { parseUserInfo } from "../channels/index.ts";
import { type Departure, RedisState } from "./redis-state.ts";
import type { Cluster, ClusterChange, ClusterHost } from "./types.ts";

/** Departures kept for the next rewrite at most; beyond, the oldest are dropped (logged). */
const MAX_DEPARTURES = 100_000;

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
        ? { kind: "member_added", appId, channel, userId, userInfo: parseUserInfo(info) }
        : { kind: "member_removed", appId, channel, userId };
    case "u":
      return { kind: joined ? "user_online" : "user_offline", appId, userId };
    case "n":
      return { kind: "subscription_count_changed", appId, channel };
    default:
      return { kind: kind === "o" ? "channel_occupied" : "channel_vacated", appId, channel };
  }
}

export class RedisCluster implements Cluster {
  readonly nodeId: string;
  readonly region: string;
  readonly link: RedisLink;
  readonly bus: RedisBus;
  readonly state: RedisState;
  readonly history: RedisHistory;
  readonly sessions: RedisSessions;
  readonly #leaseMs: number;
  readonly #log: Logger;
  #host: ClusterHost | undefined;
  #timers: ReturnType<typeof setInterval>[] = [];
  #connectedOnce = false;
  #stopping = false;
  /** A write failed since the share was last written: write it again when Redis answers. */
  #dirty = false;
  /** Leaves whose writes failed, applied by the next rewrite. */
  #departures: Departure[] = [];
  #registering: Promise<void> | undefined;

  constructor(config: ClusterConfig, nodeId: string, log: Logger, metrics: Metrics) {
    this.nodeId = nodeId;
    this.region = config.region;
    this.#leaseMs = config.leaseMs;
    this.#log = log;
    const url = config.redisUrl!;
    const timeout = config.redisTimeoutMs;
    // Auto-pipelining sends the scripts of every socket that connects or subscribes in the same
    // tick as one write (in order, so each script still runs atomically and in sequence).
    const commands = new Redis(
      url,
      connectionOptions(timeout, { maxRetriesPerRequest: null, enableAutoPipelining: true }),
    );
    this.link = new RedisLink(new RedisKeys(config.prefix), nodeId, commands);
    const publisher = new Redis(
      url,
      connectionOptions(timeout, { enableOfflineQueue: false, maxRetriesPerRequest: 0 }),
    );
    const subscriber = new Redis(
      config.redisSubscribeUrl ?? url,
      // The bus resubscribes itself, to know when it is done and check what it missed.
      connectionOptions(timeout, { maxRetriesPerRequest: null, autoResubscribe: false }),
    );
    this.bus = new RedisBus(this.link, publisher, subscriber, metrics, log);
    this.history = new RedisHistory(this.link);
    this.sessions = new RedisSessions(this.link);
    this.state = new RedisState(this.link, (departure) => this.#writeFailed(departure));
  }

  get #connections(): Redis[] {
    return [this.link.commands, this.bus.publisher, this.bus.subscriber];
  }

  async start(host: ClusterHost): Promise<void> {
    this.#host = host;
    this.bus.deliver = host.deliver;
    this.bus.onEventsMissed = (appId, channel) => host.eventsMissed(appId, channel);
    for (const connection of this.#connections) {
      connection.on("error", () => {}); // reported through the status events below
    }
    const { commands } = this.link;
    commands.on("ready", () => this.#onReady());
    commands.on("close", () => {
      this.link.shareWritten = false;
      if (!this.#stopping && this.#connectedOnce) this.#log.warn("redis connection lost");
    });
    await Promise.all(this.#connections.map((connection) => connection.connect()));
    this.#timers.push(setInterval(() => this.bus.probe(), PROBE_INTERVAL_MS));
    // Ready once the first probe came back and the share is written (normally a millisecond).
    for (let i = 0; i < 100 && !(this.bus.probeHeard && this.link.shareWritten); i++) {
      this.bus.probe();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    this.#timers.push(setInterval(() => this.#heartbeat(), Math.max(250, this.#leaseMs / 3)));
    this.#timers.push(setInterval(() => this.#sweep(), Math.max(250, this.#leaseMs / 2)));
  }

  #writeFailed(departure: Departure | undefined): void {
    this.#dirty = true;
    if (!departure) return;
    this.#departures.push(departure);
    if (this.#departures.length > MAX_DEPARTURES) {
      this.#departures.shift();
      this.#log.error("too many unwritten departures: the oldest is dropped");
    }
  }

  async #onReady(): Promise<void> {
    const first = !this.#connectedOnce;
    this.#connectedOnce = true;
    await this.#register();
    if (!first) this.#log.info("redis connection regained; node state written again");
  }

  /** Writes this node's share as it is now, once at a time; announces what that changed. */
  #register(): Promise<void> {
    this.#registering ??= this.#writeShare().finally(() => this.#registering = undefined);
    return this.#registering;
  }

  async #writeShare(): Promise<void> {
    const snapshot = this.#host!.snapshot();
    const departures = this.#departures;
    this.#departures = [];
    this.#dirty = false;
    const args: (string | number)[] = [this.#leaseMs];
    for (const socketId of snapshot.alive) args.push("a", socketId);
    for (const c of snapshot.connections) args.push("c", c.appId, c.socketId);
    for (const s of snapshot.subscriptions) args.push("s", s.appId, s.channel, s.socketId);
    for (const p of snapshot.presence) {
      args.push("p", p.appId, p.channel, p.socketId, p.userId, JSON.stringify(p.userInfo));
    }
    for (const u of snapshot.users) args.push("u", u.appId, u.socketId, u.userId);
    for (const departure of departures) args.push(...departure);
    let reply: [string[], string[]];
    try {
      reply = await this.link.run("REGISTER", ...args) as [string[], string[]];
    } catch (error) {
      this.#dirty = true;
      this.#departures = [...departures, ...this.#departures];
      this.#log.error("writing node state failed", { error: errorMessage(error) });
      return;
    }
    this.link.shareWritten = true;
    await Promise.all([this.#announce(reply[0], "joined"), this.#announce(reply[1], "left")]);
  }

  async #heartbeat(): Promise<void> {
    if (this.link.commands.status !== "ready") return;
    try {
      const known = await this.link.run("HEARTBEAT", this.#leaseMs);
      // Our lease ran out (a long stall) and another node swept us, Redis lost our share, or a
      // write failed: put our share back as it is now.
      if (known === 0 || this.#dirty) await this.#register();
    } catch (error) {
      this.#log.warn("lease renewal failed", { error: errorMessage(error) });
    }
  }

  async #sweep(): Promise<void> {
    if (this.link.commands.status !== "ready") return;
    try {
      await this.#announce(await this.link.run("SWEEP") as string[], "left");
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
    if (this.link.commands.status !== "ready") return;
    try {
      await this.#announce(await this.link.run("REMOVE_SELF") as string[], "left");
    } catch (error) {
      this.#log.warn("removing node state failed", { error: errorMessage(error) });
    }
  }

  disconnect(): Promise<void> {
    for (const connection of this.#connections) connection.disconnect();
    return Promise.resolve();
  }
}
