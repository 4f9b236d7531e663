/**
 * Events to many channels through several nodes: the scale mode's saturation phase (closed loop,
 * about `window` deliveries in flight) and moderate phase (a fixed rate, for latency), each
 * followed by the count of every socket's events. Event k goes through node k % nodes to channel
 * floor(k / nodes) % channels, so that every channel is published through every node.
 */
import { Histogram } from "../../lib/hist.ts";
import { findProcess, machineCpuSeconds, treeCpuSeconds } from "../../lib/proc.ts";
import type { CheckReport } from "../../loadgen.ts";
import type { Line } from "../log.ts";
import type { ClientPool } from "../pool.ts";
import type { ServerProcess } from "../servers.ts";
import type { Trigger } from "../trigger.ts";
import { now, round, sleep } from "../util.ts";
import { assertNodesAlive } from "./nodes.ts";

export interface Fanout {
  pool: ClientPool;
  /** One per node, used in turn. */
  triggers: Trigger[];
  /** The channels events go to, with their subscribers. */
  channels: { name: string; subscribers: number }[];
  nodes: ServerProcess[];
  /** Sockets the load generators hold: each must still be open at the end. */
  sockets: number;
  /** Sample redis-server's CPU too. */
  redis: boolean;
}

interface Sample {
  nodes: number[];
  redis: number;
  loadgen: number;
  machine: number;
  irq: number;
  at: number;
}

export interface FanoutResult {
  events: number;
  /** Events the HTTP API refused (503 and the like): not delivered, by Chorus's answer. */
  refused: number;
  /** Deliveries of the accepted events (subscribers of their channels). */
  expected: number;
  delivered: number;
  seconds: number;
  deliveriesPerSecond: number;
  latency: Histogram;
  nodeCpu: number[];
  redisCpu: number;
  loadgenCpu: number;
  machineBusy: number;
  irq: number;
  httpFailures: number;
  dropped: number;
  errors: string[];
  check: CheckReport;
}

/** HTTP calls in flight over all nodes. */
const MAX_HTTP = 16;

function sample(f: Fanout): Sample {
  const redis = f.redis ? findProcess("redis-server") : undefined;
  const machine = machineCpuSeconds();
  return {
    nodes: f.nodes.map((node) => treeCpuSeconds(node.pid)),
    redis: redis === undefined ? NaN : treeCpuSeconds(redis),
    loadgen: f.pool.pids.reduce((sum, pid) => sum + treeCpuSeconds(pid), 0),
    machine: machine.busy,
    irq: machine.irq,
    at: now(),
  };
}

/** A phase in progress: what was sent, and what the HTTP API accepted per channel. */
class Run {
  readonly before: Sample;
  readonly acceptedTo = new Map<string, number>();
  events = 0;
  refused = 0;
  /** Deliveries of every event sent, of the accepted ones, and of the refused ones. */
  sent = 0;
  expected = 0;
  lost = 0;

  constructor(readonly f: Fanout) {
    for (const trigger of f.triggers) trigger.reset();
    this.before = sample(f);
  }

  get httpInFlight(): number {
    return this.f.triggers.reduce((n, t) => n + t.inFlight, 0);
  }

  /** Deliveries on their way: of events sent, less the refused ones and those that arrived. */
  get pending(): number {
    return this.sent - this.lost - this.f.pool.delivered;
  }

  /** Sends the next event. */
  send(): void {
    const { triggers, channels } = this.f;
    const k = this.events++;
    const channel = channels[Math.floor(k / triggers.length) % channels.length];
    this.sent += channel.subscribers;
    triggers[k % triggers.length].single(channel.name, k).then((accepted) => {
      if (accepted) {
        this.acceptedTo.set(channel.name, (this.acceptedTo.get(channel.name) ?? 0) + 1);
        this.expected += channel.subscribers;
      } else {
        this.refused++;
        this.lost += channel.subscribers;
      }
    });
  }

  /**
   * Waits for every HTTP answer and the accepted events' deliveries: at most 30 s, and at most
   * 5 s without a delivery once every call answered. Then counts every socket's events.
   */
  async finish(steady?: { deliveries: number; seconds: number }): Promise<FanoutResult> {
    const { pool, triggers } = this.f;
    const deadline = now() + 30_000;
    let last = { at: now(), delivered: pool.delivered };
    while (now() < deadline && (this.httpInFlight > 0 || this.pending > 0)) {
      await pool.wait(20);
      if (pool.delivered !== last.delivered) last = { at: now(), delivered: pool.delivered };
      else if (this.httpInFlight === 0 && now() - last.at > 5_000) break;
    }
    const after = sample(this.f);
    assertNodesAlive(this.f.nodes);
    const report = await pool.report();
    const check = await pool.check(this.acceptedTo);
    const seconds = (after.at - this.before.at) / 1000;
    return {
      events: this.events,
      refused: this.refused,
      expected: this.expected,
      delivered: report.delivered,
      seconds,
      deliveriesPerSecond: steady ? steady.deliveries / steady.seconds : report.delivered / seconds,
      latency: report.latency,
      nodeCpu: after.nodes.map((cpu, i) => cpu - this.before.nodes[i]),
      redisCpu: after.redis - this.before.redis,
      loadgenCpu: after.loadgen - this.before.loadgen,
      machineBusy: after.machine - this.before.machine,
      irq: after.irq - this.before.irq,
      httpFailures: triggers.reduce((n, t) => n + t.failures, 0),
      dropped: report.dropped,
      errors: [...report.errors, ...triggers.flatMap((t) => t.errors)].slice(0, 10),
      check,
    };
  }
}

/**
 * Closed loop for `seconds`: a new event goes out while fewer than `window` deliveries are on
 * their way (and fewer than 16 HTTP calls). Deliveries that stall for 2 s with no call in flight
 * are given up on, so a loss cannot stop the loop; the count at the end shows it.
 */
export async function saturationPhase(
  f: Fanout,
  seconds: number,
  window: number,
): Promise<FanoutResult> {
  await f.pool.measure(true);
  const run = new Run(f);
  const start = run.before.at;
  const end = start + seconds * 1000;
  const warmAt = start + Math.min(500, seconds * 250);
  let warm: { at: number; delivered: number } | undefined;
  let forgiven = 0;
  let lastChange = { at: start, delivered: -1 };
  for (let loops = 0; loops < 10_000_000; loops++) {
    const t = now();
    if (t >= end) break;
    const delivered = f.pool.delivered;
    if (!warm && t >= warmAt) warm = { at: t, delivered };
    if (delivered !== lastChange.delivered) lastChange = { at: t, delivered };
    else if (t - lastChange.at > 2_000 && run.httpInFlight === 0) {
      forgiven = run.pending;
      lastChange = { at: t, delivered };
    }
    while (run.httpInFlight < MAX_HTTP && run.pending - forgiven < window) run.send();
    await f.pool.wait(5);
  }
  const stop = { at: now(), delivered: f.pool.delivered };
  const steady = warm && stop.at > warm.at
    ? { deliveries: stop.delivered - warm.delivered, seconds: (stop.at - warm.at) / 1000 }
    : undefined;
  return await run.finish(steady);
}

/** `rate` events/s for `seconds` (open loop): latency without a queue. */
export async function moderatePhase(
  f: Fanout,
  rate: number,
  seconds: number,
): Promise<FanoutResult> {
  await f.pool.measure(true);
  const run = new Run(f);
  const events = Math.max(1, Math.round(rate * seconds));
  for (let i = 0; i < events; i++) {
    const wait = run.before.at + (i * 1000) / rate - now();
    if (wait > 0) await sleep(wait);
    run.send();
  }
  return await run.finish();
}

/**
 * True when every socket is still open and got exactly the events the HTTP API accepted for its
 * channels (none lost, none twice).
 */
export function everyAcceptedEventDelivered(f: Fanout, r: FanoutResult): boolean {
  const { check } = r;
  return r.dropped === 0 && r.delivered === r.expected && check.clients === f.sockets &&
    check.open === f.sockets && check.exact === f.sockets && check.expected === r.expected &&
    check.received === r.expected;
}

/** The same, and the API accepted every event sent: every socket got every event. */
export function everySocketGotEveryEvent(f: Fanout, r: FanoutResult): boolean {
  return r.refused === 0 && r.httpFailures === 0 && everyAcceptedEventDelivered(f, r);
}

/** A phase's figures as fields of the result line. */
export function fanoutFields(f: Fanout, r: FanoutResult): Line {
  const nodeCpu = r.nodeCpu.reduce((a, b) => a + b, 0);
  const per1k = (cpu: number) => r.delivered > 0 ? round(cpu / (r.delivered / 1000), 6) : null;
  const problems = [
    ...(r.delivered < r.expected ? [`${r.expected - r.delivered} deliveries missing`] : []),
    ...(r.delivered > r.expected
      ? [`${r.delivered - r.expected} deliveries beyond those of the accepted events`]
      : []),
    ...(r.httpFailures > 0 ? [`${r.httpFailures} HTTP calls failed (events refused)`] : []),
    ...(r.dropped > 0 ? [`${r.dropped} sockets closed by the server`] : []),
    ...(r.check.short + r.check.over > 0
      ? [`${r.check.short} sockets short, ${r.check.over} over: ${r.check.samples.join(", ")}`]
      : []),
    ...r.errors,
  ];
  return {
    events: r.events,
    events_refused: r.refused,
    deliveries_expected: r.expected,
    deliveries: r.delivered,
    seconds: round(r.seconds),
    deliveries_per_s: Math.round(r.deliveriesPerSecond),
    p50_ms: round(r.latency.percentile(0.5)),
    p90_ms: round(r.latency.percentile(0.9)),
    p99_ms: round(r.latency.percentile(0.99)),
    max_ms: round(r.latency.count ? r.latency.max : null),
    node_cpu_s: round(nodeCpu),
    node_cpu_s_per_1k_deliveries: per1k(nodeCpu),
    node_cpu_s_by_node: Object.fromEntries(f.nodes.map((n, i) => [n.label, round(r.nodeCpu[i])])),
    ...(f.redis
      ? {
        redis_cpu_s: round(r.redisCpu),
        redis_cpu_s_per_1k_deliveries: per1k(r.redisCpu),
        redis_cpu_ms_per_event: r.events > 0 ? round((r.redisCpu * 1000) / r.events, 4) : null,
      }
      : {}),
    loadgen_cpu_utilisation: round(r.loadgenCpu / r.seconds),
    machine_busy_cores: round(r.machineBusy / r.seconds),
    irq_cores: round(r.irq / r.seconds),
    sockets_exact: r.check.exact,
    sockets_short: r.check.short,
    sockets_over: r.check.over,
    sockets_open: r.check.open,
    every_socket_got_every_event: everySocketGotEveryEvent(f, r),
    every_accepted_event_delivered: everyAcceptedEventDelivered(f, r),
    problems: problems.slice(0, 10),
  };
}
