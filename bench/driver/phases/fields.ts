/** How phase results become the fields of a result line. */
import type { Histogram } from "../../lib/hist.ts";
import type { Line } from "../log.ts";
import type { PhaseResult } from "../measure.ts";
import { round } from "../util.ts";

/** `<prefix>_p50_ms` and `<prefix>_p99_ms` (null when the phase did not run). */
export function latencyFields(
  prefix: string,
  histogram: Histogram | undefined,
): Record<string, number | null> {
  return {
    [`${prefix}_p50_ms`]: round(histogram?.percentile(0.5)),
    [`${prefix}_p99_ms`]: round(histogram?.percentile(0.99)),
  };
}

/** Everything measured in one phase, for the `phases` object of a result line. */
export function phaseDetails(result: PhaseResult): Record<string, unknown> {
  const bottleneck = result.serverUtilisation >= 0.9
    ? "server"
    : result.loadgenUtilisation >= 0.9
    ? "load generator"
    : result.machineBusyCores >= 1.8
    ? "machine (server, load generator and kernel share 2 cores)"
    : "none (the loop waits for deliveries)";
  return {
    events: result.events,
    deliveries: result.delivered,
    lost: result.lost,
    seconds: round(result.seconds),
    deliveries_per_s: Math.round(result.deliveriesPerSecond),
    cpu_s_per_1k_deliveries: round(result.cpuPer1k, 6),
    server_cpu_s: round(result.serverCpuSeconds),
    server_cpu_utilisation: round(result.serverUtilisation),
    loadgen_cpu_utilisation: round(result.loadgenUtilisation),
    machine_busy_cores: round(result.machineBusyCores),
    irq_cores: round(result.irqCores),
    foreign_cores: round(result.foreignCores),
    busy_cores_before: round(result.busyBefore),
    attempts: result.attempts,
    p50_ms: round(result.latency.percentile(0.5)),
    p90_ms: round(result.latency.percentile(0.9)),
    p99_ms: round(result.latency.percentile(0.99)),
    max_ms: round(result.latency.count ? result.latency.max : null),
    window_epoch_ms: result.window,
    bottleneck,
  };
}

/** What went wrong in the phases, for a line's `problems` (at most 10). */
export function problems(...results: PhaseResult[]): string[] {
  const list: string[] = [];
  for (const result of results) {
    if (result.lost !== 0) list.push(`${result.lost} deliveries missing`);
    if (result.httpFailures > 0) list.push(`${result.httpFailures} HTTP calls failed`);
    list.push(...result.errors);
  }
  return list.slice(0, 10);
}

/** Node A (HTTP API, publishes to Redis) and Redis, per 1 000 deliveries on node B. */
export function clusterExtras(result: PhaseResult): Line {
  const per1k = (cpu: number | undefined) =>
    cpu === undefined || result.delivered === 0 ? null : round(cpu / (result.delivered / 1000), 6);
  return {
    node_a_cpu_s_per_1k_deliveries: per1k(result.otherCpuSeconds[0]),
    redis_cpu_s_per_1k_deliveries: per1k(result.otherCpuSeconds[1]),
  };
}
