// What a child process inherits: the parent's environment without anything that configures
// Chorus, so a developer's CHORUS_* or REDIS_URL never leaks into a test or a bench target.
import process from "node:process";

const CONFIGURING = /^(CHORUS_|REDIS_)|^(PORT|HOST|LOG_LEVEL|FLY_REGION)$/;

/** The parent's environment minus Chorus configuration, then `extra` on top. */
export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !CONFIGURING.test(k)) env[k] = v;
  }
  return Object.assign(env, extra);
}
