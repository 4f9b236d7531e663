/**
 * Runs a server entry file with one addition: SIGUSR2 forces a full garbage collection. The
 * benchmark sends it before each RSS sample so that the figures count live memory, not garbage
 * the collector has not reached yet. Nothing else about the server changes.
 *
 * With BENCH_HEAP_STATS=<file prefix> (Bun only), each SIGUSR2 also writes the JSC heap
 * statistics (object counts by type) to <prefix>-<n>.json, for `bun bench/run.ts --heap-stats`.
 *
 *   bun bench/gc-hook.ts src/bun.ts
 *   deno run --v8-flags=--expose-gc --allow-... bench/gc-hook.ts src/deno.ts
 */
import { writeFileSync } from "node:fs";
import process from "node:process";
import { pathToFileURL } from "node:url";

const runtime = globalThis as {
  Bun?: { gc(force: boolean): void };
  Deno?: { addSignalListener(signal: "SIGUSR2", handler: () => void): void };
  gc?: () => void;
};
const entry = process.argv.at(-1);
if (!entry || entry === import.meta.filename) throw new Error("usage: gc-hook.ts <entry file>");

if (runtime.Bun) {
  const bun = runtime.Bun;
  const statsPrefix = process.env.BENCH_HEAP_STATS;
  const jsc = statsPrefix ? await import("bun:jsc") : undefined;
  let dumps = 0;
  process.on("SIGUSR2", () => {
    const started = performance.now();
    bun.gc(true);
    console.error(JSON.stringify({ msg: "bench gc", ms: Math.round(performance.now() - started) }));
    if (jsc && statsPrefix) {
      writeFileSync(`${statsPrefix}-${++dumps}.json`, JSON.stringify(jsc.heapStats()));
    }
  });
} else if (runtime.Deno) {
  runtime.Deno.addSignalListener("SIGUSR2", () => {
    const started = performance.now();
    runtime.gc?.();
    console.error(JSON.stringify({ msg: "bench gc", ms: Math.round(performance.now() - started) }));
  });
}

await import(pathToFileURL(entry).href);
