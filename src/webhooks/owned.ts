/**
 * The jobs this node queued, kept in memory until the queue shows them finished. A job is not
 * dropped until a receiver accepted it or it was dead-lettered: a batch the queue refused (Redis
 * down or hung) is queued at the next reconcile, and a job the queue lost (Redis restarted
 * empty) is queued again with the same id, body, signature and firstAt, so retries keep the
 * horizon and receivers can deduplicate by X-Chorus-Webhook-Id.
 */
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { WebhookJob, WebhookQueue } from "./types.ts";

/** Copies kept at most; beyond it the oldest are given up (logged, counted). */
export const MAX_OWNED_JOBS = 10_000;
/** Body characters kept at most (a job's body can reach a batch of large client events). */
export const MAX_OWNED_CHARS = 64 * 1024 * 1024;
/** Ids per status call, so one call never holds Redis for long. */
const STATUS_CHUNK = 500;
/** Enqueues in flight at once while catching up after an outage. */
const ENQUEUE_CHUNK = 100;

export class OwnedJobs {
  /** Jobs the queue has not accepted yet, by id, oldest first (Maps keep insertion order). */
  readonly #unqueued = new Map<string, WebhookJob>();
  /** Jobs the queue accepted and has not shown finished yet, oldest first. */
  readonly #queued = new Map<string, WebhookJob>();
  /** Sum of the kept bodies' lengths. */
  #chars = 0;
  #givenUp = 0;
  #givenUpUnqueued = 0;
  /** A give-up was logged since the last reconcile: the next ones wait for its summary. */
  #givenUpLogged = false;

  constructor(
    readonly queue: WebhookQueue,
    readonly log: Logger,
    readonly metrics: Metrics,
    readonly max = MAX_OWNED_JOBS,
    readonly maxChars = MAX_OWNED_CHARS,
  ) {}

  get size(): number {
    return this.#unqueued.size + this.#queued.size;
  }

  /** Copies the queue has not accepted yet: lost if the process ends now. */
  get unqueued(): number {
    return this.#unqueued.size;
  }

  /**
   * Keeps a copy of a job about to be queued. Beyond the cap the oldest queued copy is given up
   * (the queue still has that job; only a wipe would lose it), else the oldest unqueued one.
   */
  add(job: WebhookJob): void {
    this.#unqueued.set(job.id, job);
    this.#chars += job.body.length;
    while (this.size > this.max || (this.#chars > this.maxChars && this.size > 1)) {
      const from = this.#queued.size > 0 ? this.#queued : this.#unqueued;
      this.#drop(from, from.keys().next().value!);
      this.metrics.webhookCopiesGivenUp++;
      this.#givenUp++;
      if (from === this.#unqueued) this.#givenUpUnqueued++;
      // The first of a run is logged at once; the rest are summed up at the next reconcile.
      if (!this.#givenUpLogged) {
        this.#givenUpLogged = true;
        this.#report();
      }
    }
  }

  /** The queue accepted the job; a queue that cannot lose it needs no copy. */
  accepted(job: WebhookJob): void {
    if (!this.#unqueued.has(job.id)) return; // given up meanwhile, or accepted already
    if (this.queue.mayLoseJobs) {
      this.#unqueued.delete(job.id);
      this.#queued.set(job.id, job);
    } else {
      this.#drop(this.#unqueued, job.id);
    }
  }

  /**
   * Queues the copies the queue refused, forgets those it finished and queues again those it
   * lost. Rejects on the first failing call: the caller tries again later, nothing is dropped.
   */
  async reconcile(): Promise<void> {
    this.#report();
    this.#givenUpLogged = false;
    const refused = [...this.#unqueued.values()];
    await this.#enqueue(refused, (job) => this.accepted(job));
    if (refused.length > 0) {
      this.log.info("webhook jobs the queue had refused are queued", { jobs: refused.length });
    }
    if (!this.queue.mayLoseJobs) return;
    const ids = [...this.#queued.keys()];
    let lost = 0;
    for (let i = 0; i < ids.length; i += STATUS_CHUNK) {
      const chunk = ids.slice(i, i + STATUS_CHUNK);
      const statuses = await this.queue.status(chunk);
      const missing: WebhookJob[] = [];
      chunk.forEach((id, index) => {
        const job = this.#queued.get(id);
        if (!job) return;
        if (statuses[index] === "finished") this.#drop(this.#queued, id);
        else if (statuses[index] === "missing") missing.push(job);
      });
      lost += missing.length;
      await this.#enqueue(missing, () => {});
    }
    if (lost > 0) this.log.warn("webhook jobs lost by the queue were queued again", { jobs: lost });
  }

  async #enqueue(jobs: WebhookJob[], done: (job: WebhookJob) => void): Promise<void> {
    for (let i = 0; i < jobs.length; i += ENQUEUE_CHUNK) {
      await Promise.all(
        jobs.slice(i, i + ENQUEUE_CHUNK).map(async (job) => {
          await this.queue.enqueue(job); // same id, body, signature and firstAt as the first time
          done(job);
        }),
      );
    }
  }

  #drop(from: Map<string, WebhookJob>, id: string): void {
    const job = from.get(id);
    if (!job) return;
    from.delete(id);
    this.#chars -= job.body.length;
  }

  #report(): void {
    if (this.#givenUp === 0) return;
    this.log.error("webhook job copies given up: over the cap of jobs a node keeps", {
      jobs: this.#givenUp,
      // These were never queued: they are lost. The others are lost only if Redis loses them.
      never_queued: this.#givenUpUnqueued,
      max_jobs: this.max,
      max_chars: this.maxChars,
    });
    this.#givenUp = 0;
    this.#givenUpUnqueued = 0;
  }
}
