/**
 * `--heap-stats`: Bun servers dump JSC heap statistics (bench/gc-hook.ts, BENCH_HEAP_STATS) when
 * idle and with C connections; the difference per connection goes into the public line.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type Line, log } from "./log.ts";
import { OUT } from "./paths.ts";
import { round } from "./util.ts";

// Set once per run (the dump files carry the run's time stamp); undefined = off.
let heapStatsPrefix: ((label: string) => string) | undefined;

export function enableHeapStats(stamp: string): void {
  mkdirSync(join(OUT, "heap"), { recursive: true });
  heapStatsPrefix = (label) => join(OUT, "heap", `${label}-${stamp}`);
}

/** The environment that makes the server `label` write its dumps; empty when off. */
export function heapStatsEnv(label: string): Record<string, string> {
  return heapStatsPrefix ? { BENCH_HEAP_STATS: heapStatsPrefix(label) } : {};
}

/** JSC object counts per connection: heap dump 2 (with C) minus dump 1 (idle), top types. */
export function heapPerConnection(label: string, connections: number): Line | undefined {
  const prefix = heapStatsPrefix;
  if (!prefix) return undefined;
  try {
    type Stats = { heapSize: number; objectTypeCounts: Record<string, number> };
    const read = (n: number) =>
      JSON.parse(readFileSync(`${prefix(label)}-${n}.json`, "utf8")) as Stats;
    const idle = read(1);
    const busy = read(2);
    const perType = Object.entries(busy.objectTypeCounts)
      .map(([type, count]) => [type, (count - (idle.objectTypeCounts[type] ?? 0)) / connections])
      .filter(([, n]) => (n as number) >= 0.5)
      .sort((a, b) => (b[1] as number) - (a[1] as number))
      .slice(0, 25)
      .map(([type, n]) => [type, round(n as number, 2)]);
    return {
      heap_bytes_per_connection: Math.round((busy.heapSize - idle.heapSize) / connections),
      objects_per_connection: Object.fromEntries(perType),
    };
  } catch (error) {
    log(`heap stats for ${label}: ${(error as Error).message}`);
    return undefined;
  }
}
