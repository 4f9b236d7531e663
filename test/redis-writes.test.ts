// The connection and subscription records of one loop turn go out as one call, in order
// (src/cluster/redis-writes.ts); the rules themselves run against Redis in
// test/cluster-contract.test.ts.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { WriteBatch } from "../src/cluster/redis-writes.ts";

describe("batched Redis writes", { timeout: 5000 }, () => {
  it("writes made in one turn go out as one call, in order, each with its own answer", async () => {
    const calls: (string | number)[][] = [];
    const batch = new WriteBatch((args) => {
      calls.push(args);
      return Promise.resolve(args.filter((a) => typeof a === "number"));
    });
    const answers = await Promise.all([
      batch.write(["C+", "app", "1.1", 7]),
      batch.write(["S-", "app", "news", "1.1", 8]),
      batch.write(["C-", "app", 9]),
    ]);
    assert.deepEqual(calls, [[
      "C+",
      "app",
      "1.1",
      7,
      "S-",
      "app",
      "news",
      "1.1",
      8,
      "C-",
      "app",
      9,
    ]]);
    assert.deepEqual(answers, [7, 8, 9]);
    await batch.write(["C-", "app", 10]);
    assert.equal(calls.length, 2, "a later turn is a new call");
  });

  it("a failed call fails every write in it", async () => {
    const batch = new WriteBatch(() => Promise.reject(new Error("Redis is not connected")));
    const results = await Promise.allSettled([
      batch.write(["C+", "app", "1.1", -1]),
      batch.write(["S+", "app", "news", "1.1"]),
    ]);
    assert.deepEqual(results.map((r) => r.status), ["rejected", "rejected"]);
  });

  it("a long turn is split into calls of at most 500 writes", async () => {
    const sizes: number[] = [];
    const batch = new WriteBatch((args) => {
      sizes.push(args.length / 2);
      return Promise.resolve(new Array(args.length / 2).fill(1));
    });
    await Promise.all(Array.from({ length: 1_200 }, (_, i) => batch.write(["C-", i])));
    assert.deepEqual(sizes, [500, 500, 200]);
  });
});
