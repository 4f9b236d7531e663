/**
 * The machine's limits a run must fit: open files (every child runs under `ulimit -n <hard
 * limit>` and is checked afterwards) and the ephemeral port range (every client connects from
 * 127.0.0.1 to one port).
 */
import { readFileSync } from "node:fs";
import { openFilesLimit } from "../lib/proc.ts";
import type { Options } from "./cli.ts";
import { fail } from "./log.ts";

export const LIMIT = openFilesLimit("self");
export const NOFILE = Number.isFinite(LIMIT.hard) ? LIMIT.hard : 1_048_576;
/** `sh -c` script that raises the soft limit to $BENCH_NOFILE, then runs its arguments. */
export const ULIMIT_EXEC = 'ulimit -n "$BENCH_NOFILE" || exit 111; exec "$0" "$@"';

export function checkOpenFiles(pid: number, needed: number, what: string): void {
  const { soft } = openFilesLimit(pid);
  if (soft < needed) {
    throw new Error(
      `${what}: open-files soft limit is ${soft}, needs ${needed} (hard limit ${LIMIT.hard}); ` +
        "raise the hard limit (ulimit -Hn) or lower --clients / raise --procs",
    );
  }
}

/** Stops the run before it starts when the clients cannot fit the limits. */
export function checkLimits(options: Options): void {
  if (NOFILE < options.clients / options.procs + 200) {
    fail(
      `the open-files hard limit (${LIMIT.hard}) is too low for ${options.clients} clients in ` +
        `${options.procs} process(es); raise it or use --procs / --clients`,
    );
  }
  const { low, high, count } = ephemeralPorts();
  if (count < options.clients) {
    fail(`${options.clients} clients do not fit the ephemeral port range ${low}-${high}`);
  }
}

/** The ephemeral port range: connections from one address to one address and port. */
export function ephemeralPorts(): { low: number; high: number; count: number } {
  const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim()
    .split(/\s+/).map(Number);
  return { low, high, count: high - low + 1 };
}
