// A local HTTP endpoint for Chorus webhooks (node:http, which works on Bun and Deno): it records
// every request's exact body bytes and headers, answers scripted status codes per path, validates
// signatures with the official `pusher` SDK, and lets a test await POSTs or events with a deadline.
import { createHmac } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import PusherServer from "pusher";
import type { AppCreds } from "./sign.ts";
import { until } from "./wait.ts";

/** One entry of a webhook body's `events`. */
export interface HookEvent {
  name: string;
  channel: string;
  [field: string]: unknown;
}

export interface HookBody {
  time_ms: number;
  events: HookEvent[];
}

/** One request the receiver got. */
export interface HookPost {
  /** Arrival order across all paths, from 1. */
  seq: number;
  method: string;
  path: string;
  /** Header names in lower case (as the SDK's `webhook()` expects). */
  headers: Record<string, string>;
  /** The body exactly as received. */
  bytes: Uint8Array;
  /** The body decoded as UTF-8. */
  rawBody: string;
  /** The parsed body, or undefined when it is not JSON. */
  body: HookBody | undefined;
  /** The status this receiver answered (or DROP / HANG). */
  status: number;
  at: number;
}

/** An event together with the POST that carried it. */
export interface HookHit {
  post: HookPost;
  event: HookEvent;
}

/** A scripted "status": close the connection without answering (a network error). */
export const DROP = 0;
/** A scripted "status": never answer (the sender's timeout fires). */
export const HANG = -1;

const receivers = new Set<WebhookReceiver>();

export class WebhookReceiver {
  readonly posts: HookPost[] = [];
  /** Statuses to answer on a path, consumed one per request. */
  readonly #scripts = new Map<string, number[]>();
  /** What a path answers once its script is used up (200 unless set). */
  readonly #fallback = new Map<string, number>();
  #seq = 0;

  readonly server: Server;
  #port = 0;

  private constructor() {
    this.server = createServer((req, res) => this.#handle(req, res));
  }

  get port(): number {
    return this.#port;
  }

  /** Listens on 127.0.0.1, a free port. Close it with `close()` or `closeAllReceivers()`. */
  static async start(): Promise<WebhookReceiver> {
    const receiver = new WebhookReceiver();
    await new Promise<void>((resolve, reject) => {
      receiver.server.once("error", reject);
      receiver.server.listen(0, "127.0.0.1", () => resolve());
    });
    const address = receiver.server.address();
    if (!address || typeof address !== "object") throw new Error("receiver has no port");
    receiver.#port = address.port;
    receivers.add(receiver);
    return receiver;
  }

  /** The URL of `path` on this receiver (path starts with "/"). */
  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /**
   * Answers `statuses` to the next requests on `path`, in order, then `then`. Besides HTTP
   * statuses: DROP closes the connection without an answer, HANG never answers.
   */
  script(path: string, statuses: number[], then = 200): void {
    this.#scripts.set(path, [...statuses]);
    this.#fallback.set(path, then);
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Uint8Array[] = [];
    req.on("data", (chunk: Uint8Array | string) => {
      chunks.push(typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk);
    });
    req.on("end", () => {
      const length = chunks.reduce((n, c) => n + c.length, 0);
      const bytes = new Uint8Array(length);
      let offset = 0;
      for (const c of chunks) {
        bytes.set(c, offset);
        offset += c.length;
      }
      const rawBody = new TextDecoder().decode(bytes);
      let body: HookBody | undefined;
      try {
        body = JSON.parse(rawBody) as HookBody;
      } catch {
        body = undefined;
      }
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (value !== undefined) headers[name.toLowerCase()] = String(value);
      }
      const path = (req.url ?? "/").split("?")[0];
      const script = this.#scripts.get(path);
      const status = script?.length ? script.shift()! : this.#fallback.get(path) ?? 200;
      this.posts.push({
        seq: ++this.#seq,
        method: req.method ?? "",
        path,
        headers,
        bytes,
        rawBody,
        body,
        status,
        at: Date.now(),
      });
      if (status === DROP) {
        req.socket.destroy();
        return;
      }
      if (status === HANG) return;
      res.statusCode = status;
      res.setHeader("Content-Type", "text/plain");
      res.end(status < 300 ? "ok" : "scripted failure");
    });
  }

  /** Requests received on `path` so far. */
  postsTo(path: string): HookPost[] {
    return this.posts.filter((p) => p.path === path);
  }

  /** Every event received on `path` so far (each with its POST), optionally filtered. */
  hits(path: string, pred: (e: HookEvent) => boolean = () => true): HookHit[] {
    return this.postsTo(path).flatMap((post) =>
      (post.body?.events ?? []).filter(pred).map((event) => ({ post, event }))
    );
  }

  /** The POSTs on `path` carrying each event, keyed by `key(event)` (events it keys undefined are
   * left out): to check that every event arrived and that its duplicates share one webhook id. */
  postsByEvent(path: string, key: (e: HookEvent) => string | undefined): Map<string, HookPost[]> {
    const out = new Map<string, HookPost[]>();
    for (const { post, event } of this.hits(path)) {
      const k = key(event);
      if (k === undefined) continue;
      const posts = out.get(k) ?? [];
      if (!out.has(k)) out.set(k, posts);
      posts.push(post);
    }
    return out;
  }

  /** Events on `path` named `name` for `channel`. */
  named(path: string, name: string, channel: string): HookHit[] {
    return this.hits(path, (e) => e.name === name && e.channel === channel);
  }

  /** Polls until `path` has received an event matching `pred`; resolves with the first one. */
  async waitEvent(
    path: string,
    pred: (e: HookEvent) => boolean,
    what: string,
    timeout = 10000,
  ): Promise<HookHit> {
    try {
      return await until(() => this.hits(path, pred)[0], what, { timeout, interval: 10 });
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${this.describe(path)}`);
    }
  }

  /** Waits for the `name` event of `channel` on `path`. */
  waitNamed(path: string, name: string, channel: string, timeout = 10000): Promise<HookHit> {
    return this.waitEvent(
      path,
      (e) => e.name === name && e.channel === channel,
      `webhook ${name} for ${channel} on ${path}`,
      timeout,
    );
  }

  /** Polls until at least `count` requests on `path` match `pred`; resolves with all matches. */
  async waitPosts(
    path: string,
    count: number,
    what: string,
    pred: (p: HookPost) => boolean = () => true,
    timeout = 10000,
  ): Promise<HookPost[]> {
    try {
      return await until(
        () => {
          const found = this.postsTo(path).filter(pred);
          return found.length >= count ? found : undefined;
        },
        what,
        { timeout, interval: 10 },
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${this.describe(path)}`);
    }
  }

  /** What `path` received, for failure messages. */
  describe(path: string): string {
    const posts = this.postsTo(path);
    if (posts.length === 0) return `${path} received nothing`;
    return `${path} received:\n${
      posts.map((p) =>
        `  #${p.seq} -> ${p.status} id=${p.headers["x-chorus-webhook-id"]} ${
          p.rawBody.slice(0, 400)
        }`
      ).join("\n")
    }`;
  }

  async close(): Promise<void> {
    receivers.delete(this);
    this.server.closeAllConnections?.();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Closes every receiver still open (call in `after`). */
export async function closeAllReceivers(): Promise<void> {
  await Promise.all([...receivers].map((r) => r.close()));
}

/** The official SDK's verdict on a POST for one app: key header and signature of the body. */
export function sdkValid(post: HookPost, app: AppCreds): boolean {
  // The SDK's typings want a host; it plays no part in webhook validation.
  const sdk = new PusherServer({
    appId: app.id,
    key: app.key,
    secret: app.secret,
    host: "127.0.0.1",
  });
  return sdk.webhook({ headers: post.headers, rawBody: post.rawBody }).isValid();
}

/** The expected X-Pusher-Signature: HMAC-SHA256 (hex) of the exact received bytes. */
export function expectedSignature(post: HookPost, secret: string): string {
  return createHmac("sha256", secret).update(post.bytes).digest("hex");
}
