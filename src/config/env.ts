/**
 * Environment variables mapped onto the config file's shape (src/config/schema.ts), so env and
 * file go through one schema. Values stay text unless they clearly are what the key takes: a
 * wrong one is reported by the schema under the env var's name.
 */

/** How an env var's text becomes a value of the file's shape. */
type Kind = "text" | "integer" | "trust_proxy";

export interface EnvKey {
  name: string;
  /** Where it goes in the file's shape, e.g. ["cluster", "lease_ms"]. */
  path: readonly [string] | readonly [string, string];
  kind: Kind;
}

const key = (name: string, path: EnvKey["path"], kind: Kind = "text"): EnvKey => ({
  name,
  path,
  kind,
});

/** Every env var that sets a config key; later entries lose to earlier ones for the same key. */
export const ENV_KEYS: readonly EnvKey[] = [
  key("HOST", ["host"]),
  key("PORT", ["port"], "integer"),
  key("CHORUS_PATH", ["path"]),
  key("LOG_LEVEL", ["log_level"]),
  key("CHORUS_DRAIN_MS", ["drain_ms"], "integer"),
  key("CHORUS_METRICS_TOKEN", ["metrics_token"]),
  key("CHORUS_METRICS_PORT", ["metrics_port"], "integer"),
  key("CHORUS_TRUST_PROXY", ["trust_proxy"], "trust_proxy"),
  key("CHORUS_IP_CONNECTION_RATE", ["ip_connection_rate"], "integer"),
  key("CHORUS_SOCKET_BUFFER_LIMIT", ["socket_buffer_limit"], "integer"),
  key("CHORUS_WEBHOOK_BATCH_MS", ["webhook_batch_ms"], "integer"),
  key("CHORUS_WEBHOOK_BATCH_SIZE", ["webhook_batch_size"], "integer"),
  key("CHORUS_WEBHOOK_RETRY_BASE_MS", ["webhook_retry_base_ms"], "integer"),
  key("CHORUS_WEBHOOK_RETRY_HORIZON_MS", ["webhook_retry_horizon_ms"], "integer"),
  key("CHORUS_WEBHOOK_TIMEOUT_MS", ["webhook_timeout_ms"], "integer"),
  key("CHORUS_CLUSTER_DRIVER", ["cluster", "driver"]),
  key("REDIS_URL", ["cluster", "redis_url"]),
  key("REDIS_SUBSCRIBE_URL", ["cluster", "redis_subscribe_url"]),
  key("CHORUS_REDIS_PREFIX", ["cluster", "prefix"]),
  key("CHORUS_REGION", ["cluster", "region"]),
  key("FLY_REGION", ["cluster", "region"]),
  key("CHORUS_NODE_LEASE_MS", ["cluster", "lease_ms"], "integer"),
  key("CHORUS_REDIS_TIMEOUT_MS", ["cluster", "redis_timeout_ms"], "integer"),
  key("CHORUS_BUS_GRACE_MS", ["cluster", "bus_grace_ms"], "integer"),
  key("CHORUS_BUS_RECONNECT_SPREAD_MS", ["cluster", "bus_reconnect_spread_ms"], "integer"),
];

function convert(kind: Kind, raw: string): unknown {
  if (kind === "integer") return /^\d+$/.test(raw) ? Number(raw) : raw;
  if (kind === "trust_proxy") {
    if (["false", "0", "no"].includes(raw)) return false;
    return /^\d+$/.test(raw) ? Number(raw) : raw;
  }
  return raw;
}

export type Shape = Record<string, unknown>;

/**
 * Writes the env vars that are set (and not empty) over `file` (a copy): env wins over the file.
 * Answers the merged shape and, per dotted key, the env var that set it (for error messages).
 */
export function mergeEnv(
  env: Record<string, string | undefined>,
  file: Shape,
): { merged: Shape; origins: Map<string, string> } {
  const merged: Shape = { ...file };
  const origins = new Map<string, string>();
  for (const { name, path, kind } of ENV_KEYS) {
    const raw = env[name];
    if (raw === undefined || raw === "") continue;
    const dotted = path.join(".");
    if (origins.has(dotted)) continue; // an earlier env var of the same key won
    origins.set(dotted, name);
    if (path.length === 1) {
      merged[path[0]] = convert(kind, raw);
    } else {
      const section = merged[path[0]];
      const copy = section && typeof section === "object" ? { ...section as Shape } : {};
      copy[path[1]] = convert(kind, raw);
      merged[path[0]] = copy;
    }
  }
  return { merged, origins };
}
