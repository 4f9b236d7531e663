/**
 * The cluster layer's public surface (docs/architecture.md): what nodes share, and the wiring
 * that picks a driver. One process: memory (src/cluster/local.ts). Several: Redis
 * (src/cluster/redis.ts), whose command connection also carries the webhook queue.
 */
import type { ClusterConfig } from "../config.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { MemoryWebhookQueue } from "../webhooks/index.ts";
import { RedisWebhookQueue } from "../webhooks/index.ts";
import type { WebhookQueue } from "../webhooks/index.ts";
import { LocalCluster } from "./local.ts";
import { RedisCluster } from "./redis.ts";
import type { Cluster } from "./types.ts";

export type * from "./types.ts";
export { ClusterUnavailable } from "./types.ts";

export interface ClusterParts {
  cluster: Cluster;
  /** Where webhook jobs wait: in a cluster, shared so any node can send or retry them. */
  webhookQueue: WebhookQueue;
}

export function createCluster(
  config: ClusterConfig,
  nodeId: string,
  log: Logger,
  metrics: Metrics,
): ClusterParts {
  if (config.driver === "local") {
    return {
      cluster: new LocalCluster(nodeId, config.region),
      webhookQueue: new MemoryWebhookQueue(),
    };
  }
  const cluster = new RedisCluster(config, nodeId, log, metrics);
  const { commands, keys } = cluster.link;
  return { cluster, webhookQueue: new RedisWebhookQueue(commands, keys) };
}
