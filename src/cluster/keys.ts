/**
 * Every Redis key and pub/sub channel name Chorus uses, built in one place under the namespace
 * `chorus:{prefix}` (CHORUS_REDIS_PREFIX). The Lua scripts (src/cluster/redis-scripts.ts, which
 * documents the whole layout) build the same names from the root they are given.
 */
export class RedisKeys {
  /** `chorus:{prefix}`. */
  readonly root: string;

  constructor(prefix: string) {
    this.root = `chorus:${prefix}`;
  }

  /** Pub/sub channel carrying one Pusher channel's events between nodes. */
  events(appId: string, channel: string): string {
    return `${this.root}:${appId}:ev:${channel}`;
  }

  /** Counter numbering a channel's events (src/cluster/redis-bus.ts). */
  sequence(appId: string, channel: string): string {
    return `${this.root}:${appId}:seq:${channel}`;
  }

  /** Pub/sub channel only `nodeId` listens on: its self-probe. */
  probe(nodeId: string): string {
    return `${this.root}:probe:${nodeId}`;
  }

  connections(appId: string): string {
    return `${this.root}:${appId}:conns`;
  }

  subscriptions(appId: string, channel: string): string {
    return `${this.root}:${appId}:subs:${channel}`;
  }

  /** Presence members of a channel: user id -> user_info JSON. */
  members(appId: string, channel: string): string {
    return `${this.root}:${appId}:pinfo:${channel}`;
  }

  cache(appId: string, channel: string): string {
    return `${this.root}:${appId}:cache:${channel}`;
  }

  /** Held for a second after a subscription count announcement. */
  countLock(appId: string, channel: string): string {
    return `${this.root}:${appId}:countlock:${channel}`;
  }

  /** Webhook jobs (hash), due times (zset), dead letters (list), recently finished (zset). */
  webhooks(part: "jobs" | "due" | "dead" | "done"): string {
    return `${this.root}:webhooks:${part}`;
  }
}
