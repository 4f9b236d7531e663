// Client events (protocol.md §5): delivered to the other subscribers only, data kept exactly as
// sent, user_id added on presence, 4301 when disabled or rate limited, 4009 on the wrong channel
// kind or when not subscribed. The connection always stays open.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { type Chorus, startChorus } from "./support/server.ts";
import { LIMITED, MAIN, NO_CLIENT_EVENTS, standardConfig } from "./support/apps.ts";
import { closeAllRawSockets, connectSocket, type Frame, RawSocket } from "./support/ws.ts";
import { Api, type AppCreds, channelAuth } from "./support/sign.ts";
import { assertPusherError } from "./support/assertions.ts";
import { delay } from "./support/wait.ts";

const T = { timeout: 20000 };

describe("client events", { timeout: 120000 }, () => {
  let server: Chorus;
  let n = 0;
  const uniq = (base: string) => `${base}-${++n}`;

  before(async () => {
    server = await startChorus({ config: standardConfig() });
  });
  after(async () => {
    await closeAllRawSockets();
    await server?.stop();
  });

  async function sockets(app: AppCreds, count: number): Promise<RawSocket[]> {
    return await Promise.all(
      Array.from({ length: count }, () => connectSocket(server.wsUrl(app.key))),
    );
  }

  /** Subscribes each socket to a private / encrypted / public channel. */
  async function subscribeAll(app: AppCreds, channel: string, socks: RawSocket[]): Promise<void> {
    for (const s of socks) {
      const extra = channel.startsWith("private-")
        ? { auth: channelAuth(app, s.socketId!, channel) }
        : {};
      await s.subscribeOk(channel, extra);
    }
  }

  async function joinPresence(app: AppCreds, channel: string, s: RawSocket, userId: string) {
    const cd = JSON.stringify({ user_id: userId });
    await s.subscribeOk(channel, {
      auth: channelAuth(app, s.socketId!, channel, cd),
      channel_data: cd,
    });
  }

  /** Sends an HTTP-triggered marker to `channel` and waits for it on every socket. */
  async function httpMarker(app: AppCreds, channel: string, ...socks: RawSocket[]) {
    const name = `marker-${++n}`;
    const res = await new Api(server, app).trigger({ name, channel, data: "m" });
    assert.equal(res.status, 200, res.text);
    await Promise.all(socks.map((s) => s.nextEvent(name, channel)));
  }

  const clientEvents = (s: RawSocket, name?: string) =>
    s.received((f) => f.event.startsWith("client-") && (name === undefined || f.event === name));

  it("reach every other subscriber, never the sender; object data stays an object", T, async () => {
    const ch = uniq("private-chat");
    const [a, b, c] = await sockets(MAIN, 3);
    await subscribeAll(MAIN, ch, [a, b, c]);
    const data = { x: 1, nested: { y: [1, 2, "three"] }, s: "str" };
    a.send({ event: "client-typing", channel: ch, data });
    for (const s of [b, c]) {
      const f = await s.nextEvent("client-typing", ch);
      assert.equal(typeof f.data, "object", "object data is forwarded as an object");
      assert.deepEqual(f.data, data);
      assert.equal(f.user_id, undefined, "no user_id on a private channel");
    }
    await a.ping(); // anything sent back to a while handling its event arrived before the pong
    assert.deepEqual(clientEvents(a), [], "the sender does not get its own event");
  });

  it("string data stays a string (even when it looks like JSON)", T, async () => {
    const ch = uniq("private-chat");
    const [a, b] = await sockets(MAIN, 2);
    await subscribeAll(MAIN, ch, [a, b]);
    a.send({ event: "client-plain", channel: ch, data: "hello" });
    a.send({ event: "client-jsonish", channel: ch, data: '{"a":1}' });
    assert.equal((await b.nextEvent("client-plain", ch)).data, "hello");
    assert.equal((await b.nextEvent("client-jsonish", ch)).data, '{"a":1}');
  });

  it(
    "on presence channels the server adds the sender's user_id (overriding a forged one)",
    T,
    async () => {
      const ch = uniq("presence-chat");
      const [a, b] = await sockets(MAIN, 2);
      await joinPresence(MAIN, ch, a, "alice");
      await joinPresence(MAIN, ch, b, "bob");
      a.send({ event: "client-hi", channel: ch, data: { m: 1 } });
      const f = await b.nextEvent("client-hi", ch);
      assert.equal(f.user_id, "alice");
      assert.deepEqual(f.data, { m: 1 });
      a.send({ event: "client-forged", channel: ch, data: {}, user_id: "mallory" });
      const g = await b.nextEvent("client-forged", ch);
      assert.equal(g.user_id, "alice", "user_id comes from the sender's membership");
      await a.ping();
      assert.deepEqual(clientEvents(a), []);
    },
  );

  describe("refusals keep the connection open", { timeout: 60000 }, () => {
    async function expectRefused(
      app: AppCreds,
      sender: RawSocket,
      receiver: RawSocket,
      channel: string,
      code: number,
    ): Promise<Frame> {
      const name = `client-refused-${++n}`;
      sender.send({ event: name, channel, data: { secret: true } });
      const f = await sender.nextEvent("pusher:error");
      assertPusherError(f, code);
      await sender.ping();
      assert.ok(sender.isOpen, "sender still connected");
      await httpMarker(app, channel, receiver);
      assert.deepEqual(clientEvents(receiver, name), [], "the refused event was not delivered");
      return f;
    }

    it("4301 when the app has client events disabled", T, async () => {
      const ch = uniq("private-quiet");
      const [a, b] = await sockets(NO_CLIENT_EVENTS, 2);
      await subscribeAll(NO_CLIENT_EVENTS, ch, [a, b]);
      await expectRefused(NO_CLIENT_EVENTS, a, b, ch, 4301);
    });

    it("4009 on a public channel", T, async () => {
      const ch = uniq("public-chat");
      const [a, b] = await sockets(MAIN, 2);
      await subscribeAll(MAIN, ch, [a, b]);
      await expectRefused(MAIN, a, b, ch, 4009);
    });

    it("4009 on a channel the sender is not subscribed to", T, async () => {
      const ch = uniq("private-members-only");
      const [a, b] = await sockets(MAIN, 2);
      await subscribeAll(MAIN, ch, [b]);
      await expectRefused(MAIN, a, b, ch, 4009);
    });

    it("4009 on an encrypted channel", T, async () => {
      const ch = uniq("private-encrypted-chat");
      const [a, b] = await sockets(MAIN, 2);
      await subscribeAll(MAIN, ch, [a, b]);
      await expectRefused(MAIN, a, b, ch, 4009);
    });
  });

  it(
    "rate limit: a bucket of rate_limit tokens, then 4301 per dropped event, refilled over time",
    T,
    async () => {
      const ch = uniq("private-fast");
      const [a, b] = await sockets(LIMITED, 2); // rate_limit 3
      await subscribeAll(LIMITED, ch, [a, b]);
      const burst = 10;
      for (let i = 0; i < burst; i++) a.send({ event: "client-burst", channel: ch, data: { i } });
      await a.ping();
      await httpMarker(LIMITED, ch, b);
      const delivered = clientEvents(b, "client-burst").length;
      const errors = a.received((f) => f.event === "pusher:error");
      errors.forEach((e) => assertPusherError(e, 4301));
      assert.ok(
        (errors[0]?.data as { message?: string } | undefined)?.message?.match(/rate/i),
        `the 4301 message mentions the rate limit: ${JSON.stringify(errors[0])}`,
      );
      // the burst is handled in a few ms, far less than the 333 ms a token takes to refill
      assert.equal(delivered, 3, `a full bucket of 3 of ${burst} delivered, got ${delivered}`);
      assert.equal(delivered + errors.length, burst, "every dropped event got a 4301");
      assert.ok(a.isOpen);

      // After 2 s idle the bucket is full again but holds no more than rate_limit tokens: of 5
      // events sent at once exactly 3 pass (no event to await for a refill, hence the delay).
      await delay(2100);
      for (let i = 0; i < 5; i++) a.send({ event: "client-later", channel: ch, data: { i } });
      await a.ping();
      await httpMarker(LIMITED, ch, b);
      assert.equal(
        clientEvents(b, "client-later").length,
        3,
        "a full bucket lets exactly 3 through",
      );
      assert.equal(
        a.received((f) => f.event === "pusher:error").length,
        errors.length + 2,
        "the other 2 got 4301",
      );
    },
  );
});
