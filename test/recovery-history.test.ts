// Recovery channels keep their events (apps[].recovery, docs/recovery.md): triggered through the
// official `pusher` SDK and sent as client events, read back through the signed
// GET /apps/{id}/channels/{name}/events, on one node (memory), one node over Redis, a Bun+Deno
// pair (published on one node, read on the other) and the env app. Subscribers still get every
// event live; bad requests get their status and a JSON error.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type PusherServer from "pusher";
import { type Chorus, runtimeName, startChorus } from "./support/server.ts";
import { MAIN } from "./support/apps.ts";
import { closeAllRawSockets, connectSocket, dataOf } from "./support/ws.ts";
import { Api, type ApiResponse, channelAuth } from "./support/sign.ts";
import { serverSdk } from "./support/clients.ts";
import { assertHttpError } from "./support/assertions.ts";
import { otherRuntime, type Pair, runnerRuntime, startPair } from "./support/nodes.ts";
import { until } from "./support/wait.ts";

const T = { timeout: 20000 };
const RECOVERY = { channels: ["orders-*", "private-chat-*"], max_messages: 3 };
const config = () => ({ apps: [{ ...MAIN, recovery: RECOVERY }] });

interface Page {
  epoch: string;
  serial: number;
  complete: boolean;
  events: { serial: number; event: string; channel: string; data: string; user_id?: string }[];
}

async function history(sdk: PusherServer, channel: string, since?: number): Promise<Page> {
  const params = since === undefined ? {} : { since: String(since) };
  const res = await sdk.get({ path: `/channels/${channel}/events`, params });
  assert.equal(res.status, 200);
  return JSON.parse(await res.text()) as Page;
}

function refused(res: ApiResponse, status: number, message: RegExp): void {
  assertHttpError(res, status);
  assert.match((res.json as { error: string }).error, message);
}

let n = 0;
const fresh = (base: string) => `${base}-${runtimeName}-${++n}`;

/** The cases every deployment must pass; `read` may be another node than `write`. */
function historyCases(servers: () => { write: Chorus; read: Chorus }) {
  it(
    "keeps triggered events in order, at most max_messages, while delivering them",
    T,
    async () => {
      const { write, read } = servers();
      const channel = fresh("orders");
      const s = await connectSocket(read.wsUrl(MAIN.key));
      await s.subscribeOk(channel);
      const sdk = serverSdk(write, MAIN);
      for (let i = 1; i <= 5; i++) await sdk.trigger(channel, "placed", { i });
      for (let i = 1; i <= 5; i++) {
        assert.deepEqual(dataOf(await s.nextEvent("placed", channel)), {
          i,
        });
      }

      const page = await history(serverSdk(read, MAIN), channel);
      assert.notEqual(page.epoch, "");
      assert.equal(page.serial, 5);
      assert.equal(page.complete, false, "1 and 2 are no longer kept");
      assert.deepEqual(page.events.map((e) => [e.serial, e.event, e.channel, JSON.parse(e.data)]), [
        [3, "placed", channel, { i: 3 }],
        [4, "placed", channel, { i: 4 }],
        [5, "placed", channel, { i: 5 }],
      ]);
      const after3 = await history(serverSdk(read, MAIN), channel, 3);
      assert.deepEqual(after3.events.map((e) => e.serial), [4, 5]);
      assert.equal(after3.complete, true);
      assert.equal(after3.epoch, page.epoch);
    },
  );

  it("keeps client events, and batch events", T, async () => {
    const { write, read } = servers();
    const channel = fresh("private-chat");
    const a = await connectSocket(write.wsUrl(MAIN.key));
    const b = await connectSocket(read.wsUrl(MAIN.key));
    await a.subscribeOk(channel, { auth: channelAuth(MAIN, a.socketId!, channel) });
    await b.subscribeOk(channel, { auth: channelAuth(MAIN, b.socketId!, channel) });
    await until(
      async () => {
        const res = await new Api(write, MAIN).get(`/channels/${channel}`, {
          info: "subscription_count",
        });
        return (res.json as { subscription_count?: number }).subscription_count === 2;
      },
      "both subscriptions counted",
    );
    a.send({ event: "client-typing", channel, data: { who: "a" } });
    await b.nextEvent("client-typing", channel);
    await serverSdk(write, MAIN).triggerBatch([{ channel, name: "said", data: "hello" }]);
    await b.nextEvent("said", channel);
    const page = await history(serverSdk(read, MAIN), channel);
    assert.deepEqual(page.events.map((e) => [e.serial, e.event]), [[1, "client-typing"], [
      2,
      "said",
    ]]);
  });

  it("answers 404 for a channel without recovery, 400 for a bad since or name", T, async () => {
    const api = new Api(servers().read, MAIN);
    const none = await api.get("/channels/news/events");
    refused(none, 404, /keeps no events/);
    refused(await api.get("/channels/orders-1/events", { since: "-1" }), 400, /since/);
    refused(await api.get("/channels/orders-1/events", { since: "x" }), 400, /since/);
    refused(await api.get("/channels/bad%20name/events"), 400, /Invalid channel name/);
    const unsigned = await api.get("/channels/orders-1/events", {}, { unsigned: true });
    assert.equal(unsigned.status, 401);
  });
}

describe(`recovery history (${runtimeName})`, { timeout: 120000 }, () => {
  after(() => closeAllRawSockets());

  describe("one node, memory", { timeout: 60000 }, () => {
    let server: Chorus;
    before(async () => {
      server = await startChorus({ config: config() });
    });
    after(() => server?.stop());
    historyCases(() => ({ write: server, read: server }));
  });

  describe(`a ${runnerRuntime}+${otherRuntime} pair over Redis`, { timeout: 60000 }, () => {
    let pair: Pair;
    before(async () => {
      pair = await startPair("recovery", { config: config() });
    });
    after(() => pair?.stop());
    historyCases(() => ({ write: pair.a, read: pair.b }));
  });

  describe("the env app (CHORUS_APP_RECOVERY_*)", { timeout: 30000 }, () => {
    it("keeps what the env says", T, async () => {
      await using server = await startChorus({
        env: {
          CHORUS_APP_ID: MAIN.id,
          CHORUS_APP_KEY: MAIN.key,
          CHORUS_APP_SECRET: MAIN.secret,
          CHORUS_APP_RECOVERY_CHANNELS: "*",
          CHORUS_APP_RECOVERY_MAX_MESSAGES: "2",
        },
      });
      const sdk = serverSdk(server, MAIN);
      for (const i of [1, 2, 3]) await sdk.trigger("anything", "e", String(i));
      const page = await history(sdk, "anything");
      assert.deepEqual(page.events.map((e) => e.data), ["2", "3"]);
    });
  });
});
