// The spec (docs/protocol.md) as the fuzz oracle needs it: the fuzz apps and their limits, channel
// kinds and names (§3), auth strings (§3, §8) and HTTP signing (§9), written independently of src/.
import { Buffer } from "node:buffer";
import { createHash, createHmac } from "node:crypto";
import type { ChorusConfig } from "../support/server.ts";

export interface FuzzApp {
  id: string;
  key: string;
  secret: string;
  enabled: boolean;
  maxMessageSize: number;
  clientEvents: boolean;
  /** Client events per second (token bucket of this many tokens). */
  rateLimit: number;
  maxMemberSize: number;
  maxRequestSize: number;
  maxEventSize: number;
}

const base = {
  enabled: true,
  maxMessageSize: 10_000,
  clientEvents: true,
  rateLimit: 1_000_000,
  maxMemberSize: 2_048,
  maxRequestSize: 131_072,
  maxEventSize: 10_240,
};

/** Defaults everywhere but a client-event rate so high that no fuzz burst reaches it. */
export const MAIN: FuzzApp = { ...base, id: "2001", key: "fz-main-key", secret: "fz-main-secret" };
/** Frames over 2 000 bytes are too big (below the runtime's own limit, set by MAIN). */
export const SMALL: FuzzApp = {
  ...base,
  id: "2002",
  key: "fz-small-key",
  secret: "fz-small-secret",
  maxMessageSize: 2_000,
};
export const NO_CLIENT: FuzzApp = {
  ...base,
  id: "2003",
  key: "fz-noclient-key",
  secret: "fz-noclient-secret",
  clientEvents: false,
};
/** Default rate limit: 10 client events per second. */
export const RATE: FuzzApp = {
  ...base,
  id: "2004",
  key: "fz-rate-key",
  secret: "fz-rate-secret",
  rateLimit: 10,
};
export const DISABLED: FuzzApp = {
  ...base,
  id: "2005",
  key: "fz-off-key",
  secret: "fz-off-secret",
  enabled: false,
};
export const APPS = [MAIN, SMALL, NO_CLIENT, RATE, DISABLED];

export function fuzzConfig(): ChorusConfig {
  return {
    apps: APPS.map((app) => ({
      id: app.id,
      key: app.key,
      secret: app.secret,
      enabled: app.enabled,
      max_message_size: app.maxMessageSize,
      client_events: { enabled: app.clientEvents, rate_limit: app.rateLimit },
    })),
  };
}

export type Kind = "public" | "private" | "encrypted" | "presence" | "user";

/** §3: at most 200 of [-a-zA-Z0-9_=@,.;], a leading # only for #server-to-user-{id}. */
export function channelKind(name: string): { kind: Kind; cache: boolean } | undefined {
  if (name.length < 1 || name.length > 200) return undefined;
  const ok = (s: string) => s.length > 0 && [...s].every((c) => /[-a-zA-Z0-9_=@,.;]/.test(c));
  if (name.startsWith("#")) {
    const id = name.slice("#server-to-user-".length);
    return name.startsWith("#server-to-user-") && ok(id)
      ? { kind: "user", cache: false }
      : undefined;
  }
  if (!ok(name)) return undefined;
  const has = (p: string) => name.startsWith(p);
  if (has("private-encrypted-")) {
    return { kind: "encrypted", cache: has("private-encrypted-cache-") };
  }
  if (has("private-")) return { kind: "private", cache: has("private-cache-") };
  if (has("presence-")) return { kind: "presence", cache: has("presence-cache-") };
  return { kind: "public", cache: has("cache-") };
}

export const hmac = (secret: string, text: string): string =>
  createHmac("sha256", secret).update(text).digest("hex");

export const md5 = (body: string | Uint8Array): string =>
  createHash("md5").update(body).digest("hex");

/** `{key}:{lowercase hex HMAC}` over exactly `signed`. */
export function authFor(app: { key: string; secret: string }, signed: string): string {
  return `${app.key}:${hmac(app.secret, signed)}`;
}

/** §3: the key before ':' is the app key and the rest is the HMAC (compared exactly). */
export function authValid(auth: string, app: FuzzApp, signed: string): boolean {
  return auth === authFor(app, signed);
}

/** What a JS string becomes on the wire: lone surrogates turn into U+FFFD. */
export function wireText(text: string): string {
  return text.replace(LONE_SURROGATE, "\uFFFD");
}
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

export function utf8Length(text: string): number {
  return Buffer.byteLength(wireText(text));
}

/**
 * A JSON value's text, to compare values: both sides got theirs from JSON.parse, so key order
 * follows the same rules. (No replacer: V8 overflows its stack on one over 5 000 levels.)
 */
export function canonical(value: unknown): string {
  return value === undefined ? "undefined" : JSON.stringify(value);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** JSON.parse that answers undefined instead of throwing. */
export function tryParse(text: string): { value: unknown } | undefined {
  try {
    return { value: JSON.parse(text) };
  } catch {
    return undefined;
  }
}

/** §9 string to sign over the params as sent (decoded), auth_signature left out. */
export function httpStringToSign(method: string, path: string, params: URLSearchParams): string {
  const pairs = [...params].filter(([k]) => k !== "auth_signature")
    .map(([k, v]) => [k.toLowerCase(), v] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `${method}\n${path}\n${pairs.map(([k, v]) => `${k}=${v}`).join("&")}`;
}
