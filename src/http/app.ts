/**
 * The Hono app: the route table (src/http/routes/index.ts) under the optional path prefix, the
 * signed-API middleware on signed routes, 405 for known paths asked with another method, and one
 * error mapping (src/http/errors.ts). The wire behaviour: docs/protocol.md §9.
 */
import { Hono } from "hono";
import type { ChorusNode } from "../node.ts";
import { errorResponse, methodNotAllowed, notFound } from "./errors.ts";
import { countRequests } from "./middleware/count-requests.ts";
import { signedApi } from "./middleware/signed-api.ts";
import type { HttpEnv } from "./route.ts";
import { routeTable } from "./routes/index.ts";

export { metricsHandler } from "./routes/index.ts";

export function createHttpApp(node: ChorusNode): Hono<HttpEnv> {
  const root = new Hono<HttpEnv>();
  const app = node.config.path ? root.basePath(node.config.path) : root;
  root.use(countRequests(node.metrics));

  const signed = signedApi(node);
  const paths = new Set<string>();
  for (const route of routeTable(node)) {
    if (route.signed) app.on(route.method, route.path, signed, route.handle);
    else app.on(route.method, route.path, route.handle);
    paths.add(route.path);
  }
  // Registered last, so only methods no route of the path takes (OPTIONS too) reach it.
  for (const path of paths) app.all(path, methodNotAllowed);

  root.notFound(notFound);
  root.onError((error, c) => errorResponse(error, c, node.log));
  return root;
}
