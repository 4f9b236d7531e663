// The HTTP API (protocol.md §9) driven by the official `pusher` SDK and by hand-signed fetch:
// triggering (single, multi-channel, batch, socket_id exclusion, info), channel and connection
// queries, size/shape limits, and request signing. Every error body is JSON {"error": string}.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type PusherServer from "pusher";
import { type Chorus, startChorus } from "./support/server.ts";
import { DISABLED, LIMITED, MAIN, standardConfig } from "./support/apps.ts";
import { closeAllRawSockets, connectSocket, dataOf, RawSocket } from "./support/ws.ts";
import { Api, channelAuth, plainFetch } from "./support/sign.ts";
import { serverSdk } from "./support/clients.ts";
import { assertHttpError } from "./support/assertions.ts";
import { until } from "./support/wait.ts";

const T = { timeout: 20000 };

describe("HTTP API", { timeout: 180000 }, () => {
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
    await closeAllRawSockets();
    await server?.stop();
  });

  async function sock(): Promise<RawSocket> {
    return await connectSocket(server.wsUrl(MAIN.key));
  }

  async function presence(s: RawSocket, ch: string, userId: string): Promise<void> {
    const cd = JSON.stringify({ user_id: userId });
    await s.subscribeOk(ch, { auth: channelAuth(MAIN, s.socketId!, ch, cd), channel_data: cd });
  }

  async function json(res: { text(): Promise<string> }): Promise<unknown> {
    return JSON.parse(await res.text());
  }

  describe("POST /events", { timeout: 90000 }, () => {
    it("SDK trigger reaches subscribers with data as a JSON string; answers {}", T, async () => {
      const ch = uniq("news");
      const s = await sock();
      await s.subscribeOk(ch);
      const res = await sdk.trigger(ch, "created", { id: 7, tags: ["a"] });
      assert.equal(res.status, 200);
      assert.deepEqual(await json(res), {});
      const f = await s.nextEvent("created", ch);
      assert.equal(typeof f.data, "string", "server->client data is a string");
      assert.deepEqual(dataOf(f), { id: 7, tags: ["a"] });
    });

    it("a string data is delivered unchanged", T, async () => {
      const ch = uniq("news");
      const s = await sock();
      await s.subscribeOk(ch);
      await sdk.trigger(ch, "text", "just words");
      assert.equal((await s.nextEvent("text", ch)).data, "just words");
    });

    it("one event to several channels reaches each", T, async () => {
      const c1 = uniq("multi");
      const c2 = uniq("multi");
      const s = await sock();
      await s.subscribeOk(c1);
      await s.subscribeOk(c2);
      const res = await sdk.trigger([c1, c2], "both", { ok: true });
      assert.equal(res.status, 200);
      await s.nextEvent("both", c1);
      await s.nextEvent("both", c2);
    });

    it("socket_id excludes that connection only", T, async () => {
      const ch = uniq("excl");
      const a = await sock();
      const b = await sock();
      await a.subscribeOk(ch);
      await b.subscribeOk(ch);
      const res = await sdk.trigger(ch, "not-for-a", { x: 1 }, { socket_id: a.socketId });
      assert.equal(res.status, 200);
      await b.nextEvent("not-for-a", ch);
      await sdk.trigger(ch, "marker", {});
      await a.nextEvent("marker", ch);
      await b.nextEvent("marker", ch);
      assert.deepEqual(a.received((f) => f.event === "not-for-a"), [], "excluded socket skipped");
    });

    it("info=subscription_count,user_count answers per-channel counts", T, async () => {
      const pub = uniq("counted");
      const pres = uniq("presence-counted");
      const [a, b, c] = await Promise.all([sock(), sock(), sock()]);
      await a.subscribeOk(pub);
      await b.subscribeOk(pub);
      await presence(a, pres, "u1");
      await presence(b, pres, "u1");
      await presence(c, pres, "u2");
      const r1 = await sdk.trigger(pub, "e", {}, { info: "subscription_count" });
      assert.deepEqual(await json(r1), { channels: { [pub]: { subscription_count: 2 } } });
      const r2 = await sdk.trigger(pres, "e", {}, { info: "user_count,subscription_count" });
      assert.deepEqual(await json(r2), {
        channels: { [pres]: { user_count: 2, subscription_count: 3 } },
      });
    });
  });

  describe("POST /batch_events", { timeout: 60000 }, () => {
    it("delivers every event of the batch and answers {batch:[...]}", T, async () => {
      const c1 = uniq("batch");
      const c2 = uniq("batch");
      const a = await sock();
      const b = await sock();
      await a.subscribeOk(c1);
      await b.subscribeOk(c1);
      await a.subscribeOk(c2);
      const res = await sdk.triggerBatch([
        { channel: c1, name: "first", data: { i: 1 }, info: "subscription_count" },
        { channel: c2, name: "second", data: "two" },
        { channel: c1, name: "third", data: { i: 3 }, socket_id: a.socketId },
      ]);
      assert.equal(res.status, 200);
      assert.deepEqual(await json(res), { batch: [{ subscription_count: 2 }, {}, {}] });
      assert.deepEqual(dataOf(await a.nextEvent("first", c1)), { i: 1 });
      assert.equal((await a.nextEvent("second", c2)).data, "two");
      assert.deepEqual(dataOf(await b.nextEvent("third", c1)), { i: 3 });
      await sdk.trigger(c1, "marker", {});
      await a.nextEvent("marker", c1);
      assert.deepEqual(a.received((f) => f.event === "third"), [], "batch socket_id excluded");
    });
  });

  describe("queries", { timeout: 60000 }, () => {
    // q-a (1 socket), q-b (2 sockets), presence-q-c (users u1 x2, u2), q-gone (left again)
    let socks: RawSocket[] = [];
    before(async () => {
      socks = await Promise.all([sock(), sock(), sock()]);
      const [a, b, c] = socks;
      await a.subscribeOk("q-a");
      await a.subscribeOk("q-b");
      await b.subscribeOk("q-b");
      await presence(a, "presence-q-c", "u1");
      await presence(b, "presence-q-c", "u1");
      await presence(c, "presence-q-c", "u2");
      await c.subscribeOk("q-gone");
      c.send({ event: "pusher:unsubscribe", data: { channel: "q-gone" } });
      await c.ping();
    });

    it("GET /channels lists occupied channels only, filtered by prefix", T, async () => {
      const res = await sdk.get({ path: "/channels", params: { filter_by_prefix: "q-" } });
      assert.equal(res.status, 200);
      assert.deepEqual(await json(res), { channels: { "q-a": {}, "q-b": {} } });
    });

    it("GET /channels?info=subscription_count", T, async () => {
      const res = await api.get("/channels", {
        filter_by_prefix: "q-",
        info: "subscription_count",
      });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json, {
        channels: { "q-a": { subscription_count: 1 }, "q-b": { subscription_count: 2 } },
      });
    });

    it("GET /channels?info=user_count,subscription_count for presence channels", T, async () => {
      const res = await api.get("/channels", {
        filter_by_prefix: "presence-q-",
        info: "user_count,subscription_count",
      });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json, {
        channels: { "presence-q-c": { user_count: 2, subscription_count: 3 } },
      });
    });

    it("GET /channels without a filter includes every occupied channel", T, async () => {
      const res = await api.get("/channels");
      const names = Object.keys((res.json as { channels: Record<string, unknown> }).channels);
      for (const ch of ["q-a", "q-b", "presence-q-c"]) assert.ok(names.includes(ch), ch);
      assert.ok(!names.includes("q-gone"), "an emptied channel is not listed");
    });

    it("GET /channels/{name}: occupied, subscription_count, user_count", T, async () => {
      const plain = await api.get("/channels/q-b");
      assert.deepEqual(plain.json, { occupied: true });
      const counted = await api.get("/channels/q-b", { info: "subscription_count" });
      assert.deepEqual(counted.json, { occupied: true, subscription_count: 2 });
      const pres = await api.get("/channels/presence-q-c", {
        info: "user_count,subscription_count",
      });
      assert.deepEqual(pres.json, { occupied: true, user_count: 2, subscription_count: 3 });
      const empty = await api.get("/channels/q-gone");
      assert.equal(empty.status, 200);
      assert.equal((empty.json as { occupied: boolean }).occupied, false);
      const never = await sdk.get({ path: "/channels/never-used" });
      assert.equal((await json(never) as { occupied: boolean }).occupied, false);
    });

    it("never reports user_count for a non-presence channel (400 or omitted)", T, async () => {
      for (
        const res of [
          await api.get("/channels/q-b", { info: "user_count" }),
          await api.get("/channels", { filter_by_prefix: "q-", info: "user_count" }),
          await api.trigger({ name: "e", channel: "q-b", data: "{}", info: "user_count" }),
        ]
      ) {
        if (res.status === 400) {
          assertHttpError(res, 400);
        } else {
          assert.equal(res.status, 200, res.text);
          assert.ok(!res.text.includes("user_count"), `no user_count: ${res.text}`);
        }
      }
    });

    it("GET /channels/{name}/users lists distinct users; 400 for non-presence", T, async () => {
      const res = await sdk.get({ path: "/channels/presence-q-c/users" });
      const users = (await json(res) as { users: { id: string }[] }).users;
      assert.deepEqual(users.map((u) => u.id).sort(), ["u1", "u2"]);
      assertHttpError(await api.get("/channels/q-a/users"), 400);
      assertHttpError(await api.get("/channels/private-q/users"), 400);
    });

    it("GET /connections counts the app's connections", T, async () => {
      const count = async () => {
        const r = await api.get("/connections");
        assert.equal(r.status, 200, r.text);
        return (r.json as { connections: number }).connections;
      };
      const before = await count();
      assert.ok(before >= 3, `at least the 3 query sockets: ${before}`);
      const extra = await Promise.all([sock(), sock()]);
      assert.equal(await count(), before + 2);
      await extra[0].closeAndWait();
      await until(async () => (await count()) === before + 1, "the count to drop after a close");
      extra[1].close();
      // other apps' connections are not counted
      const other = new Api(server, LIMITED);
      const o = await connectSocket(server.wsUrl(LIMITED.key));
      const r = await other.get("/connections");
      assert.deepEqual(r.json, { connections: 1 });
      o.close();
    });
  });

  describe("limits and validation", { timeout: 60000 }, () => {
    it("100 channels pass, 101 are refused with 400", T, async () => {
      const chans = (k: number) => Array.from({ length: k }, (_, i) => `many-${i}`);
      const ok = await api.trigger({ name: "e", channels: chans(100), data: "{}" });
      assert.equal(ok.status, 200, ok.text);
      assertHttpError(await api.trigger({ name: "e", channels: chans(101), data: "{}" }), 400);
    });

    it("a batch of 10 passes, 11 are refused with 400", T, async () => {
      const batch = (k: number) =>
        Array.from({ length: k }, (_, i) => ({ name: "e", channel: `b-${i}`, data: "{}" }));
      const ok = await api.post("/batch_events", { batch: batch(10) });
      assert.equal(ok.status, 200, ok.text);
      assertHttpError(await api.post("/batch_events", { batch: batch(11) }), 400);
    });

    it("413 when data is over max_event_size (default 10 240 bytes)", T, async () => {
      const ok = await api.trigger({ name: "e", channel: "big", data: "x".repeat(10240) });
      assert.equal(ok.status, 200, ok.text);
      assertHttpError(
        await api.trigger({ name: "e", channel: "big", data: "x".repeat(10241) }),
        413,
      );
      assertHttpError(
        await api.post("/batch_events", {
          batch: [{ name: "e", channel: "big", data: "x".repeat(10241) }],
        }),
        413,
      );
    });

    it("413 for a per-app max_event_size and max_request_size", T, async () => {
      const limited = new Api(server, LIMITED); // max_event_size 500, max_request_size 3000
      assert.equal(
        (await limited.trigger({ name: "e", channel: "c", data: "x".repeat(500) })).status,
        200,
      );
      assertHttpError(
        await limited.trigger({ name: "e", channel: "c", data: "x".repeat(501) }),
        413,
      );
      // every event fits max_event_size but the body (about 4.6 kB) is over max_request_size
      const batch = Array.from({ length: 10 }, (_, i) => ({
        name: "e",
        channel: `c-${i}`,
        data: "y".repeat(400),
      }));
      assert.ok(JSON.stringify({ batch }).length > 3000);
      assertHttpError(await limited.post("/batch_events", { batch }), 413);
    });

    it("an encrypted channel must be the only channel (400)", T, async () => {
      const alone = await api.trigger({ name: "e", channels: ["private-encrypted-a"], data: "{}" });
      assert.equal(alone.status, 200, alone.text);
      assertHttpError(
        await api.trigger({ name: "e", channels: ["private-encrypted-a", "public-b"], data: "{}" }),
        400,
      );
    });

    const badBodies: [string, unknown][] = [
      ["malformed JSON", "{not json"],
      ["a JSON array", "[]"],
      ["no name", { channel: "c", data: "{}" }],
      ["an empty name", { name: "", channel: "c", data: "{}" }],
      ["a 201-character event name", { name: "e".repeat(201), channel: "c", data: "{}" }],
      ["no channel(s)", { name: "e", data: "{}" }],
      ["channels not an array", { name: "e", channels: "c", data: "{}" }],
      ["a channel name with a space", { name: "e", channel: "bad channel", data: "{}" }],
      ["a 201-character channel name", { name: "e", channel: "c".repeat(201), data: "{}" }],
      ["a malformed socket_id", { name: "e", channel: "c", data: "{}", socket_id: "abc" }],
    ];
    for (const [what, body] of badBodies) {
      it(`400 for ${what}`, T, async () => {
        assertHttpError(await api.trigger(body as Record<string, unknown>), 400);
      });
    }

    it("400 for a batch item with a bad channel name", T, async () => {
      assertHttpError(
        await api.post("/batch_events", { batch: [{ name: "e", channel: "bad name", data: "" }] }),
        400,
      );
    });
  });

  describe("signing", { timeout: 60000 }, () => {
    const body = { name: "e", channel: "signed", data: "{}" };
    const now = () => Math.floor(Date.now() / 1000);

    it(
      "accepts a correctly signed request (timestamp 500 s old is within the window)",
      T,
      async () => {
        const res = await api.trigger(body, { timestamp: now() - 500 });
        assert.equal(res.status, 200, res.text);
      },
    );

    it("401 for a wrong signature", T, async () => {
      assertHttpError(
        await api.trigger(body, { tamper: (q) => (q.auth_signature = "0".repeat(64)) }),
        401,
      );
    });

    it("401 when signed with another secret", T, async () => {
      assertHttpError(await api.trigger(body, { signSecret: "not-the-secret" }), 401);
    });

    it("401 when auth_key is not the app's key (even if signed consistently)", T, async () => {
      assertHttpError(await api.trigger(body, { signKey: LIMITED.key }), 401);
    });

    it("401 for a timestamp more than 600 s old or ahead", T, async () => {
      assertHttpError(await api.trigger(body, { timestamp: now() - 700 }), 401);
      assertHttpError(await api.trigger(body, { timestamp: now() + 700 }), 401);
    });

    it("401 when body_md5 does not match the body", T, async () => {
      assertHttpError(
        await api.trigger(body, {
          sendBody: JSON.stringify({ ...body, data: '{"tampered":true}' }),
        }),
        401,
      );
    });

    it("401 when a query parameter was added after signing", T, async () => {
      assertHttpError(
        await api.get("/channels", {}, { tamper: (q) => (q.filter_by_prefix = "x") }),
        401,
      );
    });

    it("401 when the signed path differs from the requested path", T, async () => {
      assertHttpError(await api.trigger(body, { signPath: "/apps/1001/batch_events" }), 401);
    });

    it("refuses a request with no auth parameters or no body_md5 (400 or 401)", T, async () => {
      for (
        const res of [
          await api.trigger(body, { unsigned: true }),
          await api.trigger(body, { tamper: (q) => delete q.body_md5 }),
        ]
      ) {
        assert.ok([400, 401].includes(res.status), `status ${res.status}: ${res.text}`);
        assertHttpError(res, res.status);
      }
    });

    it("404 for an unknown app id", T, async () => {
      const ghost = new Api(server, { id: "9999", key: MAIN.key, secret: MAIN.secret });
      assertHttpError(await ghost.trigger(body), 404);
    });

    it("403 for a disabled app", T, async () => {
      assertHttpError(await new Api(server, DISABLED).trigger(body), 403);
    });

    it("404 for an unknown route, signed or not", T, async () => {
      assertHttpError(await api.get("/nothing-here"), 404);
      assertHttpError(await plainFetch(server, "/nope"), 404);
    });

    it("405 for a known route with the wrong method", T, async () => {
      assertHttpError(await api.request("GET", "/events"), 405);
    });
  });

  describe("health", { timeout: 30000 }, () => {
    it("GET /up is unsigned and answers {health: OK}", T, async () => {
      const res = await plainFetch(server, "/up");
      assert.equal(res.status, 200);
      assert.deepEqual(res.json, { health: "OK" });
    });

    it("GET /apps/{id}/health is unsigned: 200 for an app, 404 for an unknown one", T, async () => {
      const ok = await plainFetch(server, `/apps/${MAIN.id}/health`);
      assert.equal(ok.status, 200, ok.text);
      const missing = await plainFetch(server, "/apps/9999/health");
      assert.equal(missing.status, 404);
    });
  });
});
