// CHORUS_PATH: the route prefix applies to the WebSocket endpoint and to every HTTP route. An HTTP
// API signature may cover the path without the prefix (what pusher-php-server signs, and what the
// Node `pusher` SDK signs behind a proxy that adds the prefix, having no path option) or the full
// prefixed path (docs/protocol.md §9).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, request, type Server } from "node:http";
import { type Chorus, startChorus } from "./support/server.ts";
import { MAIN, standardConfig } from "./support/apps.ts";
import { closeAllRawSockets, connectSocket, dataOf, RawSocket } from "./support/ws.ts";
import { Api, plainFetch } from "./support/sign.ts";
import {
  connected,
  disconnectAll,
  echoClient,
  nextEvent,
  pusherClient,
  serverSdk,
  subscribed,
} from "./support/clients.ts";
import { assertHttpError } from "./support/assertions.ts";
import { deferred, withTimeout } from "./support/wait.ts";

const T = { timeout: 20000 };
const PREFIX = "/pusher";

interface PrefixProxy {
  port: number;
  server: Server;
  /** The request paths as the proxy received them (before adding the prefix). */
  paths: string[];
}

/** A reverse proxy on 127.0.0.1 that forwards every request to `port` with `prefix` put in front
 * of its path: how a deployment serves an SDK that cannot add the prefix itself. */
function startPrefixProxy(port: number, prefix: string): Promise<PrefixProxy> {
  const paths: string[] = [];
  const server = createServer((incoming, answer) => {
    paths.push(new URL(incoming.url ?? "/", "http://proxy").pathname);
    const upstream = request({
      host: "127.0.0.1",
      port,
      method: incoming.method,
      path: `${prefix}${incoming.url ?? "/"}`,
      headers: incoming.headers,
    }, (response) => {
      answer.writeHead(response.statusCode ?? 502, response.headers);
      response.pipe(answer);
    });
    upstream.on("error", (error) => {
      answer.writeHead(502, { "content-type": "text/plain" });
      answer.end(`proxy: ${error.message}`);
    });
    incoming.pipe(upstream);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolve({ port: typeof address === "object" && address ? address.port : 0, server, paths });
    });
  });
}

describe("CHORUS_PATH prefix", { timeout: 90000 }, () => {
  let server: Chorus;
  let api: Api;
  let proxy: PrefixProxy;
  /** The server as the Node SDK sees it: the proxy's port, no prefix of its own. */
  let viaProxy: Chorus;

  before(async () => {
    server = await startChorus({ config: standardConfig(), env: { CHORUS_PATH: PREFIX } });
    assert.equal(server.prefix, PREFIX);
    api = new Api(server, MAIN);
    proxy = await startPrefixProxy(server.port, PREFIX);
    viaProxy = { ...server, port: proxy.port, prefix: "" };
  });
  after(async () => {
    disconnectAll();
    await closeAllRawSockets();
    if (proxy) {
      proxy.server.closeAllConnections();
      await new Promise<void>((resolve) => proxy.server.close(() => resolve()));
    }
    await server?.stop();
  });

  it("serves the WebSocket at {prefix}/app/{key}", T, async () => {
    assert.ok(server.wsUrl(MAIN.key).includes("/pusher/app/main-key"));
    const sock = await connectSocket(server.wsUrl(MAIN.key));
    await sock.subscribeOk("prefixed");
    const res = await api.trigger({ name: "hello", channel: "prefixed", data: '{"a":1}' });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(dataOf(await sock.nextEvent("hello", "prefixed")), { a: 1 });
    sock.close();
  });

  it("does not serve the WebSocket without the prefix", T, async () => {
    const sock = new RawSocket(`ws://127.0.0.1:${server.port}/app/${MAIN.key}?protocol=7`);
    await sock.closed;
    assert.deepEqual(
      sock.received((f) => f.event === "pusher:connection_established"),
      [],
      "no connection without the prefix",
    );
  });

  it("serves the HTTP API under the prefix; unprefixed routes are 404", T, async () => {
    const ok = await api.get("/channels");
    assert.equal(ok.status, 200, ok.text);
    const bare = new Api({ ...server, prefix: "" }, MAIN);
    assertHttpError(await bare.get("/channels"), 404);
    const up = await plainFetch(server, "/pusher/up");
    assert.equal(up.status, 200);
    assert.deepEqual(up.json, { health: "OK" });
  });

  it(
    "accepts a signature over the path without the prefix (pusher-php-server's rule)",
    T,
    async () => {
      const sock = await connectSocket(server.wsUrl(MAIN.key));
      await sock.subscribeOk("php-signed");
      const unprefixed = (sub: string) => `/apps/${MAIN.id}${sub}`;
      const list = await api.get("/channels", {}, { signPath: unprefixed("/channels") });
      assert.equal(list.status, 200, list.text);
      const body = { name: "php", channel: "php-signed", data: '{"php":1}' };
      const sent = await api.trigger(body, { signPath: unprefixed("/events") });
      assert.equal(sent.status, 200, sent.text);
      assert.deepEqual(dataOf(await sock.nextEvent("php", "php-signed")), { php: 1 });
      sock.close();
    },
  );

  it("still accepts a signature over the full prefixed path", T, async () => {
    // Api signs exactly the path it requests, prefix included.
    const res = await api.get("/channels");
    assert.equal(res.status, 200, res.text);
  });

  it("refuses a signature over any other path, or with the wrong secret", T, async () => {
    const other = `/elsewhere/apps/${MAIN.id}/channels`;
    assertHttpError(await api.get("/channels", {}, { signPath: other }), 401);
    assertHttpError(await api.get("/channels", {}, { signPath: `/apps/${MAIN.id}/users` }), 401);
    assertHttpError(await api.get("/channels", {}, { signSecret: "not-the-secret" }), 401);
    const unprefixed = `/apps/${MAIN.id}/channels`;
    assertHttpError(
      await api.get("/channels", {}, { signPath: unprefixed, signSecret: "not-the-secret" }),
      401,
    );
  });

  it(
    "delivers to pusher-js (wsPath) what the `pusher` SDK triggers through a proxy",
    T,
    async () => {
      const sdk = serverSdk(viaProxy, MAIN);
      const p = pusherClient(server, MAIN);
      await connected(p);
      const ch = p.subscribe("private-prefixed");
      await subscribed(ch);
      const got = nextEvent(ch, "ping-pong");
      const res = await sdk.trigger("private-prefixed", "ping-pong", { ok: 1 });
      assert.equal(res.status, 200);
      assert.deepEqual((await got).data, { ok: 1 });
      // The SDK signed the path it sent, which has no prefix.
      assert.ok(proxy.paths.includes(`/apps/${MAIN.id}/events`), JSON.stringify(proxy.paths));
      const list = await sdk.get({ path: "/channels" });
      assert.equal(list.status, 200);
      const { channels } = await list.json() as { channels: Record<string, unknown> };
      assert.ok("private-prefixed" in channels, JSON.stringify(channels));
      p.disconnect();
    },
  );

  it("works with Laravel Echo", T, async () => {
    const sdk = serverSdk(viaProxy, MAIN);
    const echo = echoClient(server, MAIN);
    const got = deferred<unknown>();
    echo.channel("echo-prefixed").subscribed(() => {
      sdk.trigger("echo-prefixed", "Done", { d: 1 }).catch(got.reject);
    }).listen(".Done", (e: unknown) => got.resolve(e));
    assert.deepEqual(await withTimeout(got.promise, 5000, "Done"), { d: 1 });
    echo.disconnect();
  });
});
