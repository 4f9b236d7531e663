// One set of rules for the cluster state: the same cases run against the local driver
// (src/cluster/local.ts, one process) and the Redis driver (src/cluster/redis-state.ts, Lua in
// src/cluster/redis-scripts.ts), so the two cannot drift apart. Each driver gets a fresh
// namespace; the count-announcement lock is expired by a driver hook (a fake clock for local,
// deleting the lock key for Redis) instead of waiting a second.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { LocalState } from "../src/cluster/local.ts";
import { RedisKeys } from "../src/cluster/keys.ts";
import { RedisLink } from "../src/cluster/redis-link.ts";
import { RedisState } from "../src/cluster/redis-state.ts";
import type { State } from "../src/cluster/types.ts";
import { deleteKeys, randomPrefix, REDIS_URL } from "./support/redis.ts";

interface Driver {
  name: string;
  state: State;
  /** Another node's view of the same shared state (for local, the one process's own). */
  peer: State;
  /** Lets the next count announcement of `channel` through (the once-a-second lock ran out). */
  expireCountLock(appId: string, channel: string): Promise<void>;
  dispose(): Promise<void>;
}

function localDriver(): Driver {
  let clock = 1_000_000;
  const state = new LocalState(() => clock);
  return {
    name: "local",
    state,
    peer: state,
    expireCountLock: () => {
      clock += 1_000;
      return Promise.resolve();
    },
    dispose: () => Promise.resolve(),
  };
}

function redisDriver(): Driver {
  const prefix = randomPrefix("contract");
  const keys = new RedisKeys(prefix);
  const commands = new Redis(REDIS_URL, { commandTimeout: 2000 });
  const link = new RedisLink(keys, "contract-node", commands);
  const peerLink = new RedisLink(keys, "contract-peer", commands);
  return {
    name: "redis",
    state: new RedisState(link, () => {}),
    peer: new RedisState(peerLink, () => {}),
    expireCountLock: async (appId, channel) => {
      await commands.del(keys.countLock(appId, channel));
    },
    dispose: async () => {
      await deleteKeys(commands, prefix);
      commands.disconnect();
    },
  };
}

const T = { timeout: 10000 };

for (const make of [localDriver, redisDriver]) {
  const driver = make();
  const { state } = driver;
  const app = "contract";

  describe(`cluster state contract: ${driver.name} driver`, { timeout: 30000 }, () => {
    after(() => driver.dispose());

    it("connections: counted once, capped by max, removed", T, async () => {
      assert.equal(await state.addConnection({ appId: app, socketId: "1.1", max: 2 }), true);
      assert.equal(
        await state.addConnection({ appId: app, socketId: "1.1", max: 2 }),
        true,
        "the same socket again",
      );
      assert.equal(await state.addConnection({ appId: app, socketId: "1.2", max: 2 }), true);
      assert.equal(
        await state.addConnection({ appId: app, socketId: "1.3", max: 2 }),
        false,
        "over max",
      );
      assert.equal(
        await state.addConnection({ appId: app, socketId: "1.2", max: 2 }),
        true,
        "at max, a counted socket",
      );
      assert.equal(await state.connectionCount(app), 2);
      await state.removeConnection({ appId: app, socketId: "1.2" });
      assert.equal(
        await state.addConnection({ appId: app, socketId: "1.3", max: 2 }),
        true,
        "room again",
      );
      assert.equal(await state.connectionCount(app), 2);
    });

    it("subscriptions: occupied on the first, vacated on the last", T, async () => {
      assert.deepEqual(
        await state.addSubscription({ appId: app, channel: "news", socketId: "2.1" }),
        { occupied: true },
      );
      assert.deepEqual(
        await state.addSubscription({ appId: app, channel: "news", socketId: "2.2" }),
        { occupied: false },
      );
      assert.deepEqual(await state.channel(app, "news"), { subscriptionCount: 2 });
      assert.deepEqual(
        await state.removeSubscription({ appId: app, channel: "news", socketId: "2.1" }),
        { vacated: false },
      );
      assert.deepEqual(
        await state.removeSubscription({ appId: app, channel: "news", socketId: "2.2" }),
        { vacated: true },
      );
      assert.deepEqual(await state.channel(app, "news"), { subscriptionCount: 0 });
    });

    it("presence: one member per user, first and last, full channel refused", T, async () => {
      const ch = "presence-room";
      const one = await state.joinPresence({
        appId: app,
        channel: ch,
        socketId: "3.1",
        userId: "u1",
        userInfo: { n: 1 },
        maxMembers: 2,
      });
      assert.ok(one.ok && one.first);
      const again = await state.joinPresence({
        appId: app,
        channel: ch,
        socketId: "3.2",
        userId: "u1",
        userInfo: { n: 1 },
        maxMembers: 2,
      });
      assert.ok(again.ok && !again.first, "a second socket of the same user");
      const two = await state.joinPresence({
        appId: app,
        channel: ch,
        socketId: "3.3",
        userId: "u2",
        userInfo: { n: 2 },
        maxMembers: 2,
      });
      assert.ok(two.ok && two.first);
      assert.deepEqual(
        await state.joinPresence({
          appId: app,
          channel: ch,
          socketId: "3.4",
          userId: "u3",
          userInfo: {},
          maxMembers: 2,
        }),
        {
          ok: false,
          reason: "full",
        },
      );
      assert.deepEqual(
        [...(await state.presenceMembers(app, ch)).members()].sort(),
        [["u1", { n: 1 }], ["u2", { n: 2 }]],
      );
      assert.deepEqual(
        await state.leavePresence({ appId: app, channel: ch, socketId: "3.1", userId: "u1" }),
        { last: false },
      );
      assert.deepEqual(
        await state.leavePresence({ appId: app, channel: ch, socketId: "3.2", userId: "u1" }),
        { last: true },
      );
      assert.deepEqual([...(await state.presenceMembers(app, ch)).ids()], ["u2"]);
    });

    // Each join answers the member list from a copy that joins and leaves keep up to date
    // (src/channels/roster.ts, src/cluster/redis-rosters.ts): it must equal the true list after
    // any order of joins, leaves and re-joins, on either node, including changed user_info.
    it(
      "presence: every join answers the true member list, in any order, on any node",
      T,
      async () => {
        const ch = "presence-orders";
        const model = new Map<string, { info: unknown; sockets: Set<string> }>();
        let seed = 7;
        const random = (n: number) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
        const nodes = [driver.state, driver.peer];
        for (let step = 0; step < 300; step++) {
          const node = nodes[random(2)];
          const userId = `u${random(6)}`;
          const socketId = `${random(2)}.${random(4)}`;
          const member = model.get(userId);
          if (random(3) > 0) {
            const info = { v: random(3) };
            const joined = await node.joinPresence({
              appId: app,
              channel: ch,
              socketId,
              userId,
              userInfo: info,
              maxMembers: 100,
            });
            assert.ok(joined.ok);
            assert.equal(joined.first, member === undefined, `step ${step}: first`);
            if (!member) model.set(userId, { info, sockets: new Set([socketId]) });
            else member.sockets.add(socketId);
            const expected = Object.fromEntries([...model].map(([id, m]) => [id, m.info]));
            const frame = JSON.parse(joined.roster.frame());
            const presence = JSON.parse(frame.data).presence;
            assert.deepEqual(presence.hash, expected, `step ${step}: join answers the true list`);
            assert.deepEqual([...presence.ids].sort(), Object.keys(expected).sort());
            assert.equal(presence.count, model.size);
            assert.deepEqual(Object.fromEntries(joined.roster.members()), expected);
          } else {
            const { last } = await node.leavePresence({
              appId: app,
              channel: ch,
              socketId,
              userId,
            });
            const held = member?.sockets.delete(socketId) ?? false;
            const gone = held && member!.sockets.size === 0;
            if (gone) model.delete(userId);
            if (held) assert.equal(last, gone, `step ${step}: last`);
          }
        }
        const listed = (await driver.peer.presenceMembers(app, ch)).members();
        assert.deepEqual(
          Object.fromEntries(listed),
          Object.fromEntries([...model].map(([id, m]) => [id, m.info])),
        );
      },
    );

    it("sign-in: online on the first socket, offline after the last", T, async () => {
      assert.deepEqual(await state.signIn({ appId: app, userId: "w1", socketId: "4.1" }), {
        first: true,
      });
      assert.deepEqual(await state.signIn({ appId: app, userId: "w1", socketId: "4.2" }), {
        first: false,
      });
      assert.deepEqual(await state.onlineUsers(app, ["w1", "w2"]), ["w1"]);
      assert.deepEqual(await state.signOut({ appId: app, userId: "w1", socketId: "4.1" }), {
        last: false,
      });
      assert.deepEqual(await state.signOut({ appId: app, userId: "w1", socketId: "4.2" }), {
        last: true,
      });
      assert.deepEqual(await state.onlineUsers(app, ["w1"]), []);
    });

    it("cache: the last event with its remaining TTL", T, async () => {
      assert.equal(await state.getCache(app, "cache-x"), undefined);
      await state.setCache({
        appId: app,
        channel: "cache-x",
        event: { event: "e", data: "{}" },
        ttlSeconds: 60,
      });
      assert.deepEqual(await state.getCache(app, "cache-x"), { event: "e", data: "{}", ttl: 60 });
    });

    it("channels: occupied ones, filtered by prefix, with counts", T, async () => {
      await state.addSubscription({ appId: app, channel: "list-a", socketId: "5.1" });
      await state.addSubscription({ appId: app, channel: "presence-list", socketId: "5.2" });
      await state.joinPresence({
        appId: app,
        channel: "presence-list",
        socketId: "5.2",
        userId: "p1",
        userInfo: {},
        maxMembers: 10,
      });
      const listed = await state.channels(app, "presence-list");
      assert.deepEqual([...listed], [["presence-list", { subscriptionCount: 1, userCount: 1 }]]);
      assert.ok((await state.channels(app)).has("list-a"));
    });

    it("count announcements: once a second, not repeated, 0 only after a count", T, async () => {
      const ch = "counted";
      // Nothing was ever announced and nobody is there: nothing to say.
      assert.deepEqual(await state.claimCountAnnouncement(app, ch), { kind: "unchanged" });
      await state.addSubscription({ appId: app, channel: ch, socketId: "6.1" });
      assert.deepEqual(await state.claimCountAnnouncement(app, ch), { kind: "announce", count: 1 });
      assert.deepEqual(await state.claimCountAnnouncement(app, ch), { kind: "unchanged" });
      await state.addSubscription({ appId: app, channel: ch, socketId: "6.2" });
      assert.deepEqual(await state.claimCountAnnouncement(app, ch), { kind: "wait" });
      await driver.expireCountLock(app, ch);
      assert.deepEqual(await state.claimCountAnnouncement(app, ch), { kind: "announce", count: 2 });
      await state.removeSubscription({ appId: app, channel: ch, socketId: "6.1" });
      await state.removeSubscription({ appId: app, channel: ch, socketId: "6.2" });
      // The once-a-second record survives the channel emptying.
      assert.deepEqual(await state.claimCountAnnouncement(app, ch), { kind: "wait" });
      await driver.expireCountLock(app, ch);
      assert.deepEqual(await state.claimCountAnnouncement(app, ch), { kind: "announce", count: 0 });
      assert.deepEqual(await state.claimCountAnnouncement(app, ch), { kind: "unchanged" });
      await state.addSubscription({ appId: app, channel: ch, socketId: "6.3" });
      assert.deepEqual(await state.claimCountAnnouncement(app, ch), { kind: "wait" });
    });
  });
}
