/**
 * Cleanup of what the cluster target leaves in Redis: its own keys after a run, and the keys of
 * earlier runs that were killed before they could clean up; a count of what is left, and a PING.
 */
import { existsSync } from "node:fs";
import process from "node:process";
import { log } from "./log.ts";

/** Removes what the cluster left in Redis under its run-unique prefix (bounded SCAN). */
export async function cleanRedis(url: string, prefix: string): Promise<void> {
  await deleteKeys(url, `chorus:${prefix}:*`, () => true);
}

/**
 * Removes what an earlier run left when it was killed before its own cleanup: keys under
 * `chorus:bench-<pid>-<time>:` whose run.ts process (<pid>) is gone.
 */
export async function cleanStaleRedis(url: string): Promise<void> {
  await deleteKeys(url, "chorus:bench-*", (key) => {
    const pid = /^chorus:bench-(\d+)-\d+:/.exec(key)?.[1];
    return pid !== undefined && Number(pid) !== process.pid && !existsSync(`/proc/${pid}`);
  });
}

async function deleteKeys(url: string, pattern: string, pick: (key: string) => boolean) {
  try {
    let removed = 0;
    await scanKeys(url, pattern, async (redis, keys) => {
      const mine = keys.filter(pick);
      if (mine.length > 0) removed += await redis.del(...mine);
    });
    if (removed > 0) log(`redis: removed ${removed} leftover keys matching ${pattern}`);
  } catch (error) {
    log(`redis cleanup failed: ${(error as Error).message}`);
  }
}

/**
 * Keys left under the cluster's prefix by kind (`seq`, `pinfo`...: the part after the prefix and
 * the app id, `chorus:<prefix>:<app>:<kind>:...`); null when Redis could not be asked.
 */
export async function countRedisKeys(
  url: string,
  prefix: string,
  appId: string,
): Promise<Record<string, number> | null> {
  const root = `chorus:${prefix}:`;
  try {
    const kinds: Record<string, number> = {};
    await scanKeys(url, `${root}*`, (_redis, keys) => {
      for (const key of keys) {
        const parts = key.slice(root.length).split(":");
        const kind = parts[0] === appId && parts.length > 1 ? parts[1] : parts[0];
        kinds[kind] = (kinds[kind] ?? 0) + 1;
      }
      return Promise.resolve();
    });
    return kinds;
  } catch {
    return null;
  }
}

/** Throws unless Redis at `url` answers PING within 3 s. */
export async function pingRedis(url: string): Promise<void> {
  const redis = await connect(url);
  try {
    await Promise.race([
      redis.ping(),
      new Promise((_, reject) => setTimeout(() => reject(new Error("no PONG within 3 s")), 3_000)),
    ]);
  } finally {
    redis.disconnect();
  }
}

type Client = InstanceType<typeof import("ioredis").Redis>;

async function connect(url: string): Promise<Client> {
  const { Redis } = await import("ioredis");
  const redis = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 3_000,
    retryStrategy: () => null,
  });
  redis.on("error", () => {});
  await redis.connect();
  return redis;
}

/** Every key matching `pattern`, a batch at a time (a bounded SCAN). */
async function scanKeys(
  url: string,
  pattern: string,
  each: (redis: Client, keys: string[]) => Promise<void>,
): Promise<void> {
  const redis = await connect(url);
  try {
    let cursor = "0";
    for (let i = 0; i < 10_000; i++) {
      const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      await each(redis, keys);
      cursor = next;
      if (cursor === "0") break;
    }
  } finally {
    redis.disconnect();
  }
}
