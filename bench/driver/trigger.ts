/** Events triggered through the signed HTTP API, counted for the closed loops. */
import { signedPath } from "../../test/support/index.ts";
import { APP, EVENT } from "./names.ts";
import { now } from "./util.ts";

export class Trigger {
  inFlight = 0;
  calls = 0;
  failures = 0;
  readonly errors: string[] = [];
  readonly #pad: string;

  constructor(readonly base: string, payload: number, readonly onDone: () => void) {
    // `{"t":1234567.123,"s":123,"p":""}` is about 32 bytes; pad the rest.
    this.#pad = "x".repeat(Math.max(0, payload - 32));
  }

  #data(seq: number): string {
    return `{"t":${now().toFixed(3)},"s":${seq},"p":"${this.#pad}"}`;
  }

  single(channel: string, seq: number): Promise<boolean> {
    const body = JSON.stringify({ name: EVENT, channel, data: this.#data(seq) });
    return this.#post(`/apps/${APP.id}/events`, body);
  }

  batch(channel: string, seq: number, size: number): Promise<boolean> {
    const batch = [];
    for (let i = 0; i < size; i++) batch.push({ name: EVENT, channel, data: this.#data(seq + i) });
    return this.#post(`/apps/${APP.id}/batch_events`, JSON.stringify({ batch }));
  }

  reset(): void {
    this.failures = 0;
    this.errors.length = 0;
  }

  async #post(path: string, body: string): Promise<boolean> {
    this.inFlight++;
    this.calls++;
    try {
      const response = await fetch(this.base + signedPath(APP, "POST", path, body), {
        method: "POST",
        body,
        headers: { "content-type": "application/json" },
        signal: AbortSignal.timeout(10_000),
      });
      const text = await response.text();
      if (!response.ok) throw new Error(`HTTP ${response.status}: ${text.slice(0, 200)}`);
      return true;
    } catch (error) {
      this.failures++;
      if (this.errors.length < 10) this.errors.push((error as Error).message);
      return false;
    } finally {
      this.inFlight--;
      this.onDone();
    }
  }

  async get(path: string): Promise<unknown> {
    const response = await fetch(this.base + signedPath(APP, "GET", path), {
      signal: AbortSignal.timeout(10_000),
    });
    if (!response.ok) throw new Error(`GET ${path}: HTTP ${response.status}`);
    return await response.json();
  }
}
