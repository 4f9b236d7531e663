/** Starts a Chorus node on a runtime adapter. Both entry files (src/bun.ts, src/deno.ts) call this. */
import { LocalCluster } from "./cluster/local.ts";
import { RedisCluster } from "./cluster/redis.ts";
import type { Cluster } from "./cluster/types.ts";
import type { Config } from "./config.ts";
import { createHttpApp } from "./http/app.ts";
import { createLogger, type Logger } from "./log.ts";
import { ChorusNode } from "./node.ts";
import type { RuntimeAdapter } from "./runtime.ts";

export interface ChorusServer {
  readonly node: ChorusNode;
  readonly port: number;
  stop(): Promise<void>;
}

export async function startServer(
  config: Config,
  adapter: RuntimeAdapter,
  log: Logger = createLogger(config.logLevel),
): Promise<ChorusServer> {
  const nodeId = `${config.cluster.region}-${crypto.randomUUID().slice(0, 8)}`;
  const cluster: Cluster = config.cluster.driver === "redis"
    ? new RedisCluster(config.cluster, nodeId, log)
    : new LocalCluster(nodeId, config.cluster.region);
  const node = new ChorusNode(config, adapter, cluster, log);
  await node.start();
  const running = await adapter.serve(createHttpApp(node), {
    hostname: config.host,
    port: config.port,
    maxPayloadLength: Math.max(...config.apps.map((app) => app.max_message_size)),
  });
  log.info("listening", {
    host: config.host,
    port: running.port,
    path: config.path || "/",
    runtime: adapter.name,
    node_id: cluster.nodeId,
    region: cluster.region,
    cluster: config.cluster.driver,
    apps: config.apps.map((app) => ({ id: app.id, key: app.key, secret: "***" })),
  });
  if (config.demoApp) {
    log.warn("no app configured: running the demo app app-id / app-key / app-secret", {
      hint: "set CHORUS_APP_ID, CHORUS_APP_KEY, CHORUS_APP_SECRET or CHORUS_CONFIG",
    });
  }
  return {
    node,
    port: running.port,
    async stop() {
      for (const connection of node.connections.values()) {
        connection.socket.close(1001, "Server shutting down");
      }
      await running.stop();
      await node.stop();
    },
  };
}
