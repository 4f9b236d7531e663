// Hostile clients cannot take a node's resources: at the open-file limit the node refuses new
// connections, logs and counts it, keeps serving its sockets and comes back; a socket Chorus
// closes is torn down within the close deadline even when the peer never answers; oversized
// frames of any type are closed with 1009.
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
  rawConnect,
  rawWebSocket,
  startLimited,
} from "./support/limited-server.ts";

const T = { timeout: 25000 };
const FILE_LIMIT = 160;

/** The descriptor count once it has not changed for half a second (closes still in flight). */
async function settledFds(server: LimitedChorus): Promise<number> {
  let last = server.fds();
  return await until(
    async () => {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const now = server.fds();
      const settled = now === last;
      last = now;
      return settled ? now : undefined;
    },
    "a settled descriptor count",
    { timeout: 10000 },
  );
}

describe(`resources under hostile clients (${runtimeName})`, { timeout: 90000 }, () => {
  let server: LimitedChorus;
  const conns: RawConn[] = [];
  const sockets: RawSocket[] = [];

  before(async () => {
    const apps = standardApps().map((app) =>
      app.id === MAIN.id ? { ...app, activity_timeout: 1, pong_timeout: 1 } : app
    );
    server = await startLimited({ apps }, FILE_LIMIT);
  });
  after(async () => {
    for (const conn of conns) conn.socket.destroy();
    for (const socket of sockets) socket.close();
    await server?.stop();
  });

  it("warns at start-up that the open-file limit is below the socket capacity", T, () => {
    const line = server.stdout.find((l) => l.includes("open file limit is below"));
    assert.ok(line, server.stdout.join("\n"));
    assert.equal(JSON.parse(line).limit, FILE_LIMIT);
  });

  it(
    "at the open-file limit: refuses, logs, counts, keeps its sockets, comes back",
    T,
    async () => {
      const subscriber = await connectSocket(server.wsUrl(MAIN.key));
      sockets.push(subscriber);
      await subscriber.subscribeOk("load");
      // More idle connections than the process has descriptors: accept must fail at some point.
      const flood: Promise<RawConn | undefined>[] = [];
      for (let i = 0; i < FILE_LIMIT + 40; i++) {
        flood.push(rawConnect(server.port).catch(() => undefined));
      }
      for (const conn of await Promise.all(flood)) if (conn) conns.push(conn);
      await until(
        () => server.stdout.some((l) => l.includes('"msg":"connection not accepted"')),
        "the accept error log line",
        { timeout: 8000 },
      );
      assert.ok(server.alive(), "the node is still running");
      for (const conn of conns.splice(0)) conn.socket.destroy();
      const up = await until(
        () => fetch(`${server.url}/up`).then((r) => r.ok, () => false),
        "/up answering again",
        { timeout: 10000, interval: 200 },
      );
      assert.equal(up, true);
      const api = new Api(server, MAIN);
      const sent = await api.trigger({ name: "after-load", channel: "load", data: "{}" });
      assert.equal(sent.status, 200, sent.text);
      await subscriber.nextEvent("after-load", "load");
      const metrics = await fetch(`${server.url}/metrics`).then((r) => r.text());
      const counted = /chorus_accept_errors_total\{reason="\w+"\} (\d+)/.exec(metrics);
      assert.ok(counted && Number(counted[1]) > 0, metrics);
      subscriber.close();
    },
  );

  it("a peer that never answers is torn down within the close deadline (4201)", T, async () => {
    const baseline = await settledFds(server);
    const silent: RawConn[] = [];
    for (let i = 0; i < 20; i++) {
      silent.push(await rawWebSocket(server.port, `/app/${MAIN.key}?protocol=7`));
    }
    conns.push(...silent);
    assert.ok(server.fds() >= baseline + 20, "each socket holds a descriptor");
    // activity 1 s + pong 1 s + the 3 s close deadline, on a once-a-second sweep.
    await until(() => server.fds() <= baseline + 2, "descriptors back to the baseline", {
      timeout: 12000,
      interval: 250,
    });
    await Promise.all(silent.map((conn) => conn.closed));
    for (const conn of silent) assert.equal(closeCodeIn(conn.received()), 4201);
  });

  it("an oversized binary frame is closed with 1009", T, async () => {
    const socket = await connectSocket(server.wsUrl(MAIN.key));
    sockets.push(socket);
    socket.sendRaw(new Uint8Array(64 * 1024).buffer);
    const { code } = await socket.closed;
    assert.equal(code, 1009);
  });
});
