/**
 * The local driver's histories of recovery channels, in memory (the Redis driver keeps them in a
 * capped stream per channel: src/cluster/bus-scripts.ts). The rules both follow are in
 * src/cluster/types.ts (`History`) and test/history-contract.test.ts.
 */
import type { History, HistoryPage, KeepPolicy, KeptEvent, KeptPosition } from "./types.ts";

/** Appends between sweeps of channels whose history ran out. */
const SWEEP_EVERY = 1_000;

interface Kept extends KeptEvent {
  at: number;
}

interface ChannelHistory {
  epoch: string;
  serial: number;
  events: Kept[];
  lastAt: number;
  ttlMs: number;
}

export class MemoryHistory implements History {
  readonly #channels = new Map<string, ChannelHistory>();
  #appendsSinceSweep = 0;
  #epochs = 0;

  constructor(readonly now: () => number = Date.now) {}

  /** Keeps one event; where it stands. */
  append(
    appId: string,
    channel: string,
    frame: string,
    exceptSocketId: string | undefined,
    keep: KeepPolicy,
  ): KeptPosition {
    const now = this.now();
    if (++this.#appendsSinceSweep >= SWEEP_EVERY) this.#sweep(now);
    const key = `${appId}\n${channel}`;
    let history = this.#live(key, now);
    if (!history) {
      history = { epoch: this.#newEpoch(now), serial: 0, events: [], lastAt: now, ttlMs: 0 };
      this.#channels.set(key, history);
    }
    const serial = ++history.serial;
    history.events.push({ serial, frame, exceptSocketId, at: now });
    history.lastAt = now;
    history.ttlMs = keep.ttlMs;
    if (history.events.length > keep.maxMessages) history.events.shift();
    return { epoch: history.epoch, serial };
  }

  read(appId: string, channel: string, since: number, keep: KeepPolicy): Promise<HistoryPage> {
    const now = this.now();
    const history = this.#live(`${appId}\n${channel}`, now);
    if (!history) {
      return Promise.resolve({ epoch: "", serial: 0, events: [], complete: since === 0 });
    }
    const from = now - keep.ttlMs;
    const kept = history.events.filter((event) => event.at >= from);
    const events = kept.filter((event) => event.serial > since)
      .map(({ serial, frame, exceptSocketId }) => ({
        serial,
        frame,
        ...(exceptSocketId === undefined ? {} : { exceptSocketId }),
      }));
    const first = kept[0]?.serial ?? history.serial + 1;
    const complete = since <= history.serial && since >= first - 1;
    return Promise.resolve({ epoch: history.epoch, serial: history.serial, events, complete });
  }

  /** The channel's history unless nothing was published on it for its ttl. */
  #live(key: string, now: number): ChannelHistory | undefined {
    const history = this.#channels.get(key);
    if (history && now - history.lastAt > history.ttlMs) {
      this.#channels.delete(key);
      return undefined;
    }
    return history;
  }

  #sweep(now: number): void {
    this.#appendsSinceSweep = 0;
    for (const [key, history] of this.#channels) {
      if (now - history.lastAt > history.ttlMs) this.#channels.delete(key);
    }
  }

  /** Unique within this process and across its restarts (the time it started counting). */
  #newEpoch(now: number): string {
    return `${now.toString(36)}.${(++this.#epochs).toString(36)}`;
  }
}
