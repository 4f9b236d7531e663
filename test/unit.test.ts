// Unit tests for the server's pure logic: signature vectors (protocol.md §3, §9), config
// validation, channel kinds and frame parsing. The end-to-end tests cover the same rules on the wire.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { hmacSha256Hex, md5Hex, safeEqual, verifySocketAuth } from "../src/auth.ts";
import { channelType } from "../src/channels/index.ts";
import { keepPolicy } from "../src/channels/index.ts";
import { ConfigError, loadConfig } from "../src/config.ts";
import { requestTarget } from "../src/http/query.ts";
import {
  signedQueryOfText,
  signRequest,
  stringToSign,
  verifyRequest,
} from "../src/http/signature.ts";
import { parseClientFrame } from "../src/protocol/index.ts";
import { isOriginAllowed } from "../src/admission.ts";

const KEY = "278d425bdf160c739803";
const SECRET = "7ad3773142a6692b25b8";
const VECTOR_BODY = '{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}';

describe("signatures (protocol.md vectors)", { timeout: 10_000 }, () => {
  it("private channel auth", () => {
    const hex = "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4";
    assert.equal(hmacSha256Hex(SECRET, "1234.1234:private-foobar"), hex);
    const app = { key: KEY, secret: SECRET };
    assert.ok(verifySocketAuth(`${KEY}:${hex}`, app, "1234.1234:private-foobar"));
    assert.ok(!verifySocketAuth(`other:${hex}`, app, "1234.1234:private-foobar"));
    assert.ok(
      !verifySocketAuth(`${KEY}:${hex.replace("5", "6")}`, app, "1234.1234:private-foobar"),
    );
    assert.ok(!verifySocketAuth(hex, app, "1234.1234:private-foobar"));
  });

  it("HTTP request signature and body_md5", () => {
    assert.equal(md5Hex(VECTOR_BODY), "ec365a775a4cd0599faeb73354201b6f");
    const params = new URLSearchParams({
      auth_key: KEY,
      auth_timestamp: "1353088179",
      auth_version: "1.0",
      body_md5: "ec365a775a4cd0599faeb73354201b6f",
    });
    const signature = signRequest(SECRET, "POST", "/apps/3/events", params);
    assert.equal(signature, "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c");
    params.set("auth_signature", signature);
    const request = { method: "POST", path: "/apps/3/events", params, body: VECTOR_BODY };
    const app = { key: KEY, secret: SECRET };
    assert.equal(verifyRequest(request, app, 1353088179), undefined);
    assert.match(verifyRequest(request, app, 1353088179 + 601) ?? "", /auth_timestamp/);
    assert.match(verifyRequest({ ...request, body: "{}" }, app, 1353088179) ?? "", /body_md5/);
    assert.match(
      verifyRequest({ ...request, path: "/apps/4/events" }, app, 1353088179) ?? "",
      /signature/,
    );
    assert.match(
      verifyRequest(request, { key: "x", secret: SECRET }, 1353088179) ?? "",
      /auth_key/,
    );
  });
});

describe("request signing details", { timeout: 30_000 }, () => {
  it("compares strings in full", () => {
    assert.ok(safeEqual("", ""));
    assert.ok(safeEqual("abc", "abc"));
    assert.ok(!safeEqual("abc", "abd"));
    assert.ok(!safeEqual("abc", "ab"));
    assert.ok(safeEqual("clé", "clé"));
    assert.ok(!safeEqual("clé", "cle"));
  });

  it("signs the parameters sorted by lower-cased key, repeated keys in their order", () => {
    const sorted = new URLSearchParams("auth_key=k&b=2&b=1&c=3&auth_signature=x");
    const shuffled = new URLSearchParams("c=3&B=2&auth_signature=x&auth_key=k&b=1");
    assert.equal(stringToSign("post", "/p", sorted), "POST\n/p\nauth_key=k&b=2&b=1&c=3");
    assert.equal(stringToSign("post", "/p", shuffled), "POST\n/p\nauth_key=k&b=2&b=1&c=3");
  });

  it("reads the signed query from an SDK's query text without splitting it", () => {
    const sdk = "auth_key=k&auth_timestamp=1&auth_version=1.0&body_md5=x&auth_signature=s";
    assert.equal(signedQueryOfText(sdk), "auth_key=k&auth_timestamp=1&auth_version=1.0&body_md5=x");
    assert.equal(signedQueryOfText("auth_signature=s&b=1"), "b=1");
    assert.equal(signedQueryOfText("a=1&auth_signature=s&b=1"), "a=1&b=1");
    assert.equal(signedQueryOfText("b=1&a=1"), undefined, "not sorted");
    assert.equal(signedQueryOfText("A=1"), undefined, "not lower-case");
    assert.equal(signedQueryOfText("a"), undefined, "signs as a=");
  });

  it("signs a query text as the sorted pairs would be signed", () => {
    const piece = fc.constantFrom(
      ..."a b B z = = & & _ 1".split(" "),
      "auth_signature=",
      "auth_key=",
      "&auth_signature=x",
    );
    const query = fc.array(piece, { maxLength: 12 }).map((pieces) => pieces.join(""));
    let readFromText = 0;
    fc.assert(
      fc.property(query, (text) => {
        const expected = stringToSign("GET", "/", new URLSearchParams(text)).split("\n")[2];
        const fromText = signedQueryOfText(text);
        if (fromText !== undefined) {
          readFromText++;
          assert.equal(fromText, expected, text);
        }
        const target = requestTarget(`http://127.0.0.1/?${text}`);
        assert.equal(stringToSign("GET", "/", target.params).split("\n")[2], expected, text);
      }),
      { numRuns: 20_000, seed: 7 },
    );
    assert.ok(readFromText > 1_000, `only ${readFromText} texts were in signing order`);
  });

  it("splits a request URL exactly as the URL parser does", () => {
    const piece = fc.constantFrom(
      ..."abZ09-._~!$()*,;:@/=&+%'?#\\ \"<>^`{}|é\t".split(""),
      ..."%2e %2E %2C %41 %zz %FF %C3%A9 %ED%A0%80 %EF%BB%BF %2B %25 /. /.. && ==".split(" "),
    );
    const part = fc.array(piece, { maxLength: 16 }).map((pieces) => pieces.join(""));
    fc.assert(
      fc.property(part, part, (path, query) => {
        const url = `http://127.0.0.1:8080/${path}${query ? `?${query}` : ""}`;
        let parsed: URL;
        try {
          parsed = new URL(url);
        } catch {
          return;
        }
        const target = requestTarget(url);
        assert.equal(target.path, parsed.pathname, url);
        assert.deepEqual([...target.params], [...parsed.searchParams], url);
        for (const [name] of parsed.searchParams) {
          assert.equal(target.params.get(name), parsed.searchParams.get(name), url);
        }
        assert.equal(target.params.get("absent"), null);
      }),
      { numRuns: 20_000, seed: 42 },
    );
  });
});

describe("config", { timeout: 10_000 }, () => {
  it("starts the demo app with nothing set", () => {
    const config = loadConfig({});
    assert.equal(config.demoApp, true);
    assert.deepEqual(config.apps.map((app) => [app.id, app.key, app.secret]), [[
      "app-id",
      "app-key",
      "app-secret",
    ]]);
    assert.equal(config.port, 8080);
    assert.equal(config.apps[0].activity_timeout, 30);
  });

  it("reads Reverb's env names as a fallback", () => {
    const config = loadConfig({ REVERB_APP_ID: "1", REVERB_APP_KEY: "k", REVERB_APP_SECRET: "s" });
    assert.equal(config.demoApp, false);
    assert.equal(config.apps[0].key, "k");
  });

  it("names the bad key", () => {
    assert.throws(
      () => loadConfig({ PORT: "x" }),
      (e: Error) => e instanceof ConfigError && /PORT/.test(e.message),
    );
    assert.throws(() => loadConfig({ CHORUS_APP_ID: "1" }), /CHORUS_APP_KEY/);
    const file = JSON.stringify({
      apps: [{ id: "1", key: "k", secret: "s", max_connections: -1 }],
    });
    assert.throws(
      () => loadConfig({ CHORUS_CONFIG: "c.json" }, () => file),
      /apps\.0\.max_connections/,
    );
    assert.throws(() => loadConfig({ CHORUS_CONFIG: "c.json" }, () => "{"), /CHORUS_CONFIG/);
    assert.throws(() => loadConfig({ CHORUS_CONFIG: "c.json" }, () => '{"nope":1}'), /nope/);
  });

  it("reads an app's recovery, from the file and from CHORUS_APP_RECOVERY_*", () => {
    const env = { CHORUS_APP_ID: "1", CHORUS_APP_KEY: "k", CHORUS_APP_SECRET: "s" };
    assert.equal(loadConfig(env).apps[0].recovery, undefined, "none unless asked for");
    const fromEnv = loadConfig({
      ...env,
      CHORUS_APP_RECOVERY_CHANNELS: "orders-*, private-chat",
      CHORUS_APP_RECOVERY_TTL_S: "60",
    }).apps[0];
    assert.deepEqual(fromEnv.recovery, {
      channels: ["orders-*", "private-chat"],
      ttl_s: 60,
      max_messages: 300,
    });
    assert.equal(keepPolicy(fromEnv, "orders-12")?.ttlMs, 60_000);
    assert.equal(keepPolicy(fromEnv, "private-chat")?.maxMessages, 300);
    assert.equal(keepPolicy(fromEnv, "private-chat-2"), undefined, "a pattern matches whole names");
    assert.equal(keepPolicy(fromEnv, "orders"), undefined, "the literal parts must match");
    const all = loadConfig({ ...env, CHORUS_APP_RECOVERY_CHANNELS: "*" }).apps[0];
    assert.ok(keepPolicy(all, "presence-room") !== undefined);
  });

  it("names a bad recovery setting", () => {
    const env = { CHORUS_APP_ID: "1", CHORUS_APP_KEY: "k", CHORUS_APP_SECRET: "s" };
    assert.throws(
      () =>
        loadConfig({ ...env, CHORUS_APP_RECOVERY_CHANNELS: "a", CHORUS_APP_RECOVERY_TTL_S: "0" }),
      /recovery\.ttl_s: expected at least 1/,
    );
    assert.throws(
      () => loadConfig({ ...env, CHORUS_APP_RECOVERY_MAX_MESSAGES: "5" }),
      /CHORUS_APP_RECOVERY_MAX_MESSAGES: needs CHORUS_APP_RECOVERY_CHANNELS/,
    );
    assert.throws(
      () => loadConfig({ CHORUS_APP_RECOVERY_CHANNELS: "*" }),
      /CHORUS_APP_RECOVERY_CHANNELS: needs the env app/,
    );
    const file = (recovery: unknown) =>
      JSON.stringify({ apps: [{ id: "1", key: "k", secret: "s", recovery }] });
    const load = (recovery: unknown) =>
      loadConfig({ CHORUS_CONFIG: "c.json" }, () => file(recovery));
    assert.throws(() => load({ channels: [] }), /apps\.0\.recovery\.channels: must not be empty/);
    assert.throws(() => load({ channels: ["bad name"] }), /channel name pattern/);
    assert.throws(() => load({ channels: ["*"], max_messages: 0 }), /max_messages/);
    assert.throws(() => load({ channels: ["*"], keep: 1 }), /keep/);
  });

  it("normalizes the path prefix", () => {
    assert.equal(loadConfig({ CHORUS_PATH: "pusher/" }).path, "/pusher");
    assert.throws(() => loadConfig({ CHORUS_PATH: "/a b" }), /CHORUS_PATH/);
  });
});

describe("channels and frames", { timeout: 10_000 }, () => {
  it("classifies channel names", () => {
    assert.deepEqual(channelType("orders"), { kind: "public", cache: false });
    assert.deepEqual(channelType("private-cache-x"), { kind: "private", cache: true });
    assert.deepEqual(channelType("private-encrypted-x"), { kind: "encrypted", cache: false });
    assert.deepEqual(channelType("presence-room"), { kind: "presence", cache: false });
    assert.deepEqual(channelType("#server-to-user-42"), { kind: "user", cache: false });
    assert.equal(channelType("#other"), undefined);
    assert.equal(channelType("bad name"), undefined);
    assert.equal(channelType("x".repeat(201)), undefined);
    assert.equal(channelType(""), undefined);
  });

  it("parses client frames and names what is wrong", () => {
    assert.deepEqual(parseClientFrame('{"event":"pusher:ping"}'), {
      ok: true,
      frame: { kind: "ping" },
    });
    const sub = parseClientFrame('{"event":"pusher:subscribe","data":"{\\"channel\\":\\"a\\"}"}');
    assert.deepEqual(sub, { ok: true, frame: { kind: "subscribe", data: { channel: "a" } } });
    assert.deepEqual(parseClientFrame("{"), { ok: false, error: "Invalid JSON" });
    assert.equal(parseClientFrame('{"channel":"a"}').ok, false);
    assert.match(
      (parseClientFrame('{"event":"client-x","channel":5}') as { error: string }).error,
      /channel/,
    );
    assert.match(
      (parseClientFrame('{"event":"pusher:nope"}') as { error: string }).error,
      /pusher:nope/,
    );
    assert.match((parseClientFrame('{"event":"hello"}') as { error: string }).error, /hello/);
  });

  it("matches origins", () => {
    assert.ok(isOriginAllowed(undefined, ["*"]));
    assert.ok(!isOriginAllowed(undefined, ["example.com"]));
    assert.ok(isOriginAllowed("https://example.com", ["example.com"]));
    assert.ok(isOriginAllowed("https://a.example.com", ["*.example.com"]));
    assert.ok(!isOriginAllowed("https://evil.com", ["*.example.com", "example.com"]));
    assert.ok(isOriginAllowed("http://localhost:3000", ["http://localhost:3000"]));
  });
});
