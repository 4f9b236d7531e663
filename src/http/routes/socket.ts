/** GET /app/{key}: the WebSocket endpoint (docs/protocol.md §1). */
import type { RouteFactory } from "../route.ts";
import { tooManyRequests } from "../errors.ts";
import { clientAddress } from "../middleware/client-address.ts";
import { upgradeRefusal } from "../upgrade.ts";

export const socket: RouteFactory = (node) => {
  const upgrade = node.adapter.websocket((c) => node.accept(c));
  return {
    method: "GET",
    path: "/app/:key",
    signed: false,
    handle(c) {
      if (node.draining) {
        return c.json({ error: "Server is draining; connect to another node" }, 503);
      }
      if (!node.ready) {
        return c.json({ error: "Node cannot reach the cluster; connect to another node" }, 503);
      }
      if (node.descriptors?.pressed) {
        return c.json({ error: "Over capacity: too many open files; retry later" }, 503);
      }
      const limiter = node.ipConnections;
      if (limiter) {
        const waitMs = limiter.take(clientAddress(node, c), node.now());
        if (waitMs > 0) {
          node.metrics.rateLimited.inc({ kind: "ip_connection" });
          return tooManyRequests(c, waitMs, "Too many new connections from this address");
        }
      }
      const refusal = upgradeRefusal((name) => c.req.header(name));
      if (refusal) return c.json({ error: refusal.error }, refusal.status, refusal.headers);
      return upgrade(c);
    },
  };
};
