/** Operational helpers: the start-up config summary and the file-descriptor check. */
import { readFileSync } from "node:fs";
import type { Config } from "./config.ts";

/** A URL with its password replaced, for logs. */
export function maskUrl(url: string | undefined): string | undefined {
  if (!url) return url;
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(unparsable URL)";
  }
}

/** What the start-up log line says about the config, secrets masked. */
export function configSummary(config: Config): Record<string, unknown> {
  return {
    host: config.host,
    path: config.path || "/",
    cluster: {
      driver: config.cluster.driver,
      redis_url: maskUrl(config.cluster.redisUrl),
      redis_subscribe_url: maskUrl(config.cluster.redisSubscribeUrl),
      prefix: config.cluster.prefix,
      lease_ms: config.cluster.leaseMs,
    },
    drain_ms: config.drainMs,
    metrics: config.metricsPort ? `port ${config.metricsPort}` : "main port",
    metrics_token: config.metricsToken ? "***" : undefined,
    ip_connection_rate: config.ipConnectionRate ?? null,
    apps: config.apps.map((app) => ({
      id: app.id,
      key: app.key,
      secret: "***",
      enabled: app.enabled,
      max_connections: app.max_connections,
    })),
  };
}

/** Sockets this node expects to hold: the apps' quotas, or a nominal 10 000 when unlimited. */
export function expectedCapacity(config: Config): number {
  let total = 0;
  for (const app of config.apps) {
    if (app.max_connections === null) return 10_000;
    total += app.max_connections;
  }
  return total;
}

/** The soft limit of open files (Linux), or undefined where it cannot be read. */
export function openFileLimit(): number | undefined {
  try {
    const limits = readFileSync("/proc/self/limits", "utf8");
    const line = limits.split("\n").find((entry) => entry.startsWith("Max open files"));
    const soft = line?.split(/\s{2,}/)[1];
    if (soft === "unlimited") return Infinity;
    return soft ? Number(soft) : undefined;
  } catch {
    return undefined;
  }
}
