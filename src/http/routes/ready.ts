/** GET /ready: 200 while this node accepts sockets and events, else 503 with the reason. */
import type { RouteFactory } from "../route.ts";

export const ready: RouteFactory = (node) => ({
  method: "GET",
  path: "/ready",
  signed: false,
  handle(c) {
    if (node.ready) return c.json({ ready: true });
    const error = node.draining ? "Draining" : "Cluster bus not connected";
    return c.json({ ready: false, error }, 503);
  },
});
