// The fault suite: each fault runs against its own redis-server (and free ports) with a publisher
// sending numbered events through both nodes and subscribers that reconnect like Pusher clients;
// the accounting (test/support/fault-harness.ts) checks answers, deliveries, duplicates,
// convergence of cluster state and that no node crashed, and prints one FAULT-SUMMARY line.
// Pairings: P and Q swap between `bun test` and `deno test` (see PAIR_P), so every fault runs on
// both runtimes and at least once on a Bun+Deno pair. Node A (the one a proxy or kill hits) is on
// the runner's runtime; B connects to Redis directly.
import { after, describe, it } from "node:test";
import {
  FaultCluster,
  type FaultOptions,
  PAIR_P,
  PAIR_Q,
  pairLabel,
} from "./support/fault-harness.ts";
import { delay } from "./support/wait.ts";

const TEST_TIMEOUT = 60000;

/** One describe per fault, so each can be run alone by name; the cluster is disposed in `after`. */
function fault(
  title: string,
  o: FaultOptions,
  inject: (c: FaultCluster) => Promise<void>,
): void {
  describe(`fault: ${title} (${o.fault}; ${pairLabel(o.pair)})`, { timeout: TEST_TIMEOUT }, () => {
    let c: FaultCluster | undefined;
    after(() => c?.dispose());
    it("answers in time, delivers every 200 event, converges, nobody crashes", {
      timeout: TEST_TIMEOUT,
    }, async () => {
      c = await FaultCluster.start(o);
      const cluster = c;
      await cluster.run(() => inject(cluster));
    });
  });
}

// 1. Redis killed and started again, empty, on the same port.
fault("Redis SIGKILLed, back empty after 4 s", { fault: "redis-kill", pair: PAIR_P }, async (c) => {
  await c.redis.stopProcess("SIGKILL");
  await delay(4000);
  await c.redis.startProcess();
});

// 2. Redis hung: no RST, no answers.
fault("Redis frozen (SIGSTOP) for 5 s", { fault: "redis-freeze", pair: PAIR_Q }, async (c) => {
  c.freezeRedis();
  await delay(5000);
  c.thawRedis();
});

// 3. Redis restarted (SIGTERM: a clean shutdown, unlike 1.), empty, after three downtimes.
for (const [downMs, pair] of [[1000, PAIR_P], [3000, PAIR_Q], [6000, PAIR_P]] as const) {
  fault(
    `Redis restarted empty after ${downMs / 1000} s down`,
    { fault: `redis-restart-${downMs / 1000}s`, pair },
    async (c) => {
      await c.redis.stopProcess("SIGTERM");
      await delay(downMs);
      await c.redis.startProcess();
    },
  );
}

// 4. Node A's Redis traffic blackholed (pause) or reset for 8 s; B is unaffected.
fault("node A's Redis traffic blackholed for 8 s", {
  fault: "proxy-pause",
  pair: PAIR_Q,
  proxyA: true,
}, async (c) => {
  c.proxy!.pause();
  await delay(8000);
  c.proxy!.heal();
});

fault("node A's Redis connections reset and refused for 8 s", {
  fault: "proxy-reset",
  pair: PAIR_P,
  proxyA: true,
}, async (c) => {
  c.proxy!.reset();
  await delay(8000);
  c.proxy!.heal();
});

// 5. Node A SIGKILLed while presence members join and leave on both nodes; a replacement (same
// runtime, new port, as a supervisor would start) comes up 2.5 s later, about when the dead node's
// lease runs out; the heal is when it is ready. (6. webhooks during a kill:
// test/webhook-durability.test.ts.)
fault("node A SIGKILLed during presence churn", {
  fault: "node-kill",
  pair: PAIR_Q,
  churn: true,
}, async (c) => {
  await c.killNode(0);
  await delay(2500);
  await c.replaceNode(0);
});
