/**
 * Chorus benchmark: `bun bench/run.ts [flags]` (bench/README.md has the details).
 *
 * For each target (Chorus on Bun / Deno, the bare baselines, a two-node Redis cluster) it starts
 * the server as a subprocess, opens C WebSocket clients in load-generator processes
 * (bench/loadgen.ts), subscribes them, triggers events through the signed HTTP API and prints
 * one JSON line per target and variant, then a summary line with the ratios and target checks.
 * Everything it writes goes to bench/.out/. The parts are in bench/driver/.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import {
  checkLimits,
  emit,
  enableHeapStats,
  getResultsFile,
  type Line,
  log,
  machine,
  medianLines,
  now,
  OUT,
  parseOptions,
  round,
  runTarget,
  setResultsFile,
  summarize,
  summarizeFile,
  type TargetName,
} from "./driver/index.ts";

async function main(): Promise<void> {
  const invocation = parseOptions(process.argv.slice(2));
  if ("summarize" in invocation) {
    summarizeFile(invocation.summarize);
    return;
  }
  const { options } = invocation;
  mkdirSync(join(OUT, "logs"), { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  setResultsFile(join(OUT, `results-${stamp}.jsonl`));
  if (options.heapStats) enableHeapStats(stamp);
  checkLimits(options);

  emit({
    ...machine(),
    command: ["bun", "bench/run.ts", ...process.argv.slice(2)].join(" "),
    options,
  });
  const results = new Map<TargetName, Line[]>();
  const started = now();
  for (let repeat = 1; repeat <= options.repeat; repeat++) {
    for (const target of options.targets) {
      const t0 = now();
      try {
        const lines = await runTarget(target, options, repeat);
        results.set(target, [...(results.get(target) ?? []), ...lines]);
      } catch (error) {
        log(`${target} failed: ${(error as Error).stack ?? error}`);
        emit({ target, repeat, error: (error as Error).message });
      }
      log(`${target}: done in ${((now() - t0) / 1000).toFixed(1)} s`);
    }
  }
  if (options.repeat > 1) { for (const line of medianLines(results, options.repeat)) emit(line); }
  const summary = summarize(results, options.repeat);
  if (options.quick) {
    // 1 000 clients and 2 s phases check that everything runs; they do not settle the targets.
    summary.note = "quick mode: the checks are indicative only; judge targets on a full run";
  }
  summary.total_seconds = round((now() - started) / 1000, 1);
  emit(summary);
  writeFileSync(join(OUT, "latest.jsonl"), readFileSync(getResultsFile()));
  log(`results: ${getResultsFile()}`);
}

await main();
