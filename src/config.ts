/**
 * Configuration: env vars plus an optional JSON file (`CHORUS_CONFIG`), validated with valibot.
 * A bad value stops start-up with a message naming the key.
 */
import { readFileSync } from "node:fs";
import * as v from "valibot";
import type { WebhookSettings } from "./webhooks/dispatcher.ts";
import { WEBHOOK_EVENTS } from "./webhooks/types.ts";

const positiveInt = v.pipe(v.number(), v.integer(), v.minValue(1));
const nonNegativeInt = v.pipe(v.number(), v.integer(), v.minValue(0));
const nonEmpty = v.pipe(v.string(), v.nonEmpty());

/** App ids and keys appear in URLs and Redis keys: keep them to URL-safe characters. */
const appIdentifier = v.pipe(
  v.string(),
  v.regex(/^[A-Za-z0-9._-]+$/, "must be letters, digits, '.', '_' or '-'"),
);

const WebhookSchema = v.strictObject({
  url: v.pipe(v.string(), v.url("must be an absolute URL")),
  /** Which events this URL receives; all when omitted. */
  events: v.optional(v.array(v.picklist(WEBHOOK_EVENTS))),
  headers: v.optional(v.record(v.string(), v.string()), {}),
  filter: v.optional(v.strictObject({
    channel_prefix: v.optional(v.string()),
    channel_suffix: v.optional(v.string()),
  })),
});

const AppSchema = v.strictObject({
  id: appIdentifier,
  key: appIdentifier,
  secret: nonEmpty,
  enabled: v.optional(v.boolean(), true),
  /** Origins allowed to open sockets: exact origins, host names, `*.example.com` or `*`. */
  allowed_origins: v.optional(v.array(nonEmpty), ["*"]),
  /** Cluster-wide cap on open sockets; null means no cap. */
  max_connections: v.optional(v.nullable(nonNegativeInt), null),
  /** Seconds of silence before the server pings a socket. */
  activity_timeout: v.optional(positiveInt, 30),
  /** Seconds to wait for any frame after a server ping before closing with 4201. */
  pong_timeout: v.optional(positiveInt, 30),
  max_message_size: v.optional(positiveInt, 10_000),
  client_events: v.optional(
    v.strictObject({
      enabled: v.optional(v.boolean(), true),
      /** Events per second per connection (token bucket). */
      rate_limit: v.optional(positiveInt, 10),
    }),
    { enabled: true, rate_limit: 10 },
  ),
  max_presence_members: v.optional(positiveInt, 100),
  max_presence_member_size: v.optional(positiveInt, 2_048),
  max_request_size: v.optional(positiveInt, 131_072),
  max_event_size: v.optional(positiveInt, 10_240),
  /** Seconds a cache channel keeps its last HTTP-triggered event. */
  cache_ttl: v.optional(positiveInt, 1_800),
  /** Send pusher_internal:subscription_count to subscribers of non-presence channels. */
  subscription_count: v.optional(v.boolean(), false),
  /** HTTP API requests per second for this app on each node (429 beyond); null means no limit. */
  api_rate_limit: v.optional(v.nullable(positiveInt), null),
  webhooks: v.optional(v.array(WebhookSchema), []),
});

const FileSchema = v.strictObject({
  host: v.optional(nonEmpty),
  port: v.optional(v.pipe(nonNegativeInt, v.maxValue(65_535))),
  path: v.optional(v.string()),
  log_level: v.optional(v.picklist(["debug", "info", "warn", "error"])),
  drain_ms: v.optional(nonNegativeInt),
  metrics_token: v.optional(nonEmpty),
  metrics_port: v.optional(v.pipe(nonNegativeInt, v.maxValue(65_535))),
  /** false, "fly", "xff" or a number of proxy hops that append to X-Forwarded-For. */
  trust_proxy: v.optional(v.union([
    v.literal(false),
    v.picklist(["fly", "xff"]),
    v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(10)),
  ], 'must be false, "fly", "xff" or a hop count from 1 to 10')),
  ip_connection_rate: v.optional(v.nullable(positiveInt)),
  socket_buffer_limit: v.optional(positiveInt),
  webhook_batch_ms: v.optional(nonNegativeInt),
  webhook_batch_size: v.optional(positiveInt),
  webhook_retry_base_ms: v.optional(positiveInt),
  webhook_retry_horizon_ms: v.optional(nonNegativeInt),
  webhook_timeout_ms: v.optional(positiveInt),
  apps: v.optional(v.pipe(v.array(AppSchema), v.minLength(1))),
  cluster: v.optional(v.strictObject({
    driver: v.optional(v.picklist(["local", "redis"])),
    redis_url: v.optional(nonEmpty),
    redis_subscribe_url: v.optional(nonEmpty),
    prefix: v.optional(appIdentifier),
    region: v.optional(nonEmpty),
    lease_ms: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1_000))),
    redis_timeout_ms: v.optional(v.pipe(v.number(), v.integer(), v.minValue(50))),
    bus_grace_ms: v.optional(nonNegativeInt),
    bus_reconnect_spread_ms: v.optional(nonNegativeInt),
  })),
});

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

export type AppConfig = v.InferOutput<typeof AppSchema>;
export type LogLevel = "debug" | "info" | "warn" | "error";

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
  const file = readConfigFile(env, readFile);
  const host = env.HOST ?? file.host ?? "0.0.0.0";
  const port = env.PORT !== undefined ? parsePort(env.PORT) : file.port ?? 8080;
  const path = normalizePath(env.CHORUS_PATH ?? file.path ?? "", "CHORUS_PATH");
  const logLevel = parseLogLevel(env.LOG_LEVEL ?? file.log_level ?? "info");

  const envApp = appFromEnv(env);
  const apps = [...(file.apps ?? [])];
  if (envApp) apps.unshift(parseApp(envApp, "CHORUS_APP_*"));
  const demoApp = apps.length === 0;
  if (demoApp) apps.push(parseApp({ ...DEMO_APP }, "demo app"));
  checkUnique(apps);
  const metricsPort = optionalInt(env, "CHORUS_METRICS_PORT", file.metrics_port, 0);
  return {
    host,
    port,
    path,
    logLevel,
    apps,
    demoApp,
    cluster: clusterConfig(env, file.cluster),
    drainMs: optionalInt(env, "CHORUS_DRAIN_MS", file.drain_ms, 0) ?? 10_000,
    metricsToken: env.CHORUS_METRICS_TOKEN || file.metrics_token,
    metricsPort,
    trustProxy: parseTrustProxy(env.CHORUS_TRUST_PROXY, file.trust_proxy),
    ipConnectionRate: optionalInt(env, "CHORUS_IP_CONNECTION_RATE", file.ip_connection_rate, 1),
    socketBufferLimit:
      optionalInt(env, "CHORUS_SOCKET_BUFFER_LIMIT", file.socket_buffer_limit, 1) ??
        1_048_576,
    webhooks: {
      batchMs: optionalInt(env, "CHORUS_WEBHOOK_BATCH_MS", file.webhook_batch_ms, 0) ?? 50,
      batchSize: optionalInt(env, "CHORUS_WEBHOOK_BATCH_SIZE", file.webhook_batch_size, 1) ?? 100,
      retryBaseMs:
        optionalInt(env, "CHORUS_WEBHOOK_RETRY_BASE_MS", file.webhook_retry_base_ms, 1) ??
          1_000,
      retryHorizonMs:
        optionalInt(env, "CHORUS_WEBHOOK_RETRY_HORIZON_MS", file.webhook_retry_horizon_ms, 0) ??
          3_600_000,
      timeoutMs: optionalInt(env, "CHORUS_WEBHOOK_TIMEOUT_MS", file.webhook_timeout_ms, 1) ??
        10_000,
    },
  };
}

/** An integer from env (wins) or the file; undefined when neither sets it. */
function optionalInt(
  env: Env,
  name: string,
  fileValue: number | null | undefined,
  min: number,
): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return fileValue ?? undefined;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min) {
    throw new ConfigError(`${name}: expected an integer of at least ${min}, got "${raw}"`);
  }
  return value;
}

function parseTrustProxy(
  raw: string | undefined,
  fileValue: false | string | number | undefined,
): TrustProxy {
  const value = raw === undefined || raw === "" ? fileValue ?? false : raw;
  if (value === false || value === "false" || value === "0" || value === "no") {
    return { kind: "none" };
  }
  if (value === "fly") return { kind: "fly" };
  if (value === "xff") return { kind: "xff", hops: 1 };
  const hops = Number(value);
  if (Number.isInteger(hops) && hops >= 1 && hops <= 10) return { kind: "xff", hops };
  const hint = value === "true" || value === "1" || value === "yes"
    ? ' ("true" no longer says which header: "fly" trusts Fly-Client-IP, "xff" X-Forwarded-For)'
    : "";
  throw new ConfigError(
    `CHORUS_TRUST_PROXY: expected false, fly, xff or a hop count from 1 to 10, got "${value}"${hint}`,
  );
}

function clusterConfig(env: Env, file: FileConfig["cluster"] = {}): ClusterConfig {
  const redisUrl = env.REDIS_URL || file.redis_url;
  const driverName = env.CHORUS_CLUSTER_DRIVER || file.driver || (redisUrl ? "redis" : "local");
  if (driverName !== "local" && driverName !== "redis") {
    throw new ConfigError(`CHORUS_CLUSTER_DRIVER: expected local or redis, got "${driverName}"`);
  }
  if (driverName === "redis" && !redisUrl) {
    throw new ConfigError("REDIS_URL: required when the cluster driver is redis");
  }
  const prefix = env.CHORUS_REDIS_PREFIX || file.prefix || "main";
  if (!/^[A-Za-z0-9._-]+$/.test(prefix)) {
    throw new ConfigError(
      `CHORUS_REDIS_PREFIX: "${prefix}" must be letters, digits, '.', '_' or '-'`,
    );
  }
  const lease = env.CHORUS_NODE_LEASE_MS;
  const leaseMs = lease !== undefined ? Number(lease) : file.lease_ms ?? 10_000;
  if (!Number.isInteger(leaseMs) || leaseMs < 1_000) {
    throw new ConfigError(
      `CHORUS_NODE_LEASE_MS: expected an integer of at least 1000, got "${lease}"`,
    );
  }
  return {
    driver: driverName,
    redisUrl,
    redisSubscribeUrl: env.REDIS_SUBSCRIBE_URL || file.redis_subscribe_url,
    prefix,
    region: env.CHORUS_REGION || env.FLY_REGION || file.region || "local",
    leaseMs,
    redisTimeoutMs: optionalInt(env, "CHORUS_REDIS_TIMEOUT_MS", file.redis_timeout_ms, 50) ?? 1_000,
    busGraceMs: optionalInt(env, "CHORUS_BUS_GRACE_MS", file.bus_grace_ms, 0) ?? 3_000,
    busReconnectSpreadMs:
      optionalInt(env, "CHORUS_BUS_RECONNECT_SPREAD_MS", file.bus_reconnect_spread_ms, 0) ??
        2_000,
  };
}

function readText(path: string): string {
  return readFileSync(path, "utf8");
}

type FileConfig = v.InferOutput<typeof FileSchema>;

function readConfigFile(env: Env, readFile: (path: string) => string): FileConfig {
  const path = env.CHORUS_CONFIG;
  if (!path) return {};
  let raw: unknown;
  try {
    raw = JSON.parse(readFile(path));
  } catch (error) {
    throw new ConfigError(`CHORUS_CONFIG (${path}): ${(error as Error).message}`);
  }
  const result = v.safeParse(FileSchema, raw);
  if (!result.success) throw new ConfigError(describeIssues(`config file ${path}`, result.issues));
  return result.output;
}

function appFromEnv(env: Env): Record<string, string> | undefined {
  const id = env.CHORUS_APP_ID ?? env.REVERB_APP_ID;
  const key = env.CHORUS_APP_KEY ?? env.REVERB_APP_KEY;
  const secret = env.CHORUS_APP_SECRET ?? env.REVERB_APP_SECRET;
  if (id === undefined && key === undefined && secret === undefined) return undefined;
  const missing = [["CHORUS_APP_ID", id], ["CHORUS_APP_KEY", key], ["CHORUS_APP_SECRET", secret]]
    .filter(([, value]) => !value).map(([name]) => name);
  if (missing.length > 0) {
    throw new ConfigError(`${missing.join(", ")}: required when any CHORUS_APP_* is set`);
  }
  return { id: id!, key: key!, secret: secret! };
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

function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65_535) {
    throw new ConfigError(`PORT: expected an integer from 0 to 65535, got "${value}"`);
  }
  return port;
}

function parseLogLevel(value: string): LogLevel {
  if (value === "debug" || value === "info" || value === "warn" || value === "error") return value;
  throw new ConfigError(`LOG_LEVEL: expected debug, info, warn or error, got "${value}"`);
}

function normalizePath(value: string, key: string): string {
  const trimmed = value.replace(/\/+$/, "");
  if (trimmed === "") return "";
  if (!/^\/?[A-Za-z0-9._~\-/]+$/.test(trimmed)) {
    throw new ConfigError(`${key}: "${value}" is not a valid URL path prefix`);
  }
  return trimmed.startsWith("/") ? trimmed : `/${trimmed}`;
}

function describeIssues(where: string, issues: v.BaseIssue<unknown>[]): string {
  return issues.map((issue) => {
    const key = v.getDotPath(issue) ?? "(root)";
    return `${where}: ${key}: ${issue.message}`;
  }).join("\n");
}
