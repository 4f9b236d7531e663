/** Starts a Chorus node on a runtime adapter. Both entry files (src/bun.ts, src/deno.ts) call this. */
import { Hono } from "hono";
import { createCluster } from "./cluster/index.ts";
import type { Config } from "./config.ts";
import { createHttpApp, metricsHandler } from "./http/index.ts";
import { createLogger, errorMessage, type Logger } from "./log.ts";
import { DescriptorWatch } from "./fds.ts";
import { Metrics } from "./metrics.ts";
import { ChorusNode } from "./node.ts";
import { configSummary, expectedCapacity, openFileLimit } from "./ops.ts";
import type { RunningServer, RuntimeAdapter, ServeOptions } from "./runtime.ts";

/** Sockets need a few descriptors beyond their own (Redis, HTTP, files). */
const SPARE_FILE_DESCRIPTORS = 256;

export interface ChorusServer {
  readonly node: ChorusNode;
  readonly port: number;
  readonly metricsPort?: number;
  /** Graceful: not ready, sockets closed over the drain window, cluster state removed. */
  drain(): Promise<void>;
  /** Immediate: sockets closed, cluster state removed, listeners stopped. */
  stop(): Promise<void>;
}

/** Accept errors come in bursts (one per refused connection): log the first, then a summary. */
const ACCEPT_ERROR_LOG_MS = 5_000;

function acceptErrorReporter(node: ChorusNode, log: Logger): ServeOptions["onAcceptError"] {
  let loggedAt = -Infinity;
  let suppressed = 0;
  return (reason, error) => {
    node.metrics.acceptErrors.inc({ reason });
    const now = node.now();
    if (now - loggedAt < ACCEPT_ERROR_LOG_MS) {
      suppressed++;
      return;
    }
    log.warn("connection not accepted", {
      reason,
      error: errorMessage(error),
      since_last_log: suppressed,
      connections: node.connections.size,
    });
    loggedAt = now;
    suppressed = 0;
  };
}

export async function startServer(
  config: Config,
  adapter: RuntimeAdapter,
  log: Logger = createLogger(config.logLevel),
): Promise<ChorusServer> {
  const nodeId = `${config.cluster.region}-${crypto.randomUUID().slice(0, 8)}`;
  // The wiring: metrics, the cluster driver and the webhook queue are made here, then handed in.
  const metrics = new Metrics();
  const parts = createCluster(config.cluster, nodeId, log, metrics);
  const node = new ChorusNode(config, adapter, { ...parts, metrics }, log);
  const { cluster } = parts;
  await node.start();
  const fileLimit = openFileLimit();
  const reportAcceptError = acceptErrorReporter(node, log);
  // Neither runtime shows its accept loop to JavaScript: the descriptor count is sampled, and
  // new sockets are refused (503) while it is within the reserve (src/fds.ts).
  node.descriptors = new DescriptorWatch(fileLimit, (open, limit) => {
    reportAcceptError("fd_limit", `${open} of ${limit} descriptors open`);
  });
  const running = await adapter.serve(createHttpApp(node), {
    hostname: config.host,
    port: config.port,
    maxFrameBytes: Math.max(...config.apps.map((app) => app.max_message_size)),
    socketBufferLimit: config.socketBufferLimit,
    onAcceptError: reportAcceptError,
  });
  node.publishThrough(running);
  let metricsServer: RunningServer | undefined;
  if (config.metricsPort !== undefined) {
    const metricsApp = new Hono().get("/metrics", metricsHandler(node));
    metricsServer = await adapter.serveHttp(metricsApp, {
      hostname: config.host,
      port: config.metricsPort,
    });
  }
  log.info("listening", {
    port: running.port,
    metrics_port: metricsServer?.port,
    runtime: adapter.name,
    node_id: cluster.nodeId,
    region: cluster.region,
    ...configSummary(config),
  });
  if (config.demoApp) {
    log.warn("no app configured: running the demo app app-id / app-key / app-secret", {
      hint: "set CHORUS_APP_ID, CHORUS_APP_KEY, CHORUS_APP_SECRET or CHORUS_CONFIG",
    });
  }
  const capacity = expectedCapacity(config) + SPARE_FILE_DESCRIPTORS;
  if (fileLimit !== undefined && fileLimit < capacity) {
    log.warn("open file limit is below the expected socket capacity", {
      limit: fileLimit,
      capacity,
      hint: "raise it with `ulimit -n` or systemd LimitNOFILE= (see docs/deploy-nginx.md)",
    });
  }

  const shutdown = async () => {
    node.descriptors?.stop();
    await running.stop();
    await metricsServer?.stop();
    await node.stop();
  };
  return {
    node,
    port: running.port,
    metricsPort: metricsServer?.port,
    async drain() {
      log.info("draining", { connections: node.connections.size, window_ms: config.drainMs });
      await node.drain(config.drainMs);
      await shutdown();
      log.info("drained");
    },
    async stop() {
      node.draining = true;
      for (const connection of node.connections.values()) {
        connection.terminate(4200, "Server is shutting down; reconnect");
      }
      await shutdown();
    },
  };
}
