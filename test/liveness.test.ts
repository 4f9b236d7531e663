// Liveness (protocol.md §7) with activity_timeout 1 and pong_timeout 1: the server pings idle
// connections (also those with no subscriptions), closes them with 4201 when nothing comes back,
// and keeps connections that answer or talk. All sockets run at the same time to keep it short.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { type Chorus, startChorus } from "./support/server.ts";
import { closeAllRawSockets, connectSocket, dataOf, RawSocket } from "./support/ws.ts";
import { withTimeout } from "./support/wait.ts";

const T = { timeout: 20000 };
const LIVE = { id: "2001", key: "live-key", secret: "live-secret" };

// activity_timeout 1 s, then a sweep that may be a second late: a ping within ~2 s, allow 4.
const PING_WITHIN = 4000;
// pong_timeout 1 s, again up to a second late: the close within ~2 s of the ping, allow 4.
const CLOSE_WITHIN = 4000;

describe("liveness", { timeout: 60000 }, () => {
  let server: Chorus;
  let idle: RawSocket;
  let idleSubscribed: RawSocket;
  let responsive: RawSocket;
  let chatty: RawSocket;
  let chattyTimer: ReturnType<typeof setInterval> | undefined;
  let t0 = 0;

  before(async () => {
    server = await startChorus({
      config: { apps: [{ ...LIVE, activity_timeout: 1, pong_timeout: 1 }] },
    });
    t0 = Date.now();
    [idle, idleSubscribed, responsive, chatty] = await Promise.all(
      Array.from({ length: 4 }, () => connectSocket(server.wsUrl(LIVE.key))),
    );
    idleSubscribed.subscribe("some-channel");
    // answer every server ping
    responsive.ws.addEventListener("message", (ev) => {
      if (typeof ev.data === "string" && JSON.parse(ev.data).event === "pusher:ping") {
        responsive.send({ event: "pusher:pong", data: {} });
      }
    });
    // talk more often than activity_timeout
    chattyTimer = setInterval(() => chatty.send({ event: "pusher:ping", data: {} }), 300);
  });
  after(async () => {
    if (chattyTimer) clearInterval(chattyTimer);
    await closeAllRawSockets();
    await server?.stop();
  });

  it("announces activity_timeout from the app config", T, () => {
    const d = dataOf(idle.log[0]) as { activity_timeout: number };
    assert.equal(d.activity_timeout, 1);
  });

  async function expectPingThen4201(sock: RawSocket): Promise<void> {
    const ping = await sock.nextEvent("pusher:ping", undefined, PING_WITHIN);
    const pingAt = Date.now();
    assert.ok(pingAt - t0 >= 900, `not pinged before activity_timeout (${pingAt - t0} ms)`);
    assert.equal(ping.data, "{}", 'pusher:ping data is "{}"');
    const err = await sock.nextEvent("pusher:error", undefined, CLOSE_WITHIN);
    assert.equal((err.data as { code: unknown }).code, 4201, JSON.stringify(err));
    const closed = await withTimeout(sock.closed, CLOSE_WITHIN, "close after pusher:error 4201");
    assert.equal(closed.code, 4201, "close code 4201");
  }

  it("pings an idle socket with no subscriptions, then closes it with 4201", T, async () => {
    await expectPingThen4201(idle);
  });

  it("does the same for an idle socket with a subscription", T, async () => {
    await expectPingThen4201(idleSubscribed);
  });

  it("keeps a socket that answers pusher:ping with pusher:pong", T, async () => {
    await responsive.nextEvent("pusher:ping", undefined, PING_WITHIN);
    await responsive.nextEvent("pusher:ping", undefined, PING_WITHIN + CLOSE_WITHIN);
    assert.ok(responsive.isOpen, "still open after two ping rounds");
    assert.deepEqual(responsive.received((f) => f.event === "pusher:error"), []);
  });

  it("never pings a socket that keeps sending frames", T, async () => {
    // by now the idle sockets have been pinged and closed: the chatty one had as long
    await withTimeout(idle.closed, PING_WITHIN + CLOSE_WITHIN, "the idle socket to be closed");
    await withTimeout(
      idleSubscribed.closed,
      PING_WITHIN + CLOSE_WITHIN,
      "the idle subscribed socket to be closed",
    );
    assert.ok(chatty.isOpen, "chatty socket still open");
    assert.deepEqual(chatty.received((f) => f.event === "pusher:ping"), [], "no server ping");
    assert.ok(chatty.received((f) => f.event === "pusher:pong").length > 3, "its pings answered");
  });
});
