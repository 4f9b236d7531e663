/**
 * What runs before every signed Pusher API call (docs/protocol.md §9): the app from the path, its
 * per-node rate limit, its body limit, and the signature over the path and the body's bytes.
 * One function in front of the handler, not a chain of middleware: each layer of Hono's compose
 * costs a promise and a closure per request.
 */
import type { ChorusNode } from "../../node.ts";
import { HttpError, tooManyRequests } from "../errors.ts";
import { requestTarget } from "../query.ts";
import type { HttpContext, SignedRoute } from "../route.ts";
import { verifyRequest } from "../signature.ts";

/** A signed route's handler behind its checks: it gets the app and the verified body. */
export function signedApi(
  node: ChorusNode,
): (route: SignedRoute) => (c: HttpContext) => Promise<Response> {
  return (route) => async (c) => {
    const target = node.appsById.get(c.req.param("appId") ?? "");
    if (!target) return c.json({ error: "Unknown app" }, 404);
    if (!target.enabled) return c.json({ error: "Application is disabled" }, 403);
    const waitMs = node.apiRequests.get(target.id)?.take(target.id, node.now()) ?? 0;
    if (waitMs > 0) {
      node.metrics.rateLimited.inc({ kind: "http_api" });
      const error = `Rate limit of ${target.api_rate_limit} requests/s exceeded`;
      return tooManyRequests(c, waitMs, error);
    }
    const request = c.req.raw;
    const bytes = await readBody(request, target.max_request_size);
    if (!bytes) {
      const error = `Request body is over the limit of ${target.max_request_size} bytes`;
      return c.json({ error }, 413);
    }
    const { path, params } = requestTarget(request.url);
    const refusal = verifyRequest(
      { method: request.method, path, params, body: bytes, routePrefix: node.config.path },
      target,
      node.now() / 1000,
    );
    if (refusal) throw new HttpError(401, refusal);
    return route.handle(c, { app: target, body: decodeBody(bytes) });
  };
}

const NO_BYTES = new Uint8Array();

/**
 * The body's bytes, or undefined when there are more than `maxSize` (the rule of Hono's
 * bodyLimit, which this replaces): a Content-Length over the limit is refused before reading, a
 * chunked body while it is read. GET and HEAD calls have no body. `request.body` is only touched
 * without a Content-Length: asking for it makes the runtime build a stream, which reading the
 * whole body at once avoids.
 */
async function readBody(request: Request, maxSize: number): Promise<Uint8Array | undefined> {
  if (request.method === "GET" || request.method === "HEAD") return NO_BYTES;
  const { headers } = request;
  const length = headers.get("content-length");
  if (length !== null && !headers.has("transfer-encoding")) {
    if (parseInt(length || "0", 10) > maxSize) return undefined;
    return await request.bytes();
  }
  if (!request.body) return NO_BYTES;
  const reader = request.body.getReader();
  let size = 0;
  let buffer = new Uint8Array(0);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const offset = size;
    size += value.length;
    if (size > maxSize) return undefined;
    if (size > buffer.length) {
      const grown = new Uint8Array(Math.min(maxSize, Math.max(size, buffer.length * 2)));
      grown.set(buffer.subarray(0, offset));
      buffer = grown;
    }
    buffer.set(value, offset);
  }
  return buffer.subarray(0, size);
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
