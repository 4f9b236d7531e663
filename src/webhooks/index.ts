/** Webhooks: what they carry, the dispatcher (batch, sign, retry) and its durable queues. */
export * from "./dispatcher.ts";
export * from "./memory-queue.ts";
export * from "./redis-queue.ts";
export * from "./types.ts";
