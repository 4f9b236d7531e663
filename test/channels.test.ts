// Subscribing over a raw WebSocket (protocol.md §3): every channel kind, signatures, refusals with
// pusher:subscription_error {type,error,status}, names, double subscribe, unsubscribe.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { type Chorus, startChorus } from "./support/server.ts";
import { MAIN, standardConfig } from "./support/apps.ts";
import { closeAllRawSockets, connectSocket, dataOf, RawSocket } from "./support/ws.ts";
import { assertSubscriptionError } from "./support/assertions.ts";
import { Api, channelAuth } from "./support/sign.ts";
import { until } from "./support/wait.ts";

const T = { timeout: 20000 };

describe("channels", { timeout: 120000 }, () => {
  let server: Chorus;
  let api: Api;
  let sock: RawSocket;
  let sid: string;
  let n = 0;
  const uniq = (base: string) => `${base}-${++n}`;

  before(async () => {
    server = await startChorus({ config: standardConfig() });
    api = new Api(server, MAIN);
    sock = await connectSocket(server.wsUrl(MAIN.key));
    sid = sock.socketId!;
  });
  after(async () => {
    await closeAllRawSockets();
    await server?.stop();
  });

  describe("successful subscriptions", { timeout: 60000 }, () => {
    it('public: subscription_succeeded with data "{}"', T, async () => {
      const ch = uniq("public");
      const f = await sock.subscribeOk(ch);
      assert.equal(f.channel, ch);
      assert.equal(typeof f.data, "string", "data is a JSON string");
      assert.deepEqual(dataOf(f), {});
    });

    it("accepts pusher:subscribe whose data is a JSON string", T, async () => {
      const ch = uniq("private-stringly");
      sock.send({
        event: "pusher:subscribe",
        data: JSON.stringify({ channel: ch, auth: channelAuth(MAIN, sid, ch) }),
      });
      const f = await sock.nextEvent("pusher_internal:subscription_succeeded", ch);
      assert.deepEqual(dataOf(f), {});
    });

    it("private with a valid auth", T, async () => {
      const ch = uniq("private-room");
      const f = await sock.subscribeOk(ch, { auth: channelAuth(MAIN, sid, ch) });
      assert.deepEqual(dataOf(f), {});
    });

    it("private-encrypted with a valid auth", T, async () => {
      const ch = uniq("private-encrypted-room");
      await sock.subscribeOk(ch, { auth: channelAuth(MAIN, sid, ch) });
    });

    it("presence with auth + channel_data: members of the channel", T, async () => {
      const ch = uniq("presence-room");
      const channelData = JSON.stringify({ user_id: "u1", user_info: { name: "Ann" } });
      const f = await sock.subscribeOk(ch, {
        auth: channelAuth(MAIN, sid, ch, channelData),
        channel_data: channelData,
      });
      assert.equal(typeof f.data, "string");
      assert.deepEqual(dataOf(f), {
        presence: { ids: ["u1"], hash: { u1: { name: "Ann" } }, count: 1 },
      });
    });

    it("presence-cache and private-cache behave as their base kinds", T, async () => {
      const pc = uniq("private-cache-room");
      await sock.subscribeOk(pc, { auth: channelAuth(MAIN, sid, pc) });
      const bad = uniq("private-cache-room");
      assertSubscriptionError(await sock.subscribeResult(bad, {}), bad, 401, "AuthError");
      const ps = uniq("presence-cache-room");
      const cd = JSON.stringify({ user_id: "c1" });
      const f = await sock.subscribeOk(ps, {
        auth: channelAuth(MAIN, sid, ps, cd),
        channel_data: cd,
      });
      assert.deepEqual((dataOf(f) as { presence: { ids: string[] } }).presence.ids, ["c1"]);
    });

    it("accepts names of exactly 200 allowed characters", T, async () => {
      const allowed = "-_=@,.;AZaz09";
      const ch = (allowed + "x".repeat(200)).slice(0, 200);
      assert.equal(ch.length, 200);
      await sock.subscribeOk(ch);
    });

    it("subscribing twice answers subscription_succeeded again and counts once", T, async () => {
      const ch = uniq("twice");
      await sock.subscribeOk(ch);
      await sock.subscribeOk(ch);
      const res = await api.get(`/channels/${ch}`, { info: "subscription_count" });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json, { occupied: true, subscription_count: 1 });
    });

    it("unsubscribing from a channel never subscribed is silently ignored", T, async () => {
      sock.send({ event: "pusher:unsubscribe", data: { channel: uniq("never") } });
      await sock.ping();
      assert.equal(sock.received((f) => f.event === "pusher:error").length, 0);
    });

    it("unsubscribe gets no answer and stops delivery", T, async () => {
      const ch = uniq("leave");
      const other = uniq("stay");
      await sock.subscribeOk(ch);
      await sock.subscribeOk(other);
      sock.send({ event: "pusher:unsubscribe", data: { channel: ch } });
      const pong = await sock.ping();
      const answers = sock.received(
        (f) => f.channel === ch && f.event !== "pusher_internal:subscription_succeeded",
      );
      assert.deepEqual(answers, [], "no answer to pusher:unsubscribe");
      assert.ok(pong);
      await until(async () => {
        const r = await api.get(`/channels/${ch}`);
        return (r.json as { occupied?: boolean }).occupied === false;
      }, "the channel to become unoccupied");
      assert.equal((await api.trigger({ name: "gone", channel: ch, data: "x" })).status, 200);
      assert.equal((await api.trigger({ name: "marker", channel: other, data: "m" })).status, 200);
      await sock.nextEvent("marker", other);
      assert.deepEqual(sock.received((f) => f.event === "gone"), [], "no event after unsubscribe");
    });
  });

  describe("refused subscriptions", { timeout: 60000 }, () => {
    it("401 AuthError: private without auth", T, async () => {
      const ch = uniq("private-x");
      assertSubscriptionError(await sock.subscribeResult(ch), ch, 401, "AuthError");
    });

    it("401 AuthError: private with a signature made with another secret", T, async () => {
      const ch = uniq("private-x");
      const auth = channelAuth({ key: MAIN.key, secret: "wrong" }, sid, ch);
      assertSubscriptionError(await sock.subscribeResult(ch, { auth }), ch, 401, "AuthError");
    });

    it("401 AuthError: private signed for another socket", T, async () => {
      const ch = uniq("private-x");
      const auth = channelAuth(MAIN, "1.1", ch);
      assertSubscriptionError(await sock.subscribeResult(ch, { auth }), ch, 401, "AuthError");
    });

    it("401 AuthError: correct HMAC but the key before ':' is not the app key", T, async () => {
      const ch = uniq("private-x");
      const good = channelAuth(MAIN, sid, ch);
      const auth = `other-key:${good.split(":")[1]}`;
      assertSubscriptionError(await sock.subscribeResult(ch, { auth }), ch, 401, "AuthError");
    });

    it("401 AuthError: encrypted without auth", T, async () => {
      const ch = uniq("private-encrypted-x");
      assertSubscriptionError(await sock.subscribeResult(ch), ch, 401, "AuthError");
    });

    it("401 AuthError: presence signed over different channel_data", T, async () => {
      const ch = uniq("presence-x");
      const cd = JSON.stringify({ user_id: "u1" });
      const auth = channelAuth(MAIN, sid, ch, JSON.stringify({ user_id: "u2" }));
      assertSubscriptionError(
        await sock.subscribeResult(ch, { auth, channel_data: cd }),
        ch,
        401,
        "AuthError",
      );
    });

    it("400 InvalidRequest: presence without channel_data (not signed in)", T, async () => {
      const ch = uniq("presence-x");
      const auth = channelAuth(MAIN, sid, ch);
      assertSubscriptionError(await sock.subscribeResult(ch, { auth }), ch, 400, "InvalidRequest");
    });

    it("400 InvalidRequest: channel_data without user_id", T, async () => {
      const ch = uniq("presence-x");
      const cd = JSON.stringify({ user_info: { name: "nobody" } });
      const auth = channelAuth(MAIN, sid, ch, cd);
      assertSubscriptionError(
        await sock.subscribeResult(ch, { auth, channel_data: cd }),
        ch,
        400,
        "InvalidRequest",
      );
    });

    it("400 InvalidRequest: channel_data that is not JSON", T, async () => {
      const ch = uniq("presence-x");
      const cd = "not json";
      const auth = channelAuth(MAIN, sid, ch, cd);
      assertSubscriptionError(
        await sock.subscribeResult(ch, { auth, channel_data: cd }),
        ch,
        400,
        "InvalidRequest",
      );
    });

    for (
      const [what, cd] of [
        ["an empty user_id", JSON.stringify({ user_id: "" })],
        ["a null user_id", JSON.stringify({ user_id: null })],
        ["a JSON array", "[1]"],
      ]
    ) {
      it(`400 InvalidRequest: channel_data with ${what}`, T, async () => {
        const ch = uniq("presence-x");
        const auth = channelAuth(MAIN, sid, ch, cd);
        assertSubscriptionError(
          await sock.subscribeResult(ch, { auth, channel_data: cd }),
          ch,
          400,
          "InvalidRequest",
        );
      });
    }

    const badNames: [string, string][] = [
      ["a space", "bad name"],
      ["a '!'", "bad!"],
      ["201 characters", "x".repeat(201)],
      ["a leading # that is not #server-to-user-", "#lobby"],
      ["a non-ASCII letter", "caf\u00e9"],
      ["an empty name", ""],
    ];
    for (const [what, ch] of badNames) {
      it(`400 InvalidRequest: a channel name with ${what}`, T, async () => {
        assertSubscriptionError(await sock.subscribeResult(ch), ch, 400, "InvalidRequest");
      });
    }

    it("a refused subscribe leaves the socket usable", T, async () => {
      const ch = uniq("private-x");
      await sock.subscribeResult(ch);
      await sock.ping();
      await sock.subscribeOk(uniq("after-refusal"));
      assert.ok(sock.isOpen);
      // none of the refusals counted as a subscription
      const res = await api.get(`/channels/${ch}`, { info: "subscription_count" });
      const body = res.json as { occupied: unknown; subscription_count?: unknown };
      assert.equal(body.occupied, false, res.text);
      assert.ok(body.subscription_count === undefined || body.subscription_count === 0, res.text);
    });
  });

  it("refused subscriptions never closed the socket", T, async () => {
    assert.ok(sock.isOpen);
    assert.equal(sock.received((f) => f.event === "pusher:error").length, 0, "no pusher:error");
    const extra = new RawSocket(server.wsUrl(MAIN.key));
    await extra.nextEvent("pusher:connection_established");
    extra.close();
  });
});
