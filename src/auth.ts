/** The cryptography the Pusher protocol needs: HMAC-SHA256, MD5 and constant-time compares. */
import { Buffer } from "node:buffer";
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

export function hmacSha256Hex(secret: string, data: string): string {
  return createHmac("sha256", secret).update(data).digest("hex");
}

export function md5Hex(data: string | Uint8Array): string {
  return createHash("md5").update(data).digest("hex");
}

/** Constant-time string equality (length still leaks, which is public anyway for hex digests). */
export function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
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
