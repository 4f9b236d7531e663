/**
 * File-descriptor headroom. A process at its open-file limit cannot accept, cannot open a file, and
 * a runtime may even panic (docs/runtime-notes.md), so new sockets are refused (src/server.ts)
 * while fewer than `reserveFor(limit)` descriptors are left.
 */
import { readdirSync, statSync } from "node:fs";

/** Descriptors kept free for Redis, HTTP answers, logs and the runtime itself. */
export function reserveFor(limit: number): number {
  return Math.min(256, Math.floor(limit / 4));
}

/**
 * Descriptors this process holds now (Linux), or undefined where /proc is missing. Reading the
 * directory takes a descriptor itself: failing with EMFILE means all of them are in use.
 */
export function openDescriptors(limit = Infinity): number | undefined {
  try {
    // Linux 6.2+ reports the count as the directory's size: no listing of thousands of entries.
    return statSync("/proc/self/fd").size || readdirSync("/proc/self/fd").length;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    return code === "EMFILE" || code === "ENFILE" ? limit : undefined;
  }
}

const SAMPLE_MS = 1_000;

/**
 * Samples the descriptor count once a second (no runtime shows its accept loop to JavaScript):
 * `pressed` is true while the count is within the reserve of the limit; `onPressure` runs when it
 * becomes true.
 */
export class DescriptorWatch {
  pressed = false;
  readonly #timer: ReturnType<typeof setInterval> | undefined;

  constructor(limit: number | undefined, onPressure: (open: number, limit: number) => void) {
    if (limit === undefined || !Number.isFinite(limit)) return;
    const ceiling = limit - reserveFor(limit);
    this.#timer = setInterval(() => {
      const open = openDescriptors(limit);
      if (open === undefined) return;
      const pressed = open >= ceiling;
      if (pressed && !this.pressed) onPressure(open, limit);
      this.pressed = pressed;
    }, SAMPLE_MS);
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
