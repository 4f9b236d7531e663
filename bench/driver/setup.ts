/**
 * What every variant of a target starts from: RSS idle, C clients connected and subscribed (the
 * ramp-up), then idle CPU and RSS with C connections.
 */
import { treeCpuSeconds, treeRssBytes } from "../lib/proc.ts";
import type { Context } from "./context.ts";
import { log } from "./log.ts";
import { liveRss, waitQuiet } from "./measure.ts";
import { FANOUT, LATENCY } from "./names.ts";
import { now, sleep } from "./util.ts";

export interface Setup {
  /** RSS before and after a forced GC, without clients. */
  rssIdleRaw: number;
  rssIdle: number;
  ramp: { opened: number; failed: number };
  rampSeconds: number;
  /** Every client on the fan-out channel. */
  subs: { ok: number; failed: number };
  subSeconds: number;
  /** Server CPU seconds while every client subscribed to the fan-out channel. */
  subCpuSeconds: number;
  /** When that was (epoch ms), for --cpu-prof windows. */
  subWindow: [number, number];
  rampWindow: [number, number];
  /** The first --lat-subs clients on the latency channel. */
  latSubs: { ok: number; failed: number };
  /** Server CPU (cores) with C idle connections. */
  idleCpu: number;
  /** RSS before and after a forced GC, with C clients. */
  rssWithRaw: number;
  rssWith: number;
}

export async function connectClients(ctx: Context, url: string): Promise<Setup> {
  const { options, running, pool } = ctx;
  const { name } = running;
  const C = options.clients;
  await sleep(options.settleMs);
  const rssIdleRaw = treeRssBytes(running.measured.pid);
  const rssIdle = await liveRss(running, options);

  log(`${name}: ramp-up`);
  await waitQuiet(options, `${name} ramp-up`);
  const rampStart = now();
  const rampStartEpoch = Date.now();
  const ramp = await pool.connect(url, options.rampWindow);
  const rampWindow: [number, number] = [rampStartEpoch, Date.now()];
  const rampSeconds = (now() - rampStart) / 1000;
  if (ramp.opened === 0) throw new Error(`${name}: no client could connect`);
  const subStart = now();
  const subStartEpoch = Date.now();
  const subCpuBefore = treeCpuSeconds(running.measured.pid);
  const subs = await pool.subscribe(FANOUT, C);
  const subCpuSeconds = treeCpuSeconds(running.measured.pid) - subCpuBefore;
  const subSeconds = (now() - subStart) / 1000;
  const subWindow: [number, number] = [subStartEpoch, Date.now()];
  const latSubs = await pool.subscribe(LATENCY, options.latSubs);
  // Background cost with C idle connections (timers, sweeps): server CPU over a quiet while.
  await sleep(options.settleMs / 2);
  const idleSeconds = options.quick ? 1 : 3;
  const idleBefore = { at: now(), cpu: treeCpuSeconds(running.measured.pid) };
  await sleep(idleSeconds * 1000);
  const idleCpu = (treeCpuSeconds(running.measured.pid) - idleBefore.cpu) /
    ((now() - idleBefore.at) / 1000);
  const rssWithRaw = treeRssBytes(running.measured.pid);
  const rssWith = await liveRss(running, options);
  return {
    rssIdleRaw,
    rssIdle,
    ramp,
    rampSeconds,
    subs,
    subSeconds,
    subCpuSeconds,
    subWindow,
    rampWindow,
    latSubs,
    idleCpu,
    rssWithRaw,
    rssWith,
  };
}
