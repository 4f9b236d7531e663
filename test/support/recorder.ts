// Records events delivered to pusher-js / Laravel Echo callbacks, so a test can await one and
// later count how many times each arrived (exactly-once checks).
import { withTimeout } from "./wait.ts";

export interface Recorded {
  event: string;
  data: unknown;
}

interface Waiter {
  pred: (r: Recorded) => boolean;
  resolve(r: Recorded): void;
}

export class Recorder {
  readonly events: Recorded[] = [];
  #waiters: Waiter[] = [];

  constructor(readonly label: string) {}

  /** A callback for `bind(event, cb)` / Echo's `listen(event, cb)` that records `event`. */
  on(event: string): (data: unknown) => void {
    return (data: unknown) => this.push(event, data);
  }

  /** A callback for pusher-js `bind_global`. */
  readonly global = (event: string, data: unknown): void => this.push(event, data);

  push(event: string, data: unknown): void {
    const r = { event, data };
    this.events.push(r);
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.pred(r)) return true;
      w.resolve(r);
      return false;
    });
  }

  /** Resolves with the first recorded `event` (already recorded or future). */
  wait(event: string, timeout = 5000): Promise<Recorded> {
    const found = this.events.find((r) => r.event === event);
    if (found) return Promise.resolve(found);
    let waiter: Waiter | undefined;
    const p = new Promise<Recorded>((resolve) => {
      waiter = { pred: (r) => r.event === event, resolve };
      this.#waiters.push(waiter);
    });
    return withTimeout(p, timeout, `${this.label}: event ${event} (recorded: ${this.names()})`)
      .finally(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
      });
  }

  count(event: string): number {
    return this.events.filter((r) => r.event === event).length;
  }

  all(event: string): unknown[] {
    return this.events.filter((r) => r.event === event).map((r) => r.data);
  }

  names(): string {
    return this.events.map((r) => r.event).join(", ") || "(nothing)";
  }
}
