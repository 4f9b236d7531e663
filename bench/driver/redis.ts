/**
 * Cleanup of what the cluster target leaves in Redis: its own keys after a run, and the keys of
 * earlier runs that were killed before they could clean up.
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
  const { Redis } = await import("ioredis");
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on("error", () => {});
  try {
    await redis.connect();
    let cursor = "0";
    let removed = 0;
    for (let i = 0; i < 1_000; i++) {
      const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      const mine = keys.filter(pick);
      if (mine.length > 0) removed += await redis.del(...mine);
      cursor = next;
      if (cursor === "0") break;
    }
    if (removed > 0) log(`redis: removed ${removed} leftover keys matching ${pattern}`);
  } catch (error) {
    log(`redis cleanup failed: ${(error as Error).message}`);
  } finally {
    redis.disconnect();
  }
}
