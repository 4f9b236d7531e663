// The HTTP oracle: from a request exactly as sent (method, URL, body bytes), the statuses
// docs/protocol.md §9 allows, and the shape a 200 must have. Where several things are wrong the
// spec orders none of them, so any of their statuses is accepted; `maybe` collects what the spec
// leaves open (noted where it is decided).
import { Buffer } from "node:buffer";
import {
  APPS,
  channelKind,
  type FuzzApp,
  hmac,
  httpStringToSign,
  isRecord,
  md5,
  tryParse,
} from "./spec.ts";

export interface HttpRequest {
  method: string;
  url: URL;
  body: Uint8Array<ArrayBuffer>;
  contentType?: string;
  /** Header abuse: the runtime may refuse the request itself (400/413/431, any body). */
  headerAbuse: boolean;
}

export interface HttpExpect {
  statuses: number[];
  /** Checks a 200's JSON body; answers what is wrong. */
  shape?: (body: unknown) => string | undefined;
  runtimeStatuses: number[];
  /** A reported server deviation from the spec: seen, it counts as "known", not as a failure. */
  known?: { label: string; statuses: number[] };
}

type Route = { name: string; methods: string[]; signed: boolean; param?: string };

function route(rest: string): Route | undefined {
  const seg = rest.split("/").slice(1);
  const ok = (s: string | undefined) => s !== undefined && s !== "";
  if (rest === "/health") return { name: "health", methods: ["GET"], signed: false };
  if (rest === "/events") return { name: "events", methods: ["POST"], signed: true };
  if (rest === "/batch_events") return { name: "batch", methods: ["POST"], signed: true };
  if (rest === "/channels") return { name: "channels", methods: ["GET"], signed: true };
  if (rest === "/connections") return { name: "connections", methods: ["GET"], signed: true };
  if (seg[0] === "channels" && ok(seg[1]) && seg.length === 2) {
    return { name: "channel", methods: ["GET"], signed: true, param: seg[1] };
  }
  if (seg[0] === "channels" && ok(seg[1]) && seg[2] === "users" && seg.length === 3) {
    return { name: "users", methods: ["GET"], signed: true, param: seg[1] };
  }
  if (seg[0] === "users" && ok(seg[1]) && seg[2] === "terminate_connections" && seg.length === 3) {
    return { name: "terminate", methods: ["POST"], signed: true, param: seg[1] };
  }
  return undefined;
}

const decode = (s: string) => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};

const errorsOnly = (codes: Set<number>, maybe: Set<number>): HttpExpect => ({
  statuses: [...codes, ...maybe],
  runtimeStatuses: [],
});

export function expectHttp(req: HttpRequest, nowSeconds: number): HttpExpect {
  return expectStatuses(req, nowSeconds);
}

function expectStatuses(req: HttpRequest, nowSeconds: number): HttpExpect {
  const must = new Set<number>();
  const maybe = new Set<number>();
  const { method, url, body } = req;
  // HEAD is GET without a body (RFC 9110); OPTIONS, FOO and the rest are "wrong method" (405).
  const asGet = method === "HEAD" ? "GET" : method;
  const runtime = req.headerAbuse ? [400, 413, 431] : [];
  if (req.contentType !== undefined && !req.contentType.startsWith("application/json")) {
    maybe.add(400).add(415); // spec silent on Content-Type: Chorus may ignore it, Pusher rejects
  }
  if (url.pathname === "/up") {
    if (asGet !== "GET") {
      return { ...errorsOnly(new Set([405]), new Set()), runtimeStatuses: runtime };
    }
    return {
      statuses: [200],
      shape: (b) => (isRecord(b) && b.health === "OK" ? undefined : "not {health:OK}"),
      runtimeStatuses: runtime,
    };
  }
  const m = /^\/apps\/([^/]+)(\/.*)?$/.exec(url.pathname);
  const app = m ? APPS.find((a) => a.id === decode(m[1])) : undefined;
  if (!m || !app) return { ...errorsOnly(new Set([404]), new Set()), runtimeStatuses: runtime };
  const r = route(m[2] ?? "");
  if (!r) {
    must.add(404);
    signatureProblems(req, app, nowSeconds, maybe, maybe); // a middleware may check it first
  } else if (r.name === "health") {
    if (asGet !== "GET") must.add(405);
    else if (!app.enabled) must.add(503).add(404);
    else {return {
        statuses: [200],
        shape: (b) => (isRecord(b) && b.health === "OK" ? undefined : "not {health:OK}"),
        runtimeStatuses: runtime,
      };}
  } else {
    if (!r.methods.includes(asGet)) must.add(405);
    if (!app.enabled) must.add(403);
    if (body.length > app.maxRequestSize) must.add(413);
    signatureProblems(req, app, nowSeconds, must, maybe);
  }
  if (must.size > 0) return { ...errorsOnly(must, maybe), runtimeStatuses: runtime };
  const shape = checkRoute(r!, req, app, must, maybe);
  if (must.size > 0) return { ...errorsOnly(must, maybe), runtimeStatuses: runtime };
  return { statuses: [200, ...maybe], shape, runtimeStatuses: runtime };
}

/** §9 signing: every refusal is a 401. */
function signatureProblems(
  req: HttpRequest,
  app: FuzzApp,
  now: number,
  must: Set<number>,
  maybe: Set<number>,
): void {
  const p = req.url.searchParams;
  const key = p.get("auth_key");
  const ts = p.get("auth_timestamp");
  const sig = p.get("auth_signature");
  const version = p.get("auth_version");
  const bodyMd5 = p.get("body_md5");
  const refuse = () => must.add(401);
  if (!key || !ts || !sig) return void refuse();
  if (version === null) maybe.add(401); // the spec lists auth_version=1.0; Pusher's SDKs always send it
  else if (version !== "1.0") refuse();
  if (key !== app.key) refuse();
  if (!/^\d+$/.test(ts) || Math.abs(now - Number(ts)) > 600) refuse();
  if (Math.abs(now - Number(ts)) > 595 && Math.abs(now - Number(ts)) < 605) maybe.add(401).add(200);
  if (req.body.length > 0 && bodyMd5 !== md5(req.body)) refuse();
  if (req.body.length === 0 && bodyMd5 !== null && bodyMd5 !== md5(req.body)) refuse();
  if (sig !== hmac(app.secret, httpStringToSign(req.method, req.url.pathname, p))) refuse();
  if (
    sig.toLowerCase() === hmac(app.secret, httpStringToSign(req.method, req.url.pathname, p)) &&
    sig !== sig.toLowerCase()
  ) {
    maybe.add(200); // spec says "hex", not which case
  }
}

const ALL_INFO = ["user_count", "subscription_count"];

function infoOk(info: unknown, allowed: string[]): boolean {
  if (info === undefined) return true;
  if (typeof info !== "string") return false;
  return info.split(",").map((f) => f.trim()).every((f) => f === "" || allowed.includes(f));
}

function checkRoute(
  r: Route,
  req: HttpRequest,
  app: FuzzApp,
  must: Set<number>,
  maybe: Set<number>,
): HttpExpect["shape"] {
  const q = req.url.searchParams;
  if (q.getAll("info").length > 1) maybe.add(400).add(200);
  switch (r.name) {
    case "channels":
      if (!infoOk(q.get("info") ?? undefined, ALL_INFO)) must.add(400);
      return (b) => (isRecord(b) && isRecord(b.channels) ? undefined : "not {channels:{}}");
    case "connections":
      return (
        b,
      ) => (isRecord(b) && typeof b.connections === "number" ? undefined : "not {connections:n}");
    case "terminate":
      maybe.add(400); // the body is documented as {}; others are refused or ignored
      return (b) => (isRecord(b) && Object.keys(b).length === 0 ? undefined : "not {}");
    case "channel":
    case "users": {
      const name = decode(r.param!);
      const kind = channelKind(name);
      if (!kind) must.add(400);
      if (r.name === "users") {
        if (kind && kind.kind !== "presence") must.add(400);
        return (b) => (isRecord(b) && Array.isArray(b.users) ? undefined : "not {users:[]}");
      }
      if (!infoOk(q.get("info") ?? undefined, [...ALL_INFO, "cache"])) must.add(400);
      return (b) => (isRecord(b) && typeof b.occupied === "boolean" ? undefined : "not {occupied}");
    }
  }
  const text = utf8(req.body);
  const parsed = text === undefined || text.startsWith("\uFEFF") ? undefined : tryParse(text);
  if (!parsed || !isRecord(parsed.value)) {
    must.add(400);
    return undefined;
  }
  const value = parsed.value;
  if (r.name === "events") {
    const channels = eventProblems(value, app, must, maybe, true);
    const info = typeof value.info === "string"
      ? value.info.split(",").map((f) => f.trim()).filter((f) => f)
      : [];
    return (b) => {
      if (!isRecord(b)) return "not an object";
      if (info.length === 0) return Object.keys(b).length === 0 ? undefined : "not {}";
      const got = b.channels;
      return isRecord(got) && channels.every((c) => isRecord(got[c]))
        ? undefined
        : "not {channels:{each}}";
    };
  }
  const batch = value.batch;
  if (!Array.isArray(batch) || batch.length < 1 || batch.length > 10) must.add(400);
  else for (const item of batch) eventProblems(item, app, must, maybe, false);
  const n = Array.isArray(batch) ? batch.length : 0;
  return (
    b,
  ) => (isRecord(b) && Array.isArray(b.batch) && b.batch.length === n
    ? undefined
    : `not {batch:[${n} items]}`);
}

function utf8(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/** One event of /events (channels or channel) or of a batch (channel). Answers its channels. */
function eventProblems(
  e: unknown,
  app: FuzzApp,
  must: Set<number>,
  maybe: Set<number>,
  multi: boolean,
): string[] {
  if (!isRecord(e)) {
    must.add(400);
    return [];
  }
  const bad = () => must.add(400);
  const { name, data, channels, channel, socket_id: socketId, info } = e;
  if (typeof name !== "string" || name.length < 1 || name.length > 200) bad();
  else if (name.startsWith("pusher:") || name.startsWith("pusher_internal:")) maybe.add(400); // reserved; spec silent
  if (data === undefined) bad();
  else {
    if (typeof data !== "string") maybe.add(400); // Pusher wants a string; Chorus may encode it
    const size = Buffer.byteLength(typeof data === "string" ? data : JSON.stringify(data));
    if (size > app.maxEventSize) must.add(413);
  }
  let names: unknown[] = [];
  if (multi && channels !== undefined) {
    if (!Array.isArray(channels) || channels.length < 1 || channels.length > 100) bad();
    else names = channels;
    if (channel !== undefined) maybe.add(400); // both given: the spec names no winner
  } else if (channel !== undefined) names = [channel];
  else bad();
  if (multi && channels !== undefined && channel !== undefined && Array.isArray(channels)) {
    names = [...names, channel];
  }
  for (const c of names) {
    const kind = typeof c === "string" ? channelKind(c) : undefined;
    if (!kind) bad();
    else if (kind.kind === "encrypted" && names.length > 1) bad();
  }
  if (socketId !== undefined && (typeof socketId !== "string" || !/^\d+\.\d+$/.test(socketId))) {
    bad();
  }
  if (info !== undefined && !infoOk(info, ALL_INFO)) bad();
  if (info === "") maybe.add(200);
  return names.filter((c): c is string => typeof c === "string");
}
