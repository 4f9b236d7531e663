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

/** Durable storage of jobs: memory on one node, Redis in a cluster. */
export interface WebhookQueue {
  enqueue(job: WebhookJob): Promise<void>;
  /** Jobs due by `now`, hidden from other claimers for `leaseMs` while they are sent. */
  claim(now: number, leaseMs: number, max: number): Promise<WebhookJob[]>;
  complete(job: WebhookJob): Promise<void>;
  retry(job: WebhookJob, dueAt: number): Promise<void>;
  deadLetter(job: WebhookJob, reason: string, now: number): Promise<void>;
  deadLetterCount(): Promise<number>;
}
