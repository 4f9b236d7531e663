/** The moderate phase: a fixed rate of single events (open loop), for latency. */
import type { Context } from "../context.ts";
import { drain, type PhaseResult, phaseResult, sampleCpu, waitQuiet } from "../measure.ts";
import { now, sleep } from "../util.ts";

/** A fixed, moderate rate of single events (open loop), for latency. */
export async function moderatePhase(
  ctx: Context,
  channel: string,
  subscribers: number,
): Promise<PhaseResult> {
  const { rate, moderateSeconds } = ctx.options;
  const events = Math.max(1, Math.round(rate * moderateSeconds));
  const quiet = await waitQuiet(ctx.options, `${ctx.running.name} moderate`);
  await ctx.pool.measure(true, true);
  ctx.trigger.reset();
  const before = sampleCpu(ctx);
  const posts: Promise<boolean>[] = [];
  for (let i = 0; i < events; i++) {
    const wait = before.at + (i * 1000) / rate - now();
    if (wait > 0) await sleep(wait);
    posts.push(ctx.trigger.single(channel, i));
  }
  await Promise.all(posts);
  await drain(ctx, events * subscribers, 5_000);
  const after = sampleCpu(ctx);
  const report = await ctx.pool.report();
  return phaseResult(ctx, before, after, events, subscribers, report, undefined, quiet);
}
