/**
 * Checks that a request to the socket endpoint is a well-formed WebSocket upgrade (RFC 6455
 * §4.2.1) before a runtime sees it: runtimes answered a malformed one with 500 or even 101, so
 * the same 4xx (and JSON body) comes from here on every runtime.
 */

export interface UpgradeRefusal {
  status: 400 | 426;
  error: string;
  headers?: Record<string, string>;
}

/** A Sec-WebSocket-Key is 16 random bytes in base64: 24 characters ending in "==". */
const KEY = /^[A-Za-z0-9+/]{22}==$/;

function hasToken(header: string | undefined, token: string): boolean {
  return header?.split(",").some((part) => part.trim().toLowerCase() === token) ?? false;
}

export function upgradeRefusal(
  header: (name: string) => string | undefined,
): UpgradeRefusal | undefined {
  if (!hasToken(header("upgrade"), "websocket")) {
    return {
      status: 426,
      error: "Expected a WebSocket upgrade request (Upgrade: websocket)",
      headers: { upgrade: "websocket", connection: "Upgrade" },
    };
  }
  if (!hasToken(header("connection"), "upgrade")) {
    return { status: 400, error: "The Connection header must contain the Upgrade token" };
  }
  const version = header("sec-websocket-version")?.trim();
  if (version !== "13") {
    return {
      status: 426,
      error: `Unsupported Sec-WebSocket-Version ${JSON.stringify(version ?? null)}: expected 13`,
      headers: { "sec-websocket-version": "13" },
    };
  }
  if (!KEY.test(header("sec-websocket-key")?.trim() ?? "")) {
    return { status: 400, error: "Sec-WebSocket-Key must be 16 bytes in base64" };
  }
  return undefined;
}
