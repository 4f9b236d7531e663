// CHORUS_PATH: the route prefix applies to the WebSocket endpoint and to every HTTP route, and
// signatures cover the prefixed path (as the PHP SDK and a prefix-aware Node SDK sign it).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { type Chorus, startChorus } from "./helpers/server.ts";
import { MAIN, standardConfig } from "./helpers/apps.ts";
import { closeAllRawSockets, connectSocket, dataOf, RawSocket } from "./helpers/ws.ts";
import { Api, plainFetch } from "./helpers/sign.ts";
import {
  connected,
  disconnectAll,
  echoClient,
  nextEvent,
  pusherClient,
  serverSdk,
  subscribed,
} from "./helpers/clients.ts";
import { assertHttpError } from "./helpers/assertions.ts";
import { deferred, withTimeout } from "./helpers/wait.ts";

const T = { timeout: 20000 };

describe("CHORUS_PATH prefix", { timeout: 90000 }, () => {
  let server: Chorus;
  let api: Api;

  before(async () => {
    server = await startChorus({ config: standardConfig(), env: { CHORUS_PATH: "/pusher" } });
    assert.equal(server.prefix, "/pusher");
    api = new Api(server, MAIN);
  });
  after(async () => {
    disconnectAll();
    await closeAllRawSockets();
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

  it("requires the signature to cover the prefixed path", T, async () => {
    assertHttpError(await api.get("/channels", {}, { signPath: `/apps/${MAIN.id}/channels` }), 401);
  });

  it("works with pusher-js (wsPath) and the SDK signing the prefixed path", T, async () => {
    const sdk = serverSdk(server, MAIN);
    const p = pusherClient(server, MAIN);
    await connected(p);
    const ch = p.subscribe("private-prefixed");
    await subscribed(ch);
    const got = nextEvent(ch, "ping-pong");
    const res = await sdk.trigger("private-prefixed", "ping-pong", { ok: 1 });
    assert.equal(res.status, 200);
    assert.deepEqual((await got).data, { ok: 1 });
    const list = await sdk.get({ path: "/channels" });
    assert.equal(list.status, 200);
    p.disconnect();
  });

  it("works with Laravel Echo", T, async () => {
    const sdk = serverSdk(server, MAIN);
    const echo = echoClient(server, MAIN);
    const got = deferred<unknown>();
    echo.channel("echo-prefixed").subscribed(() => {
      sdk.trigger("echo-prefixed", "Done", { d: 1 }).catch(got.reject);
    }).listen(".Done", (e: unknown) => got.resolve(e));
    assert.deepEqual(await withTimeout(got.promise, 5000, "Done"), { d: 1 });
    echo.disconnect();
  });
});
