// One set of rules for resumable sessions (src/cluster/types.ts `Sessions`): the same cases run
// against the memory driver (src/cluster/sessions.ts) and the Redis driver (the scripts of
// src/cluster/session-scripts.ts). "The ttl ran out" is a driver hook (a fake clock for memory,
// the key's expiry for Redis); a holder's node is alive while its lease key is.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisKeys } from "../src/cluster/keys.ts";
import { RedisLink } from "../src/cluster/redis-link.ts";
import { RedisSessions } from "../src/cluster/redis-sessions.ts";
import { MemorySessions } from "../src/cluster/sessions.ts";
import type { SessionRecord, Sessions } from "../src/cluster/types.ts";
import { deleteKeys, randomPrefix, REDIS_URL } from "./support/redis.ts";

interface Driver {
  name: string;
  sessions: Sessions;
  /** The session's ttl ran out with nothing saved. */
  expire(appId: string, sessionId: string): Promise<void>;
  dispose(): Promise<void>;
}

const TTL = 60_000;

function memoryDriver(): Driver {
  let clock = 1_000_000;
  return {
    name: "memory",
    sessions: new MemorySessions(() => clock),
    expire: () => {
      clock += TTL + 1;
      return Promise.resolve();
    },
    dispose: () => Promise.resolve(),
  };
}

function redisDriver(): Driver {
  const prefix = randomPrefix("sessions");
  const keys = new RedisKeys(prefix);
  const commands = new Redis(REDIS_URL, { commandTimeout: 2000 });
  const link = new RedisLink(keys, "session-node", commands);
  // The node is alive: its lease is there (src/cluster/redis.ts renews it).
  const ready = commands.set(`${keys.root}:lease:session-node`, "1", "PX", 60_000);
  const sessions = new RedisSessions(link);
  return {
    name: "redis",
    sessions: {
      claim: async (...args) => {
        await ready;
        return await sessions.claim(...args);
      },
      save: async (...args) => {
        await ready;
        return await sessions.save(...args);
      },
    },
    expire: async (appId, sessionId) => {
      await commands.del(`${keys.root}:${appId}:session:${sessionId}`);
    },
    dispose: async () => {
      await deleteKeys(commands, prefix);
      commands.disconnect();
    },
  };
}

const T = { timeout: 10000 };
const record = (serial: number, ...sockets: string[]): SessionRecord => ({
  channels: { "orders-1": { epoch: "e1", serial } },
  sockets,
});

for (const make of [memoryDriver, redisDriver]) {
  const driver = make();
  const { sessions } = driver;
  const app = "sessions";
  let n = 0;
  const fresh = () => `session-${driver.name}-${++n}`;

  describe(`session contract: ${driver.name} driver`, { timeout: 30000 }, () => {
    after(() => driver.dispose());

    it("a new session has no record; what its socket saves the next socket gets", T, async () => {
      const id = fresh();
      assert.equal(await sessions.claim(app, id, "1.1", TTL), undefined);
      await sessions.save(app, id, "1.1", record(4, "1.1"), TTL, true);
      assert.deepEqual(await sessions.claim(app, id, "1.2", TTL), record(4, "1.1"));
    });

    it("a session held by an open socket is not resumed by another", T, async () => {
      const id = fresh();
      await sessions.claim(app, id, "2.1", TTL);
      await sessions.save(app, id, "2.1", record(1, "2.1"), TTL, false);
      assert.equal(await sessions.claim(app, id, "2.2", TTL), "held");
      await sessions.save(app, id, "2.2", record(9, "2.2"), TTL, true);
      await sessions.save(app, id, "2.1", record(2, "2.1"), TTL, true);
      assert.deepEqual(
        await sessions.claim(app, id, "2.3", TTL),
        record(2, "2.1"),
        "the second socket's save did not count",
      );
    });

    it("the holder may claim again; saves without letting go keep it held", T, async () => {
      const id = fresh();
      await sessions.claim(app, id, "3.1", TTL);
      await sessions.save(app, id, "3.1", record(5, "3.1"), TTL, false);
      assert.deepEqual(await sessions.claim(app, id, "3.1", TTL), record(5, "3.1"));
      assert.equal(await sessions.claim(app, id, "3.2", TTL), "held");
    });

    it("a session whose ttl ran out is new again", T, async () => {
      const id = fresh();
      await sessions.claim(app, id, "4.1", TTL);
      await sessions.save(app, id, "4.1", record(3, "4.1"), TTL, true);
      await driver.expire(app, id);
      assert.equal(await sessions.claim(app, id, "4.2", TTL), undefined);
    });

    it("apps keep their sessions apart", T, async () => {
      const id = fresh();
      await sessions.claim(app, id, "5.1", TTL);
      await sessions.save(app, id, "5.1", record(1, "5.1"), TTL, true);
      assert.equal(await sessions.claim("other-app", id, "5.2", TTL), undefined);
    });
  });
}

describe("session contract: redis driver, a dead node's socket", { timeout: 10000 }, () => {
  it("holds nothing once its node's lease is gone", T, async () => {
    const prefix = randomPrefix("sessions-dead");
    const keys = new RedisKeys(prefix);
    const commands = new Redis(REDIS_URL, { commandTimeout: 2000 });
    try {
      await commands.ping();
      const dead = new RedisSessions(new RedisLink(keys, "dead-node", commands));
      const alive = new RedisSessions(new RedisLink(keys, "alive-node", commands));
      await dead.claim("a", "s", "6.1", TTL);
      await dead.save("a", "s", "6.1", record(7, "6.1"), TTL, false);
      // No lease key for dead-node: it died without letting go.
      assert.deepEqual(await alive.claim("a", "s", "7.1", TTL), record(7, "6.1"));
    } finally {
      await deleteKeys(commands, prefix);
      commands.disconnect();
    }
  });
});
