/** The cryptography the Pusher protocol needs: HMAC-SHA256, MD5 and constant-time compares. */
import { createHash, createHmac } from "node:crypto";

export function hmacSha256Hex(secret: string, data: string): string {
  return createHmac("sha256", secret).update(data).digest("hex");
}

export function md5Hex(data: string | Uint8Array): string {
  return createHash("md5").update(data).digest("hex");
}

/**
 * Constant-time string equality: every code unit of equal-length strings is compared, with no
 * branch on their contents (the length still leaks, which is public anyway for hex digests and
 * keys). No copies: this runs up to four times per signed API call.
 */
export function safeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/**
 * Checks a socket auth string `{key}:{hex}` against HMAC-SHA256(secret, stringToSign).
 */
export function verifySocketAuth(
  auth: string,
  app: { key: string; secret: string },
  stringToSign: string,
): boolean {
  const colon = auth.indexOf(":");
  if (colon < 0) return false;
  const key = auth.slice(0, colon);
  const signature = auth.slice(colon + 1);
  return safeEqual(key, app.key) && safeEqual(signature, hmacSha256Hex(app.secret, stringToSign));
}
