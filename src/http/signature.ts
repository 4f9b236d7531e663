/**
 * Pusher HTTP API request signing (docs/protocol.md §9): the string to sign and its checks.
 */
import { hmacSha256Hex, md5Hex, safeEqual } from "../auth.ts";
import type { QueryParams } from "./query.ts";

/** Largest allowed distance between the request's auth_timestamp and our clock. */
export const MAX_CLOCK_SKEW_SECONDS = 600;

/**
 * The query part of the string to sign: every parameter but auth_signature, keys lower-cased,
 * sorted by key (stable, so repeated keys keep their order). SDKs send them sorted already, and
 * then there is nothing to sort.
 */
function signedQuery(params: Iterable<[string, string]>): string {
  const pairs: [string, string][] = [];
  let sorted = true;
  for (const [name, value] of params) {
    if (name === "auth_signature") continue;
    const key = name.toLowerCase();
    if (sorted && pairs.length > 0 && key < pairs[pairs.length - 1][0]) sorted = false;
    pairs.push([key, value]);
  }
  if (!sorted) pairs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  let query = "";
  for (let i = 0; i < pairs.length; i++) {
    query += i === 0 ? `${pairs[i][0]}=${pairs[i][1]}` : `&${pairs[i][0]}=${pairs[i][1]}`;
  }
  return query;
}

const EQUALS = 0x3d;
const UPPER_A = 0x41;
const UPPER_Z = 0x5a;
const SIGNATURE_PARAM = "auth_signature";

/**
 * The signed query straight from the query's text, when the text is already in signing order:
 * every pair written `name=value`, names lower-case and sorted (SDKs send them so, with
 * auth_signature appended). Then the signed query is the text without its auth_signature pairs,
 * and no pair is built. Undefined when the text is not in that form: `signedQuery` decides.
 * `text` holds nothing to decode (src/http/query.ts PlainQuery).
 */
export function signedQueryOfText(text: string): string | undefined {
  let previousStart = -1;
  let previousEnd = -1;
  // Where the auth_signature pair starts and ends; a second one is left to `signedQuery`.
  let cutStart = -1;
  let cutEnd = -1;
  for (let from = 0; from <= text.length;) {
    let end = text.indexOf("&", from);
    if (end < 0) end = text.length;
    if (end === from) return text.length === 0 ? "" : undefined; // "" or an empty pair
    let eq = -1;
    for (let i = from; i < end; i++) {
      const code = text.charCodeAt(i);
      if (code === EQUALS) {
        eq = i;
        break;
      }
      if (code >= UPPER_A && code <= UPPER_Z) return undefined;
    }
    if (eq < 0) return undefined; // "name" alone signs as "name="
    if (eq - from === SIGNATURE_PARAM.length && text.startsWith(SIGNATURE_PARAM, from)) {
      if (cutStart >= 0) return undefined;
      cutStart = from;
      cutEnd = end;
    } else {
      if (previousStart >= 0 && compareRanges(text, previousStart, previousEnd, from, eq) > 0) {
        return undefined;
      }
      previousStart = from;
      previousEnd = eq;
    }
    from = end + 1;
  }
  if (cutStart < 0) return text;
  // One slice in the common case (auth_signature last): a string built of pieces costs the HMAC
  // a flattening.
  if (cutEnd === text.length) return text.slice(0, Math.max(0, cutStart - 1));
  if (cutStart === 0) return text.slice(cutEnd + 1);
  return text.slice(0, cutStart) + text.slice(cutEnd + 1);
}

/** How `text[a, aEnd)` sorts against `text[b, bEnd)`, by code unit, as `<` on strings does. */
function compareRanges(text: string, a: number, aEnd: number, b: number, bEnd: number): number {
  const length = Math.min(aEnd - a, bEnd - b);
  for (let i = 0; i < length; i++) {
    const diff = text.charCodeAt(a + i) - text.charCodeAt(b + i);
    if (diff !== 0) return diff;
  }
  return (aEnd - a) - (bEnd - b);
}

/** The signed query of `params`: from its text when it is in signing order, else from its pairs. */
function signedQueryOf(params: Iterable<[string, string]> & { text?: string }): string {
  return (params.text === undefined ? undefined : signedQueryOfText(params.text)) ??
    signedQuery(params);
}

/** `"{METHOD}\n{PATH}\n{QUERY}"` with every parameter but auth_signature, keys lower-cased, sorted. */
export function stringToSign(
  method: string,
  path: string,
  params: Iterable<[string, string]>,
): string {
  return `${method.toUpperCase()}\n${path}\n${signedQueryOf(params)}`;
}

export function signRequest(
  secret: string,
  method: string,
  path: string,
  params: Iterable<[string, string]>,
): string {
  return hmacSha256Hex(secret, stringToSign(method, path, params));
}

export interface SignedRequest {
  method: string;
  /** The path as requested, route prefix included. */
  path: string;
  /** The query parameters (`URLSearchParams`, or the pairs of src/http/query.ts). */
  params: QueryParams;
  /** The body as received: `body_md5` covers its bytes, before any decoding. */
  body: string | Uint8Array;
  /** The configured route prefix (CHORUS_PATH), e.g. "/pusher"; "" or absent for none. */
  routePrefix?: string;
}

/**
 * The paths a valid signature may cover (docs/protocol.md §9): the path without the route prefix,
 * as pusher-php-server signs it and as a Node SDK behind a prefix-adding proxy does, and the full
 * requested path, as clients that sign what they send do.
 */
export function signablePaths(path: string, routePrefix = ""): string[] {
  if (routePrefix === "" || !path.startsWith(`${routePrefix}/`)) return [path];
  return [path.slice(routePrefix.length), path];
}

/** Checks a request against an app's credentials; answers the reason it is refused, if it is. */
export function verifyRequest(
  request: SignedRequest,
  app: { key: string; secret: string },
  nowSeconds: number,
): string | undefined {
  const { params } = request;
  const key = params.get("auth_key");
  const timestamp = params.get("auth_timestamp");
  const signature = params.get("auth_signature");
  const version = params.get("auth_version");
  if (!key || !timestamp || !signature) {
    return "Missing auth_key, auth_timestamp or auth_signature";
  }
  if (version !== null && version !== "1.0") return `Unsupported auth_version "${version}"`;
  if (!safeEqual(key, app.key)) return "auth_key does not match the app";
  if (!/^\d+$/.test(timestamp)) return "auth_timestamp must be an integer";
  const skew = Math.abs(nowSeconds - Number(timestamp));
  if (skew > MAX_CLOCK_SKEW_SECONDS) {
    return `auth_timestamp is ${Math.round(skew)} s away from server time (limit 600 s)`;
  }
  const bodyMd5 = params.get("body_md5");
  if (request.body.length > 0 || bodyMd5 !== null) {
    if (bodyMd5 === null) return "Missing body_md5";
    if (!safeEqual(bodyMd5, md5Hex(request.body))) return "body_md5 does not match the body";
  }
  // The query is the same for every signable path: build it once.
  const method = request.method.toUpperCase();
  const query = signedQueryOf(params);
  for (const path of signablePaths(request.path, request.routePrefix)) {
    if (safeEqual(signature, hmacSha256Hex(app.secret, `${method}\n${path}\n${query}`))) {
      return undefined;
    }
  }
  return "Invalid auth_signature";
}
