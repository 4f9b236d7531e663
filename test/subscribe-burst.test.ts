// A client that subscribes to many channels at once (pusher-js does so on every reconnect) is
// served in order and not cut off: the frame queue behind asynchronous steps is bounded by bytes,
// not by a count a legitimate reconnect exceeds. Checked on one node and in a Redis cluster,
// where every subscribe waits for Redis and the frames really queue.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { MAIN, standardApps } from "./support/apps.ts";
import { type ClusterNode, runnerRuntime, startNode, stopAllNodes } from "./support/nodes.ts";
import {
  adminClient,
  closeRedisClients,
  deleteKeys,
  randomPrefix,
  REDIS_URL,
} from "./support/redis.ts";
import { type Chorus, startChorus } from "./support/server.ts";
import { channelAuth } from "./support/sign.ts";
import { closeAllRawSockets, connectSocket, type RawSocket } from "./support/ws.ts";
import { until } from "./support/wait.ts";

const CHANNELS = 1_500;
/** The standard app's max_message_size (default). */
const MAIN_MAX_MESSAGE_SIZE = 10_000;

/** Sends every subscribe without waiting, then checks the answers came back in order. */
async function burst(socket: RawSocket): Promise<void> {
  const names: string[] = [];
  for (let i = 0; i < CHANNELS; i++) {
    // Every tenth is a private channel: its auth check runs between the others.
    const name = i % 10 === 0 ? `private-burst-${i}` : `burst-${i}`;
    names.push(name);
    const auth = name.startsWith("private-")
      ? { auth: channelAuth(MAIN, socket.socketId!, name) }
      : {};
    socket.send({ event: "pusher:subscribe", data: { channel: name, ...auth } });
  }
  const answered = () =>
    socket.log.filter((f) =>
      f.event === "pusher_internal:subscription_succeeded" ||
      f.event === "pusher:subscription_error" || f.event === "pusher:error"
    );
  await until(() => answered().length >= CHANNELS || !socket.isOpen, "every subscribe answered", {
    timeout: 30000,
  });
  assert.ok(socket.isOpen, `socket closed: ${JSON.stringify(socket.closeInfo)}`);
  const answers = answered();
  assert.deepEqual(
    answers.filter((f) => f.event !== "pusher_internal:subscription_succeeded").slice(0, 3),
    [],
    "every subscribe succeeds",
  );
  assert.deepEqual(answers.map((f) => f.channel), names, "answers come in the order asked");
}

describe(`a burst of ${CHANNELS} subscribes on one socket (${runnerRuntime})`, {
  timeout: 90000,
}, () => {
  const prefix = randomPrefix("burst");
  let single: Chorus;
  let node: ClusterNode;

  before(async () => {
    [single, node] = await Promise.all([
      startChorus({ config: { apps: standardApps() } }),
      startNode({
        runtime: runnerRuntime,
        name: "A",
        redisUrl: REDIS_URL,
        prefix,
        config: { apps: standardApps() },
      }),
    ]);
  });
  after(async () => {
    await closeAllRawSockets();
    await Promise.all([single?.stop(), stopAllNodes()]);
    await deleteKeys(adminClient(REDIS_URL), prefix).catch(() => {});
    await closeRedisClients();
  });

  it("one node: all succeed, in order", { timeout: 40000 }, async () => {
    await burst(await connectSocket(single.wsUrl(MAIN.key)));
  });

  it("a Redis cluster node: all succeed, in order", { timeout: 40000 }, async () => {
    await burst(await connectSocket(node.wsUrl(MAIN.key)));
  });

  it("an oversized frame behind queued subscribes closes 1009 in its turn", {
    timeout: 20000,
  }, async () => {
    const socket = await connectSocket(node.wsUrl(MAIN.key));
    for (let i = 0; i < 50; i++) {
      socket.send({ event: "pusher:subscribe", data: { channel: `before-big-${i}` } });
    }
    socket.send({ event: "pusher:ping", data: "x".repeat(MAIN_MAX_MESSAGE_SIZE + 1) });
    const closed = await socket.closed;
    assert.equal(closed.code, 1009, "closed for the size, not for the queue (4100)");
    // Bun stops the frame itself at maxPayloadLength, before buffering it, and closes at once;
    // on Deno, Chorus checks each frame in its turn, after the ones before it.
    if (runnerRuntime === "deno") {
      const answered = socket.log.filter((f) =>
        f.event === "pusher_internal:subscription_succeeded"
      );
      assert.equal(answered.length, 50, "the frames before it were answered first");
    }
  });
});
