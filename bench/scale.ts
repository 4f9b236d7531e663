/**
 * Chorus at scale: `bun bench/scale.ts [flags]`, run by hand (bench/README.md, "Scale mode").
 *
 * Phase `fill`: one Chorus node on Bun filled with sockets to just under its open-file limit.
 * Phase `cluster`: Bun nodes and a Deno node over one Redis holding 100 000 sockets together.
 * Each phase prints one JSON line (also in bench/.out/scale-<time>.jsonl). Before anything
 * starts, the run checks that the machine can hold what was asked (else exit 2); everything it
 * starts is stopped at the end of each phase, on an error and on SIGINT / SIGTERM.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { emit, type Line, log, machine, now, OUT, round, setResultsFile } from "./driver/index.ts";
import { checkScale } from "./driver/scale/capacity.ts";
import { parseScaleOptions, type ScaleOptions, type ScalePhase } from "./driver/scale/cli.ts";
import { clusterPhase } from "./driver/scale/cluster.ts";
import { fillPhase } from "./driver/scale/fill.ts";
import { Cleanup } from "./driver/scale/nodes.ts";

const PHASES: Record<ScalePhase, (o: ScaleOptions, cleanup: Cleanup) => Promise<Line>> = {
  fill: fillPhase,
  cluster: clusterPhase,
};

async function main(): Promise<number> {
  const options = parseScaleOptions(process.argv.slice(2));
  mkdirSync(join(OUT, "logs"), { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  setResultsFile(join(OUT, `scale-${stamp}.jsonl`));
  const plan = await checkScale(options);
  emit({
    ...machine(),
    command: ["bun", "bench/scale.ts", ...process.argv.slice(2)].join(" "),
    options,
    plan,
  });
  let cleanup = new Cleanup();
  let stopping = false;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, async () => {
      if (stopping) return;
      stopping = true;
      log(`${signal}: stopping everything`);
      await cleanup.run();
      process.exit(130);
    });
  }
  let failed = 0;
  const started = now();
  for (const phase of options.phases) {
    cleanup = new Cleanup();
    const t0 = now();
    try {
      emit(await PHASES[phase](options, cleanup));
    } catch (error) {
      failed++;
      log(`${phase} failed: ${(error as Error).stack ?? error}`);
      emit({ scale: phase, error: (error as Error).message });
    } finally {
      await cleanup.run();
    }
    log(`${phase}: done in ${((now() - t0) / 1000).toFixed(1)} s`);
  }
  log(`scale: ${round((now() - started) / 1000, 1)} s in all`);
  return failed > 0 ? 1 : 0;
}

process.exit(await main());
