/** The bench's signed URLs, made by the tests' one signer (test/support/sign.ts). */
import { type AppCreds, channelAuth, signedParams, toQuery } from "../../test/support/sign.ts";

export type AppCredentials = AppCreds;

/** `{path}?{query}` for a signed POST of `body` to `path`. */
export function signedPost(app: AppCredentials, path: string, body: string): string {
  const params = signedParams({ method: "POST", path, body, key: app.key, secret: app.secret });
  return `${path}?${toQuery(params)}`;
}

/** `{path}?{query}` for a signed GET of `path` (no body). */
export function signedGet(app: AppCredentials, path: string): string {
  const params = signedParams({ method: "GET", path, key: app.key, secret: app.secret });
  return `${path}?${toQuery(params)}`;
}

/** `{key}:{hex}` for a presence channel subscription. */
export function presenceAuth(
  app: AppCredentials,
  socketId: string,
  channel: string,
  channelData: string,
): string {
  return channelAuth(app, socketId, channel, channelData);
}
