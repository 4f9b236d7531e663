/**
 * The Hono app: the route table (src/http/routes/index.ts) under the optional path prefix, the
 * signed-API checks on signed routes, 405 for known paths asked with another method, and one
 * error mapping (src/http/errors.ts). The wire behaviour: docs/protocol.md §9.
 *
 * Each route is one Hono handler (counting, checks and endpoint in one function), so that Hono
 * calls it directly instead of composing a middleware chain per request; the 405s come from the
 * not-found handler, which looks the path up among the known patterns.
 */
import { Hono } from "hono";
import { RegExpRouter } from "hono/router/reg-exp-router";
import { SmartRouter } from "hono/router/smart-router";
import { TrieRouter } from "hono/router/trie-router";
import type { ChorusNode } from "../node.ts";
import { errorResponse, methodNotAllowed, notFound } from "./errors.ts";
import { requestCounter } from "./middleware/count-requests.ts";
import { signedApi } from "./middleware/signed-api.ts";
import type { HttpContext } from "./route.ts";
import { routeTable } from "./routes/index.ts";

export { metricsHandler } from "./routes/index.ts";

/** Sockets are counted as connections, not as HTTP requests. */
const isSocketRoute = (pattern: string) => pattern.endsWith("/app/:key");

export function createHttpApp(node: ChorusNode): Hono {
  const root = new Hono();
  const app = node.config.path ? root.basePath(node.config.path) : root;
  const count = requestCounter(node.metrics);
  const signed = signedApi(node);
  /** Every route's pattern with the prefix, as Hono matches it: a path matching one is a 405. */
  const known = new SmartRouter<string>({ routers: [new RegExpRouter(), new TrieRouter()] });

  for (const route of routeTable(node)) {
    const handle = route.signed ? signed(route) : route.handle;
    let pattern = "";
    // The answer to anything it threw is made here, so that its status is counted.
    const counted = async (c: HttpContext) => {
      let response: Response;
      try {
        response = await handle(c);
      } catch (error) {
        response = errorResponse(error, c, node.log);
      }
      count(pattern, response.status);
      return response;
    };
    app.on(route.method, route.path, (c) => isSocketRoute(pattern) ? handle(c) : counted(c));
    pattern = app.routes[app.routes.length - 1].path;
    known.add("ALL", pattern, pattern);
  }

  root.notFound((c) => {
    const pattern = known.match(c.req.method, c.req.path)[0][0]?.[0];
    if (pattern === undefined) {
      count("unmatched", 404);
      return notFound(c);
    }
    const response = methodNotAllowed(c);
    if (!isSocketRoute(pattern)) count(pattern, response.status);
    return response;
  });
  root.onError((error, c) => errorResponse(error, c, node.log));
  return root;
}
