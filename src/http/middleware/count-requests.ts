/** Counts every HTTP request by endpoint pattern and status for /metrics. */
import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import type { Metrics } from "../../metrics.ts";

export function countRequests(metrics: Metrics): MiddlewareHandler {
  return async (c, next) => {
    await next();
    // The endpoint's pattern (not a middleware's, not the raw path): one series per endpoint,
    // whether a middleware refused the request or the handler answered it.
    const pattern = routePath(c, -1);
    const route = pattern === "" || pattern.endsWith("*") ? "unmatched" : pattern;
    if (route.endsWith("/app/:key")) return; // sockets are counted as connections
    metrics.httpRequests.inc({ route, status: String(c.res.status) });
  };
}
