/**
 * Resumable sessions in Redis (scripts and keys: src/cluster/session-scripts.ts); the same rules
 * as the memory driver (src/cluster/sessions.ts, test/session-contract.test.ts).
 */
import type { RedisLink } from "./redis-link.ts";
import type { SessionRecord, Sessions } from "./types.ts";

export class RedisSessions implements Sessions {
  constructor(readonly link: RedisLink) {}

  async claim(
    appId: string,
    sessionId: string,
    socketId: string,
    ttlMs: number,
  ): Promise<SessionRecord | undefined | "held"> {
    this.link.assertReady();
    const [answer, record] = await this.link.run(
      "SESSION_CLAIM",
      appId,
      sessionId,
      socketId,
      ttlMs,
    ) as [string, string?];
    if (answer === "held") return "held";
    return record ? JSON.parse(record) as SessionRecord : undefined;
  }

  async save(
    appId: string,
    sessionId: string,
    socketId: string,
    record: SessionRecord,
    ttlMs: number,
    release: boolean,
  ): Promise<void> {
    this.link.assertReady();
    const json = JSON.stringify(record);
    await this.link.run("SESSION_SAVE", appId, sessionId, socketId, ttlMs, json, release ? 1 : 0);
  }
}
