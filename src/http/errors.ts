/** How the HTTP layer refuses: one error type with a status, and the JSON bodies it answers. */
import type { Context } from "hono";
import { ClusterUnavailable } from "../cluster/types.ts";
import { errorMessage, type Logger } from "../log.ts";

export class HttpError extends Error {
  constructor(readonly status: 400 | 401 | 403 | 404 | 405 | 413 | 429 | 503, message: string) {
    super(message);
  }
}

/** The answer to anything a handler threw: its own status, 503 for the cluster, else 500. */
export function errorResponse(error: unknown, c: Context, log: Logger): Response {
  if (error instanceof HttpError) return c.json({ error: error.message }, error.status);
  if (error instanceof ClusterUnavailable) {
    return c.json({ error: `Cluster state unavailable; retry (${error.message})` }, 503);
  }
  log.error("http handler failed", { path: c.req.path, error: errorMessage(error) });
  return c.json({ error: "Internal server error" }, 500);
}

export function notFound(c: Context): Response {
  return c.json({ error: `No route for ${c.req.method} ${c.req.path}` }, 404);
}

export function methodNotAllowed(c: Context): Response {
  return c.json({ error: `Method ${c.req.method} not allowed on ${c.req.path}` }, 405);
}

export function tooManyRequests(c: Context, waitMs: number, error: string): Response {
  return c.json({ error }, 429, { "retry-after": String(Math.max(1, Math.ceil(waitMs / 1000))) });
}
