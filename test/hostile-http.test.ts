// Malformed requests get a specific 4xx with a JSON body on both runtimes: socket-endpoint
// requests that are not a proper WebSocket upgrade (never 500, never 101), and API bodies whose
// bytes are signed correctly but are not plain UTF-8 (400 for the body, not 401).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { MAIN, standardConfig } from "./support/apps.ts";
import { type Chorus, runtimeName, startChorus } from "./support/server.ts";
import { signedParams, toQuery } from "./support/sign.ts";

const T = { timeout: 20000 };
const GOOD_KEY = "dGhlIHNhbXBsZSBub25jZQ==";

const UPGRADE = {
  upgrade: "websocket",
  connection: "Upgrade",
  "sec-websocket-version": "13",
  "sec-websocket-key": GOOD_KEY,
};

describe(`malformed requests get 4xx JSON (${runtimeName})`, { timeout: 60000 }, () => {
  let server: Chorus;

  before(async () => {
    server = await startChorus({ config: standardConfig() });
  });
  after(() => server?.stop());

  const cases: { name: string; headers: Record<string, string>; status: number }[] = [
    { name: "no upgrade headers at all", headers: {}, status: 426 },
    { name: "Upgrade without websocket", headers: { ...UPGRADE, upgrade: "h2c" }, status: 426 },
    {
      name: "Connection without the upgrade token",
      headers: { ...UPGRADE, connection: "keep-alive" },
      status: 400,
    },
    { name: "no Sec-WebSocket-Key", headers: { ...UPGRADE, "sec-websocket-key": "" }, status: 400 },
    {
      name: "a Sec-WebSocket-Key that is not 16 bytes",
      headers: { ...UPGRADE, "sec-websocket-key": "short" },
      status: 400,
    },
    {
      name: "Sec-WebSocket-Version 8",
      headers: { ...UPGRADE, "sec-websocket-version": "8" },
      status: 426,
    },
  ];
  for (const c of cases) {
    it(`GET /app/{key} with ${c.name}: ${c.status}`, T, async () => {
      const res = await fetch(`${server.url}/app/${MAIN.key}?protocol=7`, { headers: c.headers });
      const body = await res.text();
      assert.equal(res.status, c.status, body);
      const json = JSON.parse(body) as { error?: unknown };
      assert.equal(typeof json.error, "string", body);
    });
  }

  it("a correctly signed body that is not UTF-8, or starts with a BOM, is a 400", T, async () => {
    const event = new TextEncoder().encode('{"name":"e","channel":"c","data":"{}"}');
    const bodies = {
      bom: new Uint8Array([0xef, 0xbb, 0xbf, ...event]),
      "invalid UTF-8": new Uint8Array([...event.slice(0, 20), 0xff, 0xfe, ...event.slice(20)]),
    };
    for (const [what, bytes] of Object.entries(bodies)) {
      const path = `/apps/${MAIN.id}/events`;
      const body_md5 = createHash("md5").update(bytes).digest("hex");
      const params = signedParams({
        method: "POST",
        path,
        params: { body_md5 },
        key: MAIN.key,
        secret: MAIN.secret,
      });
      const res = await fetch(`${server.url}${path}?${toQuery(params)}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: bytes,
      });
      const text = await res.text();
      assert.equal(res.status, 400, `${what}: ${text}`);
      assert.match(text, /UTF-8|byte order mark/, what);
    }
  });
});
