/** The api phase: what an HTTP call costs the server before any fan-out. */
import { treeCpuSeconds } from "../../lib/proc.ts";
import type { Context } from "../context.ts";
import { waitQuiet } from "../measure.ts";
import { EMPTY } from "../names.ts";
import { startPerf } from "../perf.ts";
import { now, round, sleep } from "../util.ts";

export interface ApiResult {
  calls: number;
  seconds: number;
  callsPerSecond: number;
  /** Server CPU per HTTP call, in ms. */
  cpuMsPerCall: number;
  failures: number;
  errors: string[];
  window_epoch_ms: [number, number];
}

/** Calls sent before the measured window, as bench/api.ts does: steady state, not the JIT. */
const WARMUP_CALLS = 10_000;

/** Keeps 8 calls in flight until `done` says stop; answers how many were sent. */
async function callUntil(ctx: Context, done: (calls: number) => boolean): Promise<number> {
  let calls = 0;
  for (let loops = 0; loops < 10_000_000 && !done(calls); loops++) {
    while (ctx.trigger.inFlight < 8) ctx.trigger.single(EMPTY, calls++);
    await ctx.pool.wait(5);
  }
  for (let i = 0; i < 1_000 && ctx.trigger.inFlight > 0; i++) await sleep(5);
  return calls;
}

/**
 * The HTTP API alone: single events to a channel nobody is subscribed to, 8 calls in flight,
 * for `--api-duration` (2 s) after WARMUP_CALLS. Its CPU per call (of the node that takes the
 * HTTP calls) is what each event costs before fan-out.
 */
export async function apiPhase(ctx: Context): Promise<ApiResult> {
  const seconds = ctx.options.apiSeconds;
  await callUntil(ctx, (calls) => calls >= WARMUP_CALLS);
  await waitQuiet(ctx.options, `${ctx.running.name} api`);
  const perf = startPerf(ctx, "api");
  ctx.trigger.reset();
  const pid = ctx.running.http.pid;
  const before = { at: now(), cpu: treeCpuSeconds(pid), epochMs: Date.now() };
  const end = before.at + seconds * 1000;
  const calls = await callUntil(ctx, () => now() >= end);
  const after = { at: now(), cpu: treeCpuSeconds(pid), epochMs: Date.now() };
  await perf?.stop();
  const elapsed = (after.at - before.at) / 1000;
  return {
    calls,
    seconds: round(elapsed)!,
    callsPerSecond: calls / elapsed,
    cpuMsPerCall: ((after.cpu - before.cpu) * 1000) / calls,
    failures: ctx.trigger.failures,
    errors: ctx.trigger.errors.slice(0, 5),
    window_epoch_ms: [before.epochMs, after.epochMs],
  };
}
