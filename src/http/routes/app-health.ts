/** GET /apps/{id}/health (unsigned): the app exists and this node can serve it. */
import type { RouteFactory } from "../route.ts";

export const appHealth: RouteFactory = (node) => ({
  method: "GET",
  path: "/apps/:appId/health",
  signed: false,
  handle(c) {
    const target = node.appsById.get(c.req.param("appId") ?? "");
    if (!target) return c.json({ error: "Unknown app" }, 404);
    if (!target.enabled) return c.json({ error: "Application is disabled" }, 503);
    if (!node.ready) return c.json({ error: "Node is not ready" }, 503);
    return c.json({ health: "OK" });
  },
});
