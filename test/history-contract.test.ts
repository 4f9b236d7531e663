// One set of rules for recovery channels' histories (src/cluster/types.ts `History`): the same
// cases run against the memory driver (src/cluster/history.ts) and the Redis driver (the PUBLISH
// and HISTORY scripts of src/cluster/bus-scripts.ts, read by src/cluster/redis-history.ts). Each
// driver gets a fresh namespace; "the history ran out" is a driver hook (a fake clock past the
// ttl for memory, the keys' expiry for Redis) instead of a wait.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { MemoryHistory } from "../src/cluster/history.ts";
import { RedisKeys } from "../src/cluster/keys.ts";
import { RedisHistory } from "../src/cluster/redis-history.ts";
import { RedisLink } from "../src/cluster/redis-link.ts";
import type { History, KeepPolicy } from "../src/cluster/types.ts";
import { deleteKeys, randomPrefix, REDIS_URL } from "./support/redis.ts";

interface Driver {
  name: string;
  history: History;
  /** Publishes one event on a recovery channel, as the bus does. */
  keep(appId: string, channel: string, frame: string, except: string | undefined): Promise<void>;
  /** Nothing was published on the channel for its ttl: its history ran out. */
  runOut(appId: string, channel: string): Promise<void>;
  dispose(): Promise<void>;
}

const KEEP: KeepPolicy = { maxMessages: 3, ttlMs: 60_000 };

function memoryDriver(): Driver {
  let clock = 1_000_000;
  const history = new MemoryHistory(() => clock);
  return {
    name: "memory",
    history,
    keep: (appId, channel, frame, except) => {
      history.append(appId, channel, frame, except, KEEP);
      return Promise.resolve();
    },
    runOut: () => {
      clock += KEEP.ttlMs + 1;
      return Promise.resolve();
    },
    dispose: () => Promise.resolve(),
  };
}

function redisDriver(): Driver {
  const prefix = randomPrefix("history");
  const keys = new RedisKeys(prefix);
  const commands = new Redis(REDIS_URL, { commandTimeout: 2000 });
  const link = new RedisLink(keys, "history-node", commands);
  const ready = commands.ping();
  return {
    name: "redis",
    history: {
      read: async (...args) => {
        await ready;
        return await new RedisHistory(link).read(...args);
      },
    },
    keep: async (appId, channel, frame, except) => {
      await ready;
      const head = `history-node\n${except ?? ""}\n${Date.now()}\n`;
      const { maxMessages, ttlMs } = KEEP;
      await link.runOn(
        commands,
        "PUBLISH",
        appId,
        channel,
        head,
        frame,
        maxMessages,
        ttlMs,
        except ?? "",
      );
    },
    runOut: async (appId, channel) => {
      // What the keys' expiry (PEXPIRE ttl after the last event) leaves.
      await commands.del(
        `${keys.root}:${appId}:hmeta:${channel}`,
        `${keys.root}:${appId}:hist:${channel}`,
      );
    },
    dispose: async () => {
      await deleteKeys(commands, prefix);
      commands.disconnect();
    },
  };
}

const T = { timeout: 10000 };
const frame = (n: number) => JSON.stringify({ event: "e", channel: "c", data: String(n) });

for (const make of [memoryDriver, redisDriver]) {
  const driver = make();
  const { history } = driver;
  const app = "history";
  let n = 0;
  const fresh = (base = "orders") => `${base}-${driver.name}-${++n}`;
  const publish = async (channel: string, count: number, except?: string) => {
    for (let i = 1; i <= count; i++) await driver.keep(app, channel, frame(i), except);
  };

  describe(`history contract: ${driver.name} driver`, { timeout: 30000 }, () => {
    after(() => driver.dispose());

    it("serials count 1, 2, 3 in publish order; all of them after 0", T, async () => {
      const channel = fresh();
      await publish(channel, 3);
      const page = await history.read(app, channel, 0, KEEP);
      assert.notEqual(page.epoch, "");
      assert.equal(page.serial, 3);
      assert.equal(page.complete, true);
      assert.deepEqual(page.events.map((e) => [e.serial, JSON.parse(e.frame).data]), [
        [1, "1"],
        [2, "2"],
        [3, "3"],
      ]);
    });

    it("after a serial: only what followed it; after the last: nothing, complete", T, async () => {
      const channel = fresh();
      await publish(channel, 3);
      const after1 = await history.read(app, channel, 1, KEEP);
      assert.deepEqual(after1.events.map((e) => e.serial), [2, 3]);
      assert.equal(after1.complete, true);
      const after3 = await history.read(app, channel, 3, KEEP);
      assert.deepEqual(after3.events, []);
      assert.equal(after3.complete, true);
    });

    it("keeps max_messages: a serial before the kept ones is not complete", T, async () => {
      const channel = fresh();
      await publish(channel, 5);
      const all = await history.read(app, channel, 0, KEEP);
      assert.deepEqual(all.events.map((e) => e.serial), [3, 4, 5]);
      assert.equal(all.complete, false, "1 and 2 are gone");
      assert.equal((await history.read(app, channel, 1, KEEP)).complete, false);
      const after2 = await history.read(app, channel, 2, KEEP);
      assert.equal(after2.complete, true);
      assert.deepEqual(after2.events.map((e) => e.serial), [3, 4, 5]);
    });

    it("keeps the socket each event was not sent to", T, async () => {
      const channel = fresh();
      await publish(channel, 1, "7.7");
      await publish(channel, 1);
      const page = await history.read(app, channel, 0, KEEP);
      assert.deepEqual(page.events.map((e) => e.exceptSocketId), ["7.7", undefined]);
    });

    it("a channel with no history: no epoch, nothing kept", T, async () => {
      const channel = fresh();
      assert.deepEqual(await history.read(app, channel, 0, KEEP), {
        epoch: "",
        serial: 0,
        events: [],
        complete: true,
      });
      assert.equal((await history.read(app, channel, 4, KEEP)).complete, false);
    });

    it("a serial past the last (another epoch's) is not complete", T, async () => {
      const channel = fresh();
      await publish(channel, 2);
      const page = await history.read(app, channel, 9, KEEP);
      assert.equal(page.complete, false);
      assert.deepEqual(page.events, []);
    });

    it("channels and apps keep apart", T, async () => {
      const a = fresh();
      const b = fresh();
      await publish(a, 2);
      await publish(b, 1);
      assert.equal((await history.read(app, a, 0, KEEP)).serial, 2);
      assert.equal((await history.read(app, b, 0, KEEP)).serial, 1);
      assert.equal((await history.read("other-app", a, 0, KEEP)).epoch, "");
    });

    it("a history that ran out starts again at 1 in a new epoch", T, async () => {
      const channel = fresh();
      await publish(channel, 2);
      const before = await history.read(app, channel, 0, KEEP);
      await driver.runOut(app, channel);
      assert.equal((await history.read(app, channel, 0, KEEP)).epoch, "", "nothing left");
      await publish(channel, 1);
      const again = await history.read(app, channel, 0, KEEP);
      assert.notEqual(again.epoch, before.epoch);
      assert.deepEqual(again.events.map((e) => e.serial), [1]);
    });
  });
}

describe("history: memory driver's clock", { timeout: 5000 }, () => {
  it("events older than the ttl are gone, the newer kept", () => {
    let clock = 0;
    const history = new MemoryHistory(() => clock);
    const keep = { maxMessages: 10, ttlMs: 1_000 };
    history.append("a", "c", "one", undefined, keep);
    clock = 600;
    history.append("a", "c", "two", undefined, keep);
    clock = 1_200;
    return history.read("a", "c", 0, keep).then((page) => {
      assert.deepEqual(page.events.map((e) => e.frame), ["two"]);
      assert.equal(page.complete, false);
    });
  });
});
