// Production features, end to end on the runtime that runs the tests: graceful drain over a
// two-node cluster (SIGTERM: not ready, upgrades refused, every socket told 4200 and closed with
// 4200 spread over CHORUS_DRAIN_MS, pusher-js back on the other node through a load balancer,
// presence right on the survivor, exit 0), the limits (max_connections, api_rate_limit,
// CHORUS_IP_CONNECTION_RATE, max_request_size, slow consumers closed with 4100), Prometheus
// metrics (strictly parsed; counters that follow the traffic; bearer token; separate port),
// health routes (with the node's own redis-server stopped and restarted) and the logs.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { MAIN } from "./support/apps.ts";
import { assertHttpError, assertPusherError } from "./support/assertions.ts";
import { eventually } from "./support/cluster.ts";
import {
  connected,
  disconnectAll,
  nextEvent,
  type Pusher,
  pusherClient,
  serverSdk,
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
import { type Family, parsePrometheus, sampleValue } from "./support/prometheus.ts";
import {
  adminClient,
  closeRedisClients,
  deleteKeys,
  randomPrefix,
  REDIS_URL,
  RedisServer,
  stopAllRedisServers,
} from "./support/redis.ts";
import { type AppConfig, type Chorus, jsonLines, startChorus } from "./support/server.ts";
import { Api, channelAuth, plainFetch } from "./support/sign.ts";
import { delay, until, withTimeout } from "./support/wait.ts";
import {
  closeCode,
  destroyAllWire,
  jsonFrames,
  OP_CLOSE,
  OP_TEXT,
  type Proxy,
  startProxy,
  upgrade,
  type WireClient,
  wireConnect,
  type WireFrame,
} from "./support/wire.ts";
import { closeAllRawSockets, connectSocket, dataOf, type Frame, RawSocket } from "./support/ws.ts";

type ExtraAppConfig = AppConfig & { api_rate_limit?: number | null };

async function joinPresence(s: RawSocket, channel: string, userId: string): Promise<void> {
  const cd = JSON.stringify({ user_id: userId, user_info: { name: userId } });
  await s.subscribeOk(channel, {
    auth: channelAuth(MAIN, s.socketId!, channel, cd),
    channel_data: cd,
  });
}

async function presenceIds(node: Chorus, channel: string): Promise<string[]> {
  const res = await new Api(node, MAIN).get(`/channels/${channel}/users`);
  assert.equal(res.status, 200, `GET /channels/${channel}/users: ${res.text}`);
  return (res.json as { users: { id: string }[] }).users.map((u) => u.id).sort();
}

function memberRemoved(s: RawSocket, channel: string): string[] {
  return s.log
    .filter((f) => f.event === "pusher_internal:member_removed" && f.channel === channel)
    .map((f) => String((dataOf(f) as { user_id: unknown }).user_id));
}

async function connections(node: Chorus): Promise<number> {
  const res = await new Api(node, MAIN).get("/connections");
  assert.equal(res.status, 200, `GET /connections: ${res.text}`);
  return (res.json as { connections: number }).connections;
}

/** Opens `n` raw sockets in parallel batches and waits for each connection_established. */
async function connectMany(url: string, n: number, batch = 50): Promise<RawSocket[]> {
  const out: RawSocket[] = [];
  for (let i = 0; i < n; i += batch) {
    const size = Math.min(batch, n - i);
    out.push(...await Promise.all(Array.from({ length: size }, () => connectSocket(url))));
  }
  return out;
}

interface Scrape {
  status: number;
  contentType: string;
  text: string;
}

async function scrape(
  base: string,
  headers: Record<string, string> = {},
): Promise<Scrape> {
  const res = await fetch(`${base}/metrics`, { headers });
  return {
    status: res.status,
    contentType: res.headers.get("content-type") ?? "",
    text: await res.text(),
  };
}

/** GET /metrics, asserting 200 and a valid exposition. */
async function metrics(
  base: string,
  headers: Record<string, string> = {},
): Promise<Map<string, Family>> {
  const res = await scrape(base, headers);
  assert.equal(res.status, 200, `GET /metrics: ${res.text.slice(0, 300)}`);
  assert.match(res.contentType, /^text\/plain/, "Prometheus text is served as text/plain");
  try {
    return parsePrometheus(res.text);
  } catch (err) {
    assert.fail(`/metrics is not valid Prometheus text: ${(err as Error).message}\n${res.text}`);
  }
}

/** Sum of the samples of `name` whose labels include `labels` (0 when there are none). */
function total(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number {
  let sum = 0;
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) {
        sum += s.value;
      }
    }
  }
  return sum;
}

/** The /events route's label, whatever spelling the server uses for its pattern. */
function eventsRequests(families: Map<string, Family>, status: string): number {
  let sum = 0;
  for (const s of families.get("chorus_http_requests_total")?.samples ?? []) {
    const route = s.labels.route ?? "";
    if (/\/events$/.test(route) && !/batch/.test(route) && s.labels.status === status) {
      sum += s.value;
    }
  }
  return sum;
}

// ---- 1. drain --------------------------------------------------------------------------------

describe(`production: SIGTERM drains a node (A=${runnerRuntime} drains, B=${otherRuntime})`, {
  timeout: 90000,
}, () => {
  const DRAIN_MS = 3000;
  const CLIENTS = 200;
  const PUSHER_JS = 6;
  const ONLY_A_USERS = 5;
  const PRESENCE = "presence-drain";
  const PUBLIC = "drain-public";
  const prefix = randomPrefix("drain");
  let a: ClusterNode;
  let b: ClusterNode;
  let proxy: Proxy;

  before(async () => {
    const common = { redisUrl: REDIS_URL, prefix, config: { apps: [{ ...MAIN }] } };
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
    // A load balancer with a health check: new connections go to A while A is ready, else to B.
    proxy = await startProxy(async () =>
      (await health(a, "/ready")).status === 200
        ? { name: "A", port: a.port }
        : { name: "B", port: b.port }
    );
  });

  after(async () => {
    disconnectAll();
    await closeAllRawSockets();
    await destroyAllWire();
    await stopAllNodes();
    await deleteKeys(adminClient(REDIS_URL), prefix).catch(() => {});
    await closeRedisClients();
  });

  it("not ready at once, upgrades refused, 4200 to every socket spread over the window, exit 0", {
    timeout: 60000,
  }, async () => {
    // On B: an observer of the presence channel, and the second socket of user "both".
    const observer = await connectSocket(b.wsUrl(MAIN.key));
    await joinPresence(observer, PRESENCE, "observer-b");
    const bothOnB = await connectSocket(b.wsUrl(MAIN.key));
    await joinPresence(bothOnB, PRESENCE, "both");

    // On A, through the balancer: pusher-js clients on a public channel.
    const viaProxy = { ...a, port: proxy.port } as Chorus;
    const pjs: Pusher[] = Array.from({ length: PUSHER_JS }, () => pusherClient(viaProxy, MAIN));
    const firstIds = await Promise.all(pjs.map((p) => connected(p)));
    await Promise.all(pjs.map((p) => subscribed(p.subscribe(PUBLIC))));
    assert.deepEqual(
      proxy.connections.map((c) => c.backend),
      Array(PUSHER_JS).fill("A"),
      "pusher-js went to A while A was ready",
    );

    // On A, directly: the rest as raw sockets; some are presence members.
    const raws = await connectMany(a.wsUrl(MAIN.key), CLIENTS - PUSHER_JS);
    const onlyA = Array.from({ length: ONLY_A_USERS }, (_, i) => `only-a-${i}`);
    await Promise.all(onlyA.map((u, i) => joinPresence(raws[i], PRESENCE, u)));
    await joinPresence(raws[ONLY_A_USERS], PRESENCE, "both");
    await joinPresence(raws[ONLY_A_USERS + 1], PRESENCE, "both");
    await Promise.all(raws.slice(ONLY_A_USERS + 2, 60).map((s) => s.subscribeOk(PUBLIC)));

    const onA = sampleValue(await metrics(a.url), "chorus_connections", { app: MAIN.id });
    assert.equal(onA, CLIENTS, "A holds the 200 clients (its chorus_connections gauge)");
    await eventually(() => connections(b), CLIENTS + 2, "cluster-wide connections before drain");
    assert.deepEqual(
      await presenceIds(b, PRESENCE),
      ["both", "observer-b", ...onlyA].sort(),
      "presence members before drain",
    );

    // What the clients see from now on.
    const rawCloses = raws.map((s) => s.closed.then((info) => ({ at: Date.now(), info })));
    const states = pjs.map((p) => {
      const seen: { at: number; state: string }[] = [];
      p.connection.bind("state_change", (s: { current: string }) => {
        seen.push({ at: Date.now(), state: s.current });
      });
      return seen;
    });
    const resubscribed = pjs.map((p) =>
      nextEvent(p.channel(PUBLIC), "pusher:subscription_succeeded", DRAIN_MS + 10000)
    );

    const removedAt = onlyA.map((u) =>
      observer.next(
        (f) =>
          f.event === "pusher_internal:member_removed" && f.channel === PRESENCE &&
          (dataOf(f) as { user_id: unknown }).user_id === u,
        `member_removed ${u} on B`,
        DRAIN_MS + 8000,
      ).then(() => Date.now())
    );
    removedAt.forEach((p) => p.catch(() => {}));

    const exit = a.exited.then((code) => ({ code, at: Date.now() }));
    const t0 = Date.now();
    a.kill("SIGTERM");

    // /ready answers 503 as soon as the signal is handled.
    await until(async () => (await health(a, "/ready")).status === 503, "A /ready -> 503", {
      timeout: 1000,
      interval: 10,
    });
    const readyAt = Date.now() - t0;

    // New sockets are refused with 503 at the HTTP upgrade...
    const refused = await upgrade(a.port, `/app/${MAIN.key}?protocol=7`);
    refused.socket.destroy();
    assert.equal(refused.status, 503, "an upgrade to a draining node answers 503");
    // ...and a WebSocket client never gets connection_established.
    const late = new RawSocket(a.wsUrl(MAIN.key));
    await withTimeout(late.closed, 3000, "the refused WebSocket to close");
    assert.equal(
      late.log.filter((f) => f.event === "pusher:connection_established").length,
      0,
      `a socket opened while draining must not be established: ${JSON.stringify(late.log)}`,
    );
    assert.ok(Date.now() - t0 < DRAIN_MS, "the refusals were checked inside the drain window");

    // Every raw socket: pusher:error 4200, then close 4200.
    const closes = await withTimeout(
      Promise.all(rawCloses),
      DRAIN_MS + 5000,
      "every raw socket on A to be closed",
    );
    const wrong = raws.flatMap((s, i) => {
      const err = s.log.find((f) => f.event === "pusher:error");
      const code = (err?.data as { code?: unknown } | undefined)?.code;
      return closes[i].info.code === 4200 && code === 4200
        ? []
        : [`#${i}: close ${closes[i].info.code} at ${closes[i].at - t0} ms, error ${code}`];
    });
    // (asserted at the end, so that one wrong close code does not hide the other checks)

    // A exits 0.
    const { code, at: exitedAt } = await withTimeout(exit, DRAIN_MS + 8000, "A to exit");
    const exitAt = exitedAt - t0;
    assert.equal(code, 0, `A's exit code\n${a.stderr.join("\n")}`);

    // The pusher-js sockets, as the balancer saw them: error 4200 then close 4200 from A.
    const fromA = proxy.connections.filter((c) => c.backend === "A");
    assert.equal(fromA.length, PUSHER_JS, "no pusher-js connection went to A after SIGTERM");
    for (const [i, c] of fromA.entries()) {
      assert.equal(c.closeCode, 4200, `pusher-js ${i}: close code sent by A`);
      const errors = jsonFrames(c.frames.map((f) => f.frame)).filter((f) =>
        f.event === "pusher:error"
      );
      assert.equal(errors.length, 1, `pusher-js ${i}: one pusher:error from A`);
      assertPusherError(errors[0] as Frame, 4200);
    }

    // Spread over the window, finished within the window + 2 s.
    const times = [
      ...closes.map((c) => c.at - t0),
      ...fromA.map((c) => c.closeAt! - t0),
    ].sort((x, y) => x - y);
    assert.equal(times.length, CLIENTS);
    const first = times[0];
    const last = times[times.length - 1];
    const slice = DRAIN_MS / 10;
    let densest = 0;
    for (const t of times) {
      densest = Math.max(
        densest,
        times.filter((u) => u >= t && u < t + slice).length,
      );
    }
    const summary = `first close ${first} ms, last ${last} ms, densest ${slice} ms: ${densest}, ` +
      `/ready 503 after ${readyAt} ms, exit after ${exitAt} ms`;
    assert.ok(last - first > DRAIN_MS / 3, `closes are spread over the window: ${summary}`);
    assert.ok(last <= DRAIN_MS + 2000, `every socket closed within the window + 2 s: ${summary}`);
    assert.ok(densest <= CLIENTS / 4, `no burst of closes: ${summary}`);
    assert.ok(exitAt <= DRAIN_MS + 2000, `A exited within the window + 2 s: ${summary}`);

    // pusher-js reconnected at once (4200 = reconnect now), through the balancer, to B.
    await withTimeout(Promise.all(resubscribed), 10000, "pusher-js to resubscribe");
    const toB = proxy.connections.filter((c) => c.backend === "B");
    assert.equal(toB.length, PUSHER_JS, "each pusher-js client reconnected once, to B");
    for (const [i, p] of pjs.entries()) {
      assert.equal(p.connection.state, "connected", `pusher-js ${i} state`);
      assert.notEqual(p.connection.socket_id, firstIds[i], `pusher-js ${i} has a new socket id`);
      const closeAt = fromA[i].closeAt!;
      // pusher-js reconnects on the 4200 error frame, which can come some ms before the close.
      const connecting = states[i].find((s) => s.state === "connecting" && s.at >= closeAt - 50);
      assert.ok(connecting, `pusher-js ${i} went to connecting: ${JSON.stringify(states[i])}`);
      assert.ok(
        connecting.at - closeAt < 500,
        `pusher-js ${i} reconnected at once (${connecting.at - closeAt} ms after the close)`,
      );
    }
    const got = pjs.map((p) => nextEvent(p.channel(PUBLIC), "after-drain", 5000));
    const sent = await new Api(b, MAIN).trigger({
      name: "after-drain",
      channel: PUBLIC,
      data: "{}",
    });
    assert.equal(sent.status, 200, sent.text);
    await Promise.all(got);

    // Presence on B: the users only on A are gone (by the drain, long before A's 10 s lease would
    // run out), "both" stays listed and was never removed.
    await eventually(
      () => presenceIds(b, PRESENCE),
      ["both", "observer-b"],
      "presence members on B after A drained",
    );
    const removed = await Promise.all(removedAt);
    for (const [i, at] of removed.entries()) {
      assert.ok(
        at - t0 <= DRAIN_MS + 2000,
        `member_removed ${onlyA[i]} on B ${at - t0} ms after SIGTERM (within the window + 2 s)`,
      );
    }
    // A marker published after A exited arrives after anything A published.
    const marker = observer.nextEvent("marker", PRESENCE);
    const m = await new Api(b, MAIN).trigger({ name: "marker", channel: PRESENCE, data: "{}" });
    assert.equal(m.status, 200, m.text);
    await marker;
    assert.deepEqual(
      memberRemoved(observer, PRESENCE).sort(),
      [...onlyA].sort(),
      'member_removed exactly once for each user only on A, never for "both"',
    );
    assert.ok(bothOnB.isOpen && observer.isOpen, "B's sockets are untouched");
    await eventually(() => connections(b), 2 + PUSHER_JS, "connections after the drain");

    // B's metrics after real cluster traffic: the delivery latency histogram has observations
    // and still parses (buckets cumulative, +Inf = _count).
    const onB = await metrics(b.url);
    const observed = sampleValue(onB, "chorus_delivery_latency_seconds_count") ?? 0;
    assert.ok(observed > 0, `B observed delivery latencies: ${observed}`);

    assert.deepEqual(wrong, [], "every raw socket gets pusher:error 4200, then close 4200");
    for (const s of raws) assertPusherError(s.log.find((f) => f.event === "pusher:error")!, 4200);
  });
});

// ---- 2. limits -------------------------------------------------------------------------------

const QUOTA_APP: ExtraAppConfig = {
  id: "2001",
  key: "quota-key",
  secret: "quota-secret",
  max_connections: 2,
};
const RATED_APP: ExtraAppConfig = {
  id: "2002",
  key: "rated-key",
  secret: "rated-secret",
  api_rate_limit: 2,
};
/** Bodies are limited below events, so only max_request_size can refuse them. */
const SIZED_APP: ExtraAppConfig = {
  id: "2003",
  key: "sized-key",
  secret: "sized-secret",
  max_request_size: 2000,
  max_event_size: 10240,
};

describe(`production: limits (${runnerRuntime})`, { timeout: 90000 }, () => {
  const BUFFER_LIMIT = 65536;
  let server: Chorus;
  let ipLimited: Chorus;

  before(async () => {
    [server, ipLimited] = await Promise.all([
      startChorus({
        config: { apps: [{ ...MAIN }, QUOTA_APP, RATED_APP, SIZED_APP] },
        env: { CHORUS_SOCKET_BUFFER_LIMIT: String(BUFFER_LIMIT) },
      }),
      startChorus({ config: { apps: [{ ...MAIN }] }, env: { CHORUS_IP_CONNECTION_RATE: "3" } }),
    ]);
  });

  after(async () => {
    await closeAllRawSockets();
    await destroyAllWire();
    await server?.stop();
    await ipLimited?.stop();
  });

  it("max_connections: the socket over the quota gets 4004", { timeout: 15000 }, async () => {
    await connectSocket(server.wsUrl(QUOTA_APP.key));
    await connectSocket(server.wsUrl(QUOTA_APP.key));
    const third = new RawSocket(server.wsUrl(QUOTA_APP.key));
    assertPusherError(await third.nextEvent("pusher:error"), 4004);
    assert.equal((await third.closed).code, 4004);
    assert.equal(
      third.log.filter((f) => f.event === "pusher:connection_established").length,
      0,
      "the refused socket was not established",
    );
  });

  it("api_rate_limit 2: the third request within a second is 429 with Retry-After", {
    timeout: 15000,
  }, async () => {
    const api = new Api(server, RATED_APP);
    const started = Date.now();
    const first = await api.get("/channels");
    const second = await api.get("/channels");
    const third = await api.get("/channels");
    const other = await new Api(server, SIZED_APP).get("/channels");
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 1000, `the requests took ${elapsed} ms; the test needs them in a second`);
    assert.equal(first.status, 200, first.text);
    assert.equal(second.status, 200, second.text);
    assertHttpError(third, 429);
    const retryAfter = third.headers.get("retry-after");
    assert.match(retryAfter ?? "", /^[1-9]\d*$/, `Retry-After is whole seconds: ${retryAfter}`);
    assert.equal(other.status, 200, "the limit is per app");
    // Waiting as long as Retry-After says is enough.
    await delay(Number(retryAfter) * 1000);
    const later = await api.get("/channels");
    assert.equal(later.status, 200, `after Retry-After: ${later.text}`);
  });

  it("max_request_size: a body over the limit is 413, one under it is accepted", {
    timeout: 15000,
  }, async () => {
    const api = new Api(server, SIZED_APP);
    const body = (size: number) => {
      const base = { name: "sized", channel: "sized-channel", data: "" };
      const overhead = JSON.stringify(base).length;
      return { ...base, data: "x".repeat(size - overhead) };
    };
    assert.equal(JSON.stringify(body(2100)).length, 2100);
    const over = await api.trigger(body(2100));
    assertHttpError(over, 413);
    const under = await api.trigger(body(1900));
    assert.equal(under.status, 200, `a 1900-byte body: ${under.text}`);
  });

  it("CHORUS_IP_CONNECTION_RATE=3: the 4th new socket within a second is refused with 429", {
    timeout: 15000,
  }, async () => {
    const path = `/app/${MAIN.key}?protocol=7`;
    const started = Date.now();
    const firstThree = await Promise.all([1, 2, 3].map(() => upgrade(ipLimited.port, path)));
    const fourth = await upgrade(ipLimited.port, path);
    const fifth = new RawSocket(ipLimited.wsUrl(MAIN.key));
    const fifthClose = await withTimeout(fifth.closed, 3000, "the 5th WebSocket to close");
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 1000, `the attempts took ${elapsed} ms; the test needs them in a second`);
    assert.deepEqual(firstThree.map((r) => r.status), [101, 101, 101], "three sockets accepted");
    assert.equal(fourth.status, 429, "HTTP 429 on the upgrade beyond the rate");
    assert.match(fourth.headers["retry-after"] ?? "", /^[1-9]\d*$/, "429 says Retry-After");
    assert.equal(
      fifth.log.filter((f) => f.event === "pusher:connection_established").length,
      0,
      `a WebSocket client beyond the rate is not established (closed ${
        JSON.stringify(fifthClose)
      })`,
    );
    for (const r of [...firstThree, fourth]) r.socket.destroy();
  });

  it("slow consumer: a socket that stops reading is closed with 4100 (error frame first)", {
    timeout: 60000,
  }, async () => {
    const channel = "slow-channel";
    const client = await wireConnect(server.port, `/app/${MAIN.key}?protocol=7`);
    await client.waitJson((f) => f.event === "pusher:connection_established", "established");
    client.sendText(JSON.stringify({ event: "pusher:subscribe", data: { channel } }));
    await client.waitJson(
      (f) => f.event === "pusher_internal:subscription_succeeded" && f.channel === channel,
      "subscription_succeeded",
    );
    // A healthy subscriber of the same channel, reading everything.
    const healthy = await connectSocket(server.wsUrl(MAIN.key));
    await healthy.subscribeOk(channel);

    client.socket.pause();
    const sdk = serverSdk(server, MAIN);
    const data = "x".repeat(8 * 1024);
    const api = new Api(server, MAIN);
    const subscribers = async () => {
      const res = await api.get(`/channels/${channel}`, { info: "subscription_count" });
      return (res.json as { subscription_count?: number }).subscription_count;
    };
    let sent = 0;
    let closed = false;
    // Flood in bursts of 6 x 8 KB (below the limit, so a reader that keeps up, like `healthy`,
    // never has more than the limit waiting), as fast as the healthy subscriber reads, until the
    // server closes the slow socket: the kernel's socket buffers absorb the first few MB, then
    // the server's buffer for it grows by 48 KB a burst. At most 40 MB or 30 s.
    const deadline = Date.now() + 30000;
    while (!closed && sent < 5000 && Date.now() < deadline) {
      await Promise.all(
        Array.from({ length: 6 }, (_, j) => sdk.trigger(channel, "flood", { n: sent + j, data })),
      );
      sent += 6;
      await healthy.ping();
      if (sent % 60 === 0) closed = (await subscribers()) === 1;
    }
    assert.ok(closed, `the slow socket was not closed after ${sent} events of 8 KB`);
    assert.ok(healthy.isOpen, "the healthy subscriber stays connected");

    client.socket.resume();
    // Read what was buffered, up to the close frame or the end of the TCP connection.
    await until(
      () => client.frames.some((f) => f.opcode === OP_CLOSE) || client.closed,
      "the close frame after the buffered events",
      { timeout: 15000, interval: 20 },
    ).catch((err) => {
      throw new Error(`${(err as Error).message}; sent ${sent}; ${describeWire(client)}`);
    });
    const frames = client.frames;
    const closeIndex = frames.findIndex((f) => f.opcode === OP_CLOSE);
    const closedWith = (await metrics(server.url)).get("chorus_connections_closed_total")?.samples;
    assert.ok(
      closeIndex >= 0,
      `no close frame: the server dropped the connection (its chorus_connections_closed_total: ${
        JSON.stringify(closedWith?.map((x) => x.labels))
      }); sent ${sent}; ${describeWire(client)}`,
    );
    assert.equal(closeCode(frames[closeIndex]), 4100, `close code: ${describeWire(client)}`);
    const texts = frames.slice(0, closeIndex).filter((f) => f.opcode === OP_TEXT);
    const lastText = jsonFrames(texts.slice(-1))[0];
    assert.ok(lastText, "a text frame precedes the close");
    assertPusherError(lastText as Frame, 4100);
    const flood = jsonFrames(texts).filter((f) => f.event === "flood").length;
    assert.ok(flood > 0, `the slow socket got part of the flood first (${flood}/${sent})`);

    // The healthy subscriber got every event.
    await healthy.ping(15000);
    const got = healthy.log.filter((f) => f.event === "flood").length;
    assert.equal(got, sent, "the healthy subscriber received every event");
  });
});

function describeWire(client: WireClient): string {
  const frames: WireFrame[] = client.frames;
  const tail = frames.slice(-3).map((f) =>
    f.opcode === OP_TEXT
      ? f.payload.toString("utf8").slice(0, 120)
      : `opcode ${f.opcode} ${f.payload.length} bytes`
  );
  const ns = jsonFrames(frames).filter((f) => f.event === "flood").map((f) =>
    (JSON.parse(f.data as string) as { n: number }).n
  );
  const gaps = ns.filter((n, i) => i > 0 && n !== ns[i - 1] + 1).length;
  return `${client.received} bytes, ${frames.length} frames (flood n ${ns[0]}..${
    ns[ns.length - 1]
  }, ${gaps} gaps), TCP ${client.closed ? "closed" : "open"}; last: ${JSON.stringify(tail)}`;
}

// ---- 3. metrics ------------------------------------------------------------------------------

describe(`production: Prometheus metrics (${runnerRuntime})`, { timeout: 60000 }, () => {
  const TOKEN = `metrics-${randomBytes(8).toString("hex")}`;
  let server: Chorus;
  let guarded: Chorus;
  let separate: Chorus;

  before(async () => {
    const config = { apps: [{ ...MAIN }] };
    [server, guarded, separate] = await Promise.all([
      startChorus({ config }),
      startChorus({ config, env: { CHORUS_METRICS_TOKEN: TOKEN } }),
      startChorus({ config, env: { CHORUS_METRICS_PORT: "0" } }),
    ]);
  });

  after(async () => {
    await closeAllRawSockets();
    await Promise.all([server?.stop(), guarded?.stop(), separate?.stop()]);
  });

  it(
    "/metrics is valid Prometheus text with the chorus_* families",
    { timeout: 10000 },
    async () => {
      const families = await metrics(server.url);
      const expect: Record<string, string> = {
        chorus_connections: "gauge",
        chorus_connections_opened_total: "counter",
        chorus_connections_closed_total: "counter",
        chorus_messages_received_total: "counter",
        chorus_messages_sent_total: "counter",
        chorus_http_requests_total: "counter",
        chorus_delivery_latency_seconds: "histogram",
      };
      for (const [name, type] of Object.entries(expect)) {
        assert.equal(families.get(name)?.type, type, `family ${name} of type ${type}`);
      }
      for (const name of families.keys()) {
        assert.match(name, /^chorus_/, "every family is chorus_*");
      }
    },
  );

  it("counters and gauges follow the traffic", { timeout: 20000 }, async () => {
    const channel = "metrics-channel";
    const before = await metrics(server.url);
    const s1 = await connectSocket(server.wsUrl(MAIN.key));
    const s2 = await connectSocket(server.wsUrl(MAIN.key));
    await s1.subscribeOk(channel);
    await s2.subscribeOk(channel);
    const api = new Api(server, MAIN);
    for (let i = 0; i < 3; i++) {
      const res = await api.trigger({ name: "tick", channel, data: String(i) });
      assert.equal(res.status, 200, res.text);
    }
    const bad = await api.trigger({ name: "tick", channel, data: "x" }, { signSecret: "wrong" });
    assert.equal(bad.status, 401, bad.text);
    for (const s of [s1, s2]) {
      for (let i = 0; i < 3; i++) {
        await s.nextEvent("tick", channel);
      }
    }
    const during = await metrics(server.url);
    const delta = (name: string, labels: Record<string, string> = {}) =>
      total(during, name, labels) - total(before, name, labels);

    assert.equal(delta("chorus_connections_opened_total", { app: MAIN.id }), 2, "opened");
    assert.equal(
      sampleValue(during, "chorus_connections", { app: MAIN.id }),
      2,
      "chorus_connections gauge",
    );
    // Per socket: connection_established, subscription_succeeded, 3 events.
    assert.equal(delta("chorus_messages_sent_total"), 2 * 5, "frames sent to sockets");
    assert.equal(delta("chorus_messages_received_total"), 2, "frames received (2 subscribes)");
    assert.equal(
      eventsRequests(during, "200") - eventsRequests(before, "200"),
      3,
      `chorus_http_requests_total{route=".../events",status="200"}: ${
        JSON.stringify(during.get("chorus_http_requests_total")?.samples)
      }`,
    );
    // The refused request is counted with its status (the route label of requests refused by
    // the API middleware is the middleware's pattern, so match any /apps/ route here).
    assert.equal(
      total(during, "chorus_http_requests_total", { status: "401" }) -
        total(before, "chorus_http_requests_total", { status: "401" }),
      1,
      `the 401: ${JSON.stringify(during.get("chorus_http_requests_total")?.samples)}`,
    );

    await s1.closeAndWait();
    await until(
      async () =>
        sampleValue(await metrics(server.url), "chorus_connections", { app: MAIN.id }) === 1,
      "chorus_connections to drop to 1",
    );
    const afterClose = await metrics(server.url);
    assert.equal(
      total(afterClose, "chorus_connections_closed_total", { app: MAIN.id }) -
        total(before, "chorus_connections_closed_total", { app: MAIN.id }),
      1,
      "closed",
    );
  });

  it("CHORUS_METRICS_TOKEN: 401 without the bearer token, 200 with it", {
    timeout: 10000,
  }, async () => {
    const none = await scrape(guarded.url);
    assert.equal(none.status, 401, "no token");
    const wrong = await scrape(guarded.url, { authorization: "Bearer not-the-token" });
    assert.equal(wrong.status, 401, "wrong token");
    const families = await metrics(guarded.url, { authorization: `Bearer ${TOKEN}` });
    assert.ok(families.has("chorus_connections"));
    assert.ok(
      !guarded.stdout.join("\n").includes(TOKEN),
      "the metrics token never appears in the logs",
    );
  });

  it("CHORUS_METRICS_PORT=0: metrics on their own port, not on the main one", {
    timeout: 10000,
  }, async () => {
    const listening = jsonLines(separate.stdout).find((j) => j?.msg === "listening");
    const port = listening?.metrics_port;
    assert.equal(typeof port, "number", `"metrics_port" in ${JSON.stringify(listening)}`);
    assert.notEqual(port, separate.port);
    const families = await metrics(`http://127.0.0.1:${port}`);
    assert.ok(families.has("chorus_connections_opened_total"));
    const main = await plainFetch(separate, "/metrics");
    assert.equal(main.status, 404, "no /metrics on the main port");
  });
});

// ---- 4. health -------------------------------------------------------------------------------

describe(`production: health routes (${runnerRuntime}, own redis-server)`, {
  timeout: 60000,
}, () => {
  const prefix = randomPrefix("health");
  let redis: RedisServer;
  let node: ClusterNode;

  before(async () => {
    redis = await RedisServer.start();
    node = await startNode({
      runtime: runnerRuntime,
      name: "H",
      redisUrl: redis.url,
      prefix,
      config: { apps: [{ ...MAIN }] },
    });
    await waitReady(node);
  });

  after(async () => {
    await stopAllNodes();
    await stopAllRedisServers();
  });

  it("/up, /ready, /apps/{id}/health; /ready 503 while Redis is down, 200 once it is back", {
    timeout: 40000,
  }, async () => {
    const get = (path: string) => plainFetch(node, path);
    assert.equal((await get("/up")).status, 200, "/up");
    assert.equal((await get("/ready")).status, 200, "/ready");
    assert.equal((await get(`/apps/${MAIN.id}/health`)).status, 200, "app health");
    assertHttpError(await get("/apps/no-such-app/health"), 404);

    await redis.stopProcess("SIGKILL");
    await waitReady(node, 503, 10000);
    assert.equal((await get("/up")).status, 200, "/up while Redis is down (the process lives)");
    assert.equal(
      (await get(`/apps/${MAIN.id}/health`)).status,
      503,
      "app health while Redis is down",
    );

    await redis.startProcess();
    await waitReady(node, 200, 20000);
    assert.equal((await get(`/apps/${MAIN.id}/health`)).status, 200, "app health once back");
    assert.equal((await get("/up")).status, 200, "/up once back");
  });
});

// ---- 5. logs ---------------------------------------------------------------------------------

describe(`production: logs (${runnerRuntime})`, { timeout: 60000 }, () => {
  const SECRET = `s3cret-${randomBytes(12).toString("hex")}`;
  const TOKEN = `tok-${randomBytes(12).toString("hex")}`;
  const APP = { id: "log-app", key: "log-key", secret: SECRET };
  const env = {
    CHORUS_APP_ID: APP.id,
    CHORUS_APP_KEY: APP.key,
    CHORUS_APP_SECRET: SECRET,
    CHORUS_METRICS_TOKEN: TOKEN,
  };
  let info: Chorus;
  let debug: Chorus;

  before(async () => {
    [info, debug] = await Promise.all([
      startChorus({ env }),
      startChorus({ env: { ...env, LOG_LEVEL: "debug" } }),
    ]);
  });

  after(async () => {
    await closeAllRawSockets();
    await Promise.all([info?.stop(), debug?.stop()]);
  });

  /** Signed traffic that carries the secret's work: channel auth and a signed HTTP call. */
  async function traffic(server: Chorus, channel: string): Promise<RawSocket> {
    const s = await connectSocket(server.wsUrl(APP.key));
    await s.subscribeOk(channel, { auth: channelAuth(APP, s.socketId!, channel) });
    const res = await new Api(server, APP).trigger({ name: "e", channel, data: "{}" });
    assert.equal(res.status, 200, res.text);
    await s.nextEvent("e", channel);
    return s;
  }

  it('the first line is JSON "listening" with the secret masked; the secret never logged', {
    timeout: 15000,
  }, async () => {
    await traffic(info, "private-logs");
    const first = info.stdout[0];
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(first);
    } catch {
      assert.fail(`the first stdout line is not JSON: ${first}`);
    }
    assert.equal(line.msg, "listening", `first line: ${first}`);
    const apps = line.apps as { id: string; secret: unknown }[] | undefined;
    assert.ok(Array.isArray(apps), `the listening line lists the apps: ${first}`);
    assert.equal(apps.find((x) => x.id === APP.id)?.secret, "***", "secret masked");
    const all = [...info.stdout, ...info.stderr].join("\n");
    assert.ok(!all.includes(SECRET), "the app secret never appears in the output");
    assert.ok(!all.includes(TOKEN), "the metrics token never appears in the output");
  });

  it('LOG_LEVEL=debug logs every inbound frame as "frame in"', { timeout: 15000 }, async () => {
    const channel = `private-probe-${randomBytes(6).toString("hex")}`;
    const s = await traffic(debug, channel);
    const probe = `probe-${randomBytes(6).toString("hex")}`;
    s.send({ event: "pusher:ping", data: { probe } });
    await s.nextEvent("pusher:pong");
    const frameLines = () =>
      jsonLines(debug.stdout).filter((j) => j?.msg === "frame in" && j.level === "debug");
    await until(
      () => frameLines().some((j) => JSON.stringify(j).includes(probe)),
      `a "frame in" line with ${probe}`,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\n${debug.stdout.slice(-10).join("\n")}`);
    });
    assert.ok(
      frameLines().some((j) => JSON.stringify(j).includes(channel)),
      "the subscribe frame was logged too",
    );
    const all = [...debug.stdout, ...debug.stderr].join("\n");
    assert.ok(!all.includes(SECRET), "the secret is not logged at debug level either");
  });
});
