/** GET /apps/{id}/connections: open sockets cluster-wide (Laravel Pulse reads it). */
import type { RouteFactory } from "../route.ts";

export const connections: RouteFactory = (node) => ({
  method: "GET",
  path: "/apps/:appId/connections",
  signed: true,
  async handle(c, call) {
    return c.json({ connections: await node.cluster.state.connectionCount(call.app.id) });
  },
});
