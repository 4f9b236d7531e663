/**
 * GET /app/{key}: the WebSocket endpoint (docs/protocol.md §1); GET /session/{id}/app/{key} the
 * same for a resumable session (docs/recovery.md; pusher-js and Echo: `wsPath: "/session/{id}"`).
 */
import type { RouteFactory } from "../route.ts";
import { tooManyRequests } from "../errors.ts";
import { clientAddress } from "../middleware/client-address.ts";
import { upgradeRefusal } from "../upgrade.ts";

/** A session id: random per browser tab (e.g. kept in sessionStorage). */
const SESSION_ID = /^[A-Za-z0-9_-]{8,128}$/;

export const socket: RouteFactory = (node) => socketRoute(node, "/app/:key");

export const sessionSocket: RouteFactory = (node) =>
  socketRoute(node, "/session/:session/app/:key");

function socketRoute(node: Parameters<RouteFactory>[0], path: string): ReturnType<RouteFactory> {
  const upgrade = node.adapter.websocket((c) => node.accept(c));
  return {
    method: "GET",
    path,
    signed: false,
    handle(c) {
      const session = c.req.param("session");
      if (session !== undefined && !SESSION_ID.test(session)) {
        return c.json({ error: "A session id is 8 to 128 letters, digits, '_' or '-'" }, 400);
      }
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
}
