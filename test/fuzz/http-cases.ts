// Seeded generators (fast-check) of hostile HTTP API requests, as templates: the signature is
// computed (or broken, per `sign`) when the request is sent, over the URL as fetch will send it.
import fc from "fast-check";
import {
  anyChannel,
  batchBody,
  editedEvent,
  enc,
  eventBody,
  hugeBody,
  invalidBody,
  str,
  weird,
} from "./http-bodies.ts";

export type SignMode =
  | "valid"
  | "none"
  | "badSig"
  | "wrongSecret"
  | "wrongKey"
  | "otherAppKey"
  | "expired"
  | "future"
  | "skewOk"
  | "badTimestamp"
  | "badMd5"
  | "upperMd5"
  | "noMd5"
  | "badVersion"
  | "noVersion"
  | "upperSig";

export interface HttpTpl {
  cat: string;
  method: string;
  /** "main", "unknown" or "disabled": which app id goes where the path says {app}. */
  app: "main" | "unknown" | "disabled";
  path: string;
  query: [string, string][];
  body?: string | number[];
  contentType?: string;
  headers: [string, string][];
  sign: SignMode;
  replay: boolean;
}

const base = {
  query: [] as [string, string][],
  headers: [] as [string, string][],
  sign: "valid" as SignMode,
  replay: false,
  app: "main" as const,
};
const post = (cat: string, path: string, body: fc.Arbitrary<string | number[]>) =>
  body.map((b): HttpTpl => ({ ...base, cat, method: "POST", path, body: b }));

const SIGN_MODES: SignMode[] = [
  "none",
  "badSig",
  "wrongSecret",
  "wrongKey",
  "otherAppKey",
  "expired",
  "future",
  "skewOk",
  "badTimestamp",
  "badMd5",
  "upperMd5",
  "noMd5",
  "badVersion",
  "noVersion",
  "upperSig",
];
const simpleRequest = fc.oneof(
  post("signature", "/apps/{app}/events", str(eventBody)),
  fc.constant<HttpTpl>({ ...base, cat: "signature", method: "GET", path: "/apps/{app}/channels" }),
  fc.constant<HttpTpl>({
    ...base,
    cat: "signature",
    method: "GET",
    path: "/apps/{app}/connections",
  }),
);
const signature = fc.tuple(simpleRequest, fc.constantFrom(...SIGN_MODES)).map(([t, sign]) => ({
  ...t,
  sign,
}));
const replay = simpleRequest.map((t) => ({ ...t, cat: "replay", replay: true }));
const paths = fc.oneof(
  fc.constantFrom(
    "/apps/{app}/nope",
    "/apps/{app}",
    "/apps/{app}/",
    "/apps/{app}/events/x",
    "/apps/{app}/channels/",
    "/nope",
    "/",
    "/apps",
    "/apps/{app}/users/h1",
    "/up/x",
    "/apps/{app}/channels/h1/users/x",
    "/apps/{app}/./events",
    "/apps/{app}/../{app}/channels",
  ),
  weird.map((s) => `/apps/{app}/${enc(s)}`),
);
const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "FOO"];
const KNOWN_PATHS = [
  "/up",
  "/apps/{app}/health",
  "/apps/{app}/events",
  "/apps/{app}/batch_events",
  "/apps/{app}/channels",
  "/apps/{app}/channels/h1",
  "/apps/{app}/channels/presence-h1/users",
  "/apps/{app}/connections",
  "/apps/{app}/users/http-1/terminate_connections",
];
const channelPath = fc.tuple(
  anyChannel,
  fc.constantFrom("", "/users"),
  fc.constantFrom("", "user_count", "subscription_count,cache", "bogus"),
)
  .map(([name, users, info]): HttpTpl => ({
    ...base,
    cat: "channel-names",
    method: "GET",
    path: `/apps/{app}/channels/${enc(name)}${users}`,
    query: info ? [["info", info]] : [],
  }));
const CONTENT_TYPES = [
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "application/json; charset=latin1",
  "",
  "application/json, text/plain",
  "x/\u00e9",
];
const HEADER_VALUES = fc.oneof(
  fc.constantFrom(1_000, 8_000, 17_000, 70_000).map((n) => "v".repeat(n)),
  fc.string({ unit: "binary-ascii", maxLength: 20 }).map((s) => s.replace(/[^\x20-\x7e]/g, "")),
);

export function httpCases(seed: number, count: number): HttpTpl[] {
  const arb: fc.Arbitrary<HttpTpl> = fc.oneof(
    { weight: 8, arbitrary: signature },
    { weight: 2, arbitrary: replay },
    { weight: 4, arbitrary: post("body-invalid", "/apps/{app}/events", invalidBody) },
    { weight: 12, arbitrary: post("event-fields", "/apps/{app}/events", str(editedEvent)) },
    { weight: 6, arbitrary: post("batch", "/apps/{app}/batch_events", str(batchBody)) },
    { weight: 1, arbitrary: post("huge-body", "/apps/{app}/events", hugeBody) },
    { weight: 5, arbitrary: channelPath },
    {
      weight: 3,
      arbitrary: post(
        "channel-names",
        "/apps/{app}/events",
        str(fc.record({ name: fc.constant("e"), data: fc.constant("{}"), channel: anyChannel })),
      ),
    },
    {
      weight: 4,
      arbitrary: paths.map((path): HttpTpl => ({
        ...base,
        cat: "unknown-path",
        method: "GET",
        path,
      })),
    },
    {
      weight: 4,
      arbitrary: fc.tuple(fc.constantFrom(...METHODS), fc.constantFrom(...KNOWN_PATHS)).map((
        [method, path],
      ): HttpTpl => ({
        ...base,
        cat: "methods",
        method,
        path,
        body: method === "POST" || method === "PUT" || method === "PATCH" ? "{}" : undefined,
      })),
    },
    {
      weight: 3,
      arbitrary: fc.tuple(fc.constantFrom(...CONTENT_TYPES), str(eventBody)).map((
        [contentType, body],
      ): HttpTpl => ({
        ...base,
        cat: "content-type",
        method: "POST",
        path: "/apps/{app}/events",
        body,
        contentType,
      })),
    },
    {
      weight: 3,
      arbitrary: fc.tuple(
        fc.array(
          fc.tuple(
            fc.constantFrom("x-fuzz", "content-type", "accept", "x-a", "cookie"),
            HEADER_VALUES,
          ),
          { minLength: 1, maxLength: 60 },
        ),
        str(eventBody),
      ).map(([headers, body]): HttpTpl => ({
        ...base,
        cat: "headers",
        method: "POST",
        path: "/apps/{app}/events",
        body,
        headers,
      })),
    },
    {
      weight: 2,
      arbitrary: fc.tuple(
        fc.constantFrom("unknown" as const, "disabled" as const),
        fc.constantFrom(...KNOWN_PATHS.slice(1)),
        fc.constantFrom(...SIGN_MODES.slice(0, 3), "valid" as SignMode),
      ).map(([app, path, sign]): HttpTpl => ({
        ...base,
        cat: "app",
        app,
        path,
        sign,
        method: path.endsWith("events") || path.endsWith("connections") && path.includes("users")
          ? "POST"
          : "GET",
        body: path.endsWith("events") ? '{"name":"e","channel":"h1","data":"{}"}' : undefined,
      })),
    },
    {
      weight: 3,
      arbitrary: fc.tuple(
        fc.constantFrom(
          "/apps/{app}/channels",
          "/apps/{app}/connections",
          "/apps/{app}/users/http-2/terminate_connections",
        ),
        fc.array(
          fc.tuple(
            fc.constantFrom("filter_by_prefix", "info", "x", "auth_key2", "INFO"),
            fc.oneof(
              weird,
              fc.constantFrom("presence-", "user_count", "subscription_count", "cache"),
            ),
          ),
          { maxLength: 3 },
        ),
      ).map(([path, query]): HttpTpl => ({
        ...base,
        cat: "query",
        method: path.endsWith("connections") && path.includes("users") ? "POST" : "GET",
        path,
        query,
        body: path.includes("users") ? "{}" : undefined,
      })),
    },
  );
  return fc.sample(arb, { seed, numRuns: count });
}
