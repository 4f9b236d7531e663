/**
 * Configuration: env vars plus an optional JSON file (`CHORUS_CONFIG`). Env is mapped onto the
 * file's shape (src/config/env.ts), merged over it, and parsed once against the schema that owns
 * every default (src/config/schema.ts). A bad value stops start-up with a message naming the key
 * (the env var when it came from one).
 */
import { readFileSync } from "node:fs";
import * as v from "valibot";
import type { LogLevel } from "./log.ts";
import type { WebhookSettings } from "./webhooks/types.ts";

export type { LogLevel };
import { mergeEnv, type Shape } from "./config/env.ts";
import { type AppConfig, AppSchema, type ConfigOutput, ConfigSchema } from "./config/schema.ts";

export type { AppConfig };

export interface ClusterConfig {
  driver: "local" | "redis";
  /** Where publishes and state writes go. */
  redisUrl?: string;
  /** Where this node subscribes (e.g. a regional replica); defaults to redisUrl. */
  redisSubscribeUrl?: string;
  /** Namespace of every Redis key and channel: `chorus:{prefix}:...`. */
  prefix: string;
  region: string;
  /** TTL of this node's lease; a dead node's state is removed within about 1.5x this. */
  leaseMs: number;
  /** Bound on every Redis command: past it the caller gets an error (HTTP 503). */
  redisTimeoutMs: number;
  /** How long the bus may be lost before this node tells its sockets to reconnect elsewhere. */
  busGraceMs: number;
  /** Those reconnects (4200) are spread over this window so other nodes are not stampeded. */
  busReconnectSpreadMs: number;
}

export interface Config {
  host: string;
  port: number;
  /** Route prefix for the socket endpoint and every HTTP route, "" or "/something". */
  path: string;
  logLevel: LogLevel;
  apps: AppConfig[];
  /** True when no app was configured and the demo app is running. */
  demoApp: boolean;
  cluster: ClusterConfig;
  /** On SIGTERM/SIGINT, sockets are closed (4200) spread over this many milliseconds. */
  drainMs: number;
  /** Bearer token GET /metrics requires, if set. */
  metricsToken?: string;
  /** Serve /metrics on this port instead of the main one, if set. */
  metricsPort?: number;
  /** Which proxy header names the client address (behind a proxy); never more than one. */
  trustProxy: TrustProxy;
  /** New sockets per second per client address (HTTP 429 beyond); undefined means no limit. */
  ipConnectionRate?: number;
  /** Bytes a socket may have waiting to be sent before it is closed with 4100. */
  socketBufferLimit: number;
  webhooks: WebhookSettings;
}

/**
 * `none`: the peer is the client. `fly`: Fly's proxy sets Fly-Client-IP. `xff`: `hops` proxies of
 * ours each append the address they saw to X-Forwarded-For, so the entry `hops` from the end is
 * the client's; entries before it are whatever the client sent.
 */
export type TrustProxy = { kind: "none" } | { kind: "fly" } | { kind: "xff"; hops: number };

export class ConfigError extends Error {
  override name = "ConfigError";
}

export type Env = Record<string, string | undefined>;

export const DEMO_APP = { id: "app-id", key: "app-key", secret: "app-secret" } as const;

/** Builds the validated config from env vars and the optional JSON file they name. */
export function loadConfig(env: Env, readFile: (path: string) => string = readText): Config {
  const { merged, origins } = mergeEnv(env, readConfigFile(env, readFile));
  const parsed = v.safeParse(ConfigSchema, merged);
  if (!parsed.success) {
    const where = env.CHORUS_CONFIG ? `config file ${env.CHORUS_CONFIG}` : "config";
    throw new ConfigError(describeIssues(where, parsed.issues, origins, merged));
  }
  const file = parsed.output;
  const envApp = appFromEnv(env);
  const apps = [...(file.apps ?? [])];
  if (envApp) apps.unshift(parseApp(envApp, "CHORUS_APP_*"));
  const demoApp = apps.length === 0;
  if (demoApp) apps.push(parseApp({ ...DEMO_APP }, "demo app"));
  checkUnique(apps);
  return {
    host: file.host,
    port: file.port,
    path: normalizePath(file.path),
    logLevel: file.log_level,
    apps,
    demoApp,
    cluster: clusterConfig(file.cluster),
    drainMs: file.drain_ms,
    metricsToken: file.metrics_token,
    metricsPort: file.metrics_port,
    trustProxy: trustProxy(file.trust_proxy),
    ipConnectionRate: file.ip_connection_rate ?? undefined,
    socketBufferLimit: file.socket_buffer_limit,
    webhooks: {
      batchMs: file.webhook_batch_ms,
      batchSize: file.webhook_batch_size,
      retryBaseMs: file.webhook_retry_base_ms,
      retryHorizonMs: file.webhook_retry_horizon_ms,
      timeoutMs: file.webhook_timeout_ms,
    },
  };
}

function trustProxy(value: ConfigOutput["trust_proxy"]): TrustProxy {
  if (value === false) return { kind: "none" };
  if (value === "fly") return { kind: "fly" };
  return { kind: "xff", hops: value === "xff" ? 1 : value };
}

function clusterConfig(cluster: ConfigOutput["cluster"]): ClusterConfig {
  const redisUrl = cluster.redis_url;
  const driver = cluster.driver ?? (redisUrl ? "redis" : "local");
  if (driver === "redis" && !redisUrl) {
    throw new ConfigError("REDIS_URL: required when the cluster driver is redis");
  }
  return {
    driver,
    redisUrl,
    redisSubscribeUrl: cluster.redis_subscribe_url,
    prefix: cluster.prefix,
    region: cluster.region,
    leaseMs: cluster.lease_ms,
    redisTimeoutMs: cluster.redis_timeout_ms,
    busGraceMs: cluster.bus_grace_ms,
    busReconnectSpreadMs: cluster.bus_reconnect_spread_ms,
  };
}

function readText(path: string): string {
  return readFileSync(path, "utf8");
}

function readConfigFile(env: Env, readFile: (path: string) => string): Shape {
  const path = env.CHORUS_CONFIG;
  if (!path) return {};
  let raw: unknown;
  try {
    raw = JSON.parse(readFile(path));
  } catch (error) {
    throw new ConfigError(`CHORUS_CONFIG (${path}): ${(error as Error).message}`);
  }
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError(`CHORUS_CONFIG (${path}): expected a JSON object`);
  }
  return raw as Shape;
}

const RECOVERY_ENV = [
  "CHORUS_APP_RECOVERY_CHANNELS",
  "CHORUS_APP_RECOVERY_TTL_S",
  "CHORUS_APP_RECOVERY_MAX_MESSAGES",
];

/** CHORUS_APP_RECOVERY_*: the env app's `recovery` (src/config/schema.ts), when channels are named. */
function recoveryFromEnv(env: Env): Record<string, unknown> | undefined {
  const channels = env.CHORUS_APP_RECOVERY_CHANNELS;
  if (!channels) {
    const stray = RECOVERY_ENV.find((name) => env[name]);
    if (stray) throw new ConfigError(`${stray}: needs CHORUS_APP_RECOVERY_CHANNELS`);
    return undefined;
  }
  const recovery: Record<string, unknown> = {
    channels: channels.split(",").map((pattern) => pattern.trim()).filter((p) => p !== ""),
  };
  for (const [name, field] of [["TTL_S", "ttl_s"], ["MAX_MESSAGES", "max_messages"]]) {
    const raw = env[`CHORUS_APP_RECOVERY_${name}`];
    if (raw) recovery[field] = /^\d+$/.test(raw) ? Number(raw) : raw;
  }
  return recovery;
}

function appFromEnv(env: Env): Record<string, unknown> | undefined {
  const id = env.CHORUS_APP_ID ?? env.REVERB_APP_ID;
  const key = env.CHORUS_APP_KEY ?? env.REVERB_APP_KEY;
  const secret = env.CHORUS_APP_SECRET ?? env.REVERB_APP_SECRET;
  if (id === undefined && key === undefined && secret === undefined) {
    const stray = RECOVERY_ENV.find((name) => env[name]);
    if (stray) throw new ConfigError(`${stray}: needs the env app (CHORUS_APP_ID, _KEY, _SECRET)`);
    return undefined;
  }
  const missing = [["CHORUS_APP_ID", id], ["CHORUS_APP_KEY", key], ["CHORUS_APP_SECRET", secret]]
    .filter(([, value]) => !value).map(([name]) => name);
  if (missing.length > 0) {
    throw new ConfigError(`${missing.join(", ")}: required when any CHORUS_APP_* is set`);
  }
  const recovery = recoveryFromEnv(env);
  return { id: id!, key: key!, secret: secret!, ...(recovery ? { recovery } : {}) };
}

function parseApp(raw: unknown, where: string): AppConfig {
  const result = v.safeParse(AppSchema, raw);
  if (!result.success) throw new ConfigError(describeIssues(where, result.issues));
  return result.output;
}

function checkUnique(apps: AppConfig[]): void {
  for (const field of ["id", "key"] as const) {
    const seen = new Set<string>();
    for (const app of apps) {
      if (seen.has(app[field])) {
        throw new ConfigError(`apps: duplicate app ${field} "${app[field]}"`);
      }
      seen.add(app[field]);
    }
  }
}

/** "" or "/something" without a trailing slash. */
function normalizePath(value: string): string {
  const trimmed = value.replace(/\/+$/, "");
  if (trimmed === "") return "";
  return trimmed.startsWith("/") ? trimmed : `/${trimmed}`;
}

/** One line per issue, named by the env var that set the key, else by the key's dotted path. */
function describeIssues(
  where: string,
  issues: v.BaseIssue<unknown>[],
  origins = new Map<string, string>(),
  input?: Shape,
): string {
  return issues.map((issue) => {
    const key = v.getDotPath(issue) ?? "(root)";
    const envName = origins.get(key);
    if (envName) {
      const raw = key.split(".").reduce<unknown>((at, part) => (at as Shape)?.[part], input);
      const hint = envName === "CHORUS_TRUST_PROXY" && raw === "true"
        ? ' ("true" no longer says which header: "fly" trusts Fly-Client-IP, "xff" X-Forwarded-For)'
        : "";
      return `${envName}: ${issue.message}, got ${JSON.stringify(raw)}${hint}`;
    }
    return `${where}: ${key}: ${issue.message}`;
  }).join("\n");
}
