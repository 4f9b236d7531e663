/**
 * The shape of the HTTP layer: a route table (src/http/routes/index.ts), one file per endpoint,
 * each saying whether it is a signed Pusher API call. src/http/app.ts builds the Hono app from it.
 */
import type { Context } from "hono";
import type { AppConfig } from "../config.ts";
import type { ChorusNode } from "../node.ts";

export type HttpContext = Context;

/** What the signed-API checks (src/http/middleware/signed-api.ts) hand a signed route. */
export interface SignedCall {
  app: AppConfig;
  /** The verified body, decoded. */
  body: string;
}

interface RouteShape {
  method: "GET" | "POST";
  /** Under the optional path prefix (CHORUS_PATH). */
  path: string;
}

/** A Pusher HTTP API call: app lookup, rate limit, body limit and signature check first. */
export interface SignedRoute extends RouteShape {
  signed: true;
  handle(c: HttpContext, call: SignedCall): Response | Promise<Response>;
}

export interface PlainRoute extends RouteShape {
  signed: false;
  handle(c: HttpContext): Response | Promise<Response>;
}

export type Route = SignedRoute | PlainRoute;

/** Each endpoint file exports one of these: the route, given the node it serves. */
export type RouteFactory = (node: ChorusNode) => Route;
