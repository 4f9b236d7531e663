// User sign-in and user channels (protocol.md §8), watchlists, terminate_connections (§9), and
// cache channels (§6).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type PusherServer from "pusher";
import { type Chorus, startChorus } from "./support/server.ts";
import { MAIN, standardConfig } from "./support/apps.ts";
import { closeAllRawSockets, connectSocket, dataOf, type Frame, RawSocket } from "./support/ws.ts";
import { Api, channelAuth, signinAuth } from "./support/sign.ts";
import { assertPusherError, assertSubscriptionError } from "./support/assertions.ts";
import { connected, disconnectAll, nextEvent, pusherClient, serverSdk } from "./support/clients.ts";
import { until } from "./support/wait.ts";

const T = { timeout: 20000 };

describe("sign-in, user channels, cache channels", { timeout: 180000 }, () => {
  let server: Chorus;
  let api: Api;
  let sdk: PusherServer;
  let n = 0;
  const uniq = (base: string) => `${base}-${++n}`;

  before(async () => {
    server = await startChorus({ config: standardConfig() });
    api = new Api(server, MAIN);
    sdk = serverSdk(server, MAIN);
  });
  after(async () => {
    disconnectAll();
    await closeAllRawSockets();
    await server?.stop();
  });

  async function sock(): Promise<RawSocket> {
    return await connectSocket(server.wsUrl(MAIN.key));
  }

  /** Signs in; resolves with the signin_success frame. */
  async function signin(s: RawSocket, user: Record<string, unknown>) {
    const userData = JSON.stringify(user);
    s.send({
      event: "pusher:signin",
      data: { auth: signinAuth(MAIN, s.socketId!, userData), user_data: userData },
    });
    const f = await s.next(
      (f) => f.event === "pusher:signin_success" || f.event === "pusher:error",
      "signin result",
    );
    assert.equal(f.event, "pusher:signin_success", JSON.stringify(f));
    return f;
  }

  describe("pusher:signin", { timeout: 90000 }, () => {
    it("answers signin_success with the user_data as a JSON string", T, async () => {
      const s = await sock();
      const user = { id: uniq("user"), user_info: { name: "Ann" } };
      const f = await signin(s, user);
      assert.equal(typeof f.data, "string", "signin_success data is a JSON string");
      const d = dataOf(f) as { user_data: string };
      assert.equal(d.user_data, JSON.stringify(user));
      s.close();
    });

    it("a bad signature gets pusher:error 4009 and the socket stays open", T, async () => {
      const s = await sock();
      const userData = JSON.stringify({ id: "x" });
      s.send({
        event: "pusher:signin",
        data: {
          auth: signinAuth({ key: MAIN.key, secret: "bad" }, s.socketId!, userData),
          user_data: userData,
        },
      });
      assertPusherError(await s.nextEvent("pusher:error"), 4009);
      await s.ping();
      assert.ok(s.isOpen);
      s.close();
    });

    it("user_data without an id gets 4009", T, async () => {
      const s = await sock();
      const userData = JSON.stringify({ name: "no id" });
      s.send({
        event: "pusher:signin",
        data: { auth: signinAuth(MAIN, s.socketId!, userData), user_data: userData },
      });
      assertPusherError(await s.nextEvent("pusher:error"), 4009);
      await s.ping();
      s.close();
    });

    it("a watchlist of more than 100 user ids gets 4009", T, async () => {
      const s = await sock();
      const userData = JSON.stringify({
        id: uniq("greedy"),
        watchlist: Array.from({ length: 101 }, (_, i) => `w${i}`),
      });
      s.send({
        event: "pusher:signin",
        data: { auth: signinAuth(MAIN, s.socketId!, userData), user_data: userData },
      });
      assertPusherError(await s.nextEvent("pusher:error"), 4009);
      assert.deepEqual(s.received((f) => f.event === "pusher:signin_success"), []);
      s.close();
    });

    it("#server-to-user-{id}: own id only, after sign-in; sendToUser reaches it", T, async () => {
      const id = uniq("u");
      const s = await sock();
      const own = `#server-to-user-${id}`;
      assertSubscriptionError(await s.subscribeResult(own), own, 403, "AuthError");
      await signin(s, { id });
      await s.subscribeOk(own);
      const other = `#server-to-user-${id}-other`;
      assertSubscriptionError(await s.subscribeResult(other), other, 403, "AuthError");
      const res = await sdk.sendToUser(id, "notice", { hello: id });
      assert.equal(res.status, 200);
      assert.deepEqual(dataOf(await s.nextEvent("notice", own)), { hello: id });
      s.close();
    });

    it(
      "a signed-in socket may join presence without channel_data (signature socket:channel)",
      T,
      async () => {
        const id = uniq("p");
        const s = await sock();
        await signin(s, { id, user_info: { role: "admin" } });
        const ch = uniq("presence-signed");
        const f = await s.subscribeOk(ch, { auth: channelAuth(MAIN, s.socketId!, ch) });
        const p = (dataOf(f) as { presence: { ids: string[]; hash: Record<string, unknown> } })
          .presence;
        assert.deepEqual(p.ids, [id]);
        assert.ok(id in p.hash, "the signed-in user is a member");
        s.close();
      },
    );

    it("pusher-js signin + user events sent with the SDK's sendToUser", T, async () => {
      const id = uniq("js");
      const p = pusherClient(server, MAIN, { signinUser: { id } });
      await connected(p);
      p.signin();
      await until(
        () =>
          (p.user as unknown as { serverToUserChannel?: { subscribed?: boolean } })
            .serverToUserChannel?.subscribed === true,
        "pusher-js to sign in and subscribe its user channel",
      );
      const got = nextEvent(p.user, "greeting");
      await sdk.sendToUser(id, "greeting", { hi: true });
      assert.deepEqual((await got).data, { hi: true });
      p.disconnect();
    });
  });

  it("watchlist: current online set after sign-in, then online/offline changes", T, async () => {
    const w1 = uniq("w");
    const w2 = uniq("w");
    const b = await sock();
    await signin(b, { id: w1 });
    const a = await sock();
    await signin(a, { id: uniq("watcher"), watchlist: [w1, w2] });

    type Wl = { events: { name: string; user_ids: string[] }[] };
    const ids = (f: Frame, name: string) =>
      (dataOf(f) as Wl).events.filter((e) => e.name === name).flatMap((e) => e.user_ids);
    const online = (f: Frame) => ids(f, "online");
    const offline = (f: Frame) => ids(f, "offline");

    const first = await a.nextEvent("pusher_internal:watchlist_events");
    assert.equal(typeof first.data, "string", "watchlist_events data is a JSON string");
    assert.deepEqual(online(first), [w1], "w1 is online, w2 is not");

    const c = await sock();
    await signin(c, { id: w2 });
    const came = await a.nextEvent("pusher_internal:watchlist_events");
    assert.deepEqual(online(came), [w2]);

    c.close();
    const went = await a.nextEvent("pusher_internal:watchlist_events");
    assert.deepEqual(offline(went), [w2]);
    a.close();
    b.close();
  });

  it("terminate_connections closes the user's signed-in and presence sockets only", T, async () => {
    const id = uniq("bye");
    const signedIn = await sock();
    await signin(signedIn, { id });
    const present = await sock();
    const ch = uniq("presence-term");
    const cd = JSON.stringify({ user_id: id });
    await present.subscribeOk(ch, {
      auth: channelAuth(MAIN, present.socketId!, ch, cd),
      channel_data: cd,
    });
    const bystander = await sock();
    await signin(bystander, { id: uniq("stays") });

    const res = await sdk.terminateUserConnections(id);
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(await res.text()), {});
    await signedIn.closed;
    await present.closed;
    await bystander.ping();
    assert.ok(bystander.isOpen, "other users keep their connection");
    bystander.close();
  });

  describe("cache channels", { timeout: 60000 }, () => {
    it(
      "sends pusher:cache_miss after subscription_succeeded when nothing is cached",
      T,
      async () => {
        const ch = uniq("cache-empty");
        const s = await sock();
        await s.subscribeOk(ch);
        const miss = await s.nextEvent("pusher:cache_miss");
        assert.equal(miss.channel, ch);
        const order = s.log.filter((f) => f.channel === ch).map((f) => f.event);
        assert.deepEqual(order, ["pusher_internal:subscription_succeeded", "pusher:cache_miss"]);
        s.close();
      },
    );

    it(
      "replays the last HTTP event to a later subscriber, and reports it with info=cache",
      T,
      async () => {
        const ch = uniq("cache-news");
        assert.equal((await api.trigger({ name: "old", channel: ch, data: "1" })).status, 200);
        assert.equal(
          (await api.trigger({ name: "latest", channel: ch, data: '{"v":2}' })).status,
          200,
        );
        const s = await sock();
        await s.subscribeOk(ch);
        const f = await s.nextEvent("latest", ch);
        assert.deepEqual(dataOf(f), { v: 2 });
        await s.ping();
        assert.deepEqual(
          s.received((x) => x.event === "old" || x.event === "pusher:cache_miss"),
          [],
        );

        const info = await api.get(`/channels/${ch}`, { info: "cache" });
        assert.equal(info.status, 200, info.text);
        const cache = (info.json as { cache?: { event: string; data: string; ttl: number } }).cache;
        assert.ok(cache, `info=cache reports the cached event: ${info.text}`);
        assert.equal(cache.event, "latest");
        assert.equal(cache.data, '{"v":2}');
        assert.ok(cache.ttl > 1700 && cache.ttl <= 1800, `ttl about 30 min: ${cache.ttl}`);
        s.close();
      },
    );

    it("private-cache replays too (after auth)", T, async () => {
      const ch = uniq("private-cache-doc");
      await api.trigger({ name: "state", channel: ch, data: "s" });
      const s = await sock();
      await s.subscribeOk(ch, { auth: channelAuth(MAIN, s.socketId!, ch) });
      assert.equal((await s.nextEvent("state", ch)).data, "s");
      s.close();
    });
  });
});
