/** Server figures from /proc: CPU time of a process tree, its RSS, its open-files limit. */
import { readdirSync, readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";

let clockTicks: number | undefined;

/** Clock ticks per second for /proc/<pid>/stat times (getconf CLK_TCK, normally 100). */
export function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    } catch {
      clockTicks = 100;
    }
    if (!Number.isFinite(clockTicks) || clockTicks <= 0) clockTicks = 100;
  }
  return clockTicks;
}

/** Fields of /proc/<pid>/stat after the command name: [0] is field 3 (state). */
function statFields(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** Every live descendant of `pid` (children, grandchildren...). */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(Number(entry));
    if (!fields) continue;
    const parent = Number(fields[1]);
    let list = children.get(parent);
    if (!list) children.set(parent, list = []);
    list.push(Number(entry));
  }
  const found: number[] = [];
  const stack = [pid];
  while (stack.length > 0 && found.length < 10_000) {
    for (const child of children.get(stack.pop()!) ?? []) {
      found.push(child);
      stack.push(child);
    }
  }
  return found;
}

/**
 * CPU seconds (user + system) of a process and its descendants: utime + stime of every live
 * process in the tree, plus cutime + cstime of the root (children it already reaped).
 */
export function treeCpuSeconds(pid: number): number {
  const root = statFields(pid);
  if (!root) return NaN;
  // Fields 14..17 (utime, stime, cutime, cstime) are [11..14] here.
  let ticks = Number(root[11]) + Number(root[12]) + Number(root[13]) + Number(root[14]);
  for (const child of descendants(pid)) {
    const fields = statFields(child);
    if (fields) ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / ticksPerSecond();
}

/** VmRSS of one process, in bytes. */
export function rssBytes(pid: number): number {
  try {
    const match = readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+) kB/m);
    return match ? Number(match[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** VmRSS of a process and its descendants, in bytes. */
export function treeRssBytes(pid: number): number {
  let total = rssBytes(pid);
  for (const child of descendants(pid)) {
    const rss = rssBytes(child);
    if (Number.isFinite(rss)) total += rss;
  }
  return total;
}

/** Soft and hard "Max open files" of a process. */
export function openFilesLimit(pid: number | "self"): { soft: number; hard: number } {
  const line = readFileSync(`/proc/${pid}/limits`, "utf8").split("\n")
    .find((l) => l.startsWith("Max open files"));
  const [soft, hard] = (line ?? "").replace("Max open files", "").trim().split(/\s+/);
  const value = (s: string | undefined) => (s === "unlimited" ? Infinity : Number(s));
  return { soft: value(soft), hard: value(hard) };
}

/** The first process whose command name is `name` (e.g. redis-server), for reporting only. */
export function findProcess(name: string): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === name) return Number(entry);
    } catch {
      // gone already
    }
  }
  return undefined;
}

/**
 * Machine-wide CPU seconds from /proc/stat: `busy` is everything but idle and iowait; `irq` is
 * the part spent in interrupts and softirqs (loopback TCP processing lands there when the kernel
 * accounts IRQ time separately, and then no process's utime/stime includes it).
 */
export function machineCpuSeconds(): { busy: number; irq: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0];
  // user nice system idle iowait irq softirq steal (guest time is already in user).
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const ticks = ticksPerSecond();
  return {
    busy: (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / ticks,
    irq: (f[5] + f[6]) / ticks,
  };
}
