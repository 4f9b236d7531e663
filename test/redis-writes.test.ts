// Connection and subscription records go out in order, the ones made while a call is on its way
// together as the next call (src/cluster/redis-writes.ts); the rules themselves run against
// Redis in test/cluster-contract.test.ts.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { WriteBatch } from "../src/cluster/redis-writes.ts";

/** Answers each write with its last argument. */
const echo = (args: (string | number)[]) =>
  Promise.resolve(args.filter((a) => typeof a === "number"));

describe("batched Redis writes", { timeout: 5000 }, () => {
  it("a lone write goes at once; those made meanwhile go together next, in order", async () => {
    const calls: (string | number)[][] = [];
    const batch = new WriteBatch((args) => {
      calls.push(args);
      return echo(args);
    });
    const answers = await Promise.all([
      batch.write(["C+", "app", "1.1", 7]),
      batch.write(["S-", "app", "news", "1.1", 8]),
      batch.write(["C-", "app", 9]),
    ]);
    assert.deepEqual(calls, [
      ["C+", "app", "1.1", 7],
      ["S-", "app", "news", "1.1", 8, "C-", "app", 9],
    ]);
    assert.deepEqual(answers, [7, 8, 9], "each write gets its own answer");
  });

  it("a failed call fails it and every write waiting behind it", async () => {
    let fail: (error: Error) => void = () => {};
    const batch = new WriteBatch(() => new Promise((_, reject) => fail = reject));
    const results = Promise.allSettled([
      batch.write(["C+", "app", "1.1", -1]),
      batch.write(["S+", "app", "news", "1.1"]),
    ]);
    fail(new Error("Redis: Command timed out"));
    assert.deepEqual((await results).map((r) => r.status), ["rejected", "rejected"]);
  });

  it("a failed write is told to onFailed with its tag", async () => {
    const failed: (string | undefined)[] = [];
    const batch = new WriteBatch<string>(
      () => Promise.reject(new Error("Redis: Command timed out")),
      (tag) => failed.push(tag),
    );
    await Promise.allSettled([
      batch.write(["C+", "app", "1.1", -1]),
      batch.write(["S-", "app", "news", "1.1"], "the leave"),
    ]);
    assert.deepEqual(failed, [undefined, "the leave"]);
  });

  it("an answer that does not match the writes fails them", async () => {
    const batch = new WriteBatch(() => Promise.resolve([]));
    const results = await Promise.allSettled([batch.write(["C+", "app", "1.1", -1])]);
    assert.deepEqual(results.map((r) => r.status), ["rejected"]);
  });

  it("writes waiting behind a call go out in calls of at most 500", async () => {
    const sizes: number[] = [];
    const batch = new WriteBatch((args) => {
      sizes.push(args.length / 2);
      return echo(args);
    });
    await Promise.all(Array.from({ length: 1_200 }, (_, i) => batch.write(["C-", i])));
    assert.deepEqual(sizes, [1, 500, 500, 199]);
  });
});
