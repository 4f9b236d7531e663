// Pusher signing done by hand with node:crypto (protocol.md §3 and §9), so tests can craft both
// valid and deliberately broken requests.
import { createHash, createHmac } from "node:crypto";
import type { Chorus } from "./server.ts";

export interface AppCreds {
  id: string;
  key: string;
  secret: string;
}

export function hmacHex(secret: string, text: string): string {
  return createHmac("sha256", secret).update(text).digest("hex");
}

export function md5Hex(body: string): string {
  return createHash("md5").update(body).digest("hex");
}

/** `{key}:{hex}` for a private/encrypted channel, or a presence channel when channelData given. */
export function channelAuth(
  app: { key: string; secret: string },
  socketId: string,
  channel: string,
  channelData?: string,
): string {
  const text = channelData === undefined
    ? `${socketId}:${channel}`
    : `${socketId}:${channel}:${channelData}`;
  return `${app.key}:${hmacHex(app.secret, text)}`;
}

/** `{key}:{hex}` for pusher:signin. */
export function signinAuth(
  app: { key: string; secret: string },
  socketId: string,
  userData: string,
): string {
  return `${app.key}:${hmacHex(app.secret, `${socketId}::user::${userData}`)}`;
}

/** The string to sign for an HTTP request: "{METHOD}\n{PATH}\n{sorted k=v joined by &}". */
export function stringToSign(method: string, path: string, params: Record<string, string>): string {
  const query = Object.keys(params)
    .map((k) => [k.toLowerCase(), params[k]] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  return `${method.toUpperCase()}\n${path}\n${query}`;
}

export interface SignOptions {
  method: string;
  /** Full path as requested, including any prefix. */
  path: string;
  params?: Record<string, string>;
  body?: string;
  key: string;
  secret: string;
  timestamp?: number;
}

/** All query parameters (including auth_signature) for a signed request. */
export function signedParams(o: SignOptions): Record<string, string> {
  const params: Record<string, string> = {
    ...(o.params ?? {}),
    auth_key: o.key,
    auth_timestamp: String(o.timestamp ?? Math.floor(Date.now() / 1000)),
    auth_version: "1.0",
  };
  if (o.body !== undefined && o.body !== "") params.body_md5 = md5Hex(o.body);
  params.auth_signature = hmacHex(o.secret, stringToSign(o.method, o.path, params));
  return params;
}

export function toQuery(params: Record<string, string>): string {
  return Object.entries(params)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join("&");
}

/** `{path}?{signed query}` for a request of `app` (the bench's calls, built with fetch). */
export function signedPath(
  app: { key: string; secret: string },
  method: "GET" | "POST",
  path: string,
  body?: string,
): string {
  const params = signedParams({ method, path, body, key: app.key, secret: app.secret });
  return `${path}?${toQuery(params)}`;
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  text: string;
  /** Parsed JSON body, or undefined when the body is not JSON. */
  json: unknown;
}

export interface RequestOptions {
  params?: Record<string, string>;
  /** Object bodies are JSON-encoded; strings are sent as-is. */
  body?: unknown;
  timestamp?: number;
  /** Sign with these credentials instead of the app's (key and/or secret). */
  signKey?: string;
  signSecret?: string;
  /** Edit the final query (after signing) to break it on purpose. */
  tamper?: (params: Record<string, string>) => void;
  /** Send this body instead of the one that was signed. */
  sendBody?: string;
  /** Abort the request after this long (the fault suite bounds every call). */
  timeoutMs?: number;
  /** Sign this path instead of the requested one. */
  signPath?: string;
  /** Skip signing entirely. */
  unsigned?: boolean;
}

async function toResponse(res: Response): Promise<ApiResponse> {
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** A signed HTTP client for one app of one server, built on fetch. */
export class Api {
  constructor(readonly server: Chorus, readonly app: AppCreds) {}

  /** `/apps/{id}{sub}` with the server's prefix. */
  path(sub: string): string {
    return `${this.server.prefix}/apps/${this.app.id}${sub}`;
  }

  async request(method: string, sub: string, o: RequestOptions = {}): Promise<ApiResponse> {
    const path = this.path(sub);
    const body = o.body === undefined
      ? undefined
      : typeof o.body === "string"
      ? o.body
      : JSON.stringify(o.body);
    let params: Record<string, string> = { ...(o.params ?? {}) };
    if (!o.unsigned) {
      params = signedParams({
        method,
        path: o.signPath ?? path,
        params,
        body,
        key: o.signKey ?? this.app.key,
        secret: o.signSecret ?? this.app.secret,
        timestamp: o.timestamp,
      });
    }
    o.tamper?.(params);
    const q = toQuery(params);
    const url = `http://127.0.0.1:${this.server.port}${path}${q ? `?${q}` : ""}`;
    const sent = o.sendBody ?? body;
    const res = await fetch(url, {
      method,
      body: sent,
      headers: sent !== undefined ? { "content-type": "application/json" } : {},
      signal: o.timeoutMs === undefined ? undefined : AbortSignal.timeout(o.timeoutMs),
    });
    return await toResponse(res);
  }

  get(sub: string, params: Record<string, string> = {}, o: RequestOptions = {}) {
    return this.request("GET", sub, { ...o, params });
  }

  post(sub: string, body: unknown, o: RequestOptions = {}) {
    return this.request("POST", sub, { ...o, body });
  }

  /** POST /events with a JSON body. */
  trigger(body: Record<string, unknown>, o: RequestOptions = {}) {
    return this.post("/events", body, o);
  }
}

/** Unsigned GET of an arbitrary path on the server (e.g. /up). */
export async function plainFetch(
  server: Chorus,
  path: string,
  init: RequestInit = {},
): Promise<ApiResponse> {
  const res = await fetch(`http://127.0.0.1:${server.port}${path}`, init);
  return await toResponse(res);
}
