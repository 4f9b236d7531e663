/**
 * The cluster webhook queue in Redis: jobs in a hash, due times in a sorted set, dead letters in
 * a capped list, and the ids finished (sent or dead-lettered) in the last few minutes in a sorted
 * set trimmed by age. Claiming moves a job's due time past a lease, so a node that dies while
 * sending leaves it to be claimed again (at-least-once). Redis without persistence forgets all
 * of this on a restart: the nodes that queued the jobs queue them again (see owned.ts).
 */
import type { Redis } from "ioredis";
import { MAX_DEAD_LETTERS } from "./memory-queue.ts";
import type { RedisKeys } from "../cluster/keys.ts";
import {
  FINISHED_RETENTION_MS,
  type WebhookJob,
  type WebhookJobStatus,
  type WebhookQueue,
} from "./types.ts";

/**
 * A queue call still unanswered after this rejects (the dispatcher then tries again later), in
 * case the connection has no tighter `commandTimeout`: a hung Redis must never stall the worker.
 */
export const QUEUE_CALL_TIMEOUT_MS = 2_000;

/** KEYS: jobs, due, finished. ARGV: id, job JSON, due at → 1 when added. */
const ENQUEUE = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('ZSCORE', KEYS[3], ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), ARGV[1])
return 1
`;

/** KEYS: jobs, due. ARGV: now, lease ms, max → job JSON... */
const CLAIM = `
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local jobs = {}
for _, id in ipairs(ids) do
  local job = redis.call('HGET', KEYS[1], id)
  if job then
    redis.call('ZADD', KEYS[2], tonumber(ARGV[1]) + tonumber(ARGV[2]), id)
    jobs[#jobs + 1] = job
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return jobs
`;

/** KEYS: jobs, finished. ARGV: ids → "queued" | "finished" | "missing" per id. */
const STATUS = `
local out = {}
for i, id in ipairs(ARGV) do
  if redis.call('HEXISTS', KEYS[1], id) == 1 then
    out[i] = 'queued'
  elseif redis.call('ZSCORE', KEYS[2], id) then
    out[i] = 'finished'
  else
    out[i] = 'missing'
  end
end
return out
`;

export class RedisWebhookQueue implements WebhookQueue {
  readonly mayLoseJobs = true;
  readonly #jobs: string;
  readonly #due: string;
  readonly #dead: string;
  readonly #finished: string;

  constructor(readonly redis: Redis, keys: RedisKeys) {
    this.#jobs = keys.webhooks("jobs");
    this.#due = keys.webhooks("due");
    this.#dead = keys.webhooks("dead");
    this.#finished = keys.webhooks("done");
  }

  async enqueue(job: WebhookJob): Promise<void> {
    this.#connected();
    const keys = [this.#jobs, this.#due, this.#finished];
    await bounded(this.redis.eval(ENQUEUE, 3, ...keys, job.id, JSON.stringify(job), job.firstAt));
  }

  async claim(now: number, leaseMs: number, max: number): Promise<WebhookJob[]> {
    this.#connected();
    const jobs = await bounded(
      this.redis.eval(CLAIM, 2, this.#jobs, this.#due, now, leaseMs, max),
    );
    return (jobs as string[]).map((json) => JSON.parse(json) as WebhookJob);
  }

  async complete(job: WebhookJob, now: number): Promise<void> {
    await bounded(this.#finish(job, now).exec());
  }

  async retry(job: WebhookJob, dueAt: number): Promise<void> {
    const next = { ...job, attempts: job.attempts + 1 };
    await bounded(
      this.redis.multi()
        .hset(this.#jobs, job.id, JSON.stringify(next))
        .zadd(this.#due, dueAt, job.id)
        .exec(),
    );
  }

  async deadLetter(job: WebhookJob, reason: string, now: number): Promise<void> {
    await bounded(
      this.#finish(job, now)
        .lpush(this.#dead, JSON.stringify({ job, reason, at: now }))
        .ltrim(this.#dead, 0, MAX_DEAD_LETTERS - 1)
        .exec(),
    );
  }

  async deadLetterCount(): Promise<number> {
    return await bounded(this.redis.llen(this.#dead));
  }

  async status(ids: string[]): Promise<WebhookJobStatus[]> {
    if (ids.length === 0) return [];
    this.#connected();
    const reply = await bounded(this.redis.eval(STATUS, 2, this.#jobs, this.#finished, ...ids));
    return reply as WebhookJobStatus[];
  }

  /**
   * Refuses at once while disconnected, rather than parking the call in ioredis's offline queue
   * to run late: a late claim would hide jobs for a lease, and the owner's copy covers an
   * enqueue or status. Outcomes (complete, retry, dead letter) may run late: they still count.
   */
  #connected(): void {
    if (this.redis.status !== "ready") throw new Error("Redis is not connected");
  }

  /** Removes the job and marks it finished; the marks older than the retention go (bounded). */
  #finish(job: WebhookJob, now: number) {
    return this.redis.multi()
      .zrem(this.#due, job.id)
      .hdel(this.#jobs, job.id)
      .zadd(this.#finished, now, job.id)
      .zremrangebyscore(this.#finished, "-inf", now - FINISHED_RETENTION_MS)
      .pexpire(this.#finished, FINISHED_RETENTION_MS);
  }
}

/**
 * Rejects after QUEUE_CALL_TIMEOUT_MS. The command itself may still run when Redis answers:
 * every call here is safe to repeat or to land late (enqueue is a no-op for a known job).
 */
function bounded<T>(call: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error("webhook queue call timed out")),
      QUEUE_CALL_TIMEOUT_MS,
    );
  });
  return Promise.race([call, timeout]).finally(() => clearTimeout(timer));
}
