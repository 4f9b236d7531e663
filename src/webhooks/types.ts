/** Webhooks (Pusher's format): the events, the queued jobs, and where jobs wait. */

export const WEBHOOK_EVENTS = [
  "channel_occupied",
  "channel_vacated",
  "member_added",
  "member_removed",
  "client_event",
  "cache_miss",
  "subscription_count",
] as const;

export type WebhookEventName = (typeof WEBHOOK_EVENTS)[number];

/** One entry of a webhook body's `events`. */
export interface WebhookEvent {
  name: WebhookEventName;
  channel: string;
  [field: string]: unknown;
}

/** One signed POST, retried as a unit so its id, body and signature stay the same. */
export interface WebhookJob {
  id: string;
  appId: string;
  url: string;
  headers: Record<string, string>;
  /** The exact bytes that are signed and sent. */
  body: string;
  attempts: number;
  /** When the job was first queued (ms); retries stop after the horizon. */
  firstAt: number;
}

/** Where a job stands in the queue: waiting or being sent, done (sent or dead-lettered), unknown. */
export type WebhookJobStatus = "queued" | "finished" | "missing";

/**
 * Storage of jobs: memory on one node, Redis in a cluster. Every call may reject (Redis down or
 * hung past its command timeout); callers treat that as "try again later", never as "drop".
 */
export interface WebhookQueue {
  /**
   * False when the queue keeps every job it accepted until it is finished (memory). True when it
   * can lose them (Redis restarted without persistence): the node that queued a job then keeps
   * a copy until `status` says finished, and queues it again when `status` says missing.
   */
  readonly mayLoseJobs: boolean;
  /**
   * Adds the job, due at `firstAt`, unless the queue holds it or (if it may lose jobs) finished
   * it recently: queuing a copy again (after a timed-out call or a lost queue) never resets or
   * revives it. A queue that cannot lose jobs never refuses one, so it is asked once per job.
   */
  enqueue(job: WebhookJob): Promise<void>;
  /** Jobs due by `now`, hidden from other claimers for `leaseMs` while they are sent. */
  claim(now: number, leaseMs: number, max: number): Promise<WebhookJob[]>;
  /** A receiver accepted the job: it leaves the queue, marked finished. */
  complete(job: WebhookJob, now: number): Promise<void>;
  retry(job: WebhookJob, dueAt: number): Promise<void>;
  /** The job is given up on: it moves to the dead-letter list, marked finished. */
  deadLetter(job: WebhookJob, reason: string, now: number): Promise<void>;
  deadLetterCount(): Promise<number>;
  /**
   * The status of each id (same order). "finished" is remembered for `FINISHED_RETENTION_MS`; a
   * queue that cannot lose jobs reports every job it no longer holds as finished.
   */
  status(ids: string[]): Promise<WebhookJobStatus[]>;
}

/**
 * How long a finished id stays observable: an owner that could not reach the queue for longer
 * than this may queue a finished job again (sent twice, same id).
 */
export const FINISHED_RETENTION_MS = 5 * 60_000;

export interface WebhookSettings {
  /** How long events gather before a batch is queued. */
  batchMs: number;
  /** Most events in one POST. */
  batchSize: number;
  /** First retry delay; doubles per attempt up to a minute. */
  retryBaseMs: number;
  /** After this long since first queued, a failing job goes to the dead-letter list. */
  retryHorizonMs: number;
  timeoutMs: number;
}
