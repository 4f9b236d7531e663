// A subscriber that stops reading is closed with 4100 once its send buffer passes the budget
// (CHORUS_SOCKET_BUFFER_LIMIT), never with 1006 by the runtime's hard cap, and it does not slow
// a healthy subscriber of the same channel.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { MAIN, standardApps } from "./support/apps.ts";
import { runtimeName } from "./support/server.ts";
import { Api } from "./support/sign.ts";
import { until } from "./support/wait.ts";
import { connectSocket, type RawSocket } from "./support/ws.ts";
import {
  closeCodeIn,
  type LimitedChorus,
  type RawConn,
  rawWebSocket,
  sendText,
  startLimited,
} from "./support/limited-server.ts";

const BUDGET = 256 * 1024;
const EVENTS = 600;
const DATA = "x".repeat(10_000);

describe(`slow consumers (${runtimeName})`, { timeout: 60000 }, () => {
  let server: LimitedChorus;
  const stalled: RawConn[] = [];
  let healthy: RawSocket;

  before(async () => {
    server = await startLimited({ apps: standardApps() }, 4096, {
      CHORUS_SOCKET_BUFFER_LIMIT: String(BUDGET),
    });
  });
  after(async () => {
    for (const conn of stalled) conn.socket.destroy();
    healthy?.close();
    await server?.stop();
  });

  it(
    "a stalled subscriber gets 4100, a healthy one gets every event",
    { timeout: 40000 },
    async () => {
      for (let i = 0; i < 5; i++) {
        const conn = await rawWebSocket(server.port, `/app/${MAIN.key}?protocol=7`);
        sendText(conn, JSON.stringify({ event: "pusher:subscribe", data: { channel: "feed" } }));
        stalled.push(conn);
      }
      healthy = await connectSocket(server.wsUrl(MAIN.key));
      await healthy.subscribeOk("feed");
      await until(
        () => stalled.every((c) => c.received().includes("subscription_succeeded")),
        "the stalled subscribers' subscriptions",
      );
      for (const conn of stalled) conn.socket.pause();
      const api = new Api(server, MAIN);
      for (let i = 0; i < EVENTS; i++) {
        const res = await api.trigger({ name: "tick", channel: "feed", data: DATA });
        assert.equal(res.status, 200, res.text);
      }
      await until(
        () => healthy.received((f) => f.event === "tick").length === EVENTS,
        "every event",
        {
          timeout: 15000,
        },
      );
      for (const conn of stalled) conn.socket.resume();
      await Promise.all(stalled.map((conn) => conn.closed));
      const codes = stalled.map((conn) => closeCodeIn(conn.received()));
      assert.deepEqual(codes, stalled.map(() => 4100));
      const metrics = await fetch(`${server.url}/metrics`).then((r) => r.text());
      const closed = /chorus_connections_closed_total\{app="1001",code="4100"\} (\d+)/.exec(
        metrics,
      );
      assert.equal(Number(closed?.[1]), stalled.length, metrics);
    },
  );
});
