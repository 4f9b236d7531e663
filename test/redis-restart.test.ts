// Redis restarted empty (no persistence, the default on Fly) while nodes keep their sockets: each
// node writes its whole share again within a lease, a presence member who left during the outage
// is announced as removed exactly once on the other node, a member who tried to join during the
// outage is told to reconnect (4200) and, once back, is announced as added exactly once, and the
// HTTP API converges to the truth. The bus grace is longer than the outage, so the sockets that
// did nothing during it stay connected.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { MAIN, standardApps } from "./support/apps.ts";
import { eventually } from "./support/cluster.ts";
import {
  type ClusterNode,
  otherRuntime,
  runnerRuntime,
  startNode,
  stopAllNodes,
  waitReady,
} from "./support/nodes.ts";
import {
  closeRedisClients,
  randomPrefix,
  RedisServer,
  stopAllRedisServers,
} from "./support/redis.ts";
import { Api, channelAuth } from "./support/sign.ts";
import { delay, until } from "./support/wait.ts";
import {
  closeAllRawSockets,
  connectSocket,
  dataOf,
  type Frame,
  type RawSocket,
} from "./support/ws.ts";

const CHANNEL = "presence-restart";

function join(s: RawSocket, userId: string): Promise<unknown> {
  const cd = JSON.stringify({ user_id: userId, user_info: { name: userId } });
  return s.subscribeOk(CHANNEL, {
    auth: channelAuth(MAIN, s.socketId!, CHANNEL, cd),
    channel_data: cd,
  });
}

/** How many `event` frames for `userId` the socket got, counting from log position `from`. */
function memberEvents(s: RawSocket, event: string, userId: string, from = 0): number {
  return s.log.slice(from).filter((f) =>
    f.event === event && f.channel === CHANNEL &&
    (dataOf(f) as { user_id?: string }).user_id === userId
  ).length;
}

async function users(node: ClusterNode): Promise<string[]> {
  const res = await new Api(node, MAIN).get(`/channels/${CHANNEL}/users`);
  if (res.status !== 200) return [`HTTP ${res.status}`];
  return (res.json as { users: { id: string }[] }).users.map((u) => u.id).sort();
}

async function connections(node: ClusterNode): Promise<unknown> {
  const res = await new Api(node, MAIN).get("/connections");
  return res.status === 200 ? res.json : `HTTP ${res.status}`;
}

describe(
  `Redis restarted empty (A=${runnerRuntime}, B=${otherRuntime})`,
  { timeout: 60000 },
  () => {
    let redis: RedisServer;
    let a: ClusterNode;
    let b: ClusterNode;

    before(async () => {
      redis = await RedisServer.start();
      const common = {
        redisUrl: redis.url,
        prefix: randomPrefix("restart"),
        leaseMs: 2000,
        config: { apps: standardApps() },
        env: { CHORUS_REDIS_TIMEOUT_MS: "500", CHORUS_BUS_GRACE_MS: "20000" },
      };
      [a, b] = await Promise.all([
        startNode({ ...common, runtime: runnerRuntime, name: "A" }),
        startNode({ ...common, runtime: otherRuntime, name: "B" }),
      ]);
      await Promise.all([a, b].map((node) => waitReady(node)));
    });
    after(async () => {
      await closeAllRawSockets();
      await stopAllNodes();
      await closeRedisClients();
      await stopAllRedisServers();
    });

    it("announces who left and who joined meanwhile once each, and converges", {
      timeout: 45000,
    }, async () => {
      const observer = await connectSocket(a.wsUrl(MAIN.key));
      const stayer = await connectSocket(b.wsUrl(MAIN.key));
      const leaver = await connectSocket(b.wsUrl(MAIN.key));
      const joiner = await connectSocket(b.wsUrl(MAIN.key));
      await join(observer, "observer");
      await join(stayer, "stayer");
      await join(leaver, "leaver");
      await eventually(() => users(a), ["leaver", "observer", "stayer"], "members before");

      const outageStart = observer.log.length;
      await redis.stopProcess("SIGKILL");
      await Promise.all([a, b].map((node) => waitReady(node, 503, 10000)));
      // Leaves while Redis is gone: the leave cannot be written now.
      await leaver.closeAndWait();
      // Joins while Redis is gone: the join cannot be written, so the socket is told to reconnect.
      const cd = JSON.stringify({ user_id: "joiner", user_info: {} });
      const auth = channelAuth(MAIN, joiner.socketId!, CHANNEL, cd);
      joiner.send({
        event: "pusher:subscribe",
        data: { channel: CHANNEL, auth, channel_data: cd },
      });
      const closed = await joiner.closed;
      assert.equal(closed.code, 4200, "a join that cannot be recorded is told to reconnect");
      // New sockets are refused while the node cannot reach the cluster.
      await assert.rejects(connectSocket(b.wsUrl(MAIN.key)));
      await delay(1000);
      await redis.startProcess(); // empty: no persistence
      await Promise.all([a, b].map((node) => waitReady(node, 200, 10000)));

      // The departure is announced once B has written its share again. If A was not subscribed
      // again yet when B published it, A sees the gap in the channel's sequence numbers and tells
      // its subscribers to reconnect (README, "When Redis fails"): either way the observer ends
      // up knowing, and nothing else is announced.
      await until(
        () =>
          memberEvents(observer, "pusher_internal:member_removed", "leaver") > 0 ||
          observer.closeInfo !== undefined,
        "member_removed for the member who left during the outage, or 4200",
        { timeout: 5000 },
      );
      // Within a lease every node has written its share again (without the observer if it was
      // told to reconnect: a raw socket does not come back by itself).
      const present = observer.closeInfo === undefined ? ["observer", "stayer"] : ["stayer"];
      await eventually(
        () => users(a),
        present,
        "members on A after the restart",
        4000,
      );
      await eventually(
        () => users(b),
        present,
        "members on B after the restart",
        4000,
      );
      await eventually(
        () => connections(a),
        { connections: present.length },
        "connections after the restart",
      );
      await eventually(() => connections(b), { connections: present.length }, "connections on B");
      let watcher = observer;
      if (observer.closeInfo !== undefined) {
        assert.equal(observer.closeInfo.code, 4200, "told to reconnect");
        watcher = await connectSocket(a.wsUrl(MAIN.key));
        const ok = await join(watcher, "observer");
        const ids = (dataOf(ok as Frame) as { presence: { ids: string[] } }).presence.ids;
        assert.deepEqual([...ids].sort(), ["observer", "stayer"], "a fresh member list");
      } else {
        assert.equal(memberEvents(observer, "pusher_internal:member_removed", "leaver"), 1);
      }
      const watchedFrom = watcher === observer ? outageStart : 0;

      // The joiner reconnects once Redis is back and is announced as it joins.
      const back = await connectSocket(b.wsUrl(MAIN.key));
      await join(back, "joiner");
      await watcher.next(
        (f) => f.event === "pusher_internal:member_added" && f.channel === CHANNEL,
        "member_added for the joiner",
      );
      await eventually(() => users(a), ["joiner", "observer", "stayer"], "members after the join");
      // A heartbeat or two later nothing was announced twice.
      await delay(1500);
      const since = (event: string, user: string) =>
        memberEvents(watcher, event, user, watchedFrom);
      assert.equal(since("pusher_internal:member_removed", "leaver"), watcher === observer ? 1 : 0);
      assert.equal(since("pusher_internal:member_added", "joiner"), 1);
      assert.equal(since("pusher_internal:member_removed", "stayer"), 0, "stayer not removed");
      assert.equal(since("pusher_internal:member_added", "stayer"), 0, "stayer not added again");
      assert.ok(stayer.isOpen, "a socket on the node that did not miss anything stayed connected");
    });
  },
);
