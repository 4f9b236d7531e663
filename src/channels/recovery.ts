/**
 * Which channels of an app keep their events for recovery (apps[].recovery): name patterns in
 * which `*` matches any run of characters. Compiled once per app; apps without recovery pay one
 * property read per publish.
 */
import type { AppConfig } from "../config.ts";

/** How a recovery channel's events are kept (apps[].recovery). */
export interface KeepPolicy {
  maxMessages: number;
  ttlMs: number;
}

/** Where a kept event stands in its channel's history (src/cluster/types.ts `History`). */
export interface KeptPosition {
  epoch: string;
  serial: number;
}

interface Compiled {
  pattern: RegExp;
  keep: KeepPolicy;
}

const compiled = new WeakMap<AppConfig, Compiled>();

/** How `channel`'s events are kept, or undefined when the channel has no recovery. */
export function keepPolicy(app: AppConfig, channel: string): KeepPolicy | undefined {
  const recovery = app.recovery;
  if (recovery === undefined) return undefined;
  let entry = compiled.get(app);
  if (!entry) {
    const alternatives = recovery.channels.map((glob) =>
      glob.split("*").map((part) => part.replace(/[.]/g, "\\.")).join(".*")
    );
    entry = {
      pattern: new RegExp(`^(?:${alternatives.join("|")})$`),
      keep: { maxMessages: recovery.max_messages, ttlMs: recovery.ttl_s * 1000 },
    };
    compiled.set(app, entry);
  }
  return entry.pattern.test(channel) ? entry.keep : undefined;
}
