/** GET /metrics: Prometheus text, behind the optional bearer token (CHORUS_METRICS_TOKEN). */
import type { Context } from "hono";
import type { ChorusNode } from "../../node.ts";
import type { RouteFactory } from "../route.ts";

/** Also served alone on CHORUS_METRICS_PORT (src/server.ts). */
export function metricsHandler(node: ChorusNode): (c: Context) => Promise<Response> {
  return async (c) => {
    const token = node.config.metricsToken;
    if (token && c.req.header("authorization") !== `Bearer ${token}`) {
      return c.json({ error: "Missing or wrong bearer token" }, 401);
    }
    return c.text(node.metrics.render(await node.gauges()), 200, {
      "content-type": "text/plain; version=0.0.4; charset=utf-8",
    });
  };
}

export const metrics: RouteFactory = (node) => ({
  method: "GET",
  path: "/metrics",
  signed: false,
  handle: metricsHandler(node),
});
