// Process-level contract: startup log, demo app, env app, config file, env overriding the file,
// and refusing to start on bad configuration (non-zero exit, stderr names the key).
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  jsonLines,
  runChorusExpectingExit,
  startChorus,
  writeTempConfig,
} from "./support/server.ts";
import { connectSocket, dataOf, RawSocket } from "./support/ws.ts";
import { Api, plainFetch } from "./support/sign.ts";
import { serverSdk } from "./support/clients.ts";

const T = { timeout: 20000 };

describe("startup", { timeout: 120000 }, () => {
  const sockets: RawSocket[] = [];
  after(async () => {
    await Promise.all(sockets.map((s) => s.closeAndWait(2000)));
  });

  it("runs the demo app app-id/app-key/app-secret when nothing is configured", T, async () => {
    await using server = await startChorus();
    assert.ok(server.port > 0, "bound a real port for PORT=0");

    const lines = jsonLines(server.stdout);
    assert.ok(lines.length > 0, "logged something on stdout");
    lines.forEach((l, i) =>
      assert.ok(l, `stdout line ${i} is not a JSON object: ${server.stdout[i]}`)
    );
    const listening = lines.find((l) => l?.msg === "listening");
    assert.equal(listening?.port, server.port, "listening line carries the actual port");

    const up = await plainFetch(server, "/up");
    assert.equal(up.status, 200);
    assert.deepEqual(up.json, { health: "OK" });

    const sock = await connectSocket(server.wsUrl("app-key"));
    sockets.push(sock);
    await sock.subscribeOk("demo-channel");
    const sdk = serverSdk(server, { id: "app-id", key: "app-key", secret: "app-secret" });
    const res = await sdk.trigger("demo-channel", "hello", { n: 1 });
    assert.equal(res.status, 200);
    const ev = await sock.nextEvent("hello", "demo-channel");
    assert.deepEqual(dataOf(ev), { n: 1 });
  });

  it("CHORUS_APP_ID / CHORUS_APP_KEY / CHORUS_APP_SECRET define the app", T, async () => {
    await using server = await startChorus({
      env: { CHORUS_APP_ID: "77", CHORUS_APP_KEY: "env-key", CHORUS_APP_SECRET: "env-secret" },
    });
    const ok = await connectSocket(server.wsUrl("env-key"));
    sockets.push(ok);

    const demo = new RawSocket(server.wsUrl("app-key"));
    sockets.push(demo);
    const err = await demo.nextError();
    assert.equal(err.code, 4001, "the demo app is not running when an app is configured");

    const api = new Api(server, { id: "77", key: "env-key", secret: "env-secret" });
    const res = await api.get("/connections");
    assert.equal(res.status, 200, res.text);
    assert.equal((res.json as { connections: number }).connections, 1);
  });

  it("reads apps from CHORUS_CONFIG, with env HOST/PORT overriding the file", T, async () => {
    // host/port in the file would not be bindable; the harness sets HOST=127.0.0.1 PORT=0.
    await using server = await startChorus({
      config: {
        host: "192.0.2.1",
        port: 1,
        apps: [{ id: "5", key: "file-key", secret: "file-secret", activity_timeout: 42 }],
      },
    });
    const sock = await connectSocket(server.wsUrl("file-key"));
    sockets.push(sock);
    const est = dataOf(sock.log[0]) as { activity_timeout: number };
    assert.equal(est.activity_timeout, 42, "per-app activity_timeout from the file");
  });

  describe("refuses bad configuration", { timeout: 90000 }, () => {
    const cases: {
      name: string;
      env?: Record<string, string>;
      config?: Record<string, unknown> | string;
      names: RegExp;
    }[] = [
      { name: "PORT=abc", env: { PORT: "abc" }, names: /PORT/i },
      {
        name: "max_connections: -1",
        config: { apps: [{ id: "1", key: "k", secret: "s", max_connections: -1 }] },
        names: /max_connections/,
      },
      {
        name: 'activity_timeout: "soon"',
        config: { apps: [{ id: "1", key: "k", secret: "s", activity_timeout: "soon" }] },
        names: /activity_timeout/,
      },
      {
        name: "client_events.rate_limit: -5",
        config: {
          apps: [{ id: "1", key: "k", secret: "s", client_events: { rate_limit: -5 } }],
        },
        names: /rate_limit/,
      },
      { name: "LOG_LEVEL=loud", env: { LOG_LEVEL: "loud" }, names: /LOG_LEVEL/i },
      { name: "config file that is not JSON", config: "{ not json", names: /./ },
      {
        name: "CHORUS_TRUST_PROXY=true (which header?)",
        env: { CHORUS_TRUST_PROXY: "true" },
        names: /CHORUS_TRUST_PROXY.*fly.*xff/,
      },
      {
        name: "trust_proxy: 0 hops",
        config: { trust_proxy: 0 },
        names: /trust_proxy/,
      },
      {
        name: "CHORUS_REDIS_TIMEOUT_MS=soon",
        env: { CHORUS_REDIS_TIMEOUT_MS: "soon" },
        names: /CHORUS_REDIS_TIMEOUT_MS/,
      },
    ];
    for (const c of cases) {
      it(`exits with 78 on ${c.name}`, T, async () => {
        const r = await runChorusExpectingExit({ env: c.env, config: c.config });
        assert.equal(r.listened, false, `server started anyway on ${c.name}`);
        assert.equal(r.code, 78, "exits with EX_CONFIG (78), as README says");
        assert.match(r.stderr, c.names, `stderr names the bad key: ${r.stderr}`);
      });
    }

    it("exits with 78 when CHORUS_CONFIG points at a missing file", T, async () => {
      const tmp = writeTempConfig({});
      const missing = `${tmp.path}.missing`;
      tmp.remove();
      const r = await runChorusExpectingExit({ env: { CHORUS_CONFIG: missing } });
      assert.equal(r.listened, false);
      assert.equal(r.code, 78);
      assert.ok(r.stderr.trim().length > 0, "explains on stderr");
    });
  });
});
