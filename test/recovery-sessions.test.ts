// Resumable sessions for unmodified clients (docs/recovery.md): a socket at
// /session/{id}/app/{key} on an app with recovery gets, when its session reconnects and a
// recovery channel's subscription succeeds again, the events it missed, in order, before any live
// one. Raw sockets check the exact frames; pusher-js (wsPath, as Laravel Echo passes it) checks a
// real client. On one node (memory) and on a Bun+Deno pair over Redis, where the session comes
// back on the other node.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { type Chorus, runtimeName, startChorus } from "./support/server.ts";
import { MAIN } from "./support/apps.ts";
import { closeAllRawSockets, connectSocket, type Frame, type RawSocket } from "./support/ws.ts";
import { channelAuth } from "./support/sign.ts";
import {
  connected,
  disconnectAll,
  echoClient,
  echoPusher,
  pusherClient,
  serverSdk,
  subscribed,
} from "./support/clients.ts";
import { otherRuntime, type Pair, runnerRuntime, startPair } from "./support/nodes.ts";
import { until } from "./support/wait.ts";

const T = { timeout: 20000 };
const config = () => ({
  apps: [{ ...MAIN, recovery: { channels: ["orders-*", "private-orders-*"], max_messages: 5 } }],
});

let n = 0;
const fresh = (base: string) => `${base}-${runtimeName}-${++n}`;
const sessionId = () => `tab-${runtimeName}-${++n}-${Math.random().toString(36).slice(2, 10)}`;

function sessionUrl(server: Chorus, id: string): string {
  return server.wsUrl(MAIN.key).replace("/app/", `/session/${id}/app/`);
}

const data = (frames: Frame[]) => frames.map((f) => f.data);
const placed = (s: RawSocket, channel: string) =>
  data(s.received((f) => f.event === "placed" && f.channel === channel));

/** Answers the server's next ping and waits until it handled the pong (frames are in order). */
async function confirm(s: RawSocket): Promise<void> {
  await s.nextEvent("pusher:ping", undefined, 5000);
  s.send({ event: "pusher:pong", data: {} });
  await s.ping();
}

/** A private channel's auth for the socket, or nothing for a public channel. */
const authFor = (s: RawSocket, channel: string) =>
  channel.startsWith("private-") ? { auth: channelAuth(MAIN, s.socketId!, channel) } : {};

/**
 * A session's socket on `server`: subscribes, gets `values` published, confirms them (unless
 * `confirmed` is false) and closes. Answers the socket (closed).
 */
async function visit(
  server: Chorus,
  id: string,
  channel: string,
  values: string[],
  confirmed = true,
): Promise<RawSocket> {
  const s = await connectSocket(sessionUrl(server, id));
  await s.subscribeOk(channel, authFor(s, channel));
  await trigger(server, channel, ...values);
  for (const _ of values) await s.nextEvent("placed", channel);
  if (confirmed) await confirm(s);
  await s.closeAndWait();
  return s;
}

/** The session comes back on `server`: subscribes and waits for `count` events. */
async function comeBack(
  server: Chorus,
  id: string,
  channel: string,
  count: number,
): Promise<RawSocket> {
  const s = await connectSocket(sessionUrl(server, id));
  await s.subscribeOk(channel, authFor(s, channel));
  for (let i = 0; i < count; i++) await s.nextEvent("placed", channel);
  return s;
}

async function trigger(server: Chorus, channel: string, ...values: string[]): Promise<void> {
  const sdk = serverSdk(server, MAIN);
  for (const value of values) {
    assert.equal((await sdk.trigger(channel, "placed", value)).status, 200);
  }
}

function sessionCases(servers: () => { first: Chorus; again: Chorus }) {
  it("Laravel Echo's own API gets the replayed events unchanged", T, async () => {
    const { first, again } = servers();
    const id = sessionId();
    const name = fresh("orders");
    const got: unknown[] = [];
    const pings: number[] = [];
    const echo = echoClient(first, MAIN, { extra: { wsPath: `/session/${id}` } });
    let pongs = 0;
    echoPusher(echo).connection.bind("message", (m: { event: string }) => {
      if (m.event === "pusher:ping") pings.push(got.length);
      if (m.event === "pusher:pong") pongs++;
    });
    const subscribedFirst = new Promise<void>((resolve) =>
      echo.private(name).subscribed(() => resolve()).listen(".placed", (e: unknown) => got.push(e))
    );
    await subscribedFirst;
    await serverSdk(first, MAIN).trigger(`private-${name}`, "placed", { n: 1 });
    await until(() => pings.some((at) => at === 1), "a ping after the event (pusher-js pongs)", {
      timeout: 5000,
    });
    // The server answers frames in order: its pong says it has handled pusher-js's.
    echoPusher(echo).send_event("pusher:ping", {});
    await until(() => pongs > 0, "the server's pong");
    echo.disconnect();
    await until(() => echoPusher(echo).connection.state === "disconnected", "Echo disconnected");
    await serverSdk(first, MAIN).trigger(`private-${name}`, "placed", { n: 2 });
    const back = echoClient(again, MAIN, { extra: { wsPath: `/session/${id}` } });
    back.private(name).listen(".placed", (e: unknown) => got.push(e));
    await until(() => got.length >= 2, "the missed event, through Echo");
    await serverSdk(again, MAIN).trigger(`private-${name}`, "placed", { n: 3 });
    await until(() => got.length >= 3, "the live event");
    assert.deepEqual(got, [{ n: 1 }, { n: 2 }, { n: 3 }]);
  });

  it("a raw socket gets exactly what it missed, then live events", T, async () => {
    const { first, again } = servers();
    const id = sessionId();
    const channel = fresh("orders");
    await visit(first, id, channel, ["1", "2"]);
    await trigger(first, channel, "3", "4");
    const b = await comeBack(again, id, channel, 2);
    await trigger(again, channel, "5");
    await b.nextEvent("placed", channel);
    assert.deepEqual(placed(b, channel), ["3", "4", "5"], "missed ones first, no duplicates");
  });

  it(
    "a drop before the first confirmation, on a channel with no history yet, loses nothing",
    T,
    async () => {
      const { first, again } = servers();
      const id = sessionId();
      const channel = fresh("orders");
      // No event kept yet when it subscribes, and no pong: nothing confirmed.
      await visit(first, id, channel, ["1", "2"], false);
      await trigger(first, channel, "3");
      const b = await comeBack(again, id, channel, 3);
      assert.deepEqual(placed(b, channel), ["1", "2", "3"], "the unconfirmed ones again, then 3");
    },
  );

  it("events that excluded the session's socket are not replayed to it", T, async () => {
    const { first, again } = servers();
    const id = sessionId();
    const channel = fresh("orders");
    const a = await visit(first, id, channel, ["1"]);
    const sdk = serverSdk(first, MAIN);
    await sdk.trigger(channel, "placed", "mine", { socket_id: a.socketId });
    await sdk.trigger(channel, "placed", "theirs");
    const b = await comeBack(again, id, channel, 1);
    await b.ping();
    assert.deepEqual(placed(b, channel), ["theirs"]);
  });

  it("private channels: replay only after the new subscription is authorized", T, async () => {
    const { first, again } = servers();
    const id = sessionId();
    const channel = fresh("private-orders");
    await visit(first, id, channel, ["1"]);
    await trigger(first, channel, "2");

    const forged = await connectSocket(sessionUrl(again, id));
    forged.subscribe(channel, { auth: channelAuth(MAIN, "1.1", channel) });
    await forged.nextEvent("pusher:subscription_error", channel);
    await forged.ping();
    assert.deepEqual(placed(forged, channel), [], "a forged auth gets nothing");
    await forged.closeAndWait();

    const b = await comeBack(again, id, channel, 1);
    assert.deepEqual(placed(b, channel), ["2"]);
  });

  it("two tabs with one id: the second is not resumed and takes nothing away", T, async () => {
    const { first, again } = servers();
    const id = sessionId();
    const channel = fresh("orders");
    const a = await connectSocket(sessionUrl(first, id));
    await a.subscribeOk(channel);
    await trigger(first, channel, "1");
    await a.nextEvent("placed", channel);
    await confirm(a);

    const twin = await connectSocket(sessionUrl(again, id));
    await twin.subscribeOk(channel);
    await trigger(first, channel, "2");
    await twin.nextEvent("placed", channel);
    await a.nextEvent("placed", channel);
    assert.deepEqual(placed(twin, channel), ["2"], "live only: no replay of 1");
    await twin.closeAndWait();

    await confirm(a);
    await a.closeAndWait();
    await trigger(first, channel, "3");
    const b = await connectSocket(sessionUrl(again, id));
    await b.subscribeOk(channel);
    await b.nextEvent("placed", channel);
    await b.ping();
    assert.deepEqual(placed(b, channel), ["3"], "the first tab's session, resumed");
  });

  it("beyond max_messages, or a session that never existed: live events only", T, async () => {
    const { first, again } = servers();
    const id = sessionId();
    const channel = fresh("orders");
    const a = await connectSocket(sessionUrl(first, id));
    await a.subscribeOk(channel);
    await confirm(a).catch(() => {}); // nothing delivered: maybe no ping
    await a.closeAndWait();
    await trigger(first, channel, "1", "2", "3", "4", "5", "6", "7");
    const b = await connectSocket(sessionUrl(again, id));
    await b.subscribeOk(channel);
    const never = await connectSocket(sessionUrl(again, sessionId()));
    await never.subscribeOk(channel);
    await trigger(again, channel, "live");
    await b.nextEvent("placed", channel);
    await never.nextEvent("placed", channel);
    assert.deepEqual(placed(b, channel), ["live"], "1 to 7 exceed the 5 kept: not replayed");
    assert.deepEqual(placed(never, channel), ["live"]);
  });

  it("pusher-js with wsPath (as Echo passes it) gets the events it missed", T, async () => {
    const { first, again } = servers();
    const id = sessionId();
    const channel = fresh("orders");
    const got: unknown[] = [];
    const pings: number[] = [];
    const connections = async () => {
      const res = await serverSdk(first, MAIN).get({ path: "/connections" });
      return (JSON.parse(await res.text()) as { connections: number }).connections;
    };
    const before = await connections();
    const client = pusherClient(first, MAIN, { extra: { wsPath: `/session/${id}` } });
    let pongs = 0;
    client.connection.bind("message", (m: { event: string }) => {
      if (m.event === "pusher:ping") pings.push(got.length);
      if (m.event === "pusher:pong") pongs++;
    });
    const ch = client.subscribe(channel);
    ch.bind("placed", (value: unknown) => got.push(value));
    await subscribed(ch);
    await trigger(first, channel, "1", "2");
    await until(() => pings.some((at) => at === 2), "a ping after both events (pusher-js pongs)", {
      timeout: 5000,
    });
    client.send_event("pusher:ping", {});
    await until(() => pongs > 0, "the server's pong (it handled pusher-js's)");
    client.disconnect();
    await until(async () => await connections() === before, "the socket closed on the server");
    await trigger(first, channel, "3");
    // The same tab comes back, here to the other node.
    const back = pusherClient(again, MAIN, { extra: { wsPath: `/session/${id}` } });
    const chBack = back.subscribe(channel);
    chBack.bind("placed", (value: unknown) => got.push(value));
    await connected(back);
    await until(() => got.length >= 3, "the missed event");
    await trigger(again, channel, "4");
    await until(() => got.length >= 4, "the live event");
    assert.deepEqual(got, [1, 2, 3, 4], "pusher-js parses the JSON data");
  });
}

/**
 * Sessions on node A while events flow through node B at about 50/s; A drains (SIGTERM): each
 * socket, told 4200, comes back to B with its session id and subscribes again. Every session
 * gets every event exactly once, in order.
 */
function rollingDrainCase(): void {
  it("a drained node's sessions miss nothing and repeat nothing on the other node", {
    timeout: 40000,
  }, async () => {
    // The default max_messages (300): the drain's gap must fit in the window.
    const keepAll = { apps: [{ ...MAIN, recovery: { channels: ["orders-*"] } }] };
    const pair = await startPair("drain", { config: keepAll, envA: { CHORUS_DRAIN_MS: "1000" } });
    const { a, b } = pair;
    try {
      const channels = [fresh("orders"), fresh("orders")];
      const sessions = await Promise.all(Array.from({ length: 10 }, async () => {
        const id = sessionId();
        const first = await connectSocket(sessionUrl(a, id), { answerPings: true });
        for (const channel of channels) await first.subscribeOk(channel);
        // Comes back to B as soon as A says 4200, as pusher-js would (to any node).
        const again = first.closed.then(async () => {
          const s = await connectSocket(sessionUrl(b, id), { answerPings: true });
          for (const channel of channels) await s.subscribeOk(channel);
          return s;
        });
        return { first, again };
      }));
      const sdk = serverSdk(b, MAIN);
      let sent = 0;
      let publishing = true;
      const publisher = (async () => {
        while (publishing) {
          const value = String(++sent);
          await Promise.all(channels.map((channel) => sdk.trigger(channel, "placed", value)));
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      })();
      await until(() => sent >= 20, "events flowing");
      a.kill("SIGTERM");
      const back = await Promise.all(sessions.map((s) => s.again));
      await until(() => sent >= 80 + 20, "events after the drain", { timeout: 10000 });
      publishing = false;
      await publisher;
      const expected = Array.from({ length: sent }, (_, i) => String(i + 1));
      for (const [i, s] of sessions.entries()) {
        for (const channel of channels) {
          await until(
            () => placed(back[i], channel).at(-1) === String(sent),
            `session ${i} on ${channel}: the last event`,
            { timeout: 10000 },
          );
          const got = [...placed(s.first, channel), ...placed(back[i], channel)];
          assert.deepEqual(got, expected, `session ${i} on ${channel}: every event once, in order`);
        }
      }
    } finally {
      await pair.stop();
    }
  });
}

describe(`recovery sessions (${runtimeName})`, { timeout: 180000 }, () => {
  after(async () => {
    disconnectAll();
    await closeAllRawSockets();
  });

  describe("one node, memory", { timeout: 90000 }, () => {
    let server: Chorus;
    before(async () => {
      server = await startChorus({ config: config() });
    });
    after(() => server?.stop());
    sessionCases(() => ({ first: server, again: server }));
  });

  describe(`a ${runnerRuntime}+${otherRuntime} pair over Redis`, { timeout: 90000 }, () => {
    let pair: Pair;
    before(async () => {
      pair = await startPair("sessions", { config: config() });
    });
    after(() => pair?.stop());
    sessionCases(() => ({ first: pair.a, again: pair.b }));
  });

  describe(`a rolling drain, ${runnerRuntime} node drained, ${otherRuntime} serving`, {
    timeout: 60000,
  }, () => {
    rollingDrainCase();
  });
});
