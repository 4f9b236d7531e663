/**
 * Scale phase 2: a cluster of Chorus nodes (Bun, and Deno) over one Redis holding `--sockets`
 * together, each node under its own open-file limit, with clients on public and presence
 * channels that span every node, and events through every node's HTTP API in turn.
 *
 * Bun's WebSocket client cannot bind a source address, so every client connects from 127.0.0.1.
 * Each node listens on its own port, and the kernel only needs each (source, destination) pair
 * to be unique: a node holds at most its file limit (~19 700) sockets, below the ~28 000
 * ephemeral ports of one pair, so 100 000 sockets fit without more loopback addresses.
 */
import process from "node:process";
import { treeRssBytes } from "../../lib/proc.ts";
import { type Spread, spreadCounts } from "../../lib/spread.ts";
import { type Line, log } from "../log.ts";
import { APP } from "../names.ts";
import { ClientPool } from "../pool.ts";
import { cleanRedis, cleanStaleRedis, countRedisKeys } from "../redis.ts";
import { rssAfterGc, type ServerProcess } from "../servers.ts";
import { chorusConfig } from "../targets.ts";
import { Trigger } from "../trigger.ts";
import { now, round, sleep } from "../util.ts";
import { NODE_FD_MARGIN } from "./capacity.ts";
import type { ScaleOptions } from "./cli.ts";
import {
  everyAcceptedEventDelivered,
  everySocketGotEveryEvent,
  type Fanout,
  fanoutFields,
  moderatePhase,
  saturationPhase,
} from "./fanout.ts";
import { type Cleanup, nodeLogLines, type NodeSpec, openFds, startNodes } from "./nodes.ts";

/** Bytes per socket of each node, averaged per runtime. */
function bytesPerSocket(
  nodes: ServerProcess[],
  specs: NodeSpec[],
  rssIdle: number[],
  rssWith: number[],
  sockets: number[],
): Record<string, number | null> {
  const result: Record<string, number | null> = {};
  for (const runtime of ["bun", "deno"] as const) {
    const at = nodes.map((_, i) => i).filter((i) => specs[i].runtime === runtime);
    const bytes = at.reduce((sum, i) => sum + rssWith[i] - rssIdle[i], 0);
    const held = at.reduce((sum, i) => sum + sockets[i], 0);
    result[runtime] = held > 0 ? Math.round(bytes / held) : null;
  }
  return result;
}

export async function clusterPhase(o: ScaleOptions, cleanup: Cleanup): Promise<Line> {
  const started = now();
  await cleanStaleRedis(o.redis);
  const prefix = `bench-${process.pid}-${Date.now()}`;
  // Runs last, once every node stopped: what the nodes left behind, then remove it.
  let keysAfterStop: Record<string, number> | null = null;
  cleanup.add("removing the Redis keys", async () => {
    keysAfterStop = await countRedisKeys(o.redis, prefix, APP.id);
    await cleanRedis(o.redis, prefix);
  });
  const env = {
    CHORUS_CONFIG: chorusConfig(o.presenceUsers, "scale-config.json"),
    REDIS_URL: o.redis,
    CHORUS_REDIS_PREFIX: prefix,
    CHORUS_DRAIN_MS: "2000",
  };
  const specs: NodeSpec[] = Array.from({ length: o.nodes }, (_, i) => {
    const bun = o.nodes - o.denoNodes;
    return i < bun
      ? { label: `scale-bun-${i + 1}`, runtime: "bun" }
      : { label: `scale-deno-${i - bun + 1}`, runtime: "deno" };
  });
  log(`cluster: starting ${o.nodes} nodes (${o.denoNodes} on Deno), prefix ${prefix}`);
  const perNode = Math.ceil(o.sockets / o.nodes);
  const nodes = await startNodes(specs, env, perNode + NODE_FD_MARGIN, cleanup);
  await sleep(1_000);
  const rssIdle = await Promise.all(nodes.map((node) => rssAfterGc(node, 1_000)));
  const fdsIdle = nodes.map((node) => openFds(node.pid));

  const pool = new ClientPool(o.sockets, o.procs, false);
  cleanup.add("load generators", () => pool.exit());
  await pool.start();
  const urls = nodes.map((node) =>
    `ws://127.0.0.1:${node.port}/app/${APP.key}?protocol=7&client=bench`
  );
  log(`cluster: connecting ${o.sockets} sockets over ${o.procs} load generators`);
  const rampStart = now();
  const ramp = await pool.connect(urls, o.rampWindow);
  // A node that cannot register a socket in Redis tells it to reconnect, as a Pusher client
  // would: the failed ones connect again (three times at most).
  const failedFirst = ramp.failed;
  for (let round = 1; round <= 3 && ramp.failed > 0; round++) {
    log(`cluster: ${ramp.failed} sockets failed to connect; again (${round} of 3)`);
    await sleep(1_000);
    const again = await pool.reconnect(urls, o.rampWindow);
    ramp.opened += again.opened;
    ramp.failed = again.failed;
  }
  const rampSeconds = (now() - rampStart) / 1000;
  const sockets = nodes.map((node, i) => openFds(node.pid) - fdsIdle[i]);
  log(`cluster: ${ramp.opened} open, ${ramp.failed} failed; per node ${sockets.join(", ")}`);
  if (ramp.opened === 0) throw new Error("cluster: no socket could connect");

  const spreads: Spread[] = [
    { prefix: "scale-pub-", channels: o.publicChannels, stride: o.nodes, every: 1 },
  ];
  if (o.presenceChannels > 0) {
    spreads.push({
      prefix: "presence-scale-",
      channels: o.presenceChannels,
      stride: o.nodes,
      every: o.presenceEvery,
      users: o.presenceUsers,
    });
  }
  const channels: Fanout["channels"] = [];
  let intended = 0;
  let subscribed = 0;
  const subscriptionErrors: string[] = [];
  const subStart = now();
  for (const spread of spreads) {
    const subs = await pool.subscribeSpread(spread, ramp.opened);
    for (const [name, subscribers] of subs.perChannel) channels.push({ name, subscribers });
    for (const n of spreadCounts(o.sockets, spread).values()) intended += n;
    subscribed += subs.ok;
    subscriptionErrors.push(...subs.errors);
    log(`cluster: ${subs.ok} subscribed to ${spread.prefix}* (${subs.failed} failed)`);
  }
  const subSeconds = (now() - subStart) / 1000;
  const triggers = nodes.map((node) =>
    new Trigger(`http://127.0.0.1:${node.port}`, o.payload, () => pool.poke())
  );
  const api = await triggers[0].get(`/apps/${APP.id}/connections`)
    .then((body) => (body as { connections: number }).connections, () => null);
  const rssWith = await Promise.all(nodes.map((node) => rssAfterGc(node, 1_000)));
  const loadgenRss = pool.pids.reduce((sum, pid) => sum + treeRssBytes(pid), 0);

  const fanout: Fanout = { pool, triggers, channels, nodes, sockets: ramp.opened, redis: true };
  log(`cluster: saturation, ${o.seconds} s over ${channels.length} channels`);
  const saturation = await saturationPhase(fanout, o.seconds, o.clusterWindow);
  log(`cluster: moderate, ${o.rate} events/s for ${o.moderateSeconds} s`);
  const moderate = await moderatePhase(fanout, o.rate, o.moderateSeconds);
  const logged = nodeLogLines(nodes);
  await pool.close();
  await cleanup.run();
  const keysLeft = await countRedisKeys(o.redis, prefix, APP.id);

  return {
    scale: "cluster",
    sockets: ramp.opened,
    nodes: o.nodes,
    deno_nodes: o.denoNodes,
    connects_per_s: Math.round(ramp.opened / rampSeconds),
    deliveries_per_s: Math.round(saturation.deliveriesPerSecond),
    lat_saturation_p99_ms: round(saturation.latency.percentile(0.99)),
    lat_moderate_p99_ms: round(moderate.latency.percentile(0.99)),
    redis_cpu_s_per_1k_deliveries: saturation.delivered > 0
      ? round(saturation.redisCpu / (saturation.delivered / 1000), 6)
      : null,
    redis_cpu_ms_per_event: round((saturation.redisCpu * 1000) / saturation.events, 4),
    every_socket_got_every_event: everySocketGotEveryEvent(fanout, saturation) &&
      everySocketGotEveryEvent(fanout, moderate) && subscribed === intended &&
      ramp.opened === o.sockets,
    every_accepted_event_delivered: everyAcceptedEventDelivered(fanout, saturation) &&
      everyAcceptedEventDelivered(fanout, moderate),
    events_refused: saturation.refused + moderate.refused,
    sockets_by_node: Object.fromEntries(nodes.map((node, i) => [node.label, sockets[i]])),
    api_connections: api,
    connects_failed: ramp.failed,
    connects_failed_first_try: failedFirst,
    subscriptions: subscribed,
    subscriptions_intended: intended,
    subscriptions_per_s: Math.round(subscribed / subSeconds),
    subscription_errors: subscriptionErrors.slice(0, 10),
    channels: channels.length,
    public_channels: o.publicChannels,
    presence_channels: o.presenceChannels,
    presence_every: o.presenceEvery,
    presence_users_per_channel: o.presenceUsers,
    bytes_per_socket: bytesPerSocket(nodes, specs, rssIdle, rssWith, sockets),
    loadgen_bytes_per_socket: Math.round(loadgenRss / ramp.opened),
    load_generators: o.procs,
    saturation: { window: o.clusterWindow, ...fanoutFields(fanout, saturation) },
    moderate: { rate: o.rate, ...fanoutFields(fanout, moderate) },
    redis_keys_after_stop: keysAfterStop,
    redis_keys_left: keysLeft && Object.values(keysLeft).reduce((a, b) => a + b, 0),
    node_log_lines: logged.count,
    node_log_first: logged.first,
    seconds: round((now() - started) / 1000, 1),
  };
}
