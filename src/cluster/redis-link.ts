/**
 * What the Redis bus, state and cluster share: the namespace, the node id, the command
 * connection, and Lua scripts run by name. Every call is bounded in time (`redisTimeoutMs`), and a
 * failure surfaces as `ClusterUnavailable`, which the HTTP API answers with 503.
 */
import type { Redis, RedisOptions } from "ioredis";
import { errorMessage } from "../log.ts";
import type { RedisKeys } from "./keys.ts";
import * as busScripts from "./bus-scripts.ts";
import * as stateScripts from "./redis-scripts.ts";
import * as sessionScripts from "./session-scripts.ts";
import { ClusterUnavailable } from "./types.ts";

const scripts = { ...stateScripts, ...busScripts, ...sessionScripts };
export type ScriptName = keyof typeof scripts;

/** ioredis options for every connection of a node; `timeoutMs` bounds each command. */
export function connectionOptions(timeoutMs: number, extra: RedisOptions): RedisOptions {
  return {
    // Reconnect with capped backoff, forever: the node stays up and reports not-ready meanwhile.
    // A short cap: after Redis restarts empty, every node must write its share again quickly.
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 4), 500),
    lazyConnect: true,
    // A hung server (or a partition without RST) never answers: give up on the command...
    commandTimeout: timeoutMs,
    // ...and, when nothing at all comes back, drop the connection so it is rebuilt.
    socketTimeout: timeoutMs * 3,
    connectTimeout: Math.max(timeoutMs * 3, 1_000),
    ...extra,
  };
}

/** Wraps a Redis failure (refused, timed out, connection lost) as `ClusterUnavailable`. */
export function unavailable(error: unknown): ClusterUnavailable {
  if (error instanceof ClusterUnavailable) return error;
  return new ClusterUnavailable(`Redis: ${errorMessage(error)}`);
}

export class RedisLink {
  readonly #shas = new Map<ScriptName, string>();
  /**
   * This node's share is in Redis as of the current command connection; false from a dropped
   * connection until it is written again (src/cluster/redis.ts), and the node is not ready.
   */
  shareWritten = false;

  constructor(
    /** Every key and channel name (src/cluster/keys.ts). */
    readonly keys: RedisKeys,
    readonly nodeId: string,
    /** State commands; queues while reconnecting, each command bounded by `commandTimeout`. */
    readonly commands: Redis,
  ) {}

  assertReady(): void {
    if (this.commands.status !== "ready") throw new ClusterUnavailable("Redis is not connected");
  }

  /** Runs a Lua script by name with ARGV = root, node id, ...args on `connection`. */
  async run(name: ScriptName, ...args: (string | number)[]): Promise<unknown> {
    return await this.runOn(this.commands, name, ...args);
  }

  async runOn(
    connection: Redis,
    name: ScriptName,
    ...args: (string | number)[]
  ): Promise<unknown> {
    const argv = [this.keys.root, this.nodeId, ...args];
    try {
      const sha = this.#shas.get(name);
      if (sha) {
        try {
          return await connection.evalsha(sha, 0, ...argv);
        } catch (error) {
          // Redis restarted and forgot the script: load it again below.
          if (!errorMessage(error).includes("NOSCRIPT")) throw error;
        }
      }
      const loaded = await connection.script("LOAD", scripts[name]) as string;
      this.#shas.set(name, loaded);
      return await connection.evalsha(loaded, 0, ...argv);
    } catch (error) {
      throw unavailable(error);
    }
  }

  /** A plain command on the command connection, with the same error mapping. */
  async call<T>(command: (redis: Redis) => Promise<T>): Promise<T> {
    this.assertReady();
    try {
      return await command(this.commands);
    } catch (error) {
      throw unavailable(error);
    }
  }
}
