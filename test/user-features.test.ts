// The rest of Pusher's user features, end to end through the client libraries (pusher-js,
// Laravel Echo, the `pusher` server SDK) on one node and on a two-node cluster that mixes Bun and
// Deno over Redis: subscription counts (coalesced to one announcement a second per channel), cache
// channels whose last event expires after `cache_ttl`, cluster-wide sign-in (watchlists,
// `user.bind` with `sendToUser`, `terminateUserConnections`) and `info=` counts through the SDK.
// protocol.md §3, §4, §6, §8, §9. Single-node sign-in, watchlists, terminate and cache channels
// over raw sockets are in signin-cache.test.ts; this file covers what it leaves out.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Redis } from "ioredis";
import type PusherServer from "pusher";
import { type AppConfig, type Chorus, startChorus } from "./support/server.ts";
import {
  connected,
  disconnectAll,
  echoClient,
  echoPusher,
  nextEvent,
  type PresenceChannel,
  type Pusher,
  pusherClient,
  serverSdk,
  subscribed,
} from "./support/clients.ts";
import {
  type ClusterNode,
  otherRuntime,
  runnerRuntime,
  startNode,
  stopAllNodes,
  waitReady,
} from "./support/nodes.ts";
import {
  adminClient,
  closeRedisClients,
  deleteKeys,
  randomPrefix,
  REDIS_URL,
} from "./support/redis.ts";
import { Recorder } from "./support/recorder.ts";
import { type AppCreds, channelAuth } from "./support/sign.ts";
import { assertPusherError, assertSubscriptionError } from "./support/assertions.ts";
import { signin as rawSignin } from "./support/cluster.ts";
import { closeAllRawSockets, connectSocket, dataOf, type RawSocket } from "./support/ws.ts";
import { until, withTimeout } from "./support/wait.ts";

const T = { timeout: 30000 };

/** `subscription_count: true`. */
const COUNTED = { id: "4101", key: "uf-counted-key", secret: "uf-counted-secret" } as const;
/** Every default: `subscription_count` off. */
const PLAIN = { id: "4102", key: "uf-plain-key", secret: "uf-plain-secret" } as const;
/** `cache_ttl: 2`. */
const SHORT_CACHE = { id: "4103", key: "uf-ttl-key", secret: "uf-ttl-secret" } as const;
/** Every default; sign-in, user channels, terminate, info counts. */
const USERS = { id: "4104", key: "uf-users-key", secret: "uf-users-secret" } as const;

const CACHE_TTL = 2;
/** Announcements of one channel must be at least a second apart; allow for delivery jitter. */
const MIN_GAP_MS = 900;
/** The node checks once a second: a first change is announced within about a second. */
const FIRST_WITHIN_MS = 1600;

type FeatureApp = AppConfig & { subscription_count?: boolean; cache_ttl?: number };

function featureApps(): FeatureApp[] {
  return [
    { ...COUNTED, subscription_count: true },
    { ...PLAIN },
    { ...SHORT_CACHE, cache_ttl: CACHE_TTL },
    { ...USERS },
  ];
}

let seq = 0;
/** A name unique in this file (channels, users). */
function uniq(base: string): string {
  return `${base}-${++seq}-${Math.random().toString(36).slice(2, 7)}`;
}

// ---- helpers ------------------------------------------------------------------------------------

interface Announcement {
  count: number;
  at: number;
}

/** Records `pusher:subscription_count` as a client library delivers it, with arrival times. */
class Counts {
  readonly seen: Announcement[] = [];
  constructor(readonly label: string) {}

  readonly on = (data: unknown): void => {
    // No assertion here (a throw would land in the client library): a payload without a numeric
    // subscription_count is kept as NaN, which no wait accepts and every failure message shows.
    const count = (data as { subscription_count?: unknown } | null)?.subscription_count;
    this.seen.push({ count: typeof count === "number" ? count : NaN, at: Date.now() });
  };

  get last(): number | undefined {
    return this.seen.at(-1)?.count;
  }

  /** Waits until the latest announcement says `n`. */
  async reaches(n: number, timeout = 4000): Promise<void> {
    try {
      await until(() => this.last === n, `${this.label}: subscription_count ${n}`, {
        timeout,
        interval: 10,
      });
    } catch {
      assert.fail(
        `${this.label}: no announcement of ${n} within ${timeout} ms; got ${this.describe()}`,
      );
    }
  }

  /** Right after subscribing: the first announcement says `n` and comes within ~1 s. */
  async first(n: number): Promise<void> {
    const since = Date.now();
    await this.reaches(n, 3000);
    assert.equal(this.seen.length, 1, `${this.label}: one announcement: ${this.describe()}`);
    const late = this.seen[0].at - since;
    assert.ok(late <= FIRST_WITHIN_MS, `${this.label}: first announcement after ${late} ms`);
  }

  /** Asserts at most one announcement per second (successive arrivals >= MIN_GAP_MS apart). */
  assertCoalesced(): void {
    for (let i = 1; i < this.seen.length; i++) {
      const gap = this.seen[i].at - this.seen[i - 1].at;
      assert.ok(
        gap >= MIN_GAP_MS,
        `${this.label}: two announcements ${gap} ms apart (at most one a second): ${this.describe()}`,
      );
    }
  }

  describe(): string {
    const t0 = this.seen[0]?.at ?? 0;
    return JSON.stringify(this.seen.map((a) => `${a.count}@+${a.at - t0}ms`));
  }
}

/** `pusher:subscription_succeeded` on an Echo channel. */
function echoSubscribed(channel: { subscribed(cb: () => void): unknown }, what: string) {
  return withTimeout(
    new Promise<void>((resolve) => channel.subscribed(() => resolve())),
    5000,
    `Echo subscription to ${what}`,
  );
}

/** pusher-js: `signin()`, resolved once its `#server-to-user-{id}` channel is subscribed. */
async function signIn(p: Pusher, what: string): Promise<void> {
  await connected(p);
  p.signin();
  await signedIn(p, what);
}

async function signedIn(p: Pusher, what: string): Promise<void> {
  await until(
    () =>
      (p.user as unknown as { serverToUserChannel?: { subscribed?: boolean } | null })
        .serverToUserChannel?.subscribed === true,
    `${what} to sign in and subscribe its user channel`,
  );
}

/** A raw socket joins a presence channel with channel_data (no sign-in). */
async function joinPresence(s: RawSocket, app: AppCreds, channel: string, userId: string) {
  const cd = JSON.stringify({ user_id: userId });
  return await s.subscribeOk(channel, {
    auth: channelAuth(app, s.socketId!, channel, cd),
    channel_data: cd,
  });
}

async function json(res: { json(): Promise<unknown> }): Promise<unknown> {
  return await res.json();
}

/** The subscription_count frames a raw socket received on `channel`, as counts. */
function rawCounts(s: RawSocket, channel: string): number[] {
  return s.log
    .filter((f) => f.event === "pusher_internal:subscription_count" && f.channel === channel)
    .map((f) => (dataOf(f) as { subscription_count: number }).subscription_count);
}

// ---- one node ---------------------------------------------------------------------------------

describe(`user features on one node (${runnerRuntime})`, { timeout: 90000 }, () => {
  let server: Chorus;

  before(async () => {
    server = await startChorus({ config: { apps: featureApps() } });
  });
  after(async () => {
    disconnectAll();
    await closeAllRawSockets();
    await server?.stop();
  });

  it(
    "pusher-js and Echo receive pusher:subscription_count: at most one a second, then the totals",
    T,
    async () => {
      const ch = uniq("counted");
      const sdk = serverSdk(server, COUNTED);

      // An early subscriber, then four more sockets (connected first) subscribing at once.
      const early = pusherClient(server, COUNTED);
      const earlyCounts = new Counts("early pusher-js subscriber");
      const earlyChannel = early.subscribe(ch);
      earlyChannel.bind("pusher:subscription_count", earlyCounts.on);
      await subscribed(earlyChannel);
      await earlyCounts.first(1);

      const others = [pusherClient(server, COUNTED), pusherClient(server, COUNTED)];
      const echo = echoClient(server, COUNTED);
      const raw = await connectSocket(server.wsUrl(COUNTED.key));
      await Promise.all([...others.map((p) => connected(p)), connected(echoPusher(echo))]);
      const otherCounts = others.map((_, i) => new Counts(`pusher-js subscriber ${i + 2}`));
      const echoCounts = new Counts("Echo subscriber");

      const channels = others.map((p, i) => {
        const c = p.subscribe(ch);
        c.bind("pusher:subscription_count", otherCounts[i].on);
        return c;
      });
      const echoChannel = echo.channel(ch).on("pusher:subscription_count", echoCounts.on);
      raw.subscribe(ch);
      await Promise.all([
        ...channels.map((c) => subscribed(c)),
        echoSubscribed(echoChannel, ch),
        raw.nextEvent("pusher_internal:subscription_succeeded", ch),
      ]);

      // Every subscriber, the early one included, ends up with the total of 5.
      await earlyCounts.reaches(5);
      await Promise.all([...otherCounts, echoCounts].map((c) => c.reaches(5)));
      await until(() => rawCounts(raw, ch).at(-1) === 5, "raw socket: subscription_count 5");
      earlyCounts.assertCoalesced();
      assert.ok(
        earlyCounts.seen.every((a) => a.count >= 1 && a.count <= 5),
        `counts between 1 and 5: ${earlyCounts.describe()}`,
      );
      assert.equal(
        (earlyChannel as unknown as { subscriptionCount: unknown }).subscriptionCount,
        5,
      );

      // The frame as the protocol writes it: data is a JSON string.
      const frame = raw.log.find((f) =>
        f.event === "pusher_internal:subscription_count" && f.channel === ch
      )!;
      assert.deepEqual(Object.keys(frame).sort(), ["channel", "data", "event"]);
      assert.equal(typeof frame.data, "string", "subscription_count data is a JSON string");
      assert.deepEqual(Object.keys(dataOf(frame) as object), ["subscription_count"]);

      // Two leave (pusher-js unsubscribe, raw pusher:unsubscribe): eventually 3.
      others[1].unsubscribe(ch);
      raw.send({ event: "pusher:unsubscribe", data: { channel: ch } });
      await earlyCounts.reaches(3);
      await Promise.all([otherCounts[0].reaches(3), echoCounts.reaches(3)]);
      earlyCounts.assertCoalesced();
      echoCounts.assertCoalesced();
      assert.equal(
        (earlyChannel as unknown as { subscriptionCount: unknown }).subscriptionCount,
        3,
      );
      await raw.ping();
      assert.ok(
        !rawCounts(raw, ch).includes(3),
        `an unsubscribed socket gets no announcement: ${rawCounts(raw, ch)}`,
      );
      assert.deepEqual(
        await json(
          await sdk.get({ path: `/channels/${ch}`, params: { info: "subscription_count" } }),
        ),
        { occupied: true, subscription_count: 3 },
        "announced and queried counts agree",
      );
    },
  );

  it(
    "no subscription_count when the app has it off, nor on presence channels",
    T,
    async () => {
      const plainCh = uniq("plain");
      const quietPresence = `presence-${uniq("quiet")}`;
      const controlCh = uniq("control");

      // The app with subscription_count off: a pusher-js and a raw subscriber, one leaves again.
      const p = pusherClient(server, PLAIN);
      const pCounts = new Counts("pusher-js on the app with counts off");
      const rec = new Recorder("pusher-js on the app with counts off");
      const pChannel = p.subscribe(plainCh);
      pChannel.bind("pusher:subscription_count", pCounts.on);
      pChannel.bind("marker", rec.on("marker"));
      await subscribed(pChannel);
      const plainRaw = await connectSocket(server.wsUrl(PLAIN.key));
      await plainRaw.subscribeOk(plainCh);
      const leaver = await connectSocket(server.wsUrl(PLAIN.key));
      await leaver.subscribeOk(plainCh);
      leaver.send({ event: "pusher:unsubscribe", data: { channel: plainCh } });

      // A presence channel on the app with counts on: two members join, one leaves.
      const m1 = await connectSocket(server.wsUrl(COUNTED.key));
      const m2 = await connectSocket(server.wsUrl(COUNTED.key));
      await joinPresence(m1, COUNTED, quietPresence, "m1");
      await joinPresence(m2, COUNTED, quietPresence, "m2");
      await m1.nextEvent("pusher_internal:member_added", quietPresence);
      m2.send({ event: "pusher:unsubscribe", data: { channel: quietPresence } });
      await m1.nextEvent("pusher_internal:member_removed", quietPresence);

      // Control: a public channel of the counting app. Its second announcement comes at least a
      // second after its first, which came no earlier than any announcement of the changes above.
      const c1 = await connectSocket(server.wsUrl(COUNTED.key));
      await c1.subscribeOk(controlCh);
      await until(() => rawCounts(c1, controlCh).at(-1) === 1, "control announcement 1", {
        timeout: 4000,
      });
      const c2 = await connectSocket(server.wsUrl(COUNTED.key));
      await c2.subscribeOk(controlCh);
      await until(() => rawCounts(c1, controlCh).at(-1) === 2, "control announcement 2", {
        timeout: 4000,
      });

      // Markers on the quiet channels: everything sent before them has arrived.
      await serverSdk(server, PLAIN).trigger(plainCh, "marker", {});
      await serverSdk(server, COUNTED).trigger(quietPresence, "marker", {});
      await Promise.all([
        rec.wait("marker"),
        plainRaw.nextEvent("marker", plainCh),
        m1.nextEvent("marker", quietPresence),
      ]);
      assert.deepEqual(pCounts.seen, [], "pusher-js got no subscription_count (app has it off)");
      assert.deepEqual(rawCounts(plainRaw, plainCh), [], "no frame on the app with counts off");
      assert.deepEqual(rawCounts(m1, quietPresence), [], "no count on a presence channel");
      assert.deepEqual(rawCounts(m2, quietPresence), [], "no count on a presence channel");
    },
  );

  it(
    "cache_ttl: a subscriber within the TTL gets the event, after it pusher:cache_miss",
    T,
    async () => {
      const ch = `cache-${uniq("ttl")}`;
      const sdk = serverSdk(server, SHORT_CACHE);
      assert.equal((await sdk.trigger(ch, "state", { v: 1 })).status, 200);
      const triggeredAt = Date.now();

      // Within the TTL: pusher-js gets the cached event right after subscription_succeeded.
      const p = pusherClient(server, SHORT_CACHE);
      const rec = new Recorder("pusher-js within the TTL");
      const channel = p.subscribe(ch);
      channel.bind_global(rec.global);
      await rec.wait("state");
      assert.deepEqual(
        rec.events.map((e) => e.event),
        ["pusher:subscription_succeeded", "state"],
        "the cached event follows subscription_succeeded",
      );
      assert.deepEqual(rec.events[1].data, { v: 1 });

      // Echo too (`.state`: the event name as sent).
      const echo = echoClient(server, SHORT_CACHE);
      const echoGot = new Promise<unknown>((resolve) => echo.channel(ch).listen(".state", resolve));
      assert.deepEqual(await withTimeout(echoGot, 5000, "Echo: cached event"), { v: 1 });

      const info = await json(
        await sdk.get({ path: `/channels/${ch}`, params: { info: "cache,subscription_count" } }),
      ) as { occupied: boolean; subscription_count: number; cache?: Record<string, unknown> };
      assert.equal(info.subscription_count, 2);
      assert.ok(info.cache, `info=cache reports the event: ${JSON.stringify(info)}`);
      assert.equal(info.cache.event, "state");
      assert.equal(info.cache.data, JSON.stringify({ v: 1 }));
      const ttl = info.cache.ttl as number;
      assert.ok(Number.isInteger(ttl) && ttl >= 1 && ttl <= CACHE_TTL, `ttl <= 2 s: ${ttl}`);

      // After the TTL the cache is gone (not before about 2 s) ...
      await until(
        async () => {
          const r = await json(
            await sdk.get({ path: `/channels/${ch}`, params: { info: "cache" } }),
          ) as { cache?: unknown };
          return r.cache === undefined;
        },
        "the cached event to expire",
        { timeout: CACHE_TTL * 1000 + 2500, interval: 50 },
      );
      const expiredAfter = Date.now() - triggeredAt;
      assert.ok(expiredAfter >= CACHE_TTL * 1000 - 600, `expired too early: ${expiredAfter} ms`);

      // ... and a new subscriber gets pusher:cache_miss instead of the stale event.
      const late = pusherClient(server, SHORT_CACHE);
      const lateRec = new Recorder("pusher-js after the TTL");
      late.subscribe(ch).bind_global(lateRec.global);
      await lateRec.wait("pusher:cache_miss");
      assert.deepEqual(
        lateRec.events.map((e) => e.event),
        ["pusher:subscription_succeeded", "pusher:cache_miss"],
      );

      // A new event is delivered live and cached again for 2 s.
      await sdk.trigger(ch, "state", { v: 2 });
      assert.deepEqual((await lateRec.wait("state")).data, { v: 2 });
      const again = await json(
        await sdk.get({ path: `/channels/${ch}`, params: { info: "cache" } }),
      ) as { cache?: { event: string; data: string; ttl: number } };
      assert.equal(again.cache?.data, JSON.stringify({ v: 2 }));
      assert.ok(again.cache!.ttl <= CACHE_TTL, `ttl again <= 2 s: ${again.cache!.ttl}`);
    },
  );
});

// ---- two nodes, Bun and Deno, over Redis ------------------------------------------------------

describe(
  `user features across a cluster (A=${runnerRuntime}, B=${otherRuntime}, Redis)`,
  { timeout: 120000 },
  () => {
    const prefix = randomPrefix("userfeat");
    let a: ClusterNode;
    let b: ClusterNode;
    let redis: Redis;

    before(async () => {
      const common = { redisUrl: REDIS_URL, prefix, config: { apps: featureApps() } };
      [a, b] = await Promise.all([
        startNode({ ...common, runtime: runnerRuntime, name: "A" }),
        startNode({ ...common, runtime: otherRuntime, name: "B" }),
      ]);
      await Promise.all([waitReady(a), waitReady(b)]);
      redis = adminClient(REDIS_URL);
    });

    after(async () => {
      disconnectAll();
      await closeAllRawSockets();
      await stopAllNodes();
      if (redis) await deleteKeys(redis, prefix).catch(() => {});
      await closeRedisClients();
    });

    const sdk = (node: ClusterNode, app: AppCreds = USERS): PusherServer => serverSdk(node, app);

    it(
      "subscription counts are cluster totals, at most one a second per channel",
      T,
      async () => {
        const ch = `private-${uniq("counted")}`;
        const early = pusherClient(a, COUNTED);
        const earlyCounts = new Counts("early subscriber on A");
        const earlyChannel = early.subscribe(ch);
        earlyChannel.bind("pusher:subscription_count", earlyCounts.on);
        await subscribed(earlyChannel);
        await earlyCounts.first(1);

        const onA = pusherClient(a, COUNTED);
        const onB = [pusherClient(b, COUNTED), pusherClient(b, COUNTED)];
        await Promise.all([onA, ...onB].map((p) => connected(p)));
        const aCounts = new Counts("second subscriber on A");
        const bCounts = onB.map((_, i) => new Counts(`subscriber ${i + 1} on B`));
        const aChannel = onA.subscribe(ch);
        aChannel.bind("pusher:subscription_count", aCounts.on);
        const bChannels = onB.map((p, i) => {
          const c = p.subscribe(ch);
          c.bind("pusher:subscription_count", bCounts[i].on);
          return c;
        });
        await Promise.all([aChannel, ...bChannels].map((c) => subscribed(c)));

        await earlyCounts.reaches(4);
        await Promise.all([aCounts, ...bCounts].map((c) => c.reaches(4)));
        earlyCounts.assertCoalesced();
        bCounts[0].assertCoalesced();

        // Both subscribers on B leave: B has no subscriber left, A's still hear the new total.
        for (const p of onB) p.unsubscribe(ch);
        await earlyCounts.reaches(2);
        await aCounts.reaches(2);
        earlyCounts.assertCoalesced();
        aCounts.assertCoalesced();
        assert.deepEqual(
          await json(
            await sdk(b, COUNTED).get({
              path: `/channels/${ch}`,
              params: { info: "subscription_count" },
            }),
          ),
          { occupied: true, subscription_count: 2 },
        );
      },
    );

    it(
      "cache_ttl across nodes: triggered on A, cached for B's subscribers (cache- and presence-cache-), then cache_miss",
      T,
      async () => {
        const pub = `cache-${uniq("feed")}`;
        const pres = `presence-cache-${uniq("room")}`;
        // One request to both channels, through A.
        const res = await sdk(a, SHORT_CACHE).trigger([pub, pres], "state", { v: "A" });
        assert.equal(res.status, 200);
        const triggeredAt = Date.now();

        const onB = pusherClient(b, SHORT_CACHE, { user: { user_id: "reader" } });
        const recPub = new Recorder(`B on ${pub}`);
        const recPres = new Recorder(`B on ${pres}`);
        onB.subscribe(pub).bind_global(recPub.global);
        onB.subscribe(pres).bind_global(recPres.global);
        await Promise.all([recPub.wait("state"), recPres.wait("state")]);
        for (const rec of [recPub, recPres]) {
          assert.deepEqual(
            rec.events.map((e) => e.event),
            ["pusher:subscription_succeeded", "state"],
            `${rec.label}: cached event right after subscription_succeeded`,
          );
          assert.deepEqual(rec.events[1].data, { v: "A" });
        }

        for (const ch of [pub, pres]) {
          const info = await json(
            await sdk(b, SHORT_CACHE).get({ path: `/channels/${ch}`, params: { info: "cache" } }),
          ) as { cache?: { event: string; data: string; ttl: number } };
          assert.equal(info.cache?.event, "state", `${ch}: ${JSON.stringify(info)}`);
          assert.equal(info.cache?.data, JSON.stringify({ v: "A" }));
          assert.ok(info.cache!.ttl >= 1 && info.cache!.ttl <= CACHE_TTL, `ttl ${info.cache!.ttl}`);
        }

        // Expired cluster-wide: A no longer reports it, and a new subscriber on A gets a miss.
        for (const ch of [pub, pres]) {
          await until(
            async () => {
              const r = await json(
                await sdk(a, SHORT_CACHE).get({
                  path: `/channels/${ch}`,
                  params: { info: "cache" },
                }),
              ) as { cache?: unknown };
              return r.cache === undefined;
            },
            `${ch}: the cached event to expire`,
            { timeout: CACHE_TTL * 1000 + 2500, interval: 50 },
          );
        }
        const expiredAfter = Date.now() - triggeredAt;
        assert.ok(expiredAfter >= CACHE_TTL * 1000 - 600, `expired too early: ${expiredAfter} ms`);

        const onA = pusherClient(a, SHORT_CACHE, { user: { user_id: "late" } });
        const missPub = new Recorder(`A on ${pub}`);
        const missPres = new Recorder(`A on ${pres}`);
        onA.subscribe(pub).bind_global(missPub.global);
        onA.subscribe(pres).bind_global(missPres.global);
        await Promise.all([missPub.wait("pusher:cache_miss"), missPres.wait("pusher:cache_miss")]);
        for (const rec of [missPub, missPres]) {
          assert.deepEqual(
            rec.events.map((e) => e.event).filter((e) => !e.startsWith("pusher:member")),
            ["pusher:subscription_succeeded", "pusher:cache_miss"],
            rec.label,
          );
        }
      },
    );

    it(
      "pusher-js signin across nodes: watchlist online once, offline after the last socket; sendToUser reaches pusher-js and Echo",
      T,
      async () => {
        const watcherId = uniq("watcher");
        const w1 = uniq("w1");
        const m1 = uniq("mark");
        const m2 = uniq("mark");
        const users = sdk(b);

        // The watcher signs in on A; it receives markers through its own user channel.
        const watcher = pusherClient(a, USERS, {
          signinUser: { id: watcherId, watchlist: [w1, m1, m2] },
        });
        const seen: string[] = [];
        watcher.user.watchlist.bind("online", (e: unknown) => {
          for (const id of (e as { user_ids: string[] }).user_ids) seen.push(`online:${id}`);
        });
        watcher.user.watchlist.bind("offline", (e: unknown) => {
          for (const id of (e as { user_ids: string[] }).user_ids) seen.push(`offline:${id}`);
        });
        const marks = new Recorder("watcher's user events");
        await signIn(watcher, "the watcher on A");
        let markN = 0;
        /** sendToUser to the watcher through B: every watchlist event published before it has
         * arrived once it has (both travel A's subscription to Redis, in order). */
        const mark = async () => {
          const name = `mark-${++markN}`;
          watcher.user.bind(name, marks.on(name));
          await users.sendToUser(watcherId, name, {});
          await marks.wait(name);
        };
        const waitSeen = (entry: string) =>
          until(() => seen.includes(entry), `watcher: ${entry} (seen ${JSON.stringify(seen)})`);

        // w1 signs in on B (pusher-js): online on A.
        const w1B = pusherClient(b, USERS, { signinUser: { id: w1 } });
        await signIn(w1B, "w1 on B");
        await waitSeen(`online:${w1}`);

        // w1's second connection, on A through Laravel Echo: no second online.
        const echo = echoClient(a, USERS, { signinUser: { id: w1 } });
        const w1A = echoPusher(echo);
        await connected(w1A);
        echo.connector.signin();
        await signedIn(w1A, "w1 on A (Echo)");
        const userChannel = `#server-to-user-${w1}`;
        const subs = async () =>
          ((await json(
            await users.get({
              path: `/channels/${encodeURIComponent(userChannel)}`,
              params: { info: "subscription_count" },
            }),
          )) as { subscription_count?: number }).subscription_count;
        await until(async () => (await subs()) === 2, "w1 signed in twice");
        const marker1 = pusherClient(a, USERS, { signinUser: { id: m1 } });
        await signIn(marker1, "marker user on A");
        await waitSeen(`online:${m1}`);
        await mark();
        assert.deepEqual(
          seen.filter((e) => e.endsWith(`:${w1}`)),
          [`online:${w1}`],
          "online once for two connections",
        );

        // sendToUser posted to B reaches both of w1's connections (pusher-js on B, Echo on A).
        const onB = nextEvent(w1B.user, "evt");
        const onA = nextEvent(w1A.user, "evt");
        const countB = new Recorder("w1 on B");
        const countA = new Recorder("w1 on A");
        w1B.user.bind("evt", countB.on("evt"));
        w1A.user.bind("evt", countA.on("evt"));
        const res = await users.sendToUser(w1, "evt", { hello: "from B" });
        assert.equal(res.status, 200);
        assert.deepEqual((await onB).data, { hello: "from B" });
        assert.deepEqual((await onA).data, { hello: "from B" });
        w1B.user.bind("evt-end", countB.on("evt-end"));
        w1A.user.bind("evt-end", countA.on("evt-end"));
        await users.sendToUser(w1, "evt-end", {});
        await Promise.all([countB.wait("evt-end"), countA.wait("evt-end")]);
        assert.equal(countB.count("evt"), 1, "delivered once on B");
        assert.equal(countA.count("evt"), 1, "delivered once on A");

        // Another user on B may not subscribe to w1's user channel.
        const intruder = await connectSocket(b.wsUrl(USERS.key));
        await rawSignin(intruder, USERS, { id: uniq("intruder") });
        assertSubscriptionError(
          await intruder.subscribeResult(userChannel),
          userChannel,
          403,
          "AuthError",
        );

        // w1 leaves B: still online (on A), no offline.
        const connections = async () =>
          ((await json(await users.get({ path: "/connections" }))) as { connections: number })
            .connections;
        const initial = await connections();
        w1B.disconnect();
        await until(async () => (await connections()) === initial - 1, "w1's socket on B to go");
        const stillA = nextEvent(w1A.user, "still-here");
        await sdk(a).sendToUser(w1, "still-here", {});
        await stillA;
        const marker2 = pusherClient(b, USERS, { signinUser: { id: m2 } });
        await signIn(marker2, "marker user on B");
        await waitSeen(`online:${m2}`);
        await mark();
        assert.deepEqual(
          seen.filter((e) => e.endsWith(`:${w1}`)),
          [`online:${w1}`],
          "no offline while w1 is still connected on A",
        );

        // w1's last connection (Echo on A) leaves: offline, once.
        echo.disconnect();
        await waitSeen(`offline:${w1}`);
        await mark();
        assert.deepEqual(seen.filter((e) => e.endsWith(`:${w1}`)), [
          `online:${w1}`,
          `offline:${w1}`,
        ]);
      },
    );

    it(
      "terminateUserConnections on A closes the user's sockets on B (4009), presence-only ones too, nobody else's",
      T,
      async () => {
        const t = uniq("term");
        const other = uniq("other");
        const room = `presence-${uniq("room")}`;

        // On B: the user signed in through pusher-js and on a raw socket, and present (only) in a
        // presence channel on another raw socket; another user signed in and present.
        const tJs = pusherClient(b, USERS, { signinUser: { id: t } });
        const jsErrors: { type?: string; data?: { code?: number } }[] = [];
        tJs.connection.bind("error", (e: unknown) => jsErrors.push(e as (typeof jsErrors)[0]));
        await signIn(tJs, "the user (pusher-js on B)");
        const tRaw = await connectSocket(b.wsUrl(USERS.key));
        await rawSignin(tRaw, USERS, { id: t });
        const tPresent = await connectSocket(b.wsUrl(USERS.key));
        await joinPresence(tPresent, USERS, room, t);

        const bystander = pusherClient(b, USERS, {
          signinUser: { id: other },
          user: { user_id: other },
        });
        await signIn(bystander, "another user on B");
        const byRoom = bystander.subscribe(room);
        const byRec = new Recorder("bystander");
        byRoom.bind("marker", byRec.on("marker"));
        await subscribed(byRoom);

        // On A: an observer of the presence channel.
        const observer = pusherClient(a, USERS, { user: { user_id: "observer" } });
        const obsRoom = observer.subscribe(room) as PresenceChannel;
        const removed: unknown[] = [];
        obsRoom.bind("pusher:member_removed", (m: unknown) => removed.push(m));
        const obsRec = new Recorder("observer");
        obsRoom.bind("marker", obsRec.on("marker"));
        await subscribed(obsRoom);
        assert.equal(obsRoom.members.count, 3, "observer, the user and the bystander");

        const disconnected = withTimeout(
          new Promise<void>((resolve) =>
            tJs.connection.bind("state_change", (s: { current: string }) => {
              if (s.current === "disconnected") resolve();
            })
          ),
          5000,
          "pusher-js of the terminated user to end up disconnected",
        );
        const res = await sdk(a).terminateUserConnections(t);
        assert.equal(res.status, 200);
        assert.deepEqual(await json(res), {});

        for (const [s, what] of [[tRaw, "signed-in"], [tPresent, "presence-only"]] as const) {
          assertPusherError(await s.nextEvent("pusher:error"), 4009);
          const closed = await withTimeout(s.closed, 5000, `${what} socket to close`);
          assert.equal(closed.code, 4009, `${what} socket close code`);
        }
        await disconnected;
        assert.ok(
          jsErrors.some((e) => e.type === "PusherError" && e.data?.code === 4009),
          `pusher-js reports 4009: ${JSON.stringify(jsErrors)}`,
        );

        await until(() => removed.length > 0, "observer on A: pusher:member_removed");
        assert.equal((removed[0] as { id?: unknown }).id, t, "the terminated user left");
        await sdk(b).trigger(room, "marker", {});
        await Promise.all([obsRec.wait("marker"), byRec.wait("marker")]);
        assert.equal(removed.length, 1, `member_removed once: ${JSON.stringify(removed)}`);
        assert.equal(obsRoom.members.count, 2);
        assert.equal(tJs.connection.state, "disconnected", "pusher-js does not reconnect");

        // The other user's connection is untouched.
        const dm = nextEvent(bystander.user, "still-connected");
        await sdk(a).sendToUser(other, "still-connected", { ok: true });
        assert.deepEqual((await dm).data, { ok: true });
        assert.equal(bystander.connection.state, "connected");
      },
    );

    it(
      "info= through the SDK: trigger, triggerBatch and get answer cluster-wide counts",
      T,
      async () => {
        const base = uniq("info");
        const pub = `public-${base}`;
        const pres = `presence-${base}`;
        // pub: two sockets on A, one on B. pres: user x on A and B, user y on B.
        const a1 = await connectSocket(a.wsUrl(USERS.key));
        const a2 = await connectSocket(a.wsUrl(USERS.key));
        const b1 = await connectSocket(b.wsUrl(USERS.key));
        for (const s of [a1, a2, b1]) await s.subscribeOk(pub);
        await joinPresence(a1, USERS, pres, "x");
        await joinPresence(b1, USERS, pres, "x");
        await joinPresence(a2, USERS, pres, "y");

        const counts = { user_count: 2, subscription_count: 3 };
        const res = await sdk(b).trigger([pub, pres], "ev", { n: 1 }, {
          info: "subscription_count,user_count",
        });
        assert.equal(res.status, 200);
        assert.deepEqual(await json(res), {
          channels: { [pub]: { subscription_count: 3 }, [pres]: counts },
        });
        await Promise.all(
          [a1, a2, b1].flatMap((s) => [s.nextEvent("ev", pub), s.nextEvent("ev", pres)]),
        );

        const batch = await sdk(a).triggerBatch([
          { channel: pub, name: "ev2", data: {}, info: "subscription_count" },
          { channel: pres, name: "ev2", data: {}, info: "user_count,subscription_count" },
          { channel: pres, name: "ev2", data: {}, info: "user_count" },
          { channel: pub, name: "ev2", data: {} },
        ]);
        assert.equal(batch.status, 200);
        assert.deepEqual(await json(batch), {
          batch: [{ subscription_count: 3 }, counts, { user_count: 2 }, {}],
        });

        assert.deepEqual(
          await json(
            await sdk(a).get({
              path: "/channels",
              params: { info: "user_count,subscription_count", filter_by_prefix: pres },
            }),
          ),
          { channels: { [pres]: counts } },
        );
        assert.deepEqual(
          await json(
            await sdk(b).get({
              path: "/channels",
              params: { info: "subscription_count", filter_by_prefix: `public-${base}` },
            }),
          ),
          { channels: { [pub]: { subscription_count: 3 } } },
        );
        assert.deepEqual(
          await json(
            await sdk(b).get({
              path: `/channels/${pres}`,
              params: { info: "user_count,subscription_count" },
            }),
          ),
          { occupied: true, ...counts },
        );
        assert.deepEqual(
          await json(
            await sdk(a).get({
              path: `/channels/${pub}`,
              params: { info: "user_count,subscription_count" },
            }),
          ),
          { occupied: true, subscription_count: 3 },
          "user_count only for presence channels",
        );
        const users = await json(await sdk(b).get({ path: `/channels/${pres}/users` })) as {
          users: { id: string }[];
        };
        assert.deepEqual(users.users.map((u) => u.id).sort(), ["x", "y"]);
      },
    );
  },
);
