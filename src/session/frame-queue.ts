/**
 * Frames that arrive while an asynchronous step (quota check, presence join) is in flight are
 * queued so that each connection's frames are handled strictly in order.
 */
import { Buffer } from "node:buffer";

/**
 * Bytes of frames a connection may queue behind a slow asynchronous step before it is cut off.
 * A bound on memory, not on a count: pusher-js resubscribes every channel at once on reconnect.
 */
export const MAX_QUEUED_BYTES = 4 * 1024 * 1024;

/** Stands in the frame queue for a frame over max_message_size, which is not kept. */
export const OVERSIZED = Symbol("oversized frame");

/** A handled frame: a promise while an asynchronous step is in flight. */
export type Step = Promise<void> | undefined;

/** What the queue asks of its connection (the connection itself: no closures per socket). */
export interface FrameQueueHooks {
  /** Handles one frame (possibly `OVERSIZED`); an asynchronous step holds later frames back. */
  onFrame(data: unknown): Step;
  /** Over `max_message_size`. */
  isTooBig(data: unknown): boolean;
  isClosed(): boolean;
  /** A step rejected. */
  onStepFailed(error: unknown): void;
  /** More than `MAX_QUEUED_BYTES` wait. */
  onQueueOverflow(): void;
}

export class FrameQueue {
  /** Frames waiting for the step in flight (null: none in flight), and their size. */
  #queue: unknown[] | null = null;
  #head = 0;
  #bytes = 0;

  constructor(readonly hooks: FrameQueueHooks) {}

  /** A frame arrives: handled now, or queued behind the step in flight. */
  push(data: unknown): void {
    if (this.#queue) {
      // An oversized frame is not kept while it waits its turn: a marker closes with 1009 then.
      if (this.hooks.isTooBig(data)) data = OVERSIZED;
      this.#bytes += frameSize(data);
      if (this.#bytes > MAX_QUEUED_BYTES) {
        this.hooks.onQueueOverflow();
        return;
      }
      this.#queue.push(data);
      return;
    }
    this.run(this.hooks.onFrame(data));
  }

  /** Runs a step; an asynchronous one holds later frames back until it settles. */
  run(step: Step): void {
    if (!step) return;
    this.#queue ??= [];
    step.then(() => this.#drain(), (error) => {
      this.hooks.onStepFailed(error);
      this.#drain();
    });
  }

  #drain(): void {
    const queue = this.#queue;
    this.#queue = null;
    while (queue && this.#head < queue.length && !this.hooks.isClosed()) {
      const data = queue[this.#head];
      queue[this.#head++] = undefined;
      this.#bytes -= frameSize(data);
      const step = this.hooks.onFrame(data);
      if (step) {
        this.#queue = queue; // the rest waits for this step
        this.run(step);
        return;
      }
    }
    this.#head = 0;
    this.#bytes = 0;
  }
}

/**
 * Over `max`, text or binary. A runtime that cannot stop a frame while reading it hands over
 * whole frames of any size, so this is the limit there. A UTF-16 unit is at most 3 bytes: the
 * cheap bound first.
 */
export function tooBig(data: unknown, max: number): boolean {
  if (typeof data === "string") return data.length * 3 > max && Buffer.byteLength(data) > max;
  return frameSize(data) > max;
}

/** What a queued frame holds in memory, about: UTF-16 units of text, bytes of binary. */
function frameSize(data: unknown): number {
  if (data === OVERSIZED) return 0;
  if (typeof data === "string") return data.length;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength;
  return 1_024;
}
