/**
 * The records sockets make as they come and go (connections and subscriptions), sent as calls
 * of the WRITES script (src/cluster/redis-scripts.ts) in the order they were made. A write goes
 * out at once when no call is on its way; writes made meanwhile wait for it and go out together
 * as the next call. Sockets that arrive together cost one round trip and one script run instead
 * of one each, a lone write pays no extra wait, and every write keeps its own rule (quota,
 * first and last subscriber): the script applies them one after the other, atomically.
 */

/** Writes per script call, at most: a long script holds Redis up for everyone. */
const MAX_WRITES_PER_CALL = 500;

type Write = (string | number)[];

interface Queued<Tag> {
  write: Write;
  tag: Tag | undefined;
  resolve(reply: number): void;
  reject(error: unknown): void;
}

/** `Tag`: what a failed write hands to `onFailed` (for the state: the leave to apply later). */
export class WriteBatch<Tag = never> {
  #queue: Queued<Tag>[] = [];
  #inFlight = false;

  /**
   * `run` sends one WRITES call with the writes' arguments, one after the other; `onFailed` hears
   * of every write that failed, before its promise rejects.
   */
  constructor(
    readonly run: (args: (string | number)[]) => Promise<unknown>,
    readonly onFailed: (tag: Tag | undefined) => void = () => {},
  ) {}

  /** Queues one write (its op code and arguments); resolves with its answer. */
  write(write: Write, tag?: Tag): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ write, tag, resolve, reject });
      if (!this.#inFlight) this.#send();
    });
  }

  #fail(queued: Queued<Tag>, error: unknown): void {
    this.onFailed(queued.tag);
    queued.reject(error);
  }

  #send(): void {
    const batch = this.#queue.splice(0, MAX_WRITES_PER_CALL);
    if (batch.length === 0) return;
    this.#inFlight = true;
    const args: (string | number)[] = [];
    for (const { write } of batch) {
      for (const arg of write) args.push(arg);
    }
    this.run(args).then(
      (replies) => {
        const answers = replies as unknown[];
        if (answers.length !== batch.length) {
          const error = new Error(`WRITES answered ${answers.length} of ${batch.length} writes`);
          return batch.forEach((queued) => this.#fail(queued, error));
        }
        batch.forEach((queued, i) => queued.resolve(Number(answers[i])));
      },
      (error) => {
        batch.forEach((queued) => this.#fail(queued, error));
        // Redis failed: what waited behind fails now too, not one timeout later.
        this.#queue.splice(0).forEach((queued) => this.#fail(queued, error));
      },
    ).finally(() => {
      this.#inFlight = false;
      this.#send();
    });
  }
}
