/**
 * The local driver's resumable sessions, in memory (the Redis driver: src/cluster/redis-sessions.ts).
 * In one process a holder that did not let go is an open socket. The rules both follow are in
 * src/cluster/types.ts (`Sessions`) and test/session-contract.test.ts.
 */
import type { SessionRecord, Sessions } from "./types.ts";

/** Saves between sweeps of sessions whose ttl ran out. */
const SWEEP_EVERY = 1_000;

interface Kept {
  holder: string | undefined;
  /** JSON: a copy, as Redis would keep it. */
  record: string | undefined;
  expiresAt: number;
}

export class MemorySessions implements Sessions {
  readonly #sessions = new Map<string, Kept>();
  #savesSinceSweep = 0;

  constructor(readonly now: () => number = Date.now) {}

  claim(
    appId: string,
    sessionId: string,
    socketId: string,
    ttlMs: number,
  ): Promise<SessionRecord | undefined | "held"> {
    const now = this.now();
    const key = `${appId}\n${sessionId}`;
    let kept = this.#sessions.get(key);
    if (kept && kept.expiresAt <= now) kept = undefined;
    if (kept?.holder !== undefined && kept.holder !== socketId) return Promise.resolve("held");
    const record = kept?.record;
    this.#sessions.set(key, { holder: socketId, record, expiresAt: now + ttlMs });
    return Promise.resolve(record === undefined ? undefined : JSON.parse(record));
  }

  save(
    appId: string,
    sessionId: string,
    socketId: string,
    record: SessionRecord,
    ttlMs: number,
    release: boolean,
  ): Promise<void> {
    const now = this.now();
    if (++this.#savesSinceSweep >= SWEEP_EVERY) this.#sweep(now);
    const kept = this.#sessions.get(`${appId}\n${sessionId}`);
    if (!kept || kept.expiresAt <= now || kept.holder !== socketId) return Promise.resolve();
    kept.record = JSON.stringify(record);
    kept.expiresAt = now + ttlMs;
    if (release) kept.holder = undefined;
    return Promise.resolve();
  }

  #sweep(now: number): void {
    this.#savesSinceSweep = 0;
    for (const [key, kept] of this.#sessions) {
      if (kept.expiresAt <= now) this.#sessions.delete(key);
    }
  }
}
