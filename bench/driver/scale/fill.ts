/**
 * Scale phase 1: one Chorus node on Bun (local driver) filled with sockets to just under its
 * open-file limit, then events to a channel all of them are on.
 */
import { treeRssBytes } from "../../lib/proc.ts";
import { type Line, log } from "../log.ts";
import { APP } from "../names.ts";
import { ClientPool } from "../pool.ts";
import { rssAfterGc } from "../servers.ts";
import { chorusConfig } from "../targets.ts";
import { Trigger } from "../trigger.ts";
import { now, round, sleep } from "../util.ts";
import { fdCeiling, FILL_FD_MARGIN } from "./capacity.ts";
import type { ScaleOptions } from "./cli.ts";
import {
  everyAcceptedEventDelivered,
  everySocketGotEveryEvent,
  type Fanout,
  fanoutFields,
  moderatePhase,
  saturationPhase,
} from "./fanout.ts";
import { type Cleanup, fileLimit, nodeLogLines, openFds, startNodes } from "./nodes.ts";

const CHANNEL = { prefix: "scale-fill-", channels: 1, stride: 1, every: 1 };

export async function fillPhase(o: ScaleOptions, cleanup: Cleanup): Promise<Line> {
  const started = now();
  const env = { CHORUS_CONFIG: chorusConfig(o.presenceUsers, "scale-config.json") };
  const [node] = await startNodes([{ label: "scale-fill", runtime: "bun" }], env, 1_000, cleanup);
  await sleep(1_000);
  const rssIdle = await rssAfterGc(node, 500);
  const limit = fileLimit(node.pid);
  // Chorus answers 503 to upgrades from `ceiling` open descriptors on (src/fds.ts): stay below.
  const ceiling = fdCeiling(limit);
  const fdsIdle = openFds(node.pid);
  const room = () => ceiling - FILL_FD_MARGIN - openFds(node.pid);
  const capacity = Math.min(o.fillMax, room());
  if (capacity <= 0) throw new Error(`fill: no room under ${ceiling} descriptors (${fdsIdle})`);
  log(
    `fill: ${fdsIdle} of ${limit} descriptors open, refusing from ${ceiling}: ${capacity} sockets`,
  );

  const pool = new ClientPool(capacity, o.fillProcs, false);
  cleanup.add("load generators", () => pool.exit());
  await pool.start();
  const url = `ws://127.0.0.1:${node.port}/app/${APP.key}?protocol=7&client=bench`;
  // One socket is one descriptor, so the first step normally fills the room; go on (bounded)
  // while some is left, in case the node's own descriptors changed meanwhile.
  const rampStart = now();
  let opened = 0;
  let failed = 0;
  for (let step = 0; step < 10; step++) {
    const upTo = Math.min(capacity, opened + failed + room());
    if (upTo <= opened + failed) break;
    const ramp = await pool.connect(url, o.rampWindow, upTo);
    opened += ramp.opened;
    failed += ramp.failed;
    if (ramp.failed > 0 || ramp.opened === 0) break;
  }
  const rampSeconds = (now() - rampStart) / 1000;
  const fdsHeld = openFds(node.pid);
  log(`fill: ${opened} sockets open (${failed} failed), ${fdsHeld} descriptors`);
  if (opened === 0) throw new Error("fill: no socket could connect");

  const subStart = now();
  const subs = await pool.subscribeSpread(CHANNEL, opened);
  const subSeconds = (now() - subStart) / 1000;
  const rssWithRaw = treeRssBytes(node.pid);
  const rssWith = await rssAfterGc(node, 1_000);
  const loadgenRss = pool.pids.reduce((sum, pid) => sum + treeRssBytes(pid), 0);

  const trigger = new Trigger(`http://127.0.0.1:${node.port}`, o.payload, () => pool.poke());
  const fanout: Fanout = {
    pool,
    triggers: [trigger],
    channels: [...subs.perChannel].map(([name, subscribers]) => ({ name, subscribers })),
    nodes: [node],
    sockets: opened,
    redis: false,
  };
  log(`fill: saturation, ${o.seconds} s to ${subs.ok} subscribers`);
  const saturation = await saturationPhase(fanout, o.seconds, o.fillWindow);
  log(`fill: moderate, ${o.rate} events/s for ${o.moderateSeconds} s`);
  const moderate = await moderatePhase(fanout, o.rate, o.moderateSeconds);
  const fdsAfter = openFds(node.pid);
  const logged = nodeLogLines([node]);
  await pool.close();
  await cleanup.run();

  return {
    scale: "fill",
    runtime: "bun",
    sockets_held: opened,
    connects_per_s: Math.round(opened / rampSeconds),
    deliveries_per_s: Math.round(saturation.deliveriesPerSecond),
    lat_saturation_p99_ms: round(saturation.latency.percentile(0.99)),
    lat_moderate_p99_ms: round(moderate.latency.percentile(0.99)),
    bytes_per_socket: Math.round((rssWith - rssIdle) / opened),
    every_socket_got_every_event: everySocketGotEveryEvent(fanout, saturation) &&
      everySocketGotEveryEvent(fanout, moderate) && subs.ok === opened,
    every_accepted_event_delivered: everyAcceptedEventDelivered(fanout, saturation) &&
      everyAcceptedEventDelivered(fanout, moderate),
    events_refused: saturation.refused + moderate.refused,
    open_files_limit: limit,
    fd_refusal_ceiling: ceiling,
    fds_idle: fdsIdle,
    fds_held: fdsHeld,
    fds_after_events: fdsAfter,
    connects_failed: failed,
    subscriptions_per_s: Math.round(subs.ok / subSeconds),
    subscriptions_failed: opened - subs.ok,
    subscription_errors: subs.errors,
    rss_idle_bytes: rssIdle,
    rss_with_bytes: rssWith,
    bytes_per_socket_before_gc: Math.round((rssWithRaw - rssIdle) / opened),
    loadgen_bytes_per_socket: Math.round(loadgenRss / opened),
    load_generators: o.fillProcs,
    saturation: { window: o.fillWindow, ...fanoutFields(fanout, saturation) },
    moderate: { rate: o.rate, ...fanoutFields(fanout, moderate) },
    node_log_lines: logged.count,
    node_log_first: logged.first,
    seconds: round((now() - started) / 1000, 1),
  };
}
