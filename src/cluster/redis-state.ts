/**
 * The shared state in Redis: sets and hashes updated atomically by the Lua scripts of
 * src/cluster/redis-scripts.ts (which also documents the key layout). Every call is bounded
 * (src/cluster/redis-link.ts) and fails as `ClusterUnavailable`. A departure whose write failed
 * is handed to `onWriteFailed`, so the cluster applies it when it writes its share again.
 */
import { isPresence } from "../channels/index.ts";
import type { Roster } from "../channels/index.ts";
import { COUNT_ANNOUNCE_INTERVAL_MS } from "./local.ts";
import type { RedisLink } from "./redis-link.ts";
import { RosterMirror } from "./redis-rosters.ts";
import { WriteBatch } from "./redis-writes.ts";
import type {
  CachedEvent,
  ChannelCounts,
  CountClaim,
  JoinResult,
  MemberRef,
  SignInRef,
  SocketRef,
  State,
  SubscriptionRef,
} from "./types.ts";

/** A leave that could not be written: 'C' connection, 'S' subscription, 'P' presence, 'U' user. */
export type Departure =
  | ["C", string, string]
  | ["S", string, string, string]
  | ["P", string, string, string, string]
  | ["U", string, string, string];

export class RedisState implements State {
  readonly #rosters = new RosterMirror();
  readonly #writes: WriteBatch<Departure>;

  constructor(
    readonly link: RedisLink,
    /** A write failed (departure: the leave to apply later); the share must be written again. */
    readonly onWriteFailed: (departure?: Departure) => void,
  ) {
    this.#writes = new WriteBatch(
      (args) => link.run("WRITES", ...args),
      (departure) => this.onWriteFailed(departure),
    );
  }

  /**
   * Queues a connection or subscription record (src/cluster/redis-writes.ts, which marks a
   * failed one as `#marked` does): the connect and subscribe path, one promise per record.
   */
  #record(departure: Departure | undefined, ...write: (string | number)[]): Promise<number> {
    return this.#writes.write(write, departure);
  }

  /** Runs a writing script. */
  #write(
    departure: Departure | undefined,
    ...args: Parameters<RedisLink["run"]>
  ): Promise<unknown> {
    return this.#marked(departure, this.link.run(...args));
  }

  /** A failed write marks the share for rewriting (with the leave to apply then). */
  async #marked<T>(departure: Departure | undefined, writing: Promise<T>): Promise<T> {
    try {
      return await writing;
    } catch (error) {
      this.onWriteFailed(departure);
      throw error;
    }
  }

  addConnection({ appId, socketId, max }: SocketRef & { max: number | null }): Promise<boolean> {
    return this.#record(undefined, "C+", appId, socketId, max ?? -1).then(isOne);
  }

  async removeConnection({ appId, socketId }: SocketRef): Promise<void> {
    await this.#record(["C", appId, socketId], "C-", appId, socketId);
  }

  async connectionCount(appId: string): Promise<number> {
    const key = this.link.keys.connections(appId);
    return await this.link.call((redis) => redis.scard(key));
  }

  addSubscription({ appId, channel, socketId }: SubscriptionRef): Promise<{ occupied: boolean }> {
    return this.#record(undefined, "S+", appId, channel, socketId).then(occupied);
  }

  async removeSubscription(
    { appId, channel, socketId }: SubscriptionRef,
  ): Promise<{ vacated: boolean }> {
    const reply = await this.#record(
      ["S", appId, channel, socketId],
      "S-",
      appId,
      channel,
      socketId,
    );
    return { vacated: reply === 1 };
  }

  async joinPresence({ appId, channel, socketId, userId, userInfo, maxMembers }: MemberRef & {
    userInfo: unknown;
    maxMembers: number;
  }): Promise<JoinResult> {
    const infoJson = JSON.stringify(userInfo);
    const reply = await this.#write(
      undefined,
      "PRESENCE_JOIN",
      appId,
      channel,
      socketId,
      userId,
      infoJson,
      maxMembers,
      this.#rosters.versionOf(appId, channel),
    ) as unknown[];
    const code = Number(reply[0]);
    if (code < 0) return { ok: false, reason: "full" };
    const versions = {
      before: String(reply[1]),
      after: String(reply[2]),
      list: reply[3] === "list" ? reply.slice(4) : undefined,
    };
    const roster = this.#rosters.joined(appId, channel, versions, { userId, infoJson }) ??
      await this.presenceMembers(appId, channel);
    return { ok: true, first: code === 1, roster };
  }

  async leavePresence({ appId, channel, socketId, userId }: MemberRef): Promise<{ last: boolean }> {
    let reply: unknown[];
    try {
      reply = await this.#write(
        ["P", appId, channel, socketId, userId],
        "PRESENCE_LEAVE",
        appId,
        channel,
        socketId,
        userId,
      ) as unknown[];
    } catch (error) {
      this.#rosters.release(appId, channel);
      throw error;
    }
    this.#rosters.left(
      appId,
      channel,
      { before: String(reply[1]), after: String(reply[2]) },
      userId,
    );
    return { last: reply[0] === 1 };
  }

  async presenceMembers(appId: string, channel: string): Promise<Roster> {
    const key = this.link.keys.members(appId, channel);
    const flat = await this.link.call((redis) => redis.call("HGETALL", key));
    return RosterMirror.fromList(channel, toFlatList(flat));
  }

  releasePresence(appId: string, channel: string): void {
    this.#rosters.release(appId, channel);
  }

  async channels(appId: string, prefix = ""): Promise<Map<string, ChannelCounts>> {
    this.link.assertReady();
    const reply = await this.link.run("CHANNELS", appId, prefix) as (string | number)[];
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

  async signIn({ appId, userId, socketId }: SignInRef): Promise<{ first: boolean }> {
    return { first: await this.#write(undefined, "USER_ADD", appId, socketId, userId) === 1 };
  }

  async signOut({ appId, userId, socketId }: SignInRef): Promise<{ last: boolean }> {
    const departure: Departure = ["U", appId, socketId, userId];
    return { last: await this.#write(departure, "USER_REMOVE", appId, socketId, userId) === 1 };
  }

  async onlineUsers(appId: string, userIds: readonly string[]): Promise<string[]> {
    if (userIds.length === 0) return [];
    return (await this.link.run("USERS_ONLINE", appId, ...userIds) as unknown[]).map(String);
  }

  async setCache({ appId, channel, event, ttlSeconds }: {
    appId: string;
    channel: string;
    event: CachedEvent;
    ttlSeconds: number;
  }): Promise<void> {
    const key = this.#cacheKey(appId, channel);
    await this.link.call((redis) => redis.set(key, JSON.stringify(event), "EX", ttlSeconds));
  }

  async getCache(
    appId: string,
    channel: string,
  ): Promise<(CachedEvent & { ttl: number }) | undefined> {
    const key = this.#cacheKey(appId, channel);
    const [json, ttlMs] = await this.link.call((redis) =>
      Promise.all([redis.get(key), redis.pttl(key)])
    );
    if (json === null || ttlMs <= 0) return undefined;
    const { event, data } = JSON.parse(json) as CachedEvent;
    return { event, data, ttl: Math.ceil(ttlMs / 1000) };
  }

  #cacheKey(appId: string, channel: string): string {
    return this.link.keys.cache(appId, channel);
  }

  async claimCountAnnouncement(appId: string, channel: string): Promise<CountClaim> {
    const reply = Number(
      await this.link.run("COUNT_CLAIM", appId, channel, COUNT_ANNOUNCE_INTERVAL_MS),
    );
    if (reply === -1) return { kind: "wait" };
    if (reply === -2) return { kind: "unchanged" };
    return { kind: "announce", count: reply };
  }

  async channel(appId: string, channel: string): Promise<ChannelCounts> {
    const { keys } = this.link;
    const subscriptions = keys.subscriptions(appId, channel);
    const subscriptionCount = await this.link.call((redis) => redis.scard(subscriptions));
    if (!isPresence(channel)) return { subscriptionCount };
    const members = keys.members(appId, channel);
    return { subscriptionCount, userCount: await this.link.call((redis) => redis.hlen(members)) };
  }
}

/** HGETALL comes back as a flat list (RESP2, Lua) or a map object (RESP3). */
function toFlatList(reply: unknown): unknown[] {
  if (Array.isArray(reply)) return reply;
  if (reply instanceof Map) return [...reply].flat();
  if (reply && typeof reply === "object") return Object.entries(reply).flat();
  return [];
}

function isOne(reply: number): boolean {
  return reply === 1;
}

const OCCUPIED = { occupied: true } as const;
const NOT_OCCUPIED = { occupied: false } as const;

function occupied(reply: number): { occupied: boolean } {
  return reply === 1 ? OCCUPIED : NOT_OCCUPIED;
}
