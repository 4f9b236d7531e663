/**
 * The cluster webhook queue in Redis: jobs in a hash, due times in a sorted set, dead letters in
 * a capped list. Claiming moves a job's due time past a lease, so a node that dies while sending
 * leaves it to be claimed again (at-least-once).
 */
import type { Redis } from "ioredis";
import { MAX_DEAD_LETTERS } from "./memory-queue.ts";
import type { WebhookJob, WebhookQueue } from "./types.ts";

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

export class RedisWebhookQueue implements WebhookQueue {
  readonly #jobs: string;
  readonly #due: string;
  readonly #dead: string;

  constructor(readonly redis: Redis, root: string) {
    this.#jobs = `${root}:webhooks:jobs`;
    this.#due = `${root}:webhooks:due`;
    this.#dead = `${root}:webhooks:dead`;
  }

  async enqueue(job: WebhookJob): Promise<void> {
    await this.redis.multi()
      .hset(this.#jobs, job.id, JSON.stringify(job))
      .zadd(this.#due, job.firstAt, job.id)
      .exec();
  }

  async claim(now: number, leaseMs: number, max: number): Promise<WebhookJob[]> {
    const jobs = await this.redis.eval(CLAIM, 2, this.#jobs, this.#due, now, leaseMs, max);
    return (jobs as string[]).map((json) => JSON.parse(json) as WebhookJob);
  }

  async complete(job: WebhookJob): Promise<void> {
    await this.redis.multi().zrem(this.#due, job.id).hdel(this.#jobs, job.id).exec();
  }

  async retry(job: WebhookJob, dueAt: number): Promise<void> {
    const next = { ...job, attempts: job.attempts + 1 };
    await this.redis.multi()
      .hset(this.#jobs, job.id, JSON.stringify(next))
      .zadd(this.#due, dueAt, job.id)
      .exec();
  }

  async deadLetter(job: WebhookJob, reason: string, now: number): Promise<void> {
    await this.redis.multi()
      .zrem(this.#due, job.id)
      .hdel(this.#jobs, job.id)
      .lpush(this.#dead, JSON.stringify({ job, reason, at: now }))
      .ltrim(this.#dead, 0, MAX_DEAD_LETTERS - 1)
      .exec();
  }

  async deadLetterCount(): Promise<number> {
    return await this.redis.llen(this.#dead);
  }
}
