/** Facts about the machine and the code under test, for the first line of a run. */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import { LIMIT } from "./limits.ts";
import type { Line } from "./log.ts";
import { BUN, DENO, ROOT } from "./paths.ts";

/** The first line of a command's output, or "unknown". */
function firstLine(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: "utf8" }).split("\n")[0].trim();
  } catch {
    return "unknown";
  }
}

/** HEAD, with "+dirty" when src/ or adapters/ differ from it. */
export function gitCommit(): string {
  const head = firstLine("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"]);
  const changed = gitChangedFiles();
  return changed ? `${head}+dirty` : head;
}

/** Files that differ from HEAD: the run measures the working tree, not the commit. */
function gitChangedFiles(): number | null {
  try {
    const out = execFileSync(
      "git",
      ["-C", ROOT, "status", "--porcelain", "--", "src", "adapters"],
      {
        encoding: "utf8",
      },
    );
    return out.split("\n").filter(Boolean).length;
  } catch {
    return null;
  }
}

export function machine(): Line {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "unknown";
  const read = (file: string) => {
    try {
      return readFileSync(file, "utf8").trim();
    } catch {
      return "unknown";
    }
  };
  return {
    machine: true,
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpu_model: model,
    mem_total_bytes: os.totalmem(),
    kernel: os.release(),
    bun: firstLine(BUN, ["--version"]),
    deno: firstLine(DENO, ["--version"]),
    open_files_limit: LIMIT,
    ephemeral_ports: read("/proc/sys/net/ipv4/ip_local_port_range").replace(/\s+/, "-"),
    tcp_tw_reuse: read("/proc/sys/net/ipv4/tcp_tw_reuse"),
    git_commit: firstLine("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"]),
    git_changed_files: gitChangedFiles(),
  };
}
