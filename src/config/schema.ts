/**
 * The one schema of Chorus's configuration, in the config file's shape (README, "Config file").
 * It owns every default: env vars are mapped onto this shape (src/config/env.ts) and the merged
 * result is parsed once. test/config-defaults.test.ts checks README's defaults against it.
 */
import * as v from "valibot";
import { WEBHOOK_EVENTS } from "../webhooks/types.ts";

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  v.pipe(
    v.number("expected a whole number"),
    v.integer("expected a whole number"),
    v.minValue(min, `expected at least ${min}`),
    v.maxValue(max, `expected at most ${max}`),
  );
const positiveInt = int(1);
const nonNegativeInt = int(0);
const port = int(0, 65_535);
const nonEmpty = v.pipe(v.string("expected a string"), v.nonEmpty("must not be empty"));

/** App ids and keys appear in URLs and Redis keys: keep them to URL-safe characters. */
const identifier = v.pipe(
  v.string("expected a string"),
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

/** Channels whose events are kept so clients can recover them (docs/recovery.md). */
const RecoverySchema = v.strictObject({
  /** Channel name patterns, `*` matching any run of characters (`*` alone: every channel). */
  channels: v.pipe(
    v.array(
      v.pipe(
        v.string("expected a string"),
        v.regex(/^[-a-zA-Z0-9_=@,.;*]+$/, "must be a channel name pattern (`*` for any part)"),
      ),
      "expected a list of channel name patterns",
    ),
    v.minLength(1, "must not be empty"),
  ),
  /** Seconds events (and sessions) are kept. */
  ttl_s: v.optional(int(1, 86_400), 120),
  /** Events kept per channel, at most. */
  max_messages: v.optional(int(1, 10_000), 300),
});

export const AppSchema = v.strictObject({
  id: identifier,
  key: identifier,
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
  /** Missed-event recovery for some channels; absent: none. */
  recovery: v.optional(RecoverySchema),
});

/** false, "fly", "xff" or a number of proxies that each append to X-Forwarded-For. */
const TrustProxySchema = v.union(
  [v.literal(false), v.picklist(["fly", "xff"]), int(1, 10)],
  'must be false, "fly", "xff" or a hop count from 1 to 10',
);

const ClusterSchema = v.strictObject({
  /** Absent: "redis" when a Redis URL is set, else "local". */
  driver: v.optional(v.picklist(["local", "redis"], "expected local or redis")),
  redis_url: v.optional(nonEmpty),
  redis_subscribe_url: v.optional(nonEmpty),
  prefix: v.optional(identifier, "main"),
  region: v.optional(nonEmpty, "local"),
  lease_ms: v.optional(int(1_000), 10_000),
  redis_timeout_ms: v.optional(int(50), 1_000),
  bus_grace_ms: v.optional(nonNegativeInt, 3_000),
  bus_reconnect_spread_ms: v.optional(nonNegativeInt, 2_000),
});

export const ConfigSchema = v.strictObject({
  host: v.optional(nonEmpty, "0.0.0.0"),
  port: v.optional(port, 8_080),
  path: v.optional(
    v.pipe(
      v.string("expected a string"),
      v.regex(/^\/?[A-Za-z0-9._~\-/]*$/, "is not a valid URL path prefix"),
    ),
    "",
  ),
  log_level: v.optional(
    v.picklist(["debug", "info", "warn", "error"], "expected debug, info, warn or error"),
    "info",
  ),
  drain_ms: v.optional(nonNegativeInt, 10_000),
  metrics_token: v.optional(nonEmpty),
  metrics_port: v.optional(port),
  trust_proxy: v.optional(TrustProxySchema, false),
  ip_connection_rate: v.optional(v.nullable(positiveInt), null),
  socket_buffer_limit: v.optional(positiveInt, 1_048_576),
  webhook_batch_ms: v.optional(nonNegativeInt, 50),
  webhook_batch_size: v.optional(positiveInt, 100),
  webhook_retry_base_ms: v.optional(positiveInt, 1_000),
  webhook_retry_horizon_ms: v.optional(nonNegativeInt, 3_600_000),
  webhook_timeout_ms: v.optional(positiveInt, 10_000),
  apps: v.optional(v.pipe(v.array(AppSchema), v.minLength(1, "must not be empty"))),
  cluster: v.optional(ClusterSchema, {}),
});

export type ConfigInput = v.InferInput<typeof ConfigSchema>;
export type ConfigOutput = v.InferOutput<typeof ConfigSchema>;
export type AppConfig = v.InferOutput<typeof AppSchema>;
