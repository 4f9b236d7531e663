// A minimal WebSocket client for the fuzzer: keeps every frame in order, answers server pings (so
// long runs outlive activity_timeout), and collects the replies to a run of frames up to the pong
// that answers a trailing marker ping.
import type { Frame } from "../support/ws.ts";

export interface Collected {
  frames: Frame[];
  closed?: number;
  timedOut: boolean;
}

const live = new Set<FuzzSocket>();

export class FuzzSocket {
  readonly ws: WebSocket;
  sid = "";
  closed: number | undefined;
  /** Frames not yet collected. */
  private buffer: Frame[] = [];
  private head = 0;
  private wake: (() => void) | undefined;
  readonly done: Promise<void>;

  private constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.binaryType = "arraybuffer";
    live.add(this);
    this.done = new Promise((resolve) => {
      this.ws.addEventListener("close", (ev) => {
        this.closed = ev.code;
        live.delete(this);
        this.wake?.();
        resolve();
      });
    });
    this.ws.addEventListener("message", (ev) => this.onMessage(ev.data));
  }

  /** Opens a socket and waits for connection_established. */
  static async connect(url: string, timeoutMs = 10_000): Promise<FuzzSocket> {
    const s = new FuzzSocket(url);
    const got = await s.collectUntil((f) => f.event === "pusher:connection_established", timeoutMs);
    const first = got.frames.at(-1);
    const data = typeof first?.data === "string"
      ? JSON.parse(first.data) as { socket_id?: string }
      : {};
    if (!data.socket_id) {
      s.close();
      throw new Error(`no connection_established from ${url}: ${JSON.stringify(got)}`);
    }
    s.sid = data.socket_id;
    return s;
  }

  private onMessage(raw: unknown): void {
    let frame: Frame;
    try {
      const v: unknown = typeof raw === "string" ? JSON.parse(raw) : undefined;
      frame = v !== null && typeof v === "object" && !Array.isArray(v)
        ? v as Frame
        : { event: "<not an object>", data: raw };
    } catch {
      frame = { event: "<not JSON>", data: raw };
    }
    if (frame.event === "pusher:ping") {
      this.send('{"event":"pusher:pong","data":{}}');
      return;
    }
    this.buffer.push(frame);
    this.wake?.();
  }

  send(data: string | Uint8Array<ArrayBuffer>): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(data);
  }

  /** Takes frames up to and including the first that `stop` accepts (or all, on close/timeout). */
  async collectUntil(
    stop: (f: Frame, taken: Frame[]) => boolean,
    timeoutMs: number,
  ): Promise<Collected> {
    const taken: Frame[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.head < this.buffer.length) {
        const f = this.buffer[this.head++];
        if (this.head === this.buffer.length) [this.buffer, this.head] = [[], 0];
        taken.push(f);
        if (stop(f, taken)) return { frames: taken, timedOut: false };
      }
      if (this.closed !== undefined) return { frames: taken, closed: this.closed, timedOut: false };
      const left = deadline - Date.now();
      if (left <= 0) return { frames: taken, timedOut: true };
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          this.wake = undefined;
          resolve();
        };
      });
    }
  }

  /** Replies up to the `pongs`-th pong (that last pong not included). */
  async collectPongs(pongs: number, timeoutMs: number): Promise<Collected> {
    let seen = 0;
    const got = await this.collectUntil(
      (f) => f.event === "pusher:pong" && ++seen === pongs,
      timeoutMs,
    );
    if (seen === pongs) got.frames.pop();
    return got;
  }

  /** Frames already received and not collected (e.g. a peer's relayed events). */
  drain(): Frame[] {
    const rest = this.buffer.slice(this.head);
    [this.buffer, this.head] = [[], 0];
    return rest;
  }

  close(): void {
    if (this.ws.readyState === WebSocket.CLOSED || this.ws.readyState === WebSocket.CLOSING) return;
    try {
      this.ws.close();
    } catch {
      // already going
    }
  }

  async closeAndWait(timeoutMs = 3000): Promise<void> {
    this.close();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.done, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
  }
}

/** Closes every fuzz socket still open and waits for their close handshakes. */
export async function closeAllFuzzSockets(): Promise<void> {
  await Promise.all([...live].map((s) => s.closeAndWait()));
}
