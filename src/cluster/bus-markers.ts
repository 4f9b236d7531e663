/**
 * Markers a node publishes on its own probe channel (src/cluster/redis-bus.ts): one that comes
 * back through the subscriber proves that everything published before it has arrived (through a
 * replica too), which the sequence comparison waits for.
 */
import type { Redis } from "ioredis";

export class ProbeMarkers {
  readonly #waiting = new Map<string, () => void>();
  #count = 0;

  /** `giveUpMs`: resolve anyway after it (the probe watch reports a silent path). */
  constructor(
    readonly publisher: Redis,
    readonly probeKey: string,
    readonly giveUpMs: number,
  ) {}

  /** A probe-channel message arrived: true when it was one of our markers. */
  heard(message: string): boolean {
    const resolve = this.#waiting.get(message);
    resolve?.();
    return resolve !== undefined;
  }

  /** Resolves once everything published before now has reached the subscriber (or giveUpMs). */
  heardEverything(): Promise<void> {
    const marker = `marker:${++this.#count}`;
    return new Promise((resolve) => {
      const heard = () => {
        clearTimeout(timer);
        this.#waiting.delete(marker);
        resolve();
      };
      const timer = setTimeout(heard, this.giveUpMs);
      this.#waiting.set(marker, heard);
      this.publisher.publish(this.probeKey, marker).catch(heard);
    });
  }
}
