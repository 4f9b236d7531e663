/** The checks a socket passes when it opens (protocol.md §1), before quota. */
import type { AppConfig } from "./config.ts";
import { ErrorCode } from "./protocol/index.ts";

/** A refusal decided before the socket opened; sent as pusher:error + close with the code. */
export interface Refusal {
  code: number;
  message: string;
}

export interface OpenRequest {
  appKey: string;
  /** The `protocol` query parameter, if any. */
  protocol: string | undefined;
  /** The `Origin` header, if any. */
  origin: string | undefined;
}

export function admit(
  request: OpenRequest,
  appsByKey: ReadonlyMap<string, AppConfig>,
): { app: AppConfig } | { refusal: Refusal } {
  const app = appsByKey.get(request.appKey);
  if (!app) {
    return {
      refusal: { code: ErrorCode.AppNotFound, message: `Application does not exist` },
    };
  }
  if (!app.enabled) {
    return { refusal: { code: ErrorCode.AppDisabled, message: "Application is disabled" } };
  }
  if (request.protocol !== undefined) {
    if (!/^\d+$/.test(request.protocol)) {
      return {
        refusal: { code: ErrorCode.InvalidVersionFormat, message: "Invalid version string format" },
      };
    }
    const version = Number(request.protocol);
    if (version < 5 || version > 7) {
      return {
        refusal: { code: ErrorCode.UnsupportedProtocol, message: "Unsupported protocol version" },
      };
    }
  }
  if (!isOriginAllowed(request.origin, app.allowed_origins)) {
    return { refusal: { code: ErrorCode.Unauthorized, message: "Origin not allowed" } };
  }
  return { app };
}

/**
 * `allowed_origins` entries are `*`, a full origin (`https://app.example.com`), a host
 * (`app.example.com`) or a host pattern (`*.example.com`). Without an Origin header only `*` admits.
 */
export function isOriginAllowed(origin: string | undefined, allowed: readonly string[]): boolean {
  if (allowed.includes("*")) return true;
  if (!origin) return false;
  let host: string;
  try {
    host = new URL(origin).hostname;
  } catch {
    return false;
  }
  return allowed.some((entry) => {
    if (entry === origin) return true;
    if (entry.startsWith("*.")) return host.endsWith(entry.slice(1));
    return entry === host;
  });
}
