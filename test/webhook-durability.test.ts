// Webhook durability: a job is not dropped until a receiver accepted it (2xx) or it was
// dead-lettered. In process, a dispatcher over a queue that refuses every call (Redis down or
// hung) or forgets everything (Redis restarted empty) must queue its own copies again, under the
// same id and bytes. In a cluster (A on the runner's runtime, B on the other, a private
// redis-server), events survive a Redis restarted empty, a hung Redis (SIGSTOP), and a node
// SIGKILLed while its jobs wait in Redis. Events are client events carrying a unique id;
// "arrived" means some POST carrying it was answered 2xx, and every POST carrying one event
// must have the same X-Chorus-Webhook-Id (receivers deduplicate by it).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Redis } from "ioredis";
import { type AppConfig, loadConfig } from "../src/config.ts";
import type { Fields, Logger } from "../src/log.ts";
import { Metrics } from "../src/metrics.ts";
import { WebhookDispatcher } from "../src/webhooks/index.ts";
import type { WebhookSettings } from "../src/webhooks/index.ts";
import { MemoryWebhookQueue } from "../src/webhooks/index.ts";
import type { WebhookJob, WebhookJobStatus, WebhookQueue } from "../src/webhooks/index.ts";
import {
  type ClusterNode,
  otherRuntime,
  runnerRuntime,
  type Runtime,
  startNode,
  stopAllNodes,
  waitReady,
} from "./support/nodes.ts";
import {
  adminClient,
  closeRedisClients,
  RedisServer,
  stopAllRedisServers,
} from "./support/redis.ts";
import { channelAuth } from "./support/sign.ts";
import { delay, until } from "./support/wait.ts";
import { closeAllReceivers, type HookEvent, WebhookReceiver } from "./support/webhook-receiver.ts";
import { closeAllRawSockets, connectSocket } from "./support/ws.ts";

const T = { timeout: 30000 };
const SUITE = { timeout: 120000 };
const APP = { id: "9001", key: "durable-key", secret: "durable-secret" } as const;

let seq = 0;
function tag(base: string): string {
  return `${base}${++seq}${Math.random().toString(36).slice(2, 7)}`;
}

/** The `id` a test put in a client event's data. */
function eventId(e: HookEvent): string | undefined {
  if (e.name !== "client_event" || typeof e.data !== "string") return undefined;
  const data = JSON.parse(e.data) as { id?: unknown };
  return typeof data.id === "string" ? data.id : undefined;
}

/**
 * Waits until every id arrived on `path` in a POST answered 2xx, then checks that all POSTs
 * carrying one event (retries, copies queued again) share one X-Chorus-Webhook-Id.
 */
async function allArrived(
  receiver: WebhookReceiver,
  path: string,
  ids: string[],
  timeout = 20000,
): Promise<void> {
  const missing = () => {
    const byEvent = receiver.postsByEvent(path, eventId);
    return ids.filter((id) => !byEvent.get(id)?.some((p) => p.status >= 200 && p.status < 300));
  };
  try {
    await until(() => missing().length === 0, `${ids.length} events on ${path}`, { timeout });
  } catch (err) {
    throw new Error(`${(err as Error).message}; missing: ${missing().join(" ")}`);
  }
  // At least once, but duplicates (accepted twice, same id) must stay rare: only races.
  const accepted = [...receiver.postsByEvent(path, eventId).values()]
    .map((posts) => posts.filter((p) => p.status >= 200 && p.status < 300).length);
  const twice = accepted.filter((n) => n > 1).length;
  assert.ok(twice <= ids.length / 10, `${twice} of ${ids.length} events accepted twice`);
  for (const [id, posts] of receiver.postsByEvent(path, eventId)) {
    const hookIds = new Set(posts.map((p) => p.headers["x-chorus-webhook-id"]));
    assert.equal(hookIds.size, 1, `event ${id} came under several webhook ids: ${[...hookIds]}`);
    assert.ok(new Set(posts.map((p) => p.rawBody)).size === 1, `event ${id}: bodies differ`);
  }
}

// ---------------------------------------------------------------------------------------------

/** A queue that may lose jobs: `down` refuses every call, `wipe()` forgets everything. */
class FragileQueue implements WebhookQueue {
  readonly mayLoseJobs = true;
  down = false;
  refusedEnqueues = 0;
  readonly jobs = new Map<string, { job: WebhookJob; dueAt: number }>();
  readonly finished = new Set<string>();

  #up(): Promise<void> {
    return this.down ? Promise.reject(new Error("queue down")) : Promise.resolve();
  }
  async enqueue(job: WebhookJob): Promise<void> {
    if (this.down) this.refusedEnqueues++;
    await this.#up();
    if (!this.jobs.has(job.id) && !this.finished.has(job.id)) {
      this.jobs.set(job.id, { job, dueAt: job.firstAt });
    }
  }
  async claim(now: number, leaseMs: number, max: number): Promise<WebhookJob[]> {
    await this.#up();
    const due = [...this.jobs.values()].filter((e) => e.dueAt <= now).slice(0, max);
    for (const e of due) e.dueAt = now + leaseMs;
    return due.map((e) => e.job);
  }
  async complete(job: WebhookJob): Promise<void> {
    await this.#up();
    this.jobs.delete(job.id);
    this.finished.add(job.id);
  }
  async retry(job: WebhookJob, dueAt: number): Promise<void> {
    await this.#up();
    this.jobs.set(job.id, { job: { ...job, attempts: job.attempts + 1 }, dueAt });
  }
  async deadLetter(job: WebhookJob): Promise<void> {
    await this.complete(job);
  }
  deadLetterCount(): Promise<number> {
    return Promise.resolve(0);
  }
  async status(ids: string[]): Promise<WebhookJobStatus[]> {
    await this.#up();
    return ids.map((id) =>
      this.jobs.has(id) ? "queued" : this.finished.has(id) ? "finished" : "missing"
    );
  }
  wipe(): void {
    this.jobs.clear();
    this.finished.clear();
  }
}

interface LogLine {
  level: string;
  msg: string;
  fields?: Fields;
}

function captureLog(lines: LogLine[]): Logger {
  const at = (level: string) => (msg: string, fields?: Fields) => {
    lines.push({ level, msg, fields });
  };
  return {
    level: "debug",
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    enabled: () => true,
  };
}

function appPosting(url: string): AppConfig {
  const file = JSON.stringify({ apps: [{ ...APP, webhooks: [{ url }] }] });
  return loadConfig({ CHORUS_CONFIG: "webhooks.json" }, () => file).apps[0];
}

describe("webhook dispatcher: owned copies (in process)", SUITE, () => {
  const SETTINGS: WebhookSettings = {
    batchMs: 0,
    batchSize: 1,
    retryBaseMs: 50,
    retryHorizonMs: 60_000,
    timeoutMs: 1000,
  };
  let receiver: WebhookReceiver;
  const running: WebhookDispatcher[] = [];

  before(async () => {
    receiver = await WebhookReceiver.start();
  });

  after(async () => {
    await Promise.all(running.map((d) => d.stop()));
    await closeAllReceivers();
  });

  function dispatcher(queue: WebhookQueue, lines: LogLine[], maxOwnedJobs?: number) {
    const metrics = new Metrics();
    const d = new WebhookDispatcher(queue, SETTINGS, captureLog(lines), metrics, Date.now, {
      reconcileMs: 100,
      maxOwnedJobs,
    });
    running.push(d);
    d.start();
    return { d, metrics };
  }

  function emit(d: WebhookDispatcher, app: AppConfig, ids: string[]): void {
    for (const id of ids) {
      d.emit(app, {
        name: "client_event",
        channel: "private-x",
        event: "client-x",
        data: `{"id":"${id}"}`,
      });
    }
  }

  it("a batch the queue refused is queued when it answers again, not dropped", T, async () => {
    const queue = new FragileQueue();
    const lines: LogLine[] = [];
    const { d } = dispatcher(queue, lines);
    const app = appPosting(receiver.url("/refused"));
    queue.down = true;
    const ids = [tag("r-"), tag("r-")];
    emit(d, app, ids);
    await until(() => queue.refusedEnqueues >= 2, "both batches refused");
    assert.equal(d.ownedJobs, 2);
    assert.ok(lines.some((l) => l.msg.startsWith("webhook queue unavailable")), "not logged");
    assert.equal(receiver.postsTo("/refused").length, 0);
    queue.down = false;
    await allArrived(receiver, "/refused", ids);
    await until(() => d.ownedJobs === 0, "the copies to be forgotten once finished");
    assert.ok(lines.some((l) => l.msg === "webhook queue reachable again"), "recovery not logged");
  });

  it(
    "a wiped queue gets the copies again (same id, body, firstAt); finished ones stay finished",
    T,
    async () => {
      const queue = new FragileQueue();
      const { d } = dispatcher(queue, []);
      const done = tag("done-");
      emit(d, appPosting(receiver.url("/before-wipe")), [done]);
      await allArrived(receiver, "/before-wipe", [done]);
      receiver.script("/wiped", [], 503);
      const ids = [tag("w-"), tag("w-"), tag("w-")];
      emit(d, appPosting(receiver.url("/wiped")), ids);
      await until(() => d.ownedJobs === 3, "the finished job's copy to be forgotten");
      await until(() => receiver.postsTo("/wiped").length >= 3, "first tries");
      const queued = new Map([...queue.jobs].map(([id, e]) => [id, e.job]));
      queue.wipe();
      await until(() => queue.jobs.size === 3, "the owner to queue its copies again");
      for (const [id, { job }] of queue.jobs) {
        const before = queued.get(id);
        assert.ok(before, `job ${id} was not queued before the wipe`);
        assert.deepEqual({ ...job, attempts: 0 }, { ...before, attempts: 0 });
      }
      receiver.script("/wiped", [], 200);
      await allArrived(receiver, "/wiped", ids);
      assert.equal(receiver.postsTo("/before-wipe").length, 1, receiver.describe("/before-wipe"));
    },
  );

  it("beyond the cap the oldest copies are given up, logged and counted", T, async () => {
    const queue = new FragileQueue();
    const lines: LogLine[] = [];
    const { d, metrics } = dispatcher(queue, lines, 3);
    queue.down = true;
    const ids = Array.from({ length: 5 }, () => tag("cap-"));
    emit(d, appPosting(receiver.url("/cap")), ids);
    await until(() => metrics.webhookCopiesGivenUp === 2, "two copies given up");
    assert.equal(d.ownedJobs, 3);
    await until(() => lines.some((l) => l.level === "error" && l.msg.includes("given up")), "log");
    queue.down = false;
    await allArrived(receiver, "/cap", ids.slice(2));
    assert.equal(receiver.postsTo("/cap").length, 3, receiver.describe("/cap"));
  });

  it("the memory queue keeps the jobs itself: no copies while a job is retried", T, async () => {
    const { d } = dispatcher(new MemoryWebhookQueue(), []);
    receiver.script("/memory", [503, 503], 200);
    const id = tag("m-");
    emit(d, appPosting(receiver.url("/memory")), [id]);
    await until(() => receiver.postsTo("/memory").length >= 1, "a first try");
    assert.equal(d.ownedJobs, 0);
    await allArrived(receiver, "/memory", [id]);
  });
});

// ---------------------------------------------------------------------------------------------

describe(`webhook durability in a cluster (A=${runnerRuntime}, B=${otherRuntime})`, SUITE, () => {
  const prefix = tag("t-durable-");
  let redis: RedisServer;
  let admin: Redis;
  let receiver: WebhookReceiver;
  let a: ClusterNode;
  let b: ClusterNode;
  const paths = ["/wipe", "/hang", "/kill"];

  function node(runtime: Runtime, name: string): Promise<ClusterNode> {
    const webhooks = paths.map((path) => ({
      url: receiver.url(path),
      events: ["client_event"],
      filter: { channel_prefix: `private${path.replace("/", "-")}-` },
    }));
    const app = { ...APP, client_events: { enabled: true, rate_limit: 1000 }, webhooks };
    return startNode({
      runtime,
      name,
      redisUrl: redis.url,
      prefix,
      leaseMs: 2000,
      config: { apps: [app] },
      env: {
        CHORUS_WEBHOOK_RETRY_BASE_MS: "200",
        CHORUS_WEBHOOK_TIMEOUT_MS: "1000",
        CHORUS_WEBHOOK_BATCH_SIZE: "1", // one job per event: each is queued, lost, owned alone
      },
    });
  }

  before(async () => {
    redis = await RedisServer.start();
    receiver = await WebhookReceiver.start();
    [a, b] = await Promise.all([node(runnerRuntime, "A"), node(otherRuntime, "B")]);
    await Promise.all([waitReady(a), waitReady(b)]);
    admin = adminClient(redis.url);
  });

  after(async () => {
    try {
      if (redis?.pid !== undefined) redis.signal("SIGCONT"); // a failed hang test
    } catch {
      // exited already
    }
    await closeAllRawSockets();
    await stopAllNodes();
    await closeAllReceivers();
    await closeRedisClients();
    await stopAllRedisServers();
  });

  /** Subscribes a socket on `via` to a private channel of `path`; the result sends `count`
   * client events with fresh ids (subscribing needs Redis, sending does not). */
  async function channelOf(via: ClusterNode, path: string): Promise<(count: number) => string[]> {
    const channel = tag(`private${path.replace("/", "-")}-`);
    const s = await connectSocket(via.wsUrl(APP.key));
    await s.subscribeOk(channel, { auth: channelAuth(APP, s.socketId!, channel) });
    return (count) => {
      const ids = Array.from({ length: count }, () => tag(`${via.name}-`));
      for (const id of ids) s.send({ event: "client-durable", channel, data: { id } });
      return ids;
    };
  }

  async function clientEvents(via: ClusterNode, path: string, count: number): Promise<string[]> {
    return (await channelOf(via, path))(count);
  }

  /** Waits until every id reached the receiver once (answered whatever): it was in Redis. */
  async function tried(path: string, ids: string[]): Promise<void> {
    await until(
      () => {
        const byEvent = receiver.postsByEvent(path, eventId);
        return ids.every((id) => byEvent.has(id));
      },
      `a first POST of ${ids.length} events on ${path}`,
      { timeout: 15000 },
    );
  }

  function logged(msg: string): boolean {
    return [a, b].some((n) => n.stdout.some((line) => line.includes(msg)));
  }

  async function queuedFor(path: string): Promise<number> {
    const jobs = await admin.hvals(`chorus:${prefix}:webhooks:jobs`);
    return jobs.filter((json) => (JSON.parse(json) as WebhookJob).url.endsWith(path)).length;
  }

  it(
    "Redis restarted empty while 60 jobs wait: the owners queue them again, all arrive",
    T,
    async () => {
      receiver.script("/wipe", [], 503);
      const ids = (await Promise.all([clientEvents(a, "/wipe", 30), clientEvents(b, "/wipe", 30)]))
        .flat();
      await tried("/wipe", ids);
      await redis.stopProcess("SIGKILL");
      await redis.startProcess(); // same port, empty: no persistence
      await until(async () => await queuedFor("/wipe") === 60, "the 60 jobs queued again", {
        timeout: 10000,
        interval: 100,
      });
      await until(() => logged("webhook jobs lost by the queue were queued again"), "the log");
      for (const json of await admin.hvals(`chorus:${prefix}:webhooks:jobs`)) {
        const job = JSON.parse(json) as WebhookJob;
        const body = JSON.parse(job.body) as { time_ms: number };
        assert.equal(job.firstAt, body.time_ms, `job ${job.id} lost its firstAt (horizon)`);
      }
      receiver.script("/wipe", [], 200);
      await allArrived(receiver, "/wipe", ids);
    },
  );

  it("Redis hung (SIGSTOP) while events are emitted: all arrive once it answers", T, async () => {
    await Promise.all([waitReady(a), waitReady(b)]);
    receiver.script("/hang", [], 200);
    const senders = await Promise.all([channelOf(a, "/hang"), channelOf(b, "/hang")]);
    redis.signal("SIGSTOP");
    const ids: string[] = [];
    try {
      for (const send of senders) ids.push(...send(20));
      await delay(3000); // the outage itself: longer than a command timeout
      assert.equal(receiver.postsTo("/hang").length, 0, "sent without a queue?");
    } finally {
      redis.signal("SIGCONT");
    }
    await allArrived(receiver, "/hang", ids);
    // Enqueues did time out (the queue's bound or the connection's commandTimeout), so the owners
    // queued their copies again (a timed-out command may also land late: enqueue is idempotent).
    await until(() => logged("webhook jobs the queue had refused are queued"), "a refused enqueue");
  });

  it("a node SIGKILLed while its jobs wait in Redis: a survivor sends them", T, async () => {
    await Promise.all([waitReady(a), waitReady(b)]);
    const c = await node(otherRuntime, "C");
    await waitReady(c);
    receiver.script("/kill", [], 503);
    const ids = await clientEvents(c, "/kill", 20);
    await tried("/kill", ids);
    c.kill("SIGKILL");
    await c.exited;
    receiver.script("/kill", [], 200);
    await allArrived(receiver, "/kill", ids);
  });
});
