/**
 * The records sockets make as they come and go (connections and subscriptions), gathered over
 * one turn of the event loop into one call of the WRITES script (src/cluster/redis-scripts.ts),
 * in the order they were made. Sockets that arrive together cost one round trip and one script
 * run instead of one each, and every write keeps its own rule (quota, first and last
 * subscriber): the script applies them one after the other, atomically.
 */
import { setImmediate } from "node:timers";

/** Writes per script call, at most: a long script holds Redis up for everyone. */
const MAX_WRITES_PER_CALL = 500;

type Write = (string | number)[];

interface Waiter {
  resolve(reply: number): void;
  reject(error: unknown): void;
}

export class WriteBatch {
  #args: (string | number)[] = [];
  #waiters: Waiter[] = [];
  #scheduled = false;

  /** `run` sends one WRITES call with the writes' arguments, one after the other. */
  constructor(readonly run: (args: (string | number)[]) => Promise<unknown>) {}

  /** Queues one write (its op code and arguments); resolves with its answer. */
  write(write: Write): Promise<number> {
    return new Promise((resolve, reject) => {
      for (const arg of write) this.#args.push(arg);
      if (this.#waiters.push({ resolve, reject }) >= MAX_WRITES_PER_CALL) this.#flush();
      else if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const waiters = this.#waiters;
    if (waiters.length === 0) return;
    const args = this.#args;
    this.#waiters = [];
    this.#args = [];
    this.run(args).then(
      (replies) => {
        const answers = replies as unknown[];
        waiters.forEach((waiter, i) => waiter.resolve(Number(answers[i])));
      },
      (error) => waiters.forEach((waiter) => waiter.reject(error)),
    );
  }
}
