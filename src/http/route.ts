/**
 * The shape of the HTTP layer: a route table (src/http/routes/index.ts), one file per endpoint,
 * each saying whether it is a signed Pusher API call. src/http/app.ts builds the Hono app from it.
 */
import type { Context } from "hono";
import type { AppConfig } from "../config.ts";
import type { ChorusNode } from "../node.ts";

/** What the signed-API middleware leaves for handlers: the app and the verified body. */
export type HttpEnv = { Variables: { app: AppConfig; body: string } };

export type HttpContext = Context<HttpEnv>;

export interface Route {
  method: "GET" | "POST";
  /** Under the optional path prefix (CHORUS_PATH). */
  path: string;
  /** A Pusher HTTP API call: app lookup, rate limit, body limit and signature check first. */
  signed: boolean;
  handle(c: HttpContext): Response | Promise<Response>;
}

/** Each endpoint file exports one of these: the route, given the node it serves. */
export type RouteFactory = (node: ChorusNode) => Route;
