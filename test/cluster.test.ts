// Horizontal scaling over Redis: three Chorus processes (A and C on the runtime running the tests,
// B on the other one) share the Redis at REDIS_URL under a random key prefix. Proves cross-node
// delivery (exactly once, batches, client events, socket_id exclusion), interest-based routing
// (PUBSUB), cluster-wide presence, cluster totals in HTTP queries and a cluster-wide connection
// quota, with pusher-js, Laravel Echo, the `pusher` SDK and raw sockets.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Redis } from "ioredis";
import type PusherServer from "pusher";
import { MAIN, QUOTA, standardApps } from "./support/apps.ts";
import { assertPusherError } from "./support/assertions.ts";
import {
  disconnectAll,
  echoClient,
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
import { Recorder } from "./support/recorder.ts";
import {
  adminClient,
  busChannel,
  closeRedisClients,
  deleteKeys,
  numsub,
  pubsubChannels,
  randomPrefix,
  REDIS_URL,
  waitNumsub,
} from "./support/redis.ts";
import { Api, type AppCreds, channelAuth } from "./support/sign.ts";
import { got, signin, waitWatchlist, watchlist } from "./support/cluster.ts";
import {
  closeAllRawSockets,
  connectSocket,
  dataOf,
  openSocket,
  type RawSocket,
} from "./support/ws.ts";
import { delay, until, withTimeout } from "./support/wait.ts";

const T = { timeout: 30000 };
/** Used only by the HTTP-count test, so its totals are exact. */
const COUNTS = { id: "2001", key: "counts-key", secret: "counts-secret" } as const;

interface PresenceData {
  presence: { ids: string[]; hash: Record<string, unknown>; count: number };
}

describe(`cluster over Redis (A=${runnerRuntime}, B=${otherRuntime}, C=${runnerRuntime})`, {
  timeout: 90000,
}, () => {
  const prefix = randomPrefix("cluster");
  let a: ClusterNode;
  let b: ClusterNode;
  let c: ClusterNode;
  let nodes: ClusterNode[];
  let redis: Redis;
  let n = 0;
  const uniq = (base: string) => `${base}-${++n}`;

  before(async () => {
    const config = { apps: [...standardApps(), { ...COUNTS }] };
    const common = { redisUrl: REDIS_URL, prefix, leaseMs: 2000, config };
    [a, b, c] = await Promise.all([
      startNode({ ...common, runtime: runnerRuntime, name: "A", region: "ams" }),
      startNode({ ...common, runtime: otherRuntime, name: "B", region: "iad" }),
      startNode({ ...common, runtime: runnerRuntime, name: "C", region: "syd" }),
    ]);
    nodes = [a, b, c];
    await Promise.all(nodes.map((node) => waitReady(node)));
    redis = adminClient(REDIS_URL);
  });

  after(async () => {
    disconnectAll();
    closeAllRawSockets();
    await stopAllNodes();
    if (redis) await deleteKeys(redis, prefix).catch(() => {});
    await closeRedisClients();
  });

  // ---- helpers -------------------------------------------------------------------------------

  function raw(node: ClusterNode, app: AppCreds = MAIN): Promise<RawSocket> {
    return connectSocket(node.wsUrl(app.key));
  }

  function sdk(node: ClusterNode, app: AppCreds = MAIN): PusherServer {
    return serverSdk(node, app);
  }

  /** Triggers a marker event on `channel` through `via` and waits until every socket has it:
   * every frame published on that channel before the marker has then arrived too. */
  async function marker(
    via: ClusterNode,
    channel: string,
    socks: RawSocket[],
    recorders: Recorder[] = [],
  ): Promise<string> {
    const name = `marker-${++n}`;
    await sdk(via).trigger(channel, name, { marker: true });
    await Promise.all([
      ...socks.map((s) => s.nextEvent(name, channel)),
      ...recorders.map((r) => r.wait(name)),
    ]);
    return name;
  }

  async function joinPresence(
    s: RawSocket,
    channel: string,
    user: { user_id: string; user_info?: unknown },
    app: AppCreds = MAIN,
  ): Promise<PresenceData> {
    const cd = JSON.stringify(user);
    const f = await s.subscribeOk(channel, {
      auth: channelAuth(app, s.socketId!, channel, cd),
      channel_data: cd,
    });
    return dataOf(f) as PresenceData;
  }

  async function subscribePrivate(s: RawSocket, channel: string): Promise<void> {
    await s.subscribeOk(channel, { auth: channelAuth(MAIN, s.socketId!, channel) });
  }

  function echoSubscribed(ch: { subscribed(cb: CallableFunction): unknown }, what: string) {
    return withTimeout(
      new Promise<void>((resolve) => ch.subscribed(() => resolve())),
      5000,
      `Echo subscription to ${what}`,
    );
  }

  async function json(api: Api, path: string, params: Record<string, string> = {}) {
    const res = await api.get(path, params);
    assert.equal(res.status, 200, `${api.server.url} GET ${path}: ${res.text}`);
    return res.json;
  }

  /** Polls every node until GET `path` answers `expected` on each (cluster totals). */
  async function expectOnEveryNode(
    app: AppCreds,
    path: string,
    params: Record<string, string>,
    expected: unknown,
    timeout = 3000,
  ): Promise<void> {
    await Promise.all(nodes.map(async (node) => {
      const api = new Api(node, app);
      let last: unknown;
      try {
        await until(
          async () => {
            last = await json(api, path, params);
            try {
              assert.deepEqual(last, expected);
              return true;
            } catch {
              return false;
            }
          },
          `${node.name}: GET ${path}`,
          { timeout, interval: 50 },
        );
      } catch {
        assert.deepEqual(
          last,
          expected,
          `node ${node.name} (${node.runtime}) GET ${path}?${new URLSearchParams(params)}`,
        );
      }
    }));
  }

  // ---- 1. cross-node delivery ----------------------------------------------------------------

  it(
    "an HTTP event sent to A reaches raw, pusher-js and Echo subscribers on A, B and C exactly once",
    T,
    async () => {
      const ch = uniq("orders");
      const sA = await raw(a);
      await sA.subscribeOk(ch);

      const pB = pusherClient(b, MAIN);
      const chB = pB.subscribe(ch);
      const recB = new Recorder("pusher-js on B");
      chB.bind_global(recB.global);
      await subscribed(chB);

      const echo = echoClient(c, MAIN);
      const recC = new Recorder("Echo on C");
      const echoCh = echo.channel(ch);
      echoCh.listen(".order-shipped", recC.on("order-shipped"));
      await echoSubscribed(echoCh, ch);

      // Triggered right after the subscriptions were acknowledged: a node must be listening on the
      // bus before it answers subscription_succeeded.
      await sdk(a).trigger(ch, "order-shipped", { id: 7 });
      const [fA, rB, rC] = await Promise.all([
        sA.nextEvent("order-shipped", ch),
        recB.wait("order-shipped"),
        recC.wait("order-shipped"),
      ]);
      assert.equal(fA.data, JSON.stringify({ id: 7 }), "raw socket gets the data string");
      assert.deepEqual(rB.data, { id: 7 });
      assert.deepEqual(rC.data, { id: 7 });

      const m = `marker-${++n}`;
      echoCh.listen(`.${m}`, recC.on(m));
      await sdk(a).trigger(ch, m, {});
      await Promise.all([sA.nextEvent(m, ch), recB.wait(m), recC.wait(m)]);
      assert.equal(got(sA, "order-shipped", ch).length, 1, "A: delivered once");
      assert.equal(recB.count("order-shipped"), 1, `B: delivered once (${recB.names()})`);
      assert.equal(recC.count("order-shipped"), 1, `C: delivered once (${recC.names()})`);
    },
  );

  it(
    "a multi-channel event and a batch sent to B reach each subscriber on every node once",
    T,
    async () => {
      const ch1 = uniq("multi");
      const ch2 = uniq("multi");
      const sA = await raw(a); // ch1 + ch2
      const sB = await raw(b); // ch2
      const sC = await raw(c); // ch1
      await sA.subscribeOk(ch1);
      await sA.subscribeOk(ch2);
      await sB.subscribeOk(ch2);
      await sC.subscribeOk(ch1);

      await sdk(b).trigger([ch1, ch2], "both", { v: 1 });
      await sdk(b).triggerBatch([
        { channel: ch1, name: "batch-1", data: JSON.stringify({ v: 1 }) },
        { channel: ch2, name: "batch-2", data: JSON.stringify({ v: 2 }) },
        { channel: ch1, name: "batch-3", data: JSON.stringify({ v: 3 }) },
      ]);
      await marker(c, ch1, [sA, sC]);
      await marker(c, ch2, [sA, sB]);

      const expect = (s: RawSocket, who: string, channel: string, event: string, times: number) =>
        assert.equal(got(s, event, channel).length, times, `${who}: ${event} on ${channel}`);
      expect(sA, "A", ch1, "both", 1);
      expect(sA, "A", ch2, "both", 1);
      expect(sC, "C", ch1, "both", 1);
      expect(sB, "B", ch2, "both", 1);
      expect(sA, "A", ch1, "batch-1", 1);
      expect(sA, "A", ch2, "batch-2", 1);
      expect(sA, "A", ch1, "batch-3", 1);
      expect(sC, "C", ch1, "batch-1", 1);
      expect(sC, "C", ch1, "batch-3", 1);
      expect(sB, "B", ch2, "batch-2", 1);
      assert.equal(got(sB, "batch-1", ch1).length + got(sB, "batch-3", ch1).length, 0);
      assert.equal(got(sC, "batch-2", ch2).length, 0, "C is not subscribed to ch2");
      assert.equal(got(sA, "batch-2", ch2)[0].data, JSON.stringify({ v: 2 }));
    },
  );

  it(
    "client events cross nodes (pusher-js on A, raw on B, Echo whisper on C), never back to the sender",
    T,
    async () => {
      const base = uniq("chat");
      const ch = `private-${base}`;

      const pA = pusherClient(a, MAIN);
      const chA = pA.subscribe(ch);
      const recA = new Recorder("pusher-js on A");
      chA.bind_global(recA.global);
      await subscribed(chA);

      const sB = await raw(b);
      await subscribePrivate(sB, ch);

      const echo = echoClient(c, MAIN);
      const recC = new Recorder("Echo on C");
      const echoCh = echo.private(base);
      echoCh.listenForWhisper("typing", recC.on("client-typing"));
      await echoSubscribed(echoCh, ch);

      assert.ok(chA.trigger("client-typing", { who: "a" }), "pusher-js sent the client event");
      const fromA = await sB.nextEvent("client-typing", ch);
      assert.deepEqual(fromA.data, { who: "a" }, "object data forwarded as an object");
      assert.deepEqual((await recC.wait("client-typing")).data, { who: "a" });

      sB.send({ event: "client-typing", channel: ch, data: { who: "b" } });
      await until(
        () => recA.count("client-typing") >= 1 && recC.count("client-typing") >= 2,
        "B's client event on A and C",
      );

      echoCh.whisper("typing", { who: "c" });
      await until(() => recA.count("client-typing") >= 2, "C's whisper on A");
      await sB.next(
        (f) => f.event === "client-typing" && (f.data as { who?: unknown })?.who === "c",
        "C's whisper on B",
      );

      const m = `marker-${++n}`;
      echoCh.listen(`.${m}`, recC.on(m));
      await sdk(b).trigger(ch, m, {});
      await Promise.all([sB.nextEvent(m, ch), recA.wait(m), recC.wait(m)]);

      const whos = (list: unknown[]) => list.map((d) => (d as { who?: unknown }).who).sort();
      assert.deepEqual(
        whos(recA.all("client-typing")),
        ["b", "c"],
        "A gets B's and C's, not its own",
      );
      assert.deepEqual(
        whos(got(sB, "client-typing", ch).map((f) => f.data)),
        ["a", "c"],
        "B gets A's and C's, not its own",
      );
      assert.deepEqual(
        whos(recC.all("client-typing")),
        ["a", "b"],
        "C gets A's and B's, not its own",
      );
    },
  );

  it("socket_id excludes a socket that is on another node (events and batches)", T, async () => {
    const ch = uniq("exclude");
    const sA = await raw(a);
    const sB = await raw(b);
    const sC = await raw(c);
    for (const s of [sA, sB, sC]) await s.subscribeOk(ch);

    await sdk(a).trigger(ch, "not-for-b", { x: 1 }, { socket_id: sB.socketId! });
    await sdk(b).trigger(ch, "not-for-a", { x: 2 }, { socket_id: sA.socketId! });
    await sdk(c).triggerBatch([
      { channel: ch, name: "batch-not-for-a", data: "{}", socket_id: sA.socketId! },
    ]);
    await marker(c, ch, [sA, sB, sC]);

    assert.equal(got(sA, "not-for-b", ch).length, 1);
    assert.equal(got(sC, "not-for-b", ch).length, 1);
    assert.equal(got(sB, "not-for-b", ch).length, 0, "excluded socket on B got the event");
    assert.equal(got(sB, "not-for-a", ch).length, 1);
    assert.equal(got(sC, "not-for-a", ch).length, 1);
    assert.equal(got(sA, "not-for-a", ch).length, 0, "excluded socket on A got the event");
    assert.equal(got(sB, "batch-not-for-a", ch).length, 1);
    assert.equal(got(sC, "batch-not-for-a", ch).length, 1);
    assert.equal(
      got(sA, "batch-not-for-a", ch).length,
      0,
      "excluded socket on A got the batch event",
    );
  });

  // ---- 2. interest-based routing -------------------------------------------------------------

  it("a node listens on a channel's bus topic only while it has local subscribers", T, async () => {
    const ch = uniq("interest");
    const topic = busChannel(prefix, MAIN.id, ch);
    assert.ok(
      !(await pubsubChannels(redis, `chorus:${prefix}:*`)).includes(topic),
      "nobody listens before any subscription",
    );
    assert.equal(await numsub(redis, topic), 0);

    const s1 = await raw(b);
    await s1.subscribeOk(ch);
    await waitNumsub(redis, prefix, topic, 1);
    assert.ok(
      (await pubsubChannels(redis, `chorus:${prefix}:*`)).includes(topic),
      `${topic} listed by PUBSUB CHANNELS`,
    );
    // An event through A (which has no subscriber and must not listen) reaches B's socket.
    await sdk(a).trigger(ch, "first", {});
    await s1.nextEvent("first", ch);
    assert.equal(await numsub(redis, topic), 1, "only B listens (A and C have no subscriber)");

    const s2 = await raw(b);
    await s2.subscribeOk(ch);
    const s3 = await raw(c);
    await s3.subscribeOk(ch);
    await waitNumsub(redis, prefix, topic, 2);

    // B's first subscriber leaves; B keeps listening for the second one.
    s1.send({ event: "pusher:unsubscribe", data: { channel: ch } });
    await s1.ping();
    await sdk(a).trigger(ch, "second", {});
    await Promise.all([s2.nextEvent("second", ch), s3.nextEvent("second", ch)]);
    await s1.ping();
    assert.equal(got(s1, "second", ch).length, 0, "unsubscribed socket got an event");
    const stable = Date.now() + 500;
    while (Date.now() < stable) {
      assert.equal(await numsub(redis, topic), 2, "B stopped listening while s2 is subscribed");
      await delay(50);
    }

    // B's last subscriber disconnects: B stops listening, C still does.
    await s2.closeAndWait();
    await waitNumsub(redis, prefix, topic, 1);
    await sdk(b).trigger(ch, "third", {});
    await s3.nextEvent("third", ch);

    // C's only subscriber unsubscribes: nobody listens any more.
    s3.send({ event: "pusher:unsubscribe", data: { channel: ch } });
    await waitNumsub(redis, prefix, topic, 0);
    assert.ok(!(await pubsubChannels(redis, `chorus:${prefix}:*`)).includes(topic));
  });

  // ---- 3. cluster-wide presence --------------------------------------------------------------

  it(
    "one user on A and B is one member: listed once, counted once, added on first, removed on last",
    T,
    async () => {
      const base = uniq("room");
      const ch = `presence-${base}`;
      const obs = await raw(c);
      const first = await joinPresence(obs, ch, { user_id: "obs", user_info: { name: "Obs" } });
      assert.deepEqual(first.presence.ids, ["obs"]);

      const u1a = await raw(a);
      const joined = await joinPresence(u1a, ch, { user_id: "u1", user_info: { name: "One" } });
      assert.deepEqual([...joined.presence.ids].sort(), ["obs", "u1"]);
      assert.equal(joined.presence.count, 2);
      assert.deepEqual(joined.presence.hash, { obs: { name: "Obs" }, u1: { name: "One" } });
      const added = await obs.nextEvent("pusher_internal:member_added", ch);
      assert.deepEqual(dataOf(added), { user_id: "u1", user_info: { name: "One" } });

      // The same user's second connection, on B, through Laravel Echo.
      const echo = echoClient(b, MAIN, { user: { user_id: "u1", user_info: { name: "One" } } });
      const here = new Promise<unknown>((resolve) => {
        echo.join(base).here((members: unknown) => resolve(members));
      });
      const members = await withTimeout(here, 5000, "Echo here() on B") as { name: string }[];
      assert.deepEqual(
        members.map((m) => m.name).sort(),
        ["Obs", "One"],
        "subscription_succeeded on B lists the cluster's members, u1 once",
      );

      for (const node of nodes) {
        const api = new Api(node, MAIN);
        assert.deepEqual(
          await json(api, `/channels/${ch}`, { info: "user_count,subscription_count" }),
          { occupied: true, user_count: 2, subscription_count: 3 },
          `node ${node.name}: channel info`,
        );
        const users = await json(api, `/channels/${ch}/users`) as { users: { id: string }[] };
        assert.deepEqual(
          users.users.map((u) => u.id).sort(),
          ["obs", "u1"],
          `node ${node.name}: /users`,
        );
      }

      await marker(a, ch, [obs, u1a]);
      assert.equal(got(obs, "pusher_internal:member_added", ch).length, 1, "u1 added once");

      // u1 leaves A but is still on B: no member_removed.
      await u1a.closeAndWait();
      await expectOnEveryNode(MAIN, `/channels/${ch}`, { info: "user_count,subscription_count" }, {
        occupied: true,
        user_count: 2,
        subscription_count: 2,
      });
      await marker(b, ch, [obs]);
      assert.equal(got(obs, "pusher_internal:member_removed", ch).length, 0, "u1 is still on B");

      // u1 leaves B too: member_removed once, counts drop everywhere.
      echo.leave(base);
      const removed = await obs.nextEvent("pusher_internal:member_removed", ch);
      assert.deepEqual(dataOf(removed), { user_id: "u1" });
      await expectOnEveryNode(MAIN, `/channels/${ch}`, { info: "user_count,subscription_count" }, {
        occupied: true,
        user_count: 1,
        subscription_count: 1,
      });
      await expectOnEveryNode(MAIN, `/channels/${ch}/users`, {}, { users: [{ id: "obs" }] });
      await marker(a, ch, [obs]);
      assert.equal(
        got(obs, "pusher_internal:member_removed", ch).length,
        1,
        "removed exactly once",
      );
      assert.equal(
        got(obs, "pusher_internal:member_added", ch).length,
        1,
        "no further member_added",
      );
    },
  );

  // ---- 4. HTTP queries count every node ------------------------------------------------------

  it(
    "/connections, /channels and /channels/{name} answer cluster totals on every node",
    T,
    async () => {
      const ch1 = uniq("count");
      const ch2 = uniq("count");
      const pres = `presence-${uniq("count")}`;
      const a1 = await raw(a, COUNTS);
      const a2 = await raw(a, COUNTS);
      const b1 = await raw(b, COUNTS);
      const c1 = await raw(c, COUNTS);
      await expectOnEveryNode(COUNTS, "/connections", {}, { connections: 4 });

      for (const s of [a1, a2, b1]) await s.subscribeOk(ch1);
      await c1.subscribeOk(ch2);
      await joinPresence(a1, pres, { user_id: "x" }, COUNTS);
      await joinPresence(b1, pres, { user_id: "x" }, COUNTS);
      await joinPresence(c1, pres, { user_id: "y" }, COUNTS);

      await expectOnEveryNode(COUNTS, "/channels", { info: "subscription_count" }, {
        channels: {
          [ch1]: { subscription_count: 3 },
          [ch2]: { subscription_count: 1 },
          [pres]: { subscription_count: 3 },
        },
      });
      await expectOnEveryNode(COUNTS, "/channels", {
        filter_by_prefix: "presence-",
        info: "user_count",
      }, {
        channels: { [pres]: { user_count: 2 } },
      });
      await expectOnEveryNode(COUNTS, `/channels/${ch1}`, { info: "subscription_count" }, {
        occupied: true,
        subscription_count: 3,
      });
      await expectOnEveryNode(COUNTS, `/channels/${pres}`, {
        info: "user_count,subscription_count",
      }, {
        occupied: true,
        user_count: 2,
        subscription_count: 3,
      });

      // POST /events with info counts the whole cluster too (asked on C, subscribers on A and B).
      const res = await sdk(c, COUNTS).trigger(ch1, "counted", {}, { info: "subscription_count" });
      assert.deepEqual(await res.json(), { channels: { [ch1]: { subscription_count: 3 } } });

      await b1.closeAndWait();
      await expectOnEveryNode(COUNTS, "/connections", {}, { connections: 3 });
      await expectOnEveryNode(COUNTS, "/channels", { info: "user_count,subscription_count" }, {
        channels: {
          [ch1]: { subscription_count: 2 },
          [ch2]: { subscription_count: 1 },
          [pres]: { user_count: 2, subscription_count: 2 },
        },
      });

      await a1.closeAndWait();
      await a2.closeAndWait();
      await expectOnEveryNode(COUNTS, "/connections", {}, { connections: 1 });
      await expectOnEveryNode(COUNTS, "/channels", { info: "user_count,subscription_count" }, {
        channels: {
          [ch2]: { subscription_count: 1 },
          [pres]: { user_count: 1, subscription_count: 1 },
        },
      });
      const gone = await json(new Api(b, COUNTS), `/channels/${ch1}`) as { occupied?: unknown };
      assert.equal(gone.occupied, false, "ch1 unoccupied once its subscribers on A and B left");
    },
  );

  // ---- sign-in, user channels, terminate, cache channels: cluster-wide too (protocol §6, §8, §9)

  it(
    "watchlists and #server-to-user channels span nodes; online once, offline after the last socket",
    T,
    async () => {
      const x = uniq("x");
      const watcher = await raw(a);
      await signin(watcher, MAIN, { id: uniq("w"), watchlist: [x] });

      const xB = await raw(b);
      await signin(xB, MAIN, { id: x });
      await waitWatchlist(watcher, `online:${x}`); // x signed in on B, seen on A
      await xB.subscribeOk(`#server-to-user-${x}`);

      const xC = await raw(c);
      await signin(xC, MAIN, { id: x });
      await xC.subscribeOk(`#server-to-user-${x}`);

      await sdk(a).sendToUser(x, "dm", { text: "hi" });
      const [dB, dC] = await Promise.all([
        xB.nextEvent("dm", `#server-to-user-${x}`),
        xC.nextEvent("dm", `#server-to-user-${x}`),
      ]);
      assert.equal(dB.data, JSON.stringify({ text: "hi" }));
      assert.equal(dC.data, JSON.stringify({ text: "hi" }));

      // Node-internal channels never show in the HTTP API.
      const listed = await json(new Api(c, MAIN), "/channels") as {
        channels: Record<string, unknown>;
      };
      const internal = Object.keys(listed.channels).filter((name) =>
        name.startsWith("#") && !name.startsWith("#server-to-user-")
      );
      assert.deepEqual(internal, [], "internal channels listed by GET /channels");

      // First of x's two sockets leaves: x stays online.
      await xB.closeAndWait();
      await until(async () => {
        const conns = await json(
          new Api(a, MAIN),
          `/channels/${encodeURIComponent(`#server-to-user-${x}`)}`,
          {
            info: "subscription_count",
          },
        ) as { subscription_count?: number };
        return conns.subscription_count === 1;
      }, "B's socket to be gone from the cluster");
      await sdk(b).sendToUser(x, "still-here", {});
      await xC.nextEvent("still-here", `#server-to-user-${x}`);
      await watcher.ping();
      assert.deepEqual(
        watchlist(watcher).filter((e) => e.startsWith("offline:")),
        [],
        "x reported offline while still signed in on C",
      );
      await xC.closeAndWait();
      await waitWatchlist(watcher, `offline:${x}`); // after its last socket (on C) left
      await watcher.ping();
      assert.deepEqual(
        watchlist(watcher).filter((e) => e.endsWith(`:${x}`)),
        [`online:${x}`, `offline:${x}`],
        "online once, offline once",
      );
    },
  );

  it(
    "terminate_connections closes the user's sockets on every node, and only those",
    T,
    async () => {
      const t = uniq("t");
      const ch = `presence-${uniq("term")}`;
      const signedA = await raw(a);
      await signin(signedA, MAIN, { id: t });
      const presentC = await raw(c);
      await joinPresence(presentC, ch, { user_id: t });
      const other = await raw(b);
      await signin(other, MAIN, { id: uniq("other") });
      await joinPresence(other, ch, { user_id: "bystander" });

      await sdk(b).terminateUserConnections(t);
      await Promise.all([
        withTimeout(signedA.closed, 5000, "A's signed-in socket to close"),
        withTimeout(presentC.closed, 5000, "C's presence socket to close"),
      ]);
      const removed = await other.nextEvent("pusher_internal:member_removed", ch);
      assert.deepEqual(dataOf(removed), { user_id: t });
      await other.ping();
      assert.ok(other.isOpen, "another user's socket stays open");
    },
  );

  it("a cache channel's last event is served to subscribers on other nodes", T, async () => {
    const ch = `cache-${uniq("news")}`;
    await sdk(a).trigger(ch, "headline", { title: "one" });
    await sdk(a).trigger(ch, "headline", { title: "two" });

    const sB = await raw(b);
    await sB.subscribeOk(ch);
    const cached = await sB.nextEvent("headline", ch);
    assert.equal(cached.data, JSON.stringify({ title: "two" }), "the last event, from A");

    const info = await json(new Api(c, MAIN), `/channels/${ch}`, { info: "cache" }) as {
      cache?: { event?: unknown; data?: unknown; ttl?: unknown };
    };
    assert.equal(info.cache?.event, "headline");
    assert.equal(info.cache?.data, JSON.stringify({ title: "two" }));
    assert.equal(typeof info.cache?.ttl, "number");

    const miss = `cache-${uniq("empty")}`;
    const sC = await raw(c);
    await sC.subscribeOk(miss);
    await sC.nextEvent("pusher:cache_miss", miss);
  });

  // ---- 5. cluster-wide connection quota ------------------------------------------------------

  it(
    "max_connections counts every node: the third connection is refused with 4004 on another node",
    T,
    async () => {
      const q1 = await raw(a, QUOTA);
      await raw(a, QUOTA);

      for (const node of [b, c]) {
        const s = await openSocket(node.wsUrl(QUOTA.key));
        const err = await s.nextEvent("pusher:error");
        assertPusherError(err, 4004);
        const closed = await withTimeout(
          s.closed,
          5000,
          `close of the refused socket on ${node.name}`,
        );
        assert.equal(closed.code, 4004, `close code on ${node.name}`);
        assert.equal(
          s.log.some((f) => f.event === "pusher:connection_established"),
          false,
          "refused socket was never established",
        );
      }

      // Closing one connection on A frees a slot for the whole cluster.
      await q1.closeAndWait();
      const again = await until(
        async () => {
          const s = await openSocket(b.wsUrl(QUOTA.key));
          const f = await s.next((f) =>
            f.event === "pusher:connection_established" || f.event === "pusher:error"
          );
          if (f.event === "pusher:connection_established") return s;
          await withTimeout(s.closed, 5000, "refused socket to close");
          return undefined;
        },
        "a slot freed on A to admit a connection on B",
        { timeout: 5000, interval: 100 },
      );
      assert.ok(again.isOpen);

      const s = await openSocket(c.wsUrl(QUOTA.key));
      assertPusherError(await s.nextEvent("pusher:error"), 4004);
      assert.equal((await withTimeout(s.closed, 5000, "refused socket to close")).code, 4004);
    },
  );
});
