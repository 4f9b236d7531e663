/**
 * What runs before every signed Pusher API call (docs/protocol.md §9): the app from the path, its
 * per-node rate limit, its body limit, and the signature over the path and the body's bytes.
 */
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { ChorusNode } from "../../node.ts";
import { HttpError, tooManyRequests } from "../errors.ts";
import type { HttpContext, HttpEnv } from "../route.ts";
import { requestTarget } from "../query.ts";
import { verifyRequest } from "../signature.ts";

/** One middleware for signed routes; the body limit (Hono's) is built once per app. */
export function signedApi(node: ChorusNode): MiddlewareHandler<HttpEnv> {
  const limits = new Map(node.config.apps.map((app) => {
    const maxSize = app.max_request_size;
    const limit = bodyLimit({
      maxSize,
      onError: (c) => c.json({ error: `Request body is over the limit of ${maxSize} bytes` }, 413),
    });
    return [app.id, limit];
  }));
  const verify = verifySignature(node);
  return (c, next) => {
    const target = node.appsById.get(c.req.param("appId") ?? "");
    if (!target) return Promise.resolve(c.json({ error: "Unknown app" }, 404));
    if (!target.enabled) return Promise.resolve(c.json({ error: "Application is disabled" }, 403));
    c.set("app", target);
    const waitMs = node.apiRequests.get(target.id)?.take(target.id, node.now()) ?? 0;
    if (waitMs > 0) {
      node.metrics.rateLimited.inc({ kind: "http_api" });
      const error = `Rate limit of ${target.api_rate_limit} requests/s exceeded`;
      return Promise.resolve(tooManyRequests(c, waitMs, error));
    }
    return limits.get(target.id)!(c, () => verify(c, next));
  };
}

/** Decodes the body strictly: a BOM or invalid UTF-8 is a 400 for the body, never a guess. */
const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function decodeBody(bytes: Uint8Array): string {
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    throw new HttpError(400, "Body is not valid UTF-8");
  }
  if (text.startsWith("\uFEFF")) {
    throw new HttpError(400, "Body starts with a byte order mark: send plain UTF-8 JSON");
  }
  return text;
}

/** Checks the signature over the path and the body's bytes (401 thrown), then runs `next`. */
function verifySignature(
  node: ChorusNode,
): (c: HttpContext, next: () => Promise<void>) => Promise<void> {
  return async (c, next) => {
    const bytes = c.req.method === "GET" || c.req.method === "HEAD"
      ? new Uint8Array()
      : new Uint8Array(await c.req.arrayBuffer());
    const { path, params } = requestTarget(c.req.url);
    const refusal = verifyRequest(
      {
        method: c.req.method,
        path,
        params,
        body: bytes,
        routePrefix: node.config.path,
      },
      c.get("app"),
      node.now() / 1000,
    );
    if (refusal) throw new HttpError(401, refusal);
    c.set("body", decodeBody(bytes));
    await next();
  };
}
