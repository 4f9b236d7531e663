/**
 * The Hono app: the socket endpoint, health routes and the signed Pusher HTTP API
 * (docs/protocol.md §9).
 */
import { Hono } from "hono";
import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { routePath } from "hono/route";
import { userControlChannel } from "../channels/internal.ts";
import { channelType, isPresence } from "../channels/kinds.ts";
import { type ChannelCounts, ClusterUnavailable } from "../cluster/types.ts";
import type { AppConfig } from "../config.ts";
import { errorMessage } from "../log.ts";
import type { ChorusNode } from "../node.ts";
import { channelEventFrame } from "../protocol/encode.ts";
import {
  HttpError,
  type InfoField,
  type OutgoingEvent,
  parseBatchBody,
  parseEventBody,
  parseInfo,
  parseJsonBody,
} from "./events.ts";
import { verifyRequest } from "./signature.ts";
import { upgradeRefusal } from "./upgrade.ts";

type Env = { Variables: { app: AppConfig; body: string } };

export function createHttpApp(node: ChorusNode): Hono<Env> {
  const root = new Hono<Env>();
  const app = node.config.path ? root.basePath(node.config.path) : root;
  const { state } = node.cluster;

  root.use(countRequests(node));

  const upgrade = node.adapter.websocket((c) => node.accept(c));
  app.get("/app/:key", (c) => {
    if (node.draining) return c.json({ error: "Server is draining; connect to another node" }, 503);
    if (!node.ready) {
      return c.json({ error: "Node cannot reach the cluster; connect to another node" }, 503);
    }
    const limiter = node.ipConnections;
    if (limiter) {
      const waitMs = limiter.take(clientAddress(node, c), node.now());
      if (waitMs > 0) {
        node.metrics.rateLimited.inc({ kind: "ip_connection" });
        return tooManyRequests(c, waitMs, "Too many new connections from this address");
      }
    }
    const refusal = upgradeRefusal((name) => c.req.header(name));
    if (refusal) return c.json({ error: refusal.error }, refusal.status, refusal.headers);
    return upgrade(c);
  });

  app.get("/up", (c) => c.json({ health: "OK" }));
  app.get("/ready", (c) => {
    if (node.ready) return c.json({ ready: true });
    const error = node.draining ? "Draining" : "Cluster bus not connected";
    return c.json({ ready: false, error }, 503);
  });
  if (node.config.metricsPort === undefined) app.get("/metrics", metricsHandler(node));
  app.get("/apps/:appId/health", (c) => {
    const target = node.appsById.get(c.req.param("appId"));
    if (!target) return c.json({ error: "Unknown app" }, 404);
    if (!target.enabled) return c.json({ error: "Application is disabled" }, 503);
    if (!node.ready) return c.json({ error: "Node is not ready" }, 503);
    return c.json({ health: "OK" });
  });

  app.use(
    "/apps/:appId/*",
    resolveApp(node),
    limitApiRate(node),
    limitBody(),
    verifySignature(node),
  );

  app.post("/apps/:appId/events", async (c) => {
    const target = c.get("app");
    const event = parseEventBody(parseJsonBody(c.get("body")), target);
    await publish(node, target, event);
    if (event.info.size === 0) return c.json({});
    return c.json({ channels: await channelInfos(node, target, event) });
  });

  app.post("/apps/:appId/batch_events", async (c) => {
    const target = c.get("app");
    const events = parseBatchBody(parseJsonBody(c.get("body")), target);
    await Promise.all(events.map((event) => publish(node, target, event)));
    const batch = await Promise.all(events.map(async (event) => {
      if (event.info.size === 0) return {};
      const infos = await channelInfos(node, target, event);
      return infos[event.channels[0]];
    }));
    return c.json({ batch });
  });

  app.get("/apps/:appId/channels", async (c) => {
    const target = c.get("app");
    const info = parseInfo(c.req.query("info"), ["user_count", "subscription_count"]);
    const prefix = c.req.query("filter_by_prefix") ?? "";
    const channels: Record<string, Record<string, number>> = {};
    for (const [name, counts] of await state.channels(target.id, prefix)) {
      channels[name] = countsFor(name, counts, info);
    }
    return c.json({ channels });
  });

  app.get("/apps/:appId/channels/:channel", async (c) => {
    const target = c.get("app");
    const name = c.req.param("channel");
    if (!channelType(name)) throw new HttpError(400, `Invalid channel name "${name}"`);
    const info = parseInfo(c.req.query("info"), ["user_count", "subscription_count", "cache"]);
    const counts = await state.channel(target.id, name);
    const cached = info.has("cache") ? await state.getCache(target.id, name) : undefined;
    return c.json({
      occupied: counts.subscriptionCount > 0,
      ...countsFor(name, counts, info),
      ...(cached ? { cache: cached } : {}),
    });
  });

  app.get("/apps/:appId/channels/:channel/users", async (c) => {
    const target = c.get("app");
    const name = c.req.param("channel");
    if (!channelType(name)) throw new HttpError(400, `Invalid channel name "${name}"`);
    if (!isPresence(name)) {
      throw new HttpError(400, "Users can only be listed for presence channels");
    }
    const members = await state.presenceMembers(target.id, name);
    return c.json({ users: [...members.keys()].map((id) => ({ id })) });
  });

  app.post("/apps/:appId/users/:userId/terminate_connections", async (c) => {
    const target = c.get("app");
    const userId = c.req.param("userId");
    try {
      await node.cluster.bus.publish(target.id, userControlChannel(userId), "terminate");
    } catch (error) {
      node.log.warn("terminate refused", { app: target.id, error: errorMessage(error) });
      throw new HttpError(503, "Terminate could not reach the cluster; retry");
    }
    return c.json({});
  });

  app.get("/apps/:appId/connections", async (c) => {
    return c.json({ connections: await state.connectionCount(c.get("app").id) });
  });

  // Known routes asked with the wrong method.
  const getRoutes = [
    "/up",
    "/ready",
    "/metrics",
    "/app/:key",
    "/apps/:appId/health",
    "/apps/:appId/channels",
    "/apps/:appId/channels/:channel",
    "/apps/:appId/channels/:channel/users",
    "/apps/:appId/connections",
  ];
  const postRoutes = [
    "/apps/:appId/events",
    "/apps/:appId/batch_events",
    "/apps/:appId/users/:userId/terminate_connections",
  ];
  app.on(["POST", "PUT", "PATCH", "DELETE"], getRoutes, methodNotAllowed);
  app.on(["GET", "PUT", "PATCH", "DELETE"], postRoutes, methodNotAllowed);

  root.notFound((c) => c.json({ error: `No route for ${c.req.method} ${c.req.path}` }, 404));
  root.onError((error, c) => {
    if (error instanceof HttpError) return c.json({ error: error.message }, error.status);
    if (error instanceof ClusterUnavailable) {
      return c.json({ error: `Cluster state unavailable; retry (${error.message})` }, 503);
    }
    node.log.error("http handler failed", { path: c.req.path, error: errorMessage(error) });
    return c.json({ error: "Internal server error" }, 500);
  });
  return root;
}

/** GET /metrics in Prometheus text format, behind the optional bearer token. */
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

function countRequests(node: ChorusNode): MiddlewareHandler {
  return async (c, next) => {
    await next();
    // The endpoint's pattern (not a middleware's, not the raw path): one series per endpoint,
    // whether a middleware refused the request or the handler answered it.
    const pattern = routePath(c, -1);
    const route = pattern === "" || pattern.endsWith("*") ? "unmatched" : pattern;
    if (route.endsWith("/app/:key")) return; // sockets are counted as connections
    node.metrics.httpRequests.inc({ route, status: String(c.res.status) });
  };
}

/**
 * The client's address: the one header of the configured proxy (never a header the proxy does not
 * set, which a client could choose), else the peer.
 */
function clientAddress(node: ChorusNode, c: Context): string {
  const trust = node.config.trustProxy;
  if (trust.kind === "fly") {
    const address = c.req.header("fly-client-ip")?.trim();
    if (address) return address;
  } else if (trust.kind === "xff") {
    // Each of our proxies appended the address it saw; earlier entries are the client's own.
    const entries = c.req.header("x-forwarded-for")?.split(",") ?? [];
    const address = entries.at(-trust.hops)?.trim();
    if (entries.length >= trust.hops && address) return address;
  }
  return node.adapter.clientAddress(c);
}

function tooManyRequests(c: Context, waitMs: number, error: string): Response {
  return c.json({ error }, 429, { "retry-after": String(Math.max(1, Math.ceil(waitMs / 1000))) });
}

function limitApiRate(node: ChorusNode): MiddlewareHandler<Env> {
  return async (c, next) => {
    const target = c.get("app");
    const waitMs = node.apiRequests.get(target.id)?.take(target.id, node.now()) ?? 0;
    if (waitMs > 0) {
      node.metrics.rateLimited.inc({ kind: "http_api" });
      return tooManyRequests(
        c,
        waitMs,
        `Rate limit of ${target.api_rate_limit} requests/s exceeded`,
      );
    }
    await next();
  };
}

function methodNotAllowed(c: Context): Response {
  return c.json({ error: `Method ${c.req.method} not allowed on ${c.req.path}` }, 405);
}

function resolveApp(node: ChorusNode): MiddlewareHandler<Env> {
  return async (c, next) => {
    const target = node.appsById.get(c.req.param("appId") ?? "");
    if (!target) return c.json({ error: "Unknown app" }, 404);
    if (!target.enabled) return c.json({ error: "Application is disabled" }, 403);
    c.set("app", target);
    await next();
  };
}

function limitBody(): MiddlewareHandler<Env> {
  return (c, next) => {
    const maxSize = c.get("app").max_request_size;
    return bodyLimit({
      maxSize,
      onError: (c) => c.json({ error: `Request body is over the limit of ${maxSize} bytes` }, 413),
    })(c, next);
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

function verifySignature(node: ChorusNode): MiddlewareHandler<Env> {
  return async (c, next) => {
    const bytes = c.req.method === "GET" || c.req.method === "HEAD"
      ? new Uint8Array()
      : new Uint8Array(await c.req.arrayBuffer());
    const url = new URL(c.req.url);
    const refusal = verifyRequest(
      {
        method: c.req.method,
        path: url.pathname,
        params: url.searchParams,
        body: bytes,
        routePrefix: node.config.path,
      },
      c.get("app"),
      node.now() / 1000,
    );
    if (refusal) return c.json({ error: refusal }, 401);
    c.set("body", decodeBody(bytes));
    await next();
  };
}

/** Publishes an event to each of its channels; 503 when the cluster cannot guarantee delivery. */
async function publish(node: ChorusNode, app: AppConfig, event: OutgoingEvent): Promise<void> {
  try {
    await Promise.all(event.channels.map((channel) =>
      node.cluster.bus.publish(
        app.id,
        channel,
        channelEventFrame(event.name, channel, event.data),
        event.socketId,
      )
    ));
  } catch (error) {
    node.log.warn("publish refused", { app: app.id, error: errorMessage(error) });
    throw new HttpError(503, "Event could not be delivered to the cluster; retry");
  }
  // Cache channels keep the last event for later subscribers, even with none now.
  await Promise.all(
    event.channels.filter((channel) => channelType(channel)?.cache).map((channel) =>
      node.cluster.state.setCache(
        app.id,
        channel,
        { event: event.name, data: event.data },
        app.cache_ttl,
      )
    ),
  );
}

async function channelInfos(
  node: ChorusNode,
  app: AppConfig,
  event: OutgoingEvent,
): Promise<Record<string, Record<string, number>>> {
  const infos: Record<string, Record<string, number>> = {};
  await Promise.all(event.channels.map(async (channel) => {
    infos[channel] = countsFor(
      channel,
      await node.cluster.state.channel(app.id, channel),
      event.info,
    );
  }));
  return infos;
}

/** The requested counts; `user_count` exists for presence channels only. */
function countsFor(
  channel: string,
  counts: ChannelCounts,
  info: ReadonlySet<InfoField>,
): Record<string, number> {
  const result: Record<string, number> = {};
  if (info.has("user_count") && isPresence(channel)) result.user_count = counts.userCount ?? 0;
  if (info.has("subscription_count")) result.subscription_count = counts.subscriptionCount;
  return result;
}
