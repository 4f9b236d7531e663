// Every option that changes how Chorus serves has a delivery test: events still reach sockets with
// CHORUS_METRICS_PORT (a second listener), CHORUS_TRUST_PROXY=fly|xff (sockets opened through a proxy) and
// CHORUS_DRAIN_MS (before SIGTERM, and on the next node after the drain). CHORUS_PATH is covered
// by test/path-prefix.test.ts, the shipped fly.toml config by test/shipped-config.test.ts.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { MAIN } from "./support/apps.ts";
import { assertPusherError } from "./support/assertions.ts";
import {
  connected,
  disconnectAll,
  nextEvent,
  type PresenceChannel,
  pusherClient,
  subscribed,
} from "./support/clients.ts";
import {
  type ClusterNode,
  health,
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
import { type Chorus, jsonLines, startChorus } from "./support/server.ts";
import { Api, plainFetch } from "./support/sign.ts";
import { withTimeout } from "./support/wait.ts";
import { destroyAllWire, jsonFrames, type Proxy, startProxy } from "./support/wire.ts";
import { closeAllRawSockets, connectSocket, dataOf, type Frame } from "./support/ws.ts";

const T = { timeout: 20000 };
const CONFIG = { apps: [{ ...MAIN }] };

describe(`CHORUS_METRICS_PORT: fan-out reaches the sockets (${runnerRuntime})`, {
  timeout: 60000,
}, () => {
  let server: Chorus;

  before(async () => {
    server = await startChorus({ config: CONFIG, env: { CHORUS_METRICS_PORT: "0" } });
  });
  after(async () => {
    disconnectAll();
    await closeAllRawSockets();
    await server?.stop();
  });

  it("an HTTP trigger without socket_id reaches a pusher-js subscriber", T, async () => {
    const p = pusherClient(server, MAIN);
    await connected(p);
    const channel = p.subscribe("metrics-port-public");
    await subscribed(channel);
    const got = nextEvent(channel, "no-socket-id");
    const res = await new Api(server, MAIN).trigger({
      name: "no-socket-id",
      channel: "metrics-port-public",
      data: '{"n":1}',
    });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual((await got).data, { n: 1 });
    p.disconnect();
  });

  it("member_removed reaches the members left when one disconnects", T, async () => {
    const name = "presence-metrics-port";
    const stay = pusherClient(server, MAIN, { user: { user_id: "stay" } });
    const leave = pusherClient(server, MAIN, { user: { user_id: "leave" } });
    const stayChannel = stay.subscribe(name) as PresenceChannel;
    await subscribed(stayChannel);
    const added = nextEvent(stayChannel, "pusher:member_added");
    await subscribed(leave.subscribe(name));
    assert.equal(((await added).data as { id: string }).id, "leave");
    const removed = nextEvent(stayChannel, "pusher:member_removed");
    leave.disconnect();
    assert.equal(((await removed).data as { id: string }).id, "leave");
    stay.disconnect();
  });

  it("/metrics answers on the metrics port only", T, async () => {
    const listening = jsonLines(server.stdout).find((line) => line?.msg === "listening");
    const port = listening?.metrics_port;
    assert.equal(typeof port, "number", JSON.stringify(listening));
    const scraped = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.equal(scraped.status, 200);
    assert.match(await scraped.text(), /^# (HELP|TYPE) chorus_/m);
    assert.equal((await plainFetch(server, "/metrics")).status, 404);
  });
});

for (const mode of ["fly", "xff"]) {
  describe(
    `CHORUS_TRUST_PROXY=${mode}: sockets opened through a proxy get events (${runnerRuntime})`,
    {
      timeout: 60000,
    },
    () => {
      let server: Chorus;

      before(async () => {
        server = await startChorus({ config: CONFIG, env: { CHORUS_TRUST_PROXY: mode } });
      });
      after(async () => {
        await closeAllRawSockets();
        await server?.stop();
      });

      it("delivers to sockets opened with Fly-Client-IP and X-Forwarded-For", T, async () => {
        const channel = "trusted-proxy";
        const viaFly = await connectSocket(server.wsUrl(MAIN.key), {
          headers: { "Fly-Client-IP": "203.0.113.7" },
        });
        const viaForwarded = await connectSocket(server.wsUrl(MAIN.key), {
          headers: { "X-Forwarded-For": "198.51.100.1, 10.0.0.1" },
        });
        await viaFly.subscribeOk(channel);
        await viaForwarded.subscribeOk(channel);
        const api = new Api(server, MAIN);
        const everyone = await api.trigger({ name: "all", channel, data: '{"to":"all"}' });
        assert.equal(everyone.status, 200, everyone.text);
        for (const socket of [viaFly, viaForwarded]) {
          assert.deepEqual(dataOf(await socket.nextEvent("all", channel)), { to: "all" });
        }
        const others = await api.trigger({
          name: "others",
          channel,
          data: "{}",
          socket_id: viaFly.socketId,
        });
        assert.equal(others.status, 200, others.text);
        await viaForwarded.nextEvent("others", channel);
        // A later event on the same channel arrives after the excluded one would have.
        await api.trigger({ name: "marker", channel, data: "{}" });
        await viaFly.nextEvent("marker", channel);
        assert.equal(viaFly.log.filter((f: Frame) => f.event === "others").length, 0);
      });
    },
  );
}

describe(`CHORUS_DRAIN_MS: A=${runnerRuntime} drains to B=${otherRuntime}`, {
  timeout: 90000,
}, () => {
  const DRAIN_MS = 1500;
  const CHANNEL = "drain-window";
  const prefix = randomPrefix("serving-drain");
  let a: ClusterNode;
  let b: ClusterNode;
  let proxy: Proxy;

  before(async () => {
    const common = { redisUrl: REDIS_URL, prefix, config: CONFIG };
    [a, b] = await Promise.all([
      startNode({
        ...common,
        runtime: runnerRuntime,
        name: "A",
        env: { CHORUS_DRAIN_MS: String(DRAIN_MS) },
      }),
      startNode({ ...common, runtime: otherRuntime, name: "B" }),
    ]);
    await Promise.all([waitReady(a), waitReady(b)]);
    // A balancer with a health check: new sockets go to A while it is ready, else to B.
    proxy = await startProxy(async () =>
      (await health(a, "/ready")).status === 200
        ? { name: "A", port: a.port }
        : { name: "B", port: b.port }
    );
  });
  after(async () => {
    disconnectAll();
    await destroyAllWire();
    await stopAllNodes();
    await deleteKeys(adminClient(REDIS_URL), prefix).catch(() => {});
    await closeRedisClients();
  });

  it("delivers before SIGTERM; then 4200, and pusher-js receives on the next node", {
    timeout: 40000,
  }, async () => {
    const p = pusherClient({ ...a, port: proxy.port }, MAIN);
    await connected(p);
    const channel = p.subscribe(CHANNEL);
    await subscribed(channel);
    assert.deepEqual(proxy.connections.map((c) => c.backend), ["A"]);

    const before = nextEvent(channel, "before-drain");
    const sent = await new Api(a, MAIN).trigger({
      name: "before-drain",
      channel: CHANNEL,
      data: "1",
    });
    assert.equal(sent.status, 200, sent.text);
    assert.equal((await before).data, 1);

    const resubscribed = nextEvent(channel, "pusher:subscription_succeeded", DRAIN_MS + 10000);
    a.kill("SIGTERM");
    await resubscribed;
    assert.equal(await withTimeout(a.exited, DRAIN_MS + 8000, "A to exit"), 0);

    const [fromA, toB] = proxy.connections;
    assert.equal(fromA.closeCode, 4200, "A closed the socket with 4200");
    const errors = jsonFrames(fromA.frames.map((f) => f.frame))
      .filter((f) => f.event === "pusher:error");
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assertPusherError(errors[0] as Frame, 4200);
    assert.equal(toB?.backend, "B", "pusher-js reconnected to B");

    const after = nextEvent(channel, "after-drain");
    const onB = await new Api(b, MAIN).trigger({
      name: "after-drain",
      channel: CHANNEL,
      data: "2",
    });
    assert.equal(onB.status, 200, onB.text);
    assert.equal((await after).data, 2);
    p.disconnect();
  });
});
