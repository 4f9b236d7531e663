// Connections that never finish a request (slowloris) are dropped within the header timeout on
// Bun (Bun.serve `idleTimeout`). Deno.serve has no header timeout and no hook to add one: there
// such connections are held until the peer leaves or the descriptor limit is reached (README).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { standardApps } from "./support/apps.ts";
import { isBun, runtimeName } from "./support/server.ts";
import { until } from "./support/wait.ts";
import {
  type LimitedChorus,
  type RawConn,
  rawConnect,
  startLimited,
} from "./support/limited-server.ts";

const HEADER_TIMEOUT_MS = 10_000;

describe(`slowloris connections (${runtimeName})`, { timeout: 40000, skip: !isBun }, () => {
  let server: LimitedChorus;
  const conns: RawConn[] = [];

  before(async () => {
    server = await startLimited({ apps: standardApps() }, 1024);
  });
  after(async () => {
    for (const conn of conns) conn.socket.destroy();
    await server?.stop();
  });

  it(
    "silent and half-sent requests are closed within the header timeout",
    { timeout: 25000 },
    async () => {
      const baseline = server.fds();
      const started = Date.now();
      for (let i = 0; i < 10; i++) {
        conns.push(await rawConnect(server.port));
        conns.push(
          await rawConnect(server.port, "GET /app/main-key?protocol=7 HTTP/1.1\r\nHost: x\r\n"),
        );
      }
      await until(() => server.fds() >= baseline + 20, "each connection holding a descriptor");
      await Promise.all(conns.map((conn) => conn.closed));
      const took = Date.now() - started;
      assert.ok(took <= HEADER_TIMEOUT_MS + 5000, `closed after ${took} ms`);
      assert.ok(server.fds() <= baseline + 2, `${server.fds()} descriptors, baseline ${baseline}`);
    },
  );
});
