/** `--perf`: perf record of a server during a phase, with a text report next to the data. */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Context } from "./context.ts";
import { log } from "./log.ts";
import { OUT } from "./paths.ts";
import { sleep } from "./util.ts";

/** `perf record` of the measured server while a phase runs (--perf); a text report next to it. */
export function startPerf(ctx: Context, phase: string): { stop(): Promise<void> } | undefined {
  if (!ctx.options.perf) return undefined;
  const dir = join(OUT, "prof");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${ctx.running.measured.label}-${phase}-${Date.now()}.perf.data`);
  const pid = String(
    ctx.running.http === ctx.running.measured || phase !== "api"
      ? ctx.running.measured.pid
      : ctx.running.http.pid,
  );
  const proc = Bun.spawn(["perf", "record", "-F", "499", "-g", "-p", pid, "-o", file], {
    stdout: "ignore",
    stderr: "ignore",
  });
  return {
    async stop() {
      proc.kill("SIGINT");
      await Promise.race([proc.exited, sleep(10_000)]);
      const report = Bun.spawn([
        "perf",
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
      ], { stdout: "pipe", stderr: "ignore" });
      const text = await Promise.race([new Response(report.stdout).text(), sleep(60_000)]);
      if (typeof text === "string") writeFileSync(file.replace(/\.data$/, ".txt"), text);
      else report.kill("SIGKILL");
      log(`perf: ${file}`);
    },
  };
}
