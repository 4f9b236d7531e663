/**
 * The variants of a target after the ramp-up, each one result line: public (moderate,
 * sequential, saturation and api phases), batch and presence.
 */
import type { Context } from "./context.ts";
import { heapPerConnection } from "./heap.ts";
import { type Line, log } from "./log.ts";
import { measured, type PhaseResult, waitQuiet } from "./measure.ts";
import { BATCH_SIZE, FANOUT, LATENCY, type Phase, PRESENCE, type TargetName } from "./names.ts";
import { apiPhase } from "./phases/api.ts";
import { saturationPhase, sequentialPhase } from "./phases/closed-loop.ts";
import { clusterExtras, latencyFields, phaseDetails, problems } from "./phases/fields.ts";
import { moderatePhase } from "./phases/moderate.ts";
import type { Setup } from "./setup.ts";
import { now, round } from "./util.ts";
import { treeCpuSeconds } from "../lib/proc.ts";

/** The first fields of every line of a target. */
export interface Base {
  target: TargetName;
  repeat: number;
  chorus_commit: string;
  runtime: "bun" | "deno";
  clients: number;
}

/** The public line, and its sequential phase: the batch and presence lines compare with it. */
export async function publicVariant(
  ctx: Context,
  base: Base,
  setup: Setup,
): Promise<{ line: Line; single: PhaseResult | undefined }> {
  const { options, running, pool } = ctx;
  const { name } = running;
  const { ramp, subs, latSubs, rssIdle, rssWith, rssIdleRaw, rssWithRaw } = setup;
  const has = (phase: Phase) => options.phases.includes(phase);
  let moderate: PhaseResult | undefined;
  if (has("moderate")) {
    log(`${name}: moderate rate, ${options.rate} events/s to ${latSubs.ok} subscribers`);
    moderate = await measured(
      ctx,
      `${name} moderate`,
      () => moderatePhase(ctx, LATENCY, latSubs.ok),
    );
  }
  log(`${name}: single events to ${subs.ok} subscribers (${options.phases.join(", ")})`);
  const single = has("sequential") ? await sequentialPhase(ctx, FANOUT, subs.ok, 1) : undefined;
  const saturation = has("saturation") ? await saturationPhase(ctx, FANOUT, subs.ok, 1) : undefined;
  const api = has("sequential") ? await apiPhase(ctx) : undefined;
  const ran = [moderate, single, saturation].filter((r): r is PhaseResult => r !== undefined);
  const line = {
    ...base,
    variant: "public",
    deliveries_per_s: saturation ? Math.round(saturation.deliveriesPerSecond) : null,
    cpu_s_per_1k_deliveries: round(single?.cpuPer1k, 6),
    saturation_cpu_s_per_1k_deliveries: round(saturation?.cpuPer1k, 6),
    ...latencyFields("lat_moderate", moderate?.latency),
    ...latencyFields("lat_saturation", saturation?.latency),
    // Per event, the latency of its first delivery: the path without the fan-out's queue.
    ...latencyFields("lat_moderate_first_delivery", moderate?.firstDelivery),
    rss_idle_bytes: rssIdle,
    rss_with_bytes: rssWith,
    bytes_per_connection: Math.round((rssWith - rssIdle) / ramp.opened),
    connections_per_s: Math.round(ramp.opened / setup.rampSeconds),
    subscriptions_per_s: Math.round(subs.ok / setup.subSeconds),
    subscribe_cpu_us: round((setup.subCpuSeconds * 1e6) / subs.ok, 2),
    subscribe_window_epoch_ms: setup.subWindow,
    connect_window_epoch_ms: setup.rampWindow,
    idle_cpu_utilisation: round(setup.idleCpu, 4),
    idle_cpu_us_per_connection_per_s: round((setup.idleCpu * 1e6) / ramp.opened, 4),
    api_calls_per_s: api ? Math.round(api.callsPerSecond) : null,
    api_cpu_ms_per_call: round(api?.cpuMsPerCall, 4),
    connections_opened: ramp.opened,
    connections_failed: ramp.failed,
    subscriptions_failed: subs.failed + latSubs.failed,
    moderate_rate: options.rate,
    moderate_subscribers: latSubs.ok,
    rss_idle_bytes_before_gc: rssIdleRaw,
    rss_with_bytes_before_gc: rssWithRaw,
    bytes_per_connection_before_gc: Math.round((rssWithRaw - rssIdleRaw) / ramp.opened),
    clock_skew_bound_ms: round(pool.clockSkewMs, 4),
    ...(name === "cluster" && single ? clusterExtras(single) : {}),
    ...(options.heapStats && base.runtime === "bun"
      ? { heap: heapPerConnection(running.measured.label, ramp.opened) }
      : {}),
    phases: {
      ...(moderate ? { moderate: phaseDetails(moderate) } : {}),
      ...(single ? { sequential: phaseDetails(single) } : {}),
      ...(saturation ? { saturation: phaseDetails(saturation) } : {}),
      ...(api ? { api } : {}),
    },
    problems: [...problems(...ran), ...(api?.errors ?? [])].slice(0, 10),
  };
  return { line, single };
}

/** `POST /batch_events` of BATCH_SIZE events per call, sequential then saturation. */
export async function batchVariant(
  ctx: Context,
  base: Base,
  subscribers: number,
  single: PhaseResult | undefined,
): Promise<Line> {
  const { name } = ctx.running;
  log(`${name}: batch_events of ${BATCH_SIZE}, sequential then saturation`);
  const batch = await sequentialPhase(ctx, FANOUT, subscribers, BATCH_SIZE);
  const batchSaturation = await saturationPhase(ctx, FANOUT, subscribers, BATCH_SIZE);
  return {
    ...base,
    variant: "batch",
    events_per_call: BATCH_SIZE,
    deliveries_per_s: Math.round(batchSaturation.deliveriesPerSecond),
    cpu_s_per_1k_deliveries: round(batch.cpuPer1k, 6),
    cpu_vs_single_events: single ? round(batch.cpuPer1k / single.cpuPer1k) : null,
    ...latencyFields("lat_saturation", batchSaturation.latency),
    ...(name === "cluster" ? clusterExtras(batch) : {}),
    phases: { sequential: phaseDetails(batch), saturation: phaseDetails(batchSaturation) },
    problems: problems(batch, batchSaturation),
  };
}

/** Every client joins the presence channel (signed, as --presence-users users), then sequential. */
export async function presenceVariant(
  ctx: Context,
  base: Base,
  single: PhaseResult | undefined,
  setup: Setup,
): Promise<Line> {
  const { options, pool } = ctx;
  const { name } = ctx.running;
  const C = options.clients;
  log(`${name}: presence, ${C} clients as ${options.presenceUsers} users`);
  await waitQuiet(options, `${name} presence subscribe`);
  const start = now();
  const startEpoch = Date.now();
  const cpuBefore = treeCpuSeconds(ctx.running.measured.pid);
  const joined = await pool.subscribe(PRESENCE, C, { users: options.presenceUsers });
  const cpuSeconds = treeCpuSeconds(ctx.running.measured.pid) - cpuBefore;
  const seconds = (now() - start) / 1000;
  const subscribeCpuUs = (cpuSeconds * 1e6) / joined.ok;
  const publicCpuUs = (setup.subCpuSeconds * 1e6) / setup.subs.ok;
  const subscribeWindow = [startEpoch, Date.now()];
  const presence = await sequentialPhase(ctx, PRESENCE, joined.ok, 1);
  return {
    ...base,
    variant: "presence",
    presence_users: options.presenceUsers,
    cpu_s_per_1k_deliveries: round(presence.cpuPer1k, 6),
    cpu_vs_public: single ? round(presence.cpuPer1k / single.cpuPer1k) : null,
    ...latencyFields("lat_sequential", presence.latency),
    presence_subscriptions_per_s: Math.round(joined.ok / seconds),
    presence_subscribe_cpu_us: round(subscribeCpuUs, 2),
    // Server CPU of a presence subscribe over a public one on the same node (issue goal <= 3x).
    presence_vs_public_subscribe_cpu: round(subscribeCpuUs / publicCpuUs),
    presence_subscriptions_failed: joined.failed,
    presence_subscribe_window_epoch_ms: subscribeWindow,
    phases: { sequential: phaseDetails(presence) },
    problems: problems(presence),
  };
}
