/**
 * Webhook delivery, at least once: events are filtered per webhook, batched per app and URL for
 * a short window, queued as a signed job, then sent by a worker that retries network errors, 5xx
 * and 429 with exponential backoff and jitter until a horizon, after which the job goes to the
 * dead-letter list. The node that queued a job keeps a copy until the queue shows it finished
 * (owned.ts), so a refused enqueue or a Redis wipe does not lose it. `emit` only pushes onto an
 * array: the socket hot path never waits.
 */
import { hmacSha256Hex } from "../auth.ts";
import type { AppConfig } from "../config.ts";
import { errorMessage, type Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { MAX_OWNED_JOBS, OwnedJobs } from "./owned.ts";
import type { WebhookEvent, WebhookJob, WebhookQueue, WebhookSettings } from "./types.ts";

type WebhookConfig = AppConfig["webhooks"][number];

const WORKER_TICK_MS = 100;
const MAX_RETRY_DELAY_MS = 60_000;
const CLAIM_BATCH = 20;
const STOP_GRACE_MS = 2_000;
/** How often a node checks its copies against the queue (bounds duplicates after a wipe). */
export const RECONCILE_MS = 2_000;

/** Overrides for tests; production uses the defaults. */
export interface DurabilityOptions {
  reconcileMs?: number;
  maxOwnedJobs?: number;
}

interface Pending {
  app: AppConfig;
  webhook: WebhookConfig;
  events: WebhookEvent[];
  timer: ReturnType<typeof setTimeout>;
}

export class WebhookDispatcher {
  readonly #pending = new Map<string, Pending>();
  readonly #inFlight = new Set<Promise<void>>();
  readonly #owned: OwnedJobs;
  readonly #reconcileMs: number;
  #worker: ReturnType<typeof setInterval> | undefined;
  #reconciler: ReturnType<typeof setInterval> | undefined;
  #working = false;
  #reconciling: Promise<void> | undefined;
  /** A queue call failed: reconcile as soon as a claim succeeds again (logged once per outage). */
  #degraded = false;
  /** No reconcile before this (ms) when a claim succeeds: a failing one is not retried per tick. */
  #reconcileNotBefore = 0;

  constructor(
    readonly queue: WebhookQueue,
    readonly settings: WebhookSettings,
    readonly log: Logger,
    readonly metrics: Metrics,
    readonly now: () => number = Date.now,
    durability: DurabilityOptions = {},
  ) {
    this.#owned = new OwnedJobs(queue, log, metrics, durability.maxOwnedJobs ?? MAX_OWNED_JOBS);
    this.#reconcileMs = durability.reconcileMs ?? RECONCILE_MS;
  }

  /** Jobs this node keeps a copy of (queued and not seen finished, or not queued yet). */
  get ownedJobs(): number {
    return this.#owned.size;
  }

  /** True when some webhook of the app wants this kind of event (cheap; call before building one). */
  wants(app: AppConfig, name: WebhookEvent["name"]): boolean {
    return app.webhooks.some((webhook) => !webhook.events || webhook.events.includes(name));
  }

  emit(app: AppConfig, event: WebhookEvent): void {
    app.webhooks.forEach((webhook, index) => {
      if (!matches(webhook, event)) return;
      const key = `${app.id}\n${index}`;
      let pending = this.#pending.get(key);
      if (!pending) {
        const timer = setTimeout(() => this.#flush(key), this.settings.batchMs);
        this.#pending.set(key, pending = { app, webhook, events: [], timer });
      }
      pending.events.push(event);
      if (pending.events.length >= this.settings.batchSize) this.#flush(key);
    });
  }

  start(): void {
    this.#worker = setInterval(() => this.#work(), WORKER_TICK_MS);
    this.#reconciler = setInterval(() => this.#reconcile(), this.#reconcileMs);
  }

  /**
   * Queues what is gathering (and what the queue refused before) and gives sends in flight a
   * moment, STOP_GRACE_MS in all. A send cut off here is not lost in a cluster: its claim lease
   * expires and another node sends it again. Copies of queued jobs go with the process.
   */
  async stop(): Promise<void> {
    clearInterval(this.#worker);
    clearInterval(this.#reconciler);
    const last = async () => {
      await Promise.allSettled([...this.#pending.keys()].map((key) => this.#flush(key)));
      if (this.#owned.unqueued > 0) await this.#reconcile();
      await Promise.allSettled([...this.#inFlight]);
    };
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      last(),
      new Promise((resolve) => timer = setTimeout(resolve, STOP_GRACE_MS)),
    ]);
    clearTimeout(timer);
    const lost = this.#owned.unqueued;
    if (lost > 0) {
      this.log.error("webhook jobs lost at stop: the queue refused them", { jobs: lost });
    }
  }

  /** Checks the copies against the queue; a failure leaves them for the next round. */
  #reconcile(): Promise<void> {
    this.#reconciling ??= this.#owned.reconcile().then(
      () => {
        if (this.#degraded) this.log.info("webhook queue reachable again", this.#counts());
        this.#degraded = false;
      },
      (error) => {
        this.#reconcileNotBefore = this.now() + WORKER_TICK_MS * 10;
        this.#unavailable("reconcile", error);
      },
    ).finally(() => {
      this.#reconciling = undefined;
    });
    return this.#reconciling;
  }

  /** Notes a failed queue call; only the first of an outage is logged (calls repeat per tick). */
  #unavailable(call: string, error: unknown): void {
    if (!this.#degraded) {
      this.log.warn("webhook queue unavailable; jobs are kept and queued when it answers", {
        call,
        error: errorMessage(error),
        ...this.#counts(),
      });
    }
    this.#degraded = true;
  }

  #counts(): { owned: number; unqueued: number } {
    return { owned: this.#owned.size, unqueued: this.#owned.unqueued };
  }

  #flush(key: string): Promise<void> {
    const pending = this.#pending.get(key);
    if (!pending) return Promise.resolve();
    this.#pending.delete(key);
    clearTimeout(pending.timer);
    const { app, webhook, events } = pending;
    const now = this.now();
    const job: WebhookJob = {
      id: crypto.randomUUID(),
      appId: app.id,
      url: webhook.url,
      headers: {
        ...webhook.headers,
        "X-Pusher-Key": app.key,
      },
      body: JSON.stringify({ time_ms: now, events }),
      attempts: 0,
      firstAt: now,
    };
    job.headers["X-Pusher-Signature"] = hmacSha256Hex(app.secret, job.body);
    this.#owned.add(job);
    return this.queue.enqueue(job).then(
      () => {
        this.#owned.accepted(job);
        return this.#work();
      },
      (error) => this.#unavailable("enqueue", error),
    );
  }

  async #work(): Promise<void> {
    if (this.#working) return;
    this.#working = true;
    try {
      const now = this.now();
      const jobs = await this.queue.claim(now, this.settings.timeoutMs * 2, CLAIM_BATCH);
      // Reachable again: queue what it refused, and again what it lost.
      if (this.#degraded && now >= this.#reconcileNotBefore) this.#reconcile();
      for (const job of jobs) {
        const sending = this.#send(job).finally(() => this.#inFlight.delete(sending));
        this.#inFlight.add(sending);
      }
    } catch (error) {
      this.#unavailable("claim", error);
    } finally {
      this.#working = false;
    }
  }

  async #send(job: WebhookJob): Promise<void> {
    let failure: string;
    let retryable = true;
    try {
      const response = await fetch(job.url, {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          "X-Chorus-Webhook-Id": job.id,
          ...job.headers,
        },
        body: job.body,
        signal: AbortSignal.timeout(this.settings.timeoutMs),
      });
      await response.body?.cancel();
      if (response.ok) {
        this.metrics.webhooksSent++;
        return await this.#settle(job, "complete", () => this.queue.complete(job, this.now()));
      }
      failure = `HTTP ${response.status}`;
      retryable = response.status >= 500 || response.status === 429;
    } catch (error) {
      failure = errorMessage(error);
    }
    this.metrics.webhookFailures++;
    const now = this.now();
    const delay = Math.min(MAX_RETRY_DELAY_MS, this.settings.retryBaseMs * 2 ** job.attempts);
    const dueAt = now + delay * (0.5 + Math.random() / 2);
    if (!retryable || dueAt - job.firstAt > this.settings.retryHorizonMs) {
      this.log.warn("webhook dead-lettered", { app: job.appId, url: job.url, id: job.id, failure });
      await this.#settle(job, "dead-letter", () => this.queue.deadLetter(job, failure, now));
      return;
    }
    this.log.info("webhook will be retried", {
      url: job.url,
      id: job.id,
      failure,
      attempt: job.attempts + 1,
    });
    await this.#settle(job, "retry", () => this.queue.retry(job, dueAt));
  }

  /**
   * Records a send's outcome. If the queue refuses, the job stays claimed in it: when the lease
   * ends it is sent again (same id), so nothing is lost, at worst sent twice.
   */
  async #settle(job: WebhookJob, what: string, call: () => Promise<void>): Promise<void> {
    try {
      await call();
    } catch (error) {
      this.log.warn(`webhook ${what} could not be recorded; the job comes back after its lease`, {
        id: job.id,
        error: errorMessage(error),
      });
      this.#unavailable(what, error);
    }
  }
}

function matches(webhook: WebhookConfig, event: WebhookEvent): boolean {
  if (webhook.events && !webhook.events.includes(event.name)) return false;
  const filter = webhook.filter;
  if (filter?.channel_prefix && !event.channel.startsWith(filter.channel_prefix)) return false;
  if (filter?.channel_suffix && !event.channel.endsWith(filter.channel_suffix)) return false;
  return true;
}
