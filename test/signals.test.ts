// Signals as README promises: SIGINT drains like SIGTERM (4200 to every socket, exit 0), and a
// second signal during a drain exits at once.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { MAIN, standardApps } from "./support/apps.ts";
import { jsonLines } from "./support/server.ts";
import { runnerRuntime, startNode, stopAllNodes } from "./support/nodes.ts";
import {
  adminClient,
  closeRedisClients,
  deleteKeys,
  randomPrefix,
  REDIS_URL,
} from "./support/redis.ts";
import { closeAllRawSockets, connectSocket } from "./support/ws.ts";
import { until, withTimeout } from "./support/wait.ts";

const prefix = randomPrefix("signals");

function start(drainMs: number) {
  return startNode({
    runtime: runnerRuntime,
    name: "A",
    redisUrl: REDIS_URL,
    prefix,
    config: { apps: standardApps() },
    env: { CHORUS_DRAIN_MS: String(drainMs) },
  });
}

describe(`signals (${runnerRuntime})`, { timeout: 60000 }, () => {
  after(async () => {
    await closeAllRawSockets();
    await stopAllNodes();
    await deleteKeys(adminClient(REDIS_URL), prefix).catch(() => {});
    await closeRedisClients();
  });

  it(
    "SIGINT drains: every socket gets 4200, then the process exits 0",
    { timeout: 20000 },
    async () => {
      const node = await start(500);
      const sockets = await Promise.all([1, 2, 3].map(() => connectSocket(node.wsUrl(MAIN.key))));
      node.kill("SIGINT");
      for (const socket of sockets) {
        const error = await socket.nextError(5000);
        assert.equal(error.code, 4200);
        assert.equal((await socket.closed).code, 4200);
      }
      assert.equal(await withTimeout(node.exited, 10000, "exit after the drain"), 0);
      const stopping = jsonLines(node.stdout).find((line) => line?.msg === "stopping");
      assert.equal(stopping?.signal, "SIGINT", node.stdout.join("\n"));
    },
  );

  it("a second signal during the drain exits at once", { timeout: 20000 }, async () => {
    const node = await start(30_000);
    // Enough sockets that the drain is spread over its 30 s window.
    await Promise.all([1, 2, 3, 4].map(() => connectSocket(node.wsUrl(MAIN.key))));
    node.kill("SIGTERM");
    await until(
      () => jsonLines(node.stdout).some((line) => line?.msg === "stopping"),
      "the drain to start",
      { timeout: 5000 },
    );
    const second = Date.now();
    node.kill("SIGINT");
    const code = await withTimeout(node.exited, 5000, "exit on the second signal");
    assert.equal(code, 1, "a second signal exits with 1, not after the drain");
    assert.ok(Date.now() - second < 3000, "at once");
  });
});
