/** Pusher HTTP API signing (auth_version 1.0), done by hand with node:crypto. */
import { createHash, createHmac } from "node:crypto";

export interface AppCredentials {
  id: string;
  key: string;
  secret: string;
}

/** `{path}?{query}` for a signed POST of `body` to `path`. */
export function signedPost(app: AppCredentials, path: string, body: string): string {
  const params: Record<string, string> = {
    auth_key: app.key,
    auth_timestamp: String(Math.floor(Date.now() / 1000)),
    auth_version: "1.0",
    body_md5: createHash("md5").update(body).digest("hex"),
  };
  // The keys above are already in sorted order.
  const query = Object.entries(params).map(([k, v]) => `${k}=${v}`).join("&");
  const signature = createHmac("sha256", app.secret).update(`POST\n${path}\n${query}`).digest(
    "hex",
  );
  return `${path}?${query}&auth_signature=${signature}`;
}

/** `{key}:{hex}` for a presence channel subscription. */
export function presenceAuth(
  app: AppCredentials,
  socketId: string,
  channel: string,
  channelData: string,
): string {
  const signature = createHmac("sha256", app.secret)
    .update(`${socketId}:${channel}:${channelData}`)
    .digest("hex");
  return `${app.key}:${signature}`;
}

/** `{path}?{query}` for a signed GET of `path` (no body). */
export function signedGet(app: AppCredentials, path: string): string {
  const query = `auth_key=${app.key}&auth_timestamp=${Math.floor(Date.now() / 1000)}` +
    "&auth_version=1.0";
  const signature = createHmac("sha256", app.secret).update(`GET\n${path}\n${query}`).digest(
    "hex",
  );
  return `${path}?${query}&auth_signature=${signature}`;
}
