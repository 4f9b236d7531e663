/** `--perf`: perf record of a server during a phase, with a text report next to the data. */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { childEnv, spawnProcess } from "../../test/support/index.ts";
import type { Context } from "./context.ts";
import { log } from "./log.ts";
import { OUT } from "./paths.ts";
import { sleep } from "./util.ts";

/**
 * `perf record -F hz` of `pid` into `file` until `stop()`, which writes a text report (`.txt`
 * next to the data) and answers its path. For bench/run.ts (--perf) and bench/api.ts alike.
 */
export function recordPerf(pid: number, file: string, hz: number): { stop(): Promise<string> } {
  const record = spawnProcess({
    cmd: "perf",
    args: ["record", "-F", String(hz), "-g", "-p", String(pid), "-o", file],
    env: childEnv(),
  });
  return {
    async stop() {
      record.signal("SIGINT");
      await Promise.race([record.exited, sleep(10_000)]);
      const report = spawnProcess({
        cmd: "perf",
        args: [
          "report",
          "-i",
          file,
          "--stdio",
          "--no-children",
          "-g",
          "none",
          "--sort",
          "dso,symbol",
          "--percent-limit",
          "0.3",
        ],
        env: childEnv(),
      });
      if ((await Promise.race([report.exited.then(() => true), sleep(60_000)])) !== true) {
        report.signal("SIGKILL");
      }
      const text = file.replace(/\.data$/, ".txt");
      writeFileSync(text, report.stdout.join("\n"));
      return text;
    },
  };
}

/** `perf record` of the measured server while a phase runs (--perf); a text report next to it. */
export function startPerf(ctx: Context, phase: string): { stop(): Promise<void> } | undefined {
  if (!ctx.options.perf) return undefined;
  const dir = join(OUT, "prof");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${ctx.running.measured.label}-${phase}-${Date.now()}.perf.data`);
  const pid = ctx.running.http === ctx.running.measured || phase !== "api"
    ? ctx.running.measured.pid
    : ctx.running.http.pid;
  const recording = recordPerf(pid, file, 499);
  return {
    async stop() {
      await recording.stop();
      log(`perf: ${file}`);
    },
  };
}
