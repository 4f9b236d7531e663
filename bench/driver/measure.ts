/**
 * How a phase is measured: CPU samples of every process of the run and the machine, waiting for
 * a quiet machine, the figures of one phase, re-runs of disturbed phases, and RSS after a GC.
 */
import process from "node:process";
import type { Histogram } from "../lib/hist.ts";
import { findProcess, machineCpuSeconds, treeCpuSeconds } from "../lib/proc.ts";
import type { Options } from "./cli.ts";
import type { Context } from "./context.ts";
import { log } from "./log.ts";
import type { MergedReport } from "./pool.ts";
import { rssAfterGc } from "./servers.ts";
import { assertAlive, type Running } from "./targets.ts";
import { now, sleep } from "./util.ts";

export interface CpuSample {
  server: number;
  others: number[];
  loadgen: number;
  /** This process (run.ts: the HTTP triggers). */
  self: number;
  machine: number;
  irq: number;
  at: number;
  /** Date.now(), to line phases up with profiles. */
  epochMs: number;
}

export function sampleCpu(ctx: Context): CpuSample {
  const others = ctx.running.servers.filter((s) => s !== ctx.running.measured)
    .map((s) => treeCpuSeconds(s.pid));
  if (ctx.running.redisPrefix) {
    const redis = findProcess("redis-server");
    others.push(redis === undefined ? NaN : treeCpuSeconds(redis));
  }
  const usage = process.cpuUsage();
  const machine = machineCpuSeconds();
  return {
    server: treeCpuSeconds(ctx.running.measured.pid),
    others,
    loadgen: ctx.pool.pids.reduce((sum, pid) => sum + treeCpuSeconds(pid), 0),
    self: (usage.user + usage.system) / 1e6,
    machine: machine.busy,
    irq: machine.irq,
    at: now(),
    epochMs: Date.now(),
  };
}

/**
 * Other work on the machine skews every figure (on a 2-vCPU VM the vCPUs may be SMT siblings, so
 * a busy neighbour slows our instructions too). Before each measured phase, wait (bounded) until
 * the machine is quiet: fewer than `--quiet` cores busy over half a second while our processes
 * idle. Answers the busy cores seen last.
 */
export async function waitQuiet(options: Options, what: string): Promise<number> {
  if (options.quietCores <= 0) return NaN;
  const deadline = now() + options.quietWaitSeconds * 1000;
  let busy = Infinity;
  let warned = false;
  for (let i = 0; i < 10_000 && now() < deadline; i++) {
    const start = { machine: machineCpuSeconds().busy, at: now() };
    await sleep(500);
    busy = (machineCpuSeconds().busy - start.machine) / ((now() - start.at) / 1000);
    if (busy < options.quietCores) return busy;
    if (!warned) {
      log(`${what}: waiting for the machine to be quiet (${busy.toFixed(2)} cores busy)`);
      warned = true;
    }
  }
  log(`${what}: machine still busy (${busy.toFixed(2)} cores) after ${options.quietWaitSeconds} s`);
  return busy;
}

/** Waits until `expected` deliveries were counted (or `timeoutMs`). */
export async function drain(ctx: Context, expected: number, timeoutMs: number): Promise<void> {
  const deadline = now() + timeoutMs;
  while (ctx.pool.delivered < expected && now() < deadline) await ctx.pool.wait(10);
}

export interface PhaseResult {
  events: number;
  expected: number;
  delivered: number;
  lost: number;
  seconds: number;
  deliveriesPerSecond: number;
  serverCpuSeconds: number;
  cpuPer1k: number;
  serverUtilisation: number;
  loadgenUtilisation: number;
  /** Busy cores on the whole machine; the part in IRQ/softirq (loopback TCP); the part that no
   * process of this run nor the IRQ time accounts for (someone else's work). */
  machineBusyCores: number;
  irqCores: number;
  foreignCores: number;
  otherCpuSeconds: number[];
  latency: Histogram;
  firstDelivery: Histogram;
  httpFailures: number;
  errors: string[];
  /** Busy cores on the machine just before the phase. */
  busyBefore: number;
  attempts: number;
  /** Wall-clock window (Date.now()), e.g. for `bun bench/profile.ts --from --to`. */
  window: [number, number];
}

export function phaseResult(
  ctx: Context,
  before: CpuSample,
  after: CpuSample,
  events: number,
  subscribers: number,
  report: MergedReport,
  steady: { deliveries: number; seconds: number } | undefined,
  busyBefore: number,
): PhaseResult {
  const seconds = (after.at - before.at) / 1000;
  const serverCpu = after.server - before.server;
  const others = after.others.map((cpu, i) => cpu - before.others[i]);
  const ours = serverCpu + (after.loadgen - before.loadgen) + (after.self - before.self) +
    others.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
  const machineBusy = after.machine - before.machine;
  const irq = after.irq - before.irq;
  return {
    events,
    expected: events * subscribers,
    delivered: report.delivered,
    lost: events * subscribers - report.delivered,
    seconds,
    deliveriesPerSecond: steady ? steady.deliveries / steady.seconds : report.delivered / seconds,
    serverCpuSeconds: serverCpu,
    cpuPer1k: report.delivered > 0 ? serverCpu / (report.delivered / 1000) : NaN,
    serverUtilisation: serverCpu / seconds,
    loadgenUtilisation: (after.loadgen - before.loadgen) / seconds,
    machineBusyCores: machineBusy / seconds,
    irqCores: irq / seconds,
    foreignCores: Math.max(0, machineBusy - irq - ours) / seconds,
    otherCpuSeconds: others,
    latency: report.latency,
    firstDelivery: report.firstDelivery,
    httpFailures: ctx.trigger.failures,
    errors: [
      ...(report.dropped > 0 ? [`${report.dropped} sockets closed by the server`] : []),
      ...report.errors,
      ...ctx.trigger.errors,
    ],
    busyBefore,
    attempts: 1,
    window: [before.epochMs, after.epochMs],
  };
}

/**
 * Runs a phase; when someone else's work took more than `--max-foreign` cores during it, runs it
 * again (at most `--retries` more times) and keeps the least disturbed run.
 */
export async function measured(
  ctx: Context,
  label: string,
  run: () => Promise<PhaseResult>,
): Promise<PhaseResult> {
  let best: PhaseResult | undefined;
  for (let attempt = 1; attempt <= 1 + ctx.options.retries; attempt++) {
    const result = await run();
    result.attempts = attempt;
    if (!best || result.foreignCores < best.foreignCores) best = result;
    if (result.foreignCores <= ctx.options.maxForeign) break;
    if (attempt <= ctx.options.retries) {
      log(`${label}: ${result.foreignCores.toFixed(2)} cores of other work meanwhile; again`);
    }
  }
  return best!;
}

/** RSS of the measured server after a forced full GC (SIGUSR2, see bench/gc-hook.ts). */
export function liveRss(running: Running, options: Options): Promise<number> {
  assertAlive(running);
  return rssAfterGc(running.measured, Math.max(300, options.settleMs / 2));
}
