/** The names every part of the driver shares: the app, channels, targets, variants and phases. */

export const APP = { id: "bench", key: "bench-key", secret: "bench-secret" } as const;
export const EVENT = "bench-event";
/** Every client subscribes here: the saturation channel. */
export const FANOUT = "bench";
/** The first `--lat-subs` clients also subscribe here: the moderate-rate latency channel. */
export const LATENCY = "bench-lat";
export const PRESENCE = "presence-bench";
export const LEAK_PRESENCE = "presence-leak";
/** Nobody subscribes here: the HTTP API's own cost. */
export const EMPTY = "bench-empty";
export const LEAK_PRESENCE_USERS = 10;
export const BATCH_SIZE = 10;

export const TARGETS = ["bare-bun", "chorus-bun", "bare-deno", "chorus-deno", "cluster"] as const;
export type TargetName = (typeof TARGETS)[number];
export const VARIANTS = ["public", "batch", "presence", "leak"] as const;
export type Variant = (typeof VARIANTS)[number];
export const PHASES = ["moderate", "sequential", "saturation"] as const;
export type Phase = (typeof PHASES)[number];
