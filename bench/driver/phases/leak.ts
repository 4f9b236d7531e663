/** The leak check: connect/disconnect rounds with RSS after a GC and the server's own counts. */
import { treeRssBytes } from "../../lib/proc.ts";
import type { Context } from "../context.ts";
import { type Line, log } from "../log.ts";
import { liveRss } from "../measure.ts";
import { APP, FANOUT, LEAK_PRESENCE, LEAK_PRESENCE_USERS } from "../names.ts";
import { assertAlive } from "../targets.ts";
import { now, round, sleep } from "../util.ts";

/**
 * The leak check: `rounds` times connect C clients, subscribe them (all to the public channel,
 * the first --lat-subs to a presence channel as 10 users), disconnect them all, then force a
 * full GC and read RSS. Round 1 warms up allocator pools, so growth is judged from the lowest
 * RSS of rounds 2-4 to the lowest of the last three rounds (the lowest, because GC noise only
 * adds): it must stay under 2 % of the bytes a connection costs, per connection per round. For
 * Chorus the HTTP API must also report no connection and no occupied channel after every round.
 */
export async function leakRounds(
  ctx: Context,
  url: string,
  rssIdle: number,
  rssWith: number,
): Promise<Line> {
  const { options, running, pool, trigger } = ctx;
  const C = options.clients;
  const after: number[] = [];
  const peak: number[] = [];
  const connectionsLeft: (number | null)[] = [];
  const channelsLeft: (number | null)[] = [];
  const rates: number[] = [];
  let failures = 0;
  const started = now();
  await sleep(options.settleMs);
  const before = await liveRss(running, options);
  for (let r = 1; r <= options.rounds; r++) {
    assertAlive(running);
    const start = now();
    const ramp = await pool.connect(url, options.rampWindow);
    rates.push(Math.round(ramp.opened / ((now() - start) / 1000)));
    const subs = await pool.subscribe(FANOUT, C);
    // Few users, so that member_added / member_removed stay rare: this exercises presence
    // join and leave without turning the round into an O(members²) broadcast storm.
    const joined = await pool.subscribe(LEAK_PRESENCE, options.latSubs, {
      users: Math.min(LEAK_PRESENCE_USERS, options.presenceUsers),
    });
    failures += ramp.failed + subs.failed + joined.failed;
    peak.push(treeRssBytes(running.measured.pid));
    await pool.close();
    await sleep(Math.min(500, options.settleMs));
    after.push(await liveRss(running, options));
    if (running.chorus) {
      try {
        const connections = await trigger.get(`/apps/${APP.id}/connections`) as {
          connections: number;
        };
        const channels = await trigger.get(`/apps/${APP.id}/channels`) as {
          channels: Record<string, unknown>;
        };
        connectionsLeft.push(connections.connections);
        channelsLeft.push(Object.keys(channels.channels).length);
      } catch (error) {
        log(`leak check: state query failed: ${(error as Error).message}`);
        connectionsLeft.push(null);
        channelsLeft.push(null);
      }
    }
  }
  const early = Math.min(...after.slice(1, Math.min(4, after.length)));
  const late = Math.min(...after.slice(-3));
  // From the middle of rounds 2-4 (round 3) to the middle of the last three.
  const span = Math.max(1, (after.length - 1) - 3);
  const perConnPerRound = (late - early) / span / C;
  const bytesPerConnection = (rssWith - rssIdle) / C;
  const threshold = 0.02 * bytesPerConnection;
  const stateClean = connectionsLeft.every((n) => n === 0) && channelsLeft.every((n) => n === 0);
  return {
    rounds: options.rounds,
    rss_before_bytes: before,
    rss_after_round_bytes: after,
    rss_peak_round_bytes_before_gc: peak,
    connections_per_s_by_round: rates,
    server_connections_after_round: running.chorus ? connectionsLeft : undefined,
    server_channels_after_round: running.chorus ? channelsLeft : undefined,
    growth_bytes: late - early,
    growth_bytes_per_connection_per_round: round(perConnPerRound, 2),
    growth_threshold_bytes_per_connection_per_round: round(threshold, 2),
    state_clean: running.chorus ? stateClean : undefined,
    failures,
    seconds: round((now() - started) / 1000, 1),
    no_growth: perConnPerRound <= threshold && (!running.chorus || stateClean) && failures === 0,
  };
}
