// A raw WebSocket client (the runtime's global WebSocket) that records every frame and lets a test
// await the next frame matching a predicate. Frames not consumed by a wait stay queued for later
// waits, and `log` keeps everything for "this never arrived" assertions.
import { withTimeout } from "./wait.ts";

export interface Frame {
  event: string;
  channel?: string;
  data?: unknown;
  user_id?: string;
  [key: string]: unknown;
}

export interface CloseInfo {
  code: number;
  reason: string;
}

type Pred = (f: Frame) => boolean;

interface Waiter {
  pred: Pred;
  resolve(f: Frame): void;
  reject(err: Error): void;
  what: string;
}

const DEFAULT_TIMEOUT = 5000;

// Bun and Deno both accept `{ headers }` as the second argument of the WebSocket constructor (a
// runtime extension the DOM typings lack).
type WebSocketWithHeaders = new (
  url: string,
  options?: { headers?: Record<string, string> },
) => WebSocket;

const open = new Set<RawSocket>();

export interface SocketOptions {
  origin?: string;
  /** Extra upgrade request headers (e.g. a proxy's Fly-Client-IP). */
  headers?: Record<string, string>;
  /** Answer every pusher:ping with pusher:pong, as pusher-js does. */
  answerPings?: boolean;
}

/** Closes every RawSocket still open (call in `after`); resolves once their close handshakes
 * completed (at most ~2 s), so the server has seen them go before it is stopped. */
export async function closeAllRawSockets(): Promise<void> {
  const closing = [...open];
  for (const s of closing) s.close();
  await Promise.all(closing.map((s) => s.closeAndWait(2000)));
}

/** Parses a frame's data when it is a JSON string; returns it unchanged otherwise. */
export function dataOf(frame: Frame): unknown {
  if (typeof frame.data !== "string") return frame.data;
  try {
    return JSON.parse(frame.data);
  } catch {
    return frame.data;
  }
}

export function describeFrame(f: Frame): string {
  return JSON.stringify(f).slice(0, 300);
}

export class RawSocket {
  readonly ws: WebSocket;
  readonly url: string;
  /** Every frame received, in order. */
  readonly log: Frame[] = [];
  private queue: Frame[] = [];
  private waiters: Waiter[] = [];
  closeInfo: CloseInfo | undefined;
  readonly closed: Promise<CloseInfo>;
  readonly opened: Promise<void>;
  socketId: string | undefined;

  readonly #answerPings: boolean;

  constructor(url: string, opts: SocketOptions = {}) {
    this.url = url;
    this.#answerPings = opts.answerPings ?? false;
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.origin !== undefined) headers.Origin = opts.origin;
    const WS = WebSocket as unknown as WebSocketWithHeaders;
    this.ws = Object.keys(headers).length ? new WS(url, { headers }) : new WebSocket(url);
    this.ws.binaryType = "arraybuffer";
    open.add(this);
    let resolveOpen!: () => void;
    let rejectOpen!: (e: Error) => void;
    this.opened = new Promise<void>((res, rej) => {
      resolveOpen = res;
      rejectOpen = rej;
    });
    this.opened.catch(() => {});
    this.closed = new Promise<CloseInfo>((resolve) => {
      this.ws.addEventListener("close", (ev) => {
        open.delete(this);
        this.closeInfo = { code: ev.code, reason: ev.reason };
        rejectOpen(new Error(`WebSocket ${url} closed before open (code ${ev.code})`));
        for (const w of this.waiters.splice(0)) {
          w.reject(
            new Error(
              `socket closed (code ${ev.code} ${ev.reason}) while waiting for ${w.what}; received: ${
                this.log.map(describeFrame).join(" | ")
              }`,
            ),
          );
        }
        resolve(this.closeInfo);
      });
    });
    this.ws.addEventListener("open", () => resolveOpen());
    this.ws.addEventListener("message", (ev) => this.onMessage(ev.data));
  }

  private onMessage(raw: unknown): void {
    let frame: Frame;
    if (typeof raw !== "string") {
      frame = { event: "<binary>", data: raw };
    } else {
      try {
        const v: unknown = JSON.parse(raw);
        frame = v !== null && typeof v === "object" && !Array.isArray(v)
          ? v as Frame
          : { event: "<non-object>", data: raw };
      } catch {
        frame = { event: "<non-json>", data: raw };
      }
    }
    if (frame.event === "pusher:connection_established" && this.socketId === undefined) {
      const d = dataOf(frame) as { socket_id?: string } | undefined;
      if (d && typeof d.socket_id === "string") this.socketId = d.socket_id;
    }
    this.log.push(frame);
    if (this.#answerPings && frame.event === "pusher:ping") {
      this.send({ event: "pusher:pong", data: {} });
    }
    const i = this.waiters.findIndex((w) => w.pred(frame));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      w.resolve(frame);
    } else {
      this.queue.push(frame);
    }
  }

  /** Waits for (and consumes) the first not-yet-consumed frame matching `pred`. */
  next(pred: Pred, what = "a frame", timeout = DEFAULT_TIMEOUT): Promise<Frame> {
    const i = this.queue.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]);
    if (this.closeInfo) {
      return Promise.reject(
        new Error(
          `socket already closed (code ${this.closeInfo.code}) before ${what}; received: ${
            this.log.map(describeFrame).join(" | ")
          }`,
        ),
      );
    }
    return new Promise<Frame>((resolve, reject) => {
      const waiter: Waiter = {
        pred,
        what,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        const idx = this.waiters.indexOf(waiter);
        if (idx >= 0) this.waiters.splice(idx, 1);
        reject(
          new Error(
            `timed out after ${timeout} ms waiting for ${what}; received: ${
              this.log.map(describeFrame).join(" | ") || "(nothing)"
            }`,
          ),
        );
      }, timeout);
      this.waiters.push(waiter);
    });
  }

  /** Waits for the next frame with this event name (and channel, when given). */
  nextEvent(event: string, channel?: string, timeout = DEFAULT_TIMEOUT): Promise<Frame> {
    return this.next(
      (f) => f.event === event && (channel === undefined || f.channel === channel),
      `${event}${channel ? ` on ${channel}` : ""}`,
      timeout,
    );
  }

  /** Waits for a pusher:error frame; returns its data. */
  async nextError(timeout = DEFAULT_TIMEOUT): Promise<{ code: unknown; message: unknown }> {
    const f = await this.nextEvent("pusher:error", undefined, timeout);
    return f.data as { code: unknown; message: unknown };
  }

  /** Frames received so far (optionally before the first frame matching `until`). */
  received(pred: Pred, until?: Pred): Frame[] {
    const end = until ? this.log.findIndex(until) : -1;
    const frames = end >= 0 ? this.log.slice(0, end) : this.log;
    return frames.filter(pred);
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  sendRaw(data: string | ArrayBuffer): void {
    this.ws.send(data);
  }

  /** Sends pusher:ping and waits for pusher:pong: proves the socket is alive and that every frame
   * the server sent before handling the ping has arrived. */
  async ping(timeout = DEFAULT_TIMEOUT): Promise<Frame> {
    this.send({ event: "pusher:ping", data: {} });
    return await this.nextEvent("pusher:pong", undefined, timeout);
  }

  subscribe(channel: string, extra: Record<string, unknown> = {}): void {
    this.send({ event: "pusher:subscribe", data: { channel, ...extra } });
  }

  /** Subscribes and waits for subscription_succeeded (rejects with the error frame otherwise). */
  async subscribeOk(channel: string, extra: Record<string, unknown> = {}): Promise<Frame> {
    this.subscribe(channel, extra);
    const f = await this.next(
      (f) =>
        f.channel === channel &&
        (f.event === "pusher_internal:subscription_succeeded" ||
          f.event === "pusher:subscription_error"),
      `subscription result for ${channel}`,
    );
    if (f.event !== "pusher_internal:subscription_succeeded") {
      throw new Error(`subscribe to ${channel} failed: ${describeFrame(f)}`);
    }
    return f;
  }

  /** Subscribes and waits for the answer, success or error. */
  async subscribeResult(channel: string, extra: Record<string, unknown> = {}): Promise<Frame> {
    this.subscribe(channel, extra);
    return await this.next(
      (f) =>
        (f.channel === channel &&
          (f.event === "pusher_internal:subscription_succeeded" ||
            f.event === "pusher:subscription_error")) || f.event === "pusher:error",
      `subscription result for ${channel}`,
    );
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  close(code?: number): void {
    if (this.ws.readyState === WebSocket.CLOSED || this.ws.readyState === WebSocket.CLOSING) {
      return;
    }
    try {
      if (code === undefined) this.ws.close();
      else this.ws.close(code);
    } catch {
      // ignore
    }
  }

  /** Closes and waits for the close handshake. */
  async closeAndWait(timeout = DEFAULT_TIMEOUT): Promise<CloseInfo> {
    this.close();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const t = new Promise<CloseInfo>((resolve) => {
      timer = setTimeout(() => resolve({ code: -1, reason: "close timeout" }), timeout);
    });
    const r = await Promise.race([this.closed, t]);
    clearTimeout(timer);
    return r;
  }
}

/** Opens a socket and waits for the WebSocket `open` event (not for any frame). */
export async function openSocket(url: string, opts: SocketOptions = {}): Promise<RawSocket> {
  const s = new RawSocket(url, opts);
  await withTimeout(s.opened, DEFAULT_TIMEOUT, `WebSocket ${url} to open`);
  return s;
}

/** Opens a socket and waits for pusher:connection_established; `socketId` is then set. */
export async function connectSocket(
  url: string,
  opts: SocketOptions = {},
): Promise<RawSocket> {
  const s = new RawSocket(url, opts);
  await s.nextEvent("pusher:connection_established");
  return s;
}
