// What we ship is what we test: two nodes started with fly.toml's [env] exactly (free ports for
// PORT and CHORUS_METRICS_PORT, a random CHORUS_REDIS_PREFIX, plus the secrets Fly would add), by
// the CMD of `Dockerfile` (Bun) and of `Dockerfile.deno` (Deno), driven by real clients: pusher-js,
// Laravel Echo and the `pusher` SDK, across the two nodes.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "smol-toml";
import {
  connected,
  disconnectAll,
  echoClient,
  nextEvent,
  type PresenceChannel,
  pusherClient,
  serverSdk,
  subscribed,
} from "./support/clients.ts";
import { eventually } from "./support/cluster.ts";
import { type ClusterNode, type Runtime, startNode, stopAllNodes } from "./support/nodes.ts";
import {
  adminClient,
  closeRedisClients,
  deleteKeys,
  freePort,
  randomPrefix,
  REDIS_URL,
} from "./support/redis.ts";
import { jsonLines, repoRoot } from "./support/server.ts";
import { Api, signedParams, toQuery } from "./support/sign.ts";
import { deferred, until, withTimeout } from "./support/wait.ts";
import { closeAllRawSockets, connectSocket, dataOf } from "./support/ws.ts";

const T = { timeout: 20000 };
/** The secrets `fly secrets set` adds to the machine. */
const APP = { id: "shipped", key: "shipped-key", secret: "shipped-secret" } as const;

/** fly.toml's [env], as Fly passes it: every value a string. */
function flyEnv(): Record<string, string> {
  const fly = parse(readFileSync(join(repoRoot, "fly.toml"), "utf8")) as { env?: unknown };
  const env = fly.env as Record<string, unknown> | undefined;
  assert.ok(env && typeof env === "object", "fly.toml has an [env] table");
  return Object.fromEntries(Object.entries(env).map(([key, value]) => [key, String(value)]));
}

/** The exec-form CMD of a Dockerfile's final stage, its binary resolved to ./node_modules/.bin. */
function dockerCommand(dockerfile: string): { cmd: string; args: string[] } {
  const text = readFileSync(join(repoRoot, dockerfile), "utf8").replace(/\\\r?\n/g, " ");
  const lines = text.split("\n").map((line) => line.trim());
  const finalStage = lines.slice(lines.map((line) => /^FROM\s/i.test(line)).lastIndexOf(true));
  const cmd = finalStage.filter((line) => /^CMD\s/i.test(line)).at(-1);
  assert.ok(cmd, `${dockerfile} has a CMD in its final stage`);
  const argv: unknown = JSON.parse(cmd.replace(/^CMD\s+/i, ""));
  assert.ok(
    Array.isArray(argv) && argv.length > 0 && argv.every((arg) => typeof arg === "string"),
    `${dockerfile}: CMD is an exec-form array: ${cmd}`,
  );
  const [binary, ...args] = argv as string[];
  return { cmd: join(repoRoot, "node_modules/.bin", binary), args };
}

interface ShippedNode {
  node: ClusterNode;
  metricsPort: number;
}

async function startShipped(
  runtime: Runtime,
  name: string,
  dockerfile: string,
  prefix: string,
): Promise<ShippedNode> {
  const [port, metricsPort] = [await freePort(), await freePort()];
  const env = {
    ...flyEnv(),
    PORT: String(port),
    CHORUS_METRICS_PORT: String(metricsPort),
    CHORUS_REDIS_PREFIX: prefix,
    REDIS_URL,
    CHORUS_APP_ID: APP.id,
    CHORUS_APP_KEY: APP.key,
    CHORUS_APP_SECRET: APP.secret,
  };
  const node = await startNode({
    runtime,
    name,
    redisUrl: REDIS_URL,
    prefix,
    region: null,
    env,
    command: dockerCommand(dockerfile),
  });
  return { node, metricsPort };
}

describe("the shipped configuration: fly.toml [env], A = Dockerfile (Bun), B = Dockerfile.deno", {
  timeout: 180000,
}, () => {
  const prefix = randomPrefix("shipped");
  let a: ShippedNode;
  let b: ShippedNode;
  let sdkA: ReturnType<typeof serverSdk>;
  let sdkB: ReturnType<typeof serverSdk>;

  before(async () => {
    [a, b] = await Promise.all([
      startShipped("bun", "A", "Dockerfile", prefix),
      startShipped("deno", "B", "Dockerfile.deno", prefix),
    ]);
    sdkA = serverSdk(a.node, APP);
    sdkB = serverSdk(b.node, APP);
  });

  after(async () => {
    disconnectAll();
    await closeAllRawSockets();
    // With every socket closed, the drain (CHORUS_DRAIN_MS) has nothing to wait for.
    await stopAllNodes();
    await deleteKeys(adminClient(REDIS_URL), prefix).catch(() => {});
    await closeRedisClients();
  });

  it("runs with fly.toml's values", T, () => {
    const fly = flyEnv();
    for (const { node, metricsPort } of [a, b]) {
      const listening = jsonLines(node.stdout).find((line) => line?.msg === "listening");
      assert.equal(listening?.host, fly.HOST, JSON.stringify(listening));
      assert.equal(listening?.metrics_port, metricsPort);
      assert.equal(listening?.drain_ms, Number(fly.CHORUS_DRAIN_MS));
      assert.equal((listening?.cluster as { driver?: string }).driver, "redis");
    }
  });

  it("answers over IPv4 and IPv6 (HOST ::); /metrics only on the metrics port", T, async () => {
    for (const { node, metricsPort } of [a, b]) {
      for (const host of ["127.0.0.1", "[::1]"]) {
        const up = await fetch(`http://${host}:${node.port}/up`);
        assert.equal(up.status, 200, `${node.name} ${host} /up`);
        await up.body?.cancel();
        const metrics = await fetch(`http://${host}:${metricsPort}/metrics`);
        assert.equal(metrics.status, 200, `${node.name} ${host} /metrics on the metrics port`);
        assert.match(await metrics.text(), /^# TYPE chorus_connections gauge$/m);
        const onMain = await fetch(`http://${host}:${node.port}/metrics`);
        assert.equal(onMain.status, 404, `${node.name} ${host} no /metrics on the main port`);
        await onMain.body?.cancel();
      }
    }
    // Other apps of the organisation call the HTTP API over Fly's private IPv6 network.
    const path = `/apps/${APP.id}/channels`;
    const query = toQuery(signedParams({ method: "GET", path, key: APP.key, secret: APP.secret }));
    const overIpv6 = await fetch(`http://[::1]:${b.node.port}${path}?${query}`);
    assert.equal(overIpv6.status, 200, await overIpv6.text());
  });

  it("pusher-js public channel: triggers without socket_id reach both nodes", T, async () => {
    const channel = "shipped-public";
    const [pA, pB] = [pusherClient(a.node, APP), pusherClient(b.node, APP)];
    const [chA, chB] = [pA.subscribe(channel), pB.subscribe(channel)];
    await Promise.all([subscribed(chA), subscribed(chB)]);
    for (const [sdk, n] of [[sdkA, 1], [sdkB, 2]] as const) {
      const got = [nextEvent(chA, "tick"), nextEvent(chB, "tick")];
      const res = await sdk.trigger(channel, "tick", { n });
      assert.equal(res.status, 200);
      for (const event of await Promise.all(got)) assert.deepEqual(event.data, { n });
    }
    pA.disconnect();
    pB.disconnect();
  });

  it("pusher-js private channel: a trigger with socket_id skips that socket only", T, async () => {
    const channel = "private-shipped";
    const sender = pusherClient(a.node, APP);
    const senderId = await connected(sender);
    const sameNode = pusherClient(a.node, APP);
    const otherNode = pusherClient(b.node, APP);
    const chSender = sender.subscribe(channel);
    const others = [sameNode.subscribe(channel), otherNode.subscribe(channel)];
    await Promise.all([chSender, ...others].map((ch) => subscribed(ch)));
    const skipped: unknown[] = [];
    chSender.bind("to-others", (data: unknown) => skipped.push(data));
    const got = others.map((ch) => nextEvent(ch, "to-others"));
    const res = await sdkB.trigger(channel, "to-others", { x: 1 }, { socket_id: senderId });
    assert.equal(res.status, 200);
    for (const event of await Promise.all(got)) assert.deepEqual(event.data, { x: 1 });
    // Events of one channel arrive in order: once the marker is in, the skipped one never comes.
    const marker = nextEvent(chSender, "marker");
    await sdkB.trigger(channel, "marker", {});
    await marker;
    assert.deepEqual(skipped, [], "the sender did not get its own event");
    for (const p of [sender, sameNode, otherNode]) p.disconnect();
  });

  it(
    "presence across nodes: members, member_added/removed, channel and user queries",
    T,
    async () => {
      const channel = "presence-shipped";
      const alice = pusherClient(a.node, APP, { user: { user_id: "alice", user_info: { n: 1 } } });
      const bob = pusherClient(b.node, APP, { user: { user_id: "bob", user_info: { n: 2 } } });
      const aliceChannel = alice.subscribe(channel) as PresenceChannel;
      await subscribed(aliceChannel);
      const added = nextEvent<{ id: string; info: unknown }>(aliceChannel, "pusher:member_added");
      const bobChannel = bob.subscribe(channel) as PresenceChannel;
      await subscribed(bobChannel);
      assert.deepEqual((await added).data, { id: "bob", info: { n: 2 } });
      assert.equal(bobChannel.members.count, 2, "bob sees alice (on the other node) and himself");

      const api = new Api(a.node, APP);
      const info = await api.get(`/channels/${channel}`, { info: "user_count,subscription_count" });
      assert.deepEqual(info.json, { occupied: true, user_count: 2, subscription_count: 2 });
      const users = await sdkB.get({ path: `/channels/${channel}/users` });
      const { users: members } = await users.json() as { users: { id: string }[] };
      assert.deepEqual(members.map((member) => member.id).sort(), ["alice", "bob"]);
      const list = await sdkA.get({ path: "/channels", params: { filter_by_prefix: "presence-" } });
      assert.deepEqual(await list.json(), { channels: { [channel]: {} } });
      await eventually(
        async () => (await (await sdkB.get({ path: "/connections" })).json()) as unknown,
        { connections: 2 },
        "GET /connections counts the sockets of both nodes",
      );

      const removed = nextEvent<{ id: string }>(aliceChannel, "pusher:member_removed");
      bob.disconnect();
      assert.equal((await removed).data.id, "bob");
      alice.disconnect();
    },
  );

  it("Laravel Echo: listen to an SDK event, whisper to the other node", T, async () => {
    const [echoA, echoB] = [echoClient(a.node, APP), echoClient(b.node, APP)];
    const message = deferred<unknown>();
    const whisper = deferred<unknown>();
    const readyA = deferred<void>();
    const readyB = deferred<void>();
    const chatA = echoA.private("shipped-chat")
      .listen(".Message", (e: unknown) => message.resolve(e))
      .subscribed(() => readyA.resolve());
    echoB.private("shipped-chat")
      .listenForWhisper("typing", (e: unknown) => whisper.resolve(e))
      .subscribed(() => readyB.resolve());
    await withTimeout(Promise.all([readyA.promise, readyB.promise]), 5000, "Echo to subscribe");
    await sdkB.trigger("private-shipped-chat", "Message", { text: "hi" });
    assert.deepEqual(await withTimeout(message.promise, 5000, ".Message"), { text: "hi" });
    chatA.whisper("typing", { who: "a" });
    assert.deepEqual(await withTimeout(whisper.promise, 5000, "whisper"), { who: "a" });
    echoA.disconnect();
    echoB.disconnect();
  });

  it("batch triggers reach subscribers on both nodes", T, async () => {
    const [pA, pB] = [pusherClient(a.node, APP), pusherClient(b.node, APP)];
    const [chA, chB] = [pA.subscribe("shipped-batch-a"), pB.subscribe("shipped-batch-b")];
    await Promise.all([subscribed(chA), subscribed(chB)]);
    const got = [nextEvent(chA, "first"), nextEvent(chB, "second")];
    const res = await sdkA.triggerBatch([
      { channel: "shipped-batch-a", name: "first", data: { i: 1 } },
      { channel: "shipped-batch-b", name: "second", data: { i: 2 } },
    ]);
    assert.equal(res.status, 200);
    assert.deepEqual((await Promise.all(got)).map((event) => event.data), [{ i: 1 }, { i: 2 }]);
    pA.disconnect();
    pB.disconnect();
  });

  it("user sign-in on one node, sendToUser through the other", T, async () => {
    const user = pusherClient(a.node, APP, { signinUser: { id: "shipped-user" } });
    await connected(user);
    user.signin();
    await until(
      () =>
        (user.user as unknown as { serverToUserChannel?: { subscribed?: boolean } })
          .serverToUserChannel?.subscribed === true,
      "pusher-js to sign in and subscribe its user channel",
    );
    const got = nextEvent(user.user, "notice");
    const res = await sdkB.sendToUser("shipped-user", "notice", { hello: true });
    assert.equal(res.status, 200);
    assert.deepEqual((await got).data, { hello: true });
    user.disconnect();
  });

  it("sockets opened with Fly-Client-IP (CHORUS_TRUST_PROXY) get their events", T, async () => {
    const channel = "shipped-proxied";
    const headers = { "Fly-Client-IP": "203.0.113.9" };
    const sockets = await Promise.all(
      [a.node, b.node].map((node) => connectSocket(node.wsUrl(APP.key), { headers })),
    );
    await Promise.all(sockets.map((socket) => socket.subscribeOk(channel)));
    const res = await new Api(b.node, APP).trigger({ name: "via-fly", channel, data: '{"ok":1}' });
    assert.equal(res.status, 200, res.text);
    for (const socket of sockets) {
      assert.deepEqual(dataOf(await socket.nextEvent("via-fly", channel)), { ok: 1 });
      socket.close();
    }
  });
});
