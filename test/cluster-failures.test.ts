// What a cluster does when things break: a node killed with SIGKILL (its presence members are
// removed by a survivor once its lease expires, exactly once), a node frozen past its lease
// (removed, then back with member_added when it resumes), Redis going away and coming back (503
// while down, readiness, resubscription, presence and sign-in re-registration, no phantom
// presence events), and a node that receives pub/sub through a read replica
// (REDIS_SUBSCRIBE_URL). Every suite mixes Bun and Deno nodes.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Redis } from "ioredis";
import PusherServer from "pusher";
import { MAIN, standardApps } from "./support/apps.ts";
import { disconnectAll, pusherClient, serverSdk, subscribed } from "./support/clients.ts";
import {
  type ClusterNode,
  health,
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
  randomPrefix,
  REDIS_URL,
  RedisServer,
  stopAllRedisServers,
  waitNumsub,
  waitReplicaLinked,
} from "./support/redis.ts";
import { Api, channelAuth } from "./support/sign.ts";
import { eventually, got, signin, waitWatchlist, watchlist } from "./support/cluster.ts";
import { closeAllRawSockets, connectSocket, dataOf, type RawSocket } from "./support/ws.ts";
import { delay, withTimeout } from "./support/wait.ts";

const LEASE_MS = 2000;
const config = { apps: standardApps() };

async function joinPresence(s: RawSocket, channel: string, userId: string): Promise<void> {
  const cd = JSON.stringify({ user_id: userId, user_info: { name: userId } });
  await s.subscribeOk(channel, {
    auth: channelAuth(MAIN, s.socketId!, channel, cd),
    channel_data: cd,
  });
}

async function channelInfo(node: ClusterNode, channel: string): Promise<unknown> {
  const res = await new Api(node, MAIN).get(`/channels/${channel}`, {
    info: "user_count,subscription_count",
  });
  assert.equal(res.status, 200, `${node.name} GET /channels/${channel}: ${res.text}`);
  return res.json;
}

async function userIds(node: ClusterNode, channel: string): Promise<string[]> {
  const res = await new Api(node, MAIN).get(`/channels/${channel}/users`);
  assert.equal(res.status, 200, `${node.name} GET /users: ${res.text}`);
  return (res.json as { users: { id: string }[] }).users.map((u) => u.id).sort();
}

async function cleanup(prefix: string, url: string | undefined): Promise<void> {
  disconnectAll();
  closeAllRawSockets();
  await stopAllNodes();
  if (url) await deleteKeys(adminClient(url), prefix).catch(() => {});
  await closeRedisClients();
  await stopAllRedisServers();
}

// ---- 6. node kill ----------------------------------------------------------------------------

describe(`cluster: a node killed with SIGKILL (B=${otherRuntime} dies; A, C=${runnerRuntime})`, {
  timeout: 60000,
}, () => {
  const prefix = randomPrefix("kill");
  let a: ClusterNode;
  let b: ClusterNode;
  let c: ClusterNode;

  before(async () => {
    const common = { redisUrl: REDIS_URL, prefix, leaseMs: LEASE_MS, config };
    [a, b, c] = await Promise.all([
      startNode({ ...common, runtime: runnerRuntime, name: "A" }),
      startNode({ ...common, runtime: otherRuntime, name: "B" }),
      startNode({ ...common, runtime: runnerRuntime, name: "C" }),
    ]);
    await Promise.all([a, b, c].map((node) => waitReady(node)));
  });
  after(() => cleanup(prefix, REDIS_URL));

  it("survivors remove the dead node's members within the lease window, exactly once", {
    timeout: 40000,
  }, async () => {
    const ch = "presence-kill";
    const pub = "kill-public";
    const obsA = await connectSocket(a.wsUrl(MAIN.key));
    const obsC = await connectSocket(c.wsUrl(MAIN.key));
    const victim = await connectSocket(b.wsUrl(MAIN.key));
    const bothA = await connectSocket(a.wsUrl(MAIN.key));
    const bothB = await connectSocket(b.wsUrl(MAIN.key));
    await joinPresence(obsA, ch, "obs-a");
    await joinPresence(obsC, ch, "obs-c");
    await joinPresence(victim, ch, "victim");
    await joinPresence(bothA, ch, "both");
    await joinPresence(bothB, ch, "both");
    await victim.subscribeOk(pub);
    await obsA.subscribeOk(pub);

    await eventually(() => channelInfo(a, ch), {
      occupied: true,
      user_count: 4,
      subscription_count: 5,
    }, "presence counts before the kill");
    const conns = await new Api(c, MAIN).get("/connections");
    const connsBefore = (conns.json as { connections: number }).connections;
    assert.equal(connsBefore, 5, `connections before the kill: ${conns.text}`);

    const killedAt = Date.now();
    b.kill("SIGKILL");
    await b.exited;

    // The lease runs out at most LEASE_MS after the kill and survivors sweep every LEASE_MS / 2 or
    // so: about 1.5 x the lease, plus slack for two runtimes' timers and process start-up noise.
    const window = 1.5 * LEASE_MS + 2000;
    const [ra, rc] = await Promise.all([
      obsA.next(
        (f) => f.event === "pusher_internal:member_removed" && f.channel === ch,
        "member_removed on A",
        window,
      ),
      obsC.next(
        (f) => f.event === "pusher_internal:member_removed" && f.channel === ch,
        "member_removed on C",
        window,
      ),
    ]);
    const elapsed = Date.now() - killedAt;
    assert.deepEqual(dataOf(ra), { user_id: "victim" });
    assert.deepEqual(dataOf(rc), { user_id: "victim" });
    assert.ok(elapsed <= window, `member_removed after ${elapsed} ms (window ${window} ms)`);

    for (const node of [a, c]) {
      await eventually(() => channelInfo(node, ch), {
        occupied: true,
        user_count: 3,
        subscription_count: 3,
      }, `${node.name}: presence counts after the kill`);
      assert.deepEqual(await userIds(node, ch), ["both", "obs-a", "obs-c"]);
      await eventually(
        async () =>
          ((await channelInfo(node, pub)) as { subscription_count?: number }).subscription_count,
        1,
        `${node.name}: the dead node's public subscription is no longer counted`,
      );
      await eventually(
        async () =>
          ((await new Api(node, MAIN).get("/connections")).json as { connections: number })
            .connections,
        connsBefore - 2,
        `${node.name}: the dead node's connections are no longer counted`,
      );
    }

    // Exactly once: A and C both watch for expired leases; give them another full lease period
    // to (wrongly) clean up again, then let a marker flush everything published before it.
    await delay(LEASE_MS + 500);
    await serverSdk(c, MAIN).trigger(ch, "after-kill", {});
    await Promise.all([obsA.nextEvent("after-kill", ch), obsC.nextEvent("after-kill", ch)]);
    for (const [who, s] of [["A", obsA], ["C", obsC]] as const) {
      const removed = got(s, "pusher_internal:member_removed", ch);
      assert.deepEqual(
        removed.map((f) => dataOf(f)),
        [{ user_id: "victim" }],
        `${who}: one member_removed, for the victim only ("both" is still on A)`,
      );
    }
  });
});

// ---- a node that stalls past its lease ---------------------------------------------------------

describe(
  `cluster: a node stalls past its lease and resumes (A=${runnerRuntime}, B=${otherRuntime})`,
  {
    timeout: 60000,
  },
  () => {
    const prefix = randomPrefix("stall");
    let a: ClusterNode;
    let b: ClusterNode;

    before(async () => {
      const common = { redisUrl: REDIS_URL, prefix, leaseMs: LEASE_MS, config };
      [a, b] = await Promise.all([
        startNode({ ...common, runtime: runnerRuntime, name: "A" }),
        startNode({ ...common, runtime: otherRuntime, name: "B" }),
      ]);
      await Promise.all([a, b].map((node) => waitReady(node)));
    });
    after(async () => {
      b?.kill("SIGCONT"); // never leave a frozen process behind (stop() sends SIGCONT too)
      await cleanup(prefix, REDIS_URL);
    });

    it(
      "its members are removed while it is frozen and come back with member_added when it resumes",
      {
        timeout: 40000,
      },
      async () => {
        const ch = "presence-stall";
        const obs = await connectSocket(a.wsUrl(MAIN.key));
        await joinPresence(obs, ch, "obs");
        // pusher-js reconnects and rejoins by itself, so the outcome does not depend on whether the
        // resumed node keeps its sockets or closes them.
        const sleeper = pusherClient(b, MAIN, {
          user: { user_id: "sleeper", user_info: { name: "sleeper" } },
        });
        await subscribed(sleeper.subscribe(ch));
        const added = await obs.nextEvent("pusher_internal:member_added", ch);
        assert.deepEqual(dataOf(added), { user_id: "sleeper", user_info: { name: "sleeper" } });

        b.kill("SIGSTOP");
        const removed = await obs.nextEvent(
          "pusher_internal:member_removed",
          ch,
          1.5 * LEASE_MS + 2000,
        );
        assert.deepEqual(dataOf(removed), { user_id: "sleeper" });
        await eventually(() => userIds(a, ch), ["obs"], "A: the frozen node's member is gone");

        b.kill("SIGCONT");
        const back = await obs.nextEvent("pusher_internal:member_added", ch, LEASE_MS + 5000);
        assert.deepEqual(dataOf(back), { user_id: "sleeper", user_info: { name: "sleeper" } });
        for (const node of [a, b]) {
          await eventually(
            () => userIds(node, ch),
            ["obs", "sleeper"],
            `${node.name}: /users after resume`,
          );
          await eventually(
            async () => ((await channelInfo(node, ch)) as { user_count?: number }).user_count,
            2,
            `${node.name}: user_count after resume`,
          );
        }
        // Events reach the resumed node's member again.
        const rec = new Recorder("sleeper");
        sleeper.channel(ch).bind_global(rec.global);
        await serverSdk(a, MAIN).trigger(ch, "welcome-back", {});
        await rec.wait("welcome-back");
      },
    );
  },
);

// ---- 7. Redis outage -------------------------------------------------------------------------

describe(`cluster: Redis stops and comes back (A=${runnerRuntime}, B=${otherRuntime})`, {
  timeout: 60000,
}, () => {
  const prefix = randomPrefix("fault");
  let redisServer: RedisServer;
  let a: ClusterNode;
  let b: ClusterNode;

  before(async () => {
    redisServer = await RedisServer.start();
    const common = { redisUrl: redisServer.url, prefix, leaseMs: LEASE_MS, config };
    [a, b] = await Promise.all([
      startNode({ ...common, runtime: runnerRuntime, name: "A" }),
      startNode({ ...common, runtime: otherRuntime, name: "B" }),
    ]);
    await Promise.all([a, b].map((node) => waitReady(node)));
  });
  after(() => cleanup(prefix, undefined));

  it("answers 503 while Redis is down, recovers by itself and delivers every later event", {
    timeout: 45000,
  }, async () => {
    const ch = "outage-news";
    const pres = "presence-outage";
    const sA = await connectSocket(a.wsUrl(MAIN.key));
    const sB = await connectSocket(b.wsUrl(MAIN.key));
    await sA.subscribeOk(ch);
    await sB.subscribeOk(ch);
    await joinPresence(sA, pres, "u-a");
    await joinPresence(sB, pres, "u-b");
    // Two sockets on A share a private channel, for client events while Redis is away.
    const local = "private-outage-local";
    const sA2 = await connectSocket(a.wsUrl(MAIN.key));
    await sA.subscribeOk(local, { auth: channelAuth(MAIN, sA.socketId!, local) });
    await sA2.subscribeOk(local, { auth: channelAuth(MAIN, sA2.socketId!, local) });
    const pB = pusherClient(b, MAIN);
    const chB = pB.subscribe(ch);
    const recB = new Recorder("pusher-js on B");
    chB.bind_global(recB.global);
    await subscribed(chB);

    await serverSdk(a, MAIN).trigger(ch, "before", {});
    await Promise.all([
      sA.nextEvent("before", ch),
      sB.nextEvent("before", ch),
      recB.wait("before"),
    ]);
    await eventually(() => channelInfo(b, pres), {
      occupied: true,
      user_count: 2,
      subscription_count: 2,
    }, "presence counts before the outage");

    // Redis goes away.
    await redisServer.stopProcess("SIGKILL");
    for (const node of [a, b]) {
      const down = await waitReady(node, 503, 10000);
      const err = (down.body as { error?: unknown } | undefined)?.error;
      assert.equal(
        typeof err,
        "string",
        `${node.name} /ready 503 body names the problem: ${JSON.stringify(down.body)}`,
      );
      assert.equal((await health(node, "/up")).status, 200, `${node.name} /up stays 200`);
      const sdk = serverSdk(node, MAIN);
      const failure = await withTimeout(
        sdk.trigger(ch, "during", {}).then(
          (res) => ({ status: res.status }),
          (e: unknown) => ({ status: (e as PusherServer.RequestError).status }),
        ),
        10000,
        `${node.name}: POST /events while Redis is down`,
      );
      assert.equal(failure.status, 503, `${node.name}: POST /events while Redis is down`);
      const batch = await withTimeout(
        sdk.triggerBatch([{ channel: ch, name: "during-batch", data: "{}" }]).then(
          (res) => ({ status: res.status }),
          (e: unknown) => ({ status: (e as PusherServer.RequestError).status }),
        ),
        10000,
        `${node.name}: POST /batch_events while Redis is down`,
      );
      assert.equal(batch.status, 503, `${node.name}: POST /batch_events while Redis is down`);
    }
    assert.ok(a.running && b.running, "nodes survive the outage");
    // Local delivery goes on without Redis (architecture: "local-only delivery continues").
    sA.send({ event: "client-local", channel: local, data: { during: "outage" } });
    assert.deepEqual((await sA2.nextEvent("client-local", local)).data, { during: "outage" });

    // Redis comes back, empty (no persistence), on the same port.
    await redisServer.startProcess();
    await Promise.all([a, b].map((node) => waitReady(node, 200, 20000)));

    // Every event triggered after recovery reaches the subscriptions made before the outage.
    const names = ["after-1", "after-2", "after-3", "after-4"];
    await serverSdk(a, MAIN).trigger(ch, names[0], { n: 0 });
    await serverSdk(b, MAIN).trigger(ch, names[1], { n: 1 });
    await serverSdk(a, MAIN).triggerBatch([{ channel: ch, name: names[2], data: "{}" }]);
    await serverSdk(b, MAIN).trigger(ch, names[3], {});
    for (const name of names) {
      await Promise.all([sA.nextEvent(name, ch), sB.nextEvent(name, ch), recB.wait(name)]);
    }
    await serverSdk(a, MAIN).trigger(ch, "flush", {});
    await Promise.all([sA.nextEvent("flush", ch), sB.nextEvent("flush", ch), recB.wait("flush")]);
    for (const name of names) {
      assert.equal(got(sA, name, ch).length, 1, `A: ${name} once`);
      assert.equal(got(sB, name, ch).length, 1, `B: ${name} once`);
      assert.equal(recB.count(name), 1, `pusher-js on B: ${name} once`);
    }
    for (const s of [sA, sB]) {
      assert.equal(
        got(s, "during", ch).length + got(s, "during-batch", ch).length,
        0,
        "refused events were not delivered",
      );
    }

    // Presence state was registered again in the new Redis.
    for (const node of [a, b]) {
      await eventually(
        async () => ((await channelInfo(node, pres)) as { user_count?: number }).user_count,
        2,
        `${node.name}: user_count after Redis came back`,
        10000,
      );
      assert.deepEqual(await userIds(node, pres), ["u-a", "u-b"]);
    }
    // So were connections and subscriptions (quotas and HTTP counts read them).
    for (const node of [a, b]) {
      await eventually(
        () => channelInfo(node, ch),
        { occupied: true, subscription_count: 3 },
        `${node.name}: ${ch} after Redis came back`,
      );
      await eventually(
        async () => (await new Api(node, MAIN).get("/connections")).json,
        { connections: 4 },
        `${node.name}: /connections after Redis came back`,
      );
    }
    // Client events still cross nodes.
    const pv = "private-outage";
    await sA.subscribeOk(pv, { auth: channelAuth(MAIN, sA.socketId!, pv) });
    await sB.subscribeOk(pv, { auth: channelAuth(MAIN, sB.socketId!, pv) });
    sA.send({ event: "client-after", channel: pv, data: { ok: true } });
    assert.deepEqual((await sB.nextEvent("client-after", pv)).data, { ok: true });

    // Nobody joined or left: the outage must not show up as presence events. sA saw u-b join
    // before the outage (its one legitimate member_added); sB joined second and saw none.
    await serverSdk(b, MAIN).trigger(pres, "presence-flush", {});
    await Promise.all([sA.nextEvent("presence-flush", pres), sB.nextEvent("presence-flush", pres)]);
    const memberEvents = (s: RawSocket) =>
      s.log.filter((f) => f.channel === pres && f.event.startsWith("pusher_internal:member_"))
        .map((f) => `${f.event.slice("pusher_internal:".length)} ${JSON.stringify(dataOf(f))}`);
    assert.deepEqual(
      memberEvents(sA),
      [`member_added ${JSON.stringify({ user_id: "u-b", user_info: { name: "u-b" } })}`],
      "A: no member_added/member_removed caused by the Redis restart",
    );
    assert.deepEqual(
      memberEvents(sB),
      [],
      "B: no member_added/member_removed caused by the Redis restart",
    );
  });

  it("sign-ins survive a Redis restart: a watcher still gets offline after recovery", {
    timeout: 30000,
  }, async () => {
    const x = "sx";
    const sx = await connectSocket(a.wsUrl(MAIN.key));
    await signin(sx, MAIN, { id: x });
    await sx.subscribeOk(`#server-to-user-${x}`);
    const watcher = await connectSocket(b.wsUrl(MAIN.key));
    await signin(watcher, MAIN, { id: "watcher", watchlist: [x] });
    await waitWatchlist(watcher, `online:${x}`);
    const connections = async () =>
      ((await new Api(a, MAIN).get("/connections")).json as { connections?: number })?.connections;
    const before = await connections();

    await redisServer.stopProcess("SIGTERM");
    await Promise.all([a, b].map((node) => waitReady(node, 503, 10000)));
    await redisServer.startProcess();
    await Promise.all([a, b].map((node) => waitReady(node, 200, 20000)));
    await eventually(connections, before, "connections registered again", 10000);

    await serverSdk(b, MAIN).sendToUser(x, "after-restart", {});
    await sx.nextEvent("after-restart", `#server-to-user-${x}`);
    await sx.closeAndWait();
    await waitWatchlist(watcher, `offline:${x}`, 10000);
    await watcher.ping();
    assert.deepEqual(
      watchlist(watcher),
      [`online:${x}`, `offline:${x}`],
      "online once before the restart, offline once after; nothing caused by the restart",
    );
  });
});

// ---- 8. REDIS_SUBSCRIBE_URL ------------------------------------------------------------------

describe(
  `cluster: node B subscribes through a read replica (A=${runnerRuntime}, B=${otherRuntime})`,
  {
    timeout: 60000,
  },
  () => {
    const prefix = randomPrefix("replica");
    let primary: RedisServer;
    let replica: RedisServer;
    let primaryClient: Redis;
    let replicaClient: Redis;
    let a: ClusterNode;
    let b: ClusterNode;

    before(async () => {
      // No 5 s wait before the full sync a new replica asks for.
      primary = await RedisServer.start({ args: ["--repl-diskless-sync-delay", "0"] });
      replica = await RedisServer.start({
        args: ["--replicaof", "127.0.0.1", String(primary.port)],
      });
      primaryClient = adminClient(primary.url);
      replicaClient = adminClient(replica.url);
      await waitReplicaLinked(replicaClient);
      const common = { redisUrl: primary.url, prefix, leaseMs: LEASE_MS, config };
      [a, b] = await Promise.all([
        startNode({ ...common, runtime: runnerRuntime, name: "A", region: "ams" }),
        startNode({
          ...common,
          runtime: otherRuntime,
          name: "B",
          region: "syd",
          subscribeUrl: replica.url,
        }),
      ]);
      await Promise.all([a, b].map((node) => waitReady(node)));
    });
    after(() => cleanup(prefix, undefined));

    it("events triggered on A reach B's subscribers through the replica, and back", {
      timeout: 30000,
    }, async () => {
      const ch = "replica-news";
      const topic = busChannel(prefix, MAIN.id, ch);
      const sB = await connectSocket(b.wsUrl(MAIN.key));
      await sB.subscribeOk(ch);
      // B listens on the replica, not on the primary.
      await waitNumsub(replicaClient, prefix, topic, 1);
      await waitNumsub(primaryClient, prefix, topic, 0);

      const pB = pusherClient(b, MAIN);
      const chB = pB.subscribe(ch);
      const recB = new Recorder("pusher-js on B");
      chB.bind_global(recB.global);
      await subscribed(chB);

      await serverSdk(a, MAIN).trigger(ch, "from-a", { via: "replica" });
      const f = await sB.nextEvent("from-a", ch);
      assert.equal(f.data, JSON.stringify({ via: "replica" }));
      assert.deepEqual((await recB.wait("from-a")).data, { via: "replica" });

      // A's subscriber (on the primary) gets events triggered on B.
      const sA = await connectSocket(a.wsUrl(MAIN.key));
      await sA.subscribeOk(ch);
      await waitNumsub(primaryClient, prefix, topic, 1);
      await serverSdk(b, MAIN).trigger(ch, "from-b", {});
      await Promise.all([
        sA.nextEvent("from-b", ch),
        sB.nextEvent("from-b", ch),
        recB.wait("from-b"),
      ]);

      // Client events from A reach B through the replica.
      const pv = "private-replica";
      await sA.subscribeOk(pv, { auth: channelAuth(MAIN, sA.socketId!, pv) });
      await sB.subscribeOk(pv, { auth: channelAuth(MAIN, sB.socketId!, pv) });
      sA.send({ event: "client-hi", channel: pv, data: { from: "a" } });
      assert.deepEqual((await sB.nextEvent("client-hi", pv)).data, { from: "a" });

      await serverSdk(a, MAIN).trigger(ch, "flush", {});
      await Promise.all([sA.nextEvent("flush", ch), sB.nextEvent("flush", ch), recB.wait("flush")]);
      assert.equal(got(sB, "from-a", ch).length, 1, "B: from-a once");
      assert.equal(got(sB, "from-b", ch).length, 1, "B: from-b once");
      assert.equal(got(sA, "from-b", ch).length, 1, "A: from-b once");
      assert.equal(recB.count("from-a"), 1);
    });

    it("a replica that stops replicating makes B not ready, and ready again when it resumes", {
      timeout: 30000,
    }, async () => {
      // B's own probe, published on the primary, no longer comes back through the replica.
      await replicaClient.call("REPLICAOF", "NO", "ONE");
      await waitReady(b, 503, 10000);
      assert.equal((await health(a, "/ready")).status, 200, "A subscribes on the primary");
      await replicaClient.call("REPLICAOF", "127.0.0.1", String(primary.port));
      await waitReplicaLinked(replicaClient);
      await waitReady(b, 200, 15000);
    });
  },
);
