/** The closed-loop phases: sequential (CPU per delivery) and saturation (throughput). */
import type { Options } from "../cli.ts";
import type { Context } from "../context.ts";
import {
  drain,
  measured,
  type PhaseResult,
  phaseResult,
  sampleCpu,
  waitQuiet,
} from "../measure.ts";
import { startPerf } from "../perf.ts";
import { now, sleep } from "../util.ts";

/**
 * Closed loop: a new HTTP call (1 event, or a batch of `perCall`) goes out as soon as fewer than
 * `windowEvents` events are still on their way to some subscriber. With `windowEvents ==
 * perCall` ("sequential") the next call waits until every subscriber got the previous one: each
 * event is then handled alone, the same way on every target, whichever process is the
 * bottleneck, which makes CPU per delivery comparable. A larger window ("saturation") keeps the
 * pipeline full for throughput; neither side's buffers grow beyond the window.
 */
async function closedLoopPhase(
  ctx: Context,
  channel: string,
  subscribers: number,
  perCall: number,
  windowEvents: number,
): Promise<PhaseResult> {
  const maxHttp = 8;
  const quiet = await waitQuiet(ctx.options, `${ctx.running.name} closed loop`);
  await ctx.pool.measure(true);
  ctx.trigger.reset();
  const before = sampleCpu(ctx);
  const end = before.at + ctx.options.seconds * 1000;
  const warmAt = before.at + Math.min(500, ctx.options.seconds * 250);
  let warm: { at: number; delivered: number } | undefined;
  let sent = 0;
  /** Deliveries given up on (a stall of 2 s): the loop goes on without them. */
  let forgiven = 0;
  let lastChange = { at: now(), delivered: -1 };
  for (let loops = 0; loops < 10_000_000; loops++) {
    const t = now();
    if (t >= end) break;
    const delivered = ctx.pool.delivered;
    if (!warm && t >= warmAt) warm = { at: t, delivered };
    if (delivered !== lastChange.delivered) lastChange = { at: t, delivered };
    else if (t - lastChange.at > 2_000 && ctx.trigger.inFlight === 0) {
      forgiven = sent * subscribers - delivered;
      lastChange = { at: t, delivered };
    }
    const completed = (delivered + forgiven) / subscribers;
    while (ctx.trigger.inFlight < maxHttp && sent - completed + perCall <= windowEvents + 1e-9) {
      if (perCall === 1) ctx.trigger.single(channel, sent);
      else ctx.trigger.batch(channel, sent, perCall);
      sent += perCall;
    }
    await ctx.pool.wait(5);
  }
  const stop = { at: now(), delivered: ctx.pool.delivered };
  await drain(ctx, sent * subscribers, 10_000);
  for (let i = 0; i < 1_000 && ctx.trigger.inFlight > 0; i++) await sleep(10);
  const after = sampleCpu(ctx);
  const steady = warm && stop.at > warm.at
    ? { deliveries: stop.delivered - warm.delivered, seconds: (stop.at - warm.at) / 1000 }
    : undefined;
  const report = await ctx.pool.report();
  return phaseResult(ctx, before, after, sent, subscribers, report, steady, quiet);
}

function saturationWindow(options: Options, subscribers: number, perCall: number): number {
  return Math.max(2 * perCall, Math.ceil(options.window / subscribers));
}

/** One event (or batch) in flight at a time, under `perf record` with --perf. */
export async function sequentialPhase(
  ctx: Context,
  channel: string,
  subscribers: number,
  perCall: number,
): Promise<PhaseResult> {
  const perf = startPerf(ctx, `${channel}-${perCall === 1 ? "single" : "batch"}-sequential`);
  const result = await measured(
    ctx,
    `${ctx.running.name} ${channel} sequential`,
    () => closedLoopPhase(ctx, channel, subscribers, perCall, perCall),
  );
  await perf?.stop();
  return result;
}

/** About `--window` deliveries in flight. */
export function saturationPhase(
  ctx: Context,
  channel: string,
  subscribers: number,
  perCall: number,
): Promise<PhaseResult> {
  return measured(
    ctx,
    `${ctx.running.name} ${channel} saturation`,
    () =>
      closedLoopPhase(
        ctx,
        channel,
        subscribers,
        perCall,
        saturationWindow(ctx.options, subscribers, perCall),
      ),
  );
}
