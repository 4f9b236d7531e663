/** The single-node webhook queue: jobs in memory, for the life of the process. */
import type { WebhookJob, WebhookJobStatus, WebhookQueue } from "./types.ts";

/** Dead letters kept for inspection; older ones are dropped. */
export const MAX_DEAD_LETTERS = 1_000;

export class MemoryWebhookQueue implements WebhookQueue {
  /** Nothing but the process's end loses a job, so the dispatcher keeps no copies. */
  readonly mayLoseJobs = false;
  readonly #jobs = new Map<string, { job: WebhookJob; dueAt: number }>();
  readonly deadLetters: { job: WebhookJob; reason: string; at: number }[] = [];

  enqueue(job: WebhookJob): Promise<void> {
    if (!this.#jobs.has(job.id)) this.#jobs.set(job.id, { job, dueAt: job.firstAt });
    return Promise.resolve();
  }

  claim(now: number, leaseMs: number, max: number): Promise<WebhookJob[]> {
    const claimed: WebhookJob[] = [];
    for (const entry of this.#jobs.values()) {
      if (claimed.length >= max) break;
      if (entry.dueAt > now) continue;
      entry.dueAt = now + leaseMs;
      claimed.push(entry.job);
    }
    return Promise.resolve(claimed);
  }

  complete(job: WebhookJob, _now: number): Promise<void> {
    this.#jobs.delete(job.id);
    return Promise.resolve();
  }

  retry(job: WebhookJob, dueAt: number): Promise<void> {
    this.#jobs.set(job.id, { job: { ...job, attempts: job.attempts + 1 }, dueAt });
    return Promise.resolve();
  }

  deadLetter(job: WebhookJob, reason: string, now: number): Promise<void> {
    this.#jobs.delete(job.id);
    this.deadLetters.unshift({ job, reason, at: now });
    this.deadLetters.length = Math.min(this.deadLetters.length, MAX_DEAD_LETTERS);
    return Promise.resolve();
  }

  deadLetterCount(): Promise<number> {
    return Promise.resolve(this.deadLetters.length);
  }

  /** Jobs are only ever enqueued here, so one no longer held was sent or dead-lettered. */
  status(ids: string[]): Promise<WebhookJobStatus[]> {
    return Promise.resolve(ids.map((id) => this.#jobs.has(id) ? "queued" : "finished"));
  }
}
