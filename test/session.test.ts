// Unit tests of the session (src/session/): a fake socket that records frames and closes, a fake
// clock, and in-memory ports (the real LocalState, the real ChannelRegistry, a recording bus).
// Liveness, the client-event token bucket, the frame queue's order and bounds, and the
// authorizer of every channel kind; no process, no network, no sleeps.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as v from "valibot";
import { hmacSha256Hex } from "../src/auth.ts";
import { channelType } from "../src/channels/index.ts";
import { ChannelRegistry } from "../src/channels/index.ts";
import { LocalState } from "../src/cluster/local.ts";
import { MemoryHistory } from "../src/cluster/history.ts";
import { MemorySessions } from "../src/cluster/sessions.ts";
import type { MemberRef } from "../src/cluster/types.ts";
import { type AppConfig, AppSchema } from "../src/config/schema.ts";
import { createLogger } from "../src/log.ts";
import { Subscriptions } from "../src/session/subscriptions.ts";
import { Metrics } from "../src/metrics.ts";
import {
  authorize,
  Connection,
  type LocalSession,
  MAX_QUEUED_BYTES,
  type SessionPorts,
} from "../src/session/index.ts";

const SOCKET_ID = "7.1";

function makeApp(overrides: Partial<v.InferInput<typeof AppSchema>> = {}): AppConfig {
  return v.parse(AppSchema, { id: "app", key: "key", secret: "secret", ...overrides });
}

function sign(app: AppConfig, data: string): string {
  return `${app.key}:${hmacSha256Hex(app.secret, data)}`;
}

/** LocalState whose presence joins wait for `release()`: an asynchronous step held open. */
class HeldState extends LocalState {
  #held: Promise<void> | undefined;
  #release: (() => void) | undefined;

  hold(): void {
    this.#held = new Promise((resolve) => this.#release = resolve);
  }

  release(): void {
    this.#release?.();
    this.#held = undefined;
  }

  override async joinPresence(member: MemberRef & { userInfo: unknown; maxMembers: number }) {
    await this.#held;
    return super.joinPresence(member);
  }
}

interface Harness {
  app: AppConfig;
  connection: Connection;
  state: HeldState;
  /** Frames sent, parsed. */
  sent: { event: string; channel?: string; data?: unknown }[];
  closes: { code: number; reason: string }[];
  relayed: { channel: string; frame: string }[];
  clock: { at: number };
  buffered: { bytes: number };
  ports: SessionPorts;
}

/** An open session (admitted, connection_established sent). */
async function open(overrides: Partial<v.InferInput<typeof AppSchema>> = {}): Promise<Harness> {
  const app = makeApp(overrides);
  const clock = { at: 1_000_000 };
  const now = () => clock.at;
  const state = new HeldState(now);
  const sent: Harness["sent"] = [];
  const closes: Harness["closes"] = [];
  const relayed: Harness["relayed"] = [];
  const buffered = { bytes: 0 };
  const ports: SessionPorts = {
    state,
    history: new MemoryHistory(now),
    sessions: new MemorySessions(now),
    bus: {
      listen: () => Promise.resolve(),
      unlisten: () => {},
      relay: (_appId, channel, frame) => {
        relayed.push({ channel, frame });
        return Promise.resolve();
      },
    },
    membership: new ChannelRegistry<LocalSession>(),
    announcements: {
      announce: () => Promise.resolve(),
      countChanged: () => {},
      webhooks: { wants: () => false, emit: () => {} },
    },
    clock: { now },
    metrics: new Metrics(),
    log: createLogger("error"),
    node: {
      nextSocketId: () => SOCKET_ID,
      connections: new Map(),
      opening: new Set(),
      cleanups: new Set(),
      config: { socketBufferLimit: 1_000 },
    },
  };
  const connection = new Connection(ports, app);
  connection.onOpen({
    send: (frame) => sent.push(JSON.parse(frame)),
    close: (code, reason) => closes.push({ code, reason }),
    bufferedAmount: () => buffered.bytes,
  });
  await settle();
  assert.equal(sent[0]?.event, "pusher:connection_established");
  sent.length = 0;
  return { app, connection, state, sent, closes, relayed, clock, buffered, ports };
}

/** Lets pending promise callbacks run (no timer wait: a macrotask turn). */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

const frame = (event: string, data: unknown = {}, channel?: string) =>
  JSON.stringify({ event, data, ...(channel === undefined ? {} : { channel }) });

function errorCode(sent: Harness["sent"][number]): number | undefined {
  return sent.event === "pusher:error" ? (sent.data as { code: number }).code : undefined;
}

describe("session: liveness", { timeout: 5_000 }, () => {
  it("pings after activity_timeout, closes 4201 after pong_timeout", async () => {
    const h = await open({ activity_timeout: 30, pong_timeout: 10 });
    h.clock.at += 29_999;
    h.connection.checkLiveness(h.clock.at);
    assert.equal(h.sent.length, 0);
    h.clock.at += 1;
    h.connection.checkLiveness(h.clock.at);
    assert.deepEqual(h.sent.map((f) => f.event), ["pusher:ping"]);
    h.clock.at += 9_999;
    h.connection.checkLiveness(h.clock.at);
    assert.equal(h.sent.length, 1, "no second ping while one is outstanding");
    assert.deepEqual(h.closes, []);
    h.clock.at += 1;
    h.connection.checkLiveness(h.clock.at);
    assert.equal(errorCode(h.sent[1]), 4201);
    assert.deepEqual(h.closes, [{ code: 4201, reason: "Pong reply not received in time" }]);
    assert.equal(h.connection.isOpen, false);
  });

  it("any frame answers a ping and restarts the activity timer", async () => {
    const h = await open({ activity_timeout: 30, pong_timeout: 10 });
    h.clock.at += 30_000;
    h.connection.checkLiveness(h.clock.at);
    h.clock.at += 5_000;
    h.connection.onMessage(frame("pusher:pong"));
    h.clock.at += 20_000;
    h.connection.checkLiveness(h.clock.at);
    assert.deepEqual(h.sent.map((f) => f.event), ["pusher:ping"]);
    assert.deepEqual(h.closes, []);
    h.clock.at += 10_000;
    h.connection.checkLiveness(h.clock.at);
    assert.deepEqual(h.sent.map((f) => f.event), ["pusher:ping", "pusher:ping"]);
  });

  it("a send buffer over budget closes 4100 (slow consumer)", async () => {
    const h = await open();
    h.buffered.bytes = 1_001;
    h.connection.checkLiveness(h.clock.at);
    assert.equal(errorCode(h.sent[0]), 4100);
    assert.equal(h.closes[0].code, 4100);
  });
});

describe("session: client-event rate limit", { timeout: 5_000 }, () => {
  it("refills the token bucket with the clock", async () => {
    const h = await open({ client_events: { enabled: true, rate_limit: 2 } });
    const channel = "private-chat";
    h.connection.onMessage(
      frame("pusher:subscribe", { channel, auth: sign(h.app, `${SOCKET_ID}:${channel}`) }),
    );
    await settle();
    assert.equal(h.sent.pop()?.event, "pusher_internal:subscription_succeeded");
    const send = () => h.connection.onMessage(frame("client-typing", { n: 1 }, channel));
    send();
    send();
    send();
    assert.equal(h.relayed.length, 2, "a burst of rate_limit events passes");
    assert.equal(errorCode(h.sent[0]), 4301);
    h.clock.at += 499;
    send();
    assert.equal(h.relayed.length, 2, "not a whole token after 499 ms at 2/s");
    h.clock.at += 1;
    send();
    assert.equal(h.relayed.length, 3, "one token after 500 ms");
    h.clock.at += 10_000;
    send();
    send();
    send();
    assert.equal(h.relayed.length, 5, "the bucket holds at most rate_limit tokens");
    assert.deepEqual(h.sent.map(errorCode), [4301, 4301, 4301]);
    assert.deepEqual(h.closes, [], "rate limiting does not close the socket");
  });
});

describe("session: frame queue", { timeout: 5_000 }, () => {
  const room = "presence-room";
  const subscribePresence = (h: Harness) => {
    const channelData = JSON.stringify({ user_id: "u1" });
    h.connection.onMessage(frame("pusher:subscribe", {
      channel: room,
      auth: sign(h.app, `${SOCKET_ID}:${room}:${channelData}`),
      channel_data: channelData,
    }));
  };

  it("answers frames behind an asynchronous step in order", async () => {
    const h = await open();
    h.state.hold();
    subscribePresence(h);
    h.connection.onMessage(frame("pusher:ping"));
    h.connection.onMessage(frame("pusher:subscribe", { channel: "news" }));
    h.connection.onMessage(frame("pusher:ping"));
    await settle();
    assert.equal(h.sent.length, 0, "nothing is answered while the join is in flight");
    h.state.release();
    await settle();
    assert.deepEqual(h.sent.map((f) => [f.event, f.channel]), [
      ["pusher_internal:subscription_succeeded", room],
      ["pusher:pong", undefined],
      ["pusher_internal:subscription_succeeded", "news"],
      ["pusher:pong", undefined],
    ]);
  });

  it("an oversized frame behind the step closes 1009 in its turn", async () => {
    const h = await open({ max_message_size: 1_000 });
    h.state.hold();
    subscribePresence(h);
    h.connection.onMessage(frame("pusher:ping"));
    h.connection.onMessage(frame("pusher:ping", "x".repeat(2_000)));
    h.connection.onMessage(frame("pusher:ping"));
    await settle();
    assert.deepEqual(h.closes, []);
    h.state.release();
    await settle();
    assert.deepEqual(h.sent.map((f) => f.event), [
      "pusher_internal:subscription_succeeded",
      "pusher:pong",
    ]);
    assert.deepEqual(h.closes, [{ code: 1009, reason: "Message too big" }]);
  });

  it(`over ${MAX_QUEUED_BYTES} bytes queued closes 4100`, async () => {
    const h = await open({ max_message_size: 2_000_000 });
    h.state.hold();
    subscribePresence(h);
    const big = frame("pusher:ping", "x".repeat(1_000_000));
    for (let i = 0; i < 4; i++) h.connection.onMessage(big);
    assert.deepEqual(h.closes, [], "4 MB waits");
    h.connection.onMessage(big);
    assert.equal(errorCode(h.sent[0]), 4100);
    assert.deepEqual(h.closes, [{ code: 4100, reason: "Too many frames in flight" }]);
    h.state.release();
    await settle();
    assert.equal(h.sent.length, 1, "nothing is answered after the close");
  });
});

describe("session: presence join and the bus", { timeout: 5_000 }, () => {
  const room = "presence-room";
  /** Records the order of bus interest and presence joins. */
  async function recorded(overrides: Partial<v.InferInput<typeof AppSchema>> = {}) {
    const h = await open(overrides);
    const steps: string[] = [];
    h.ports.bus.listen = (_appId, channel) => {
      steps.push(`listen ${channel}`);
      return Promise.resolve();
    };
    h.ports.bus.unlisten = (_appId, channel) => void steps.push(`unlisten ${channel}`);
    const join = h.state.joinPresence.bind(h.state);
    h.state.joinPresence = (member) => {
      steps.push(`join ${member.channel}`);
      return join(member);
    };
    return { h, steps };
  }
  const subscribe = (h: Harness, userId: string) => {
    const channelData = JSON.stringify({ user_id: userId });
    h.connection.onMessage(frame("pusher:subscribe", {
      channel: room,
      auth: sign(h.app, `${SOCKET_ID}:${room}:${channelData}`),
      channel_data: channelData,
    }));
  };

  it("listens before joining, so member events after the join reach this node", async () => {
    const { h, steps } = await recorded();
    subscribe(h, "u1");
    await settle();
    assert.deepEqual(steps.slice(0, 2), [`listen ${room}`, `join ${room}`]);
    assert.equal(h.sent.at(-1)?.event, "pusher_internal:subscription_succeeded");
  });

  it("a join refused (channel full) stops listening when no local socket is in it", async () => {
    const { h, steps } = await recorded({ max_presence_members: 1 });
    await h.state.joinPresence({
      appId: h.app.id,
      channel: room,
      socketId: "9.9",
      userId: "u0",
      userInfo: undefined,
      maxMembers: 1,
    });
    steps.length = 0;
    subscribe(h, "u1");
    await settle();
    assert.deepEqual(steps, [`listen ${room}`, `join ${room}`, `unlisten ${room}`]);
    assert.equal(h.sent[0]?.event, "pusher:subscription_error");
  });
});

describe("session: authorize, per channel kind", { timeout: 5_000 }, () => {
  const app = makeApp({ max_presence_member_size: 50 });
  const alice = { id: "alice", userData: '{"id":"alice"}', userInfo: { n: 1 }, watchlist: [] };
  const channelData = JSON.stringify({ user_id: "u1", user_info: { name: "U" } });
  type Case = {
    name: string;
    channel: string;
    auth?: string | ((channel: string) => string);
    channel_data?: string;
    user?: typeof alice;
    /** "ok", or the subscription_error status. */
    expect: "ok" | 400 | 401 | 403;
    member?: { userId: string; userInfo: unknown };
  };
  const good = (channel: string) => sign(app, `${SOCKET_ID}:${channel}`);
  const goodPresence = (data: string) => (channel: string) =>
    sign(app, `${SOCKET_ID}:${channel}:${data}`);
  const cases: Case[] = [
    { name: "public", channel: "news", expect: "ok" },
    { name: "public cache", channel: "cache-news", expect: "ok" },
    { name: "private, no auth", channel: "private-a", expect: 401 },
    { name: "private, bad signature", channel: "private-a", auth: "key:00", expect: 401 },
    {
      name: "private, other key",
      channel: "private-a",
      auth: "other:" + "0".repeat(64),
      expect: 401,
    },
    { name: "private", channel: "private-a", auth: good, expect: "ok" },
    { name: "private cache, no auth", channel: "private-cache-a", expect: 401 },
    { name: "private cache", channel: "private-cache-a", auth: good, expect: "ok" },
    { name: "encrypted, no auth", channel: "private-encrypted-a", expect: 401 },
    {
      name: "encrypted, signed for another channel",
      channel: "private-encrypted-a",
      auth: sign(app, `${SOCKET_ID}:private-encrypted-b`),
      expect: 401,
    },
    { name: "encrypted", channel: "private-encrypted-a", auth: good, expect: "ok" },
    { name: "presence, no channel_data", channel: "presence-r", auth: good, expect: 400 },
    { name: "presence, no auth", channel: "presence-r", channel_data: channelData, expect: 401 },
    {
      name: "presence, signature without channel_data",
      channel: "presence-r",
      channel_data: channelData,
      auth: good,
      expect: 401,
    },
    {
      name: "presence, channel_data without user_id",
      channel: "presence-r",
      channel_data: "{}",
      auth: goodPresence("{}"),
      expect: 400,
    },
    {
      name: "presence, user_info over max_presence_member_size",
      channel: "presence-r",
      channel_data: JSON.stringify({ user_id: "u1", user_info: "x".repeat(60) }),
      auth: goodPresence(JSON.stringify({ user_id: "u1", user_info: "x".repeat(60) })),
      expect: 403,
    },
    {
      name: "presence",
      channel: "presence-r",
      channel_data: channelData,
      auth: goodPresence(channelData),
      expect: "ok",
      member: { userId: "u1", userInfo: { name: "U" } },
    },
    {
      name: "presence cache",
      channel: "presence-cache-r",
      channel_data: channelData,
      auth: goodPresence(channelData),
      expect: "ok",
      member: { userId: "u1", userInfo: { name: "U" } },
    },
    {
      name: "presence, signed in, no channel_data",
      channel: "presence-r",
      user: alice,
      auth: good,
      expect: "ok",
      member: { userId: "alice", userInfo: { n: 1 } },
    },
    { name: "user, not signed in", channel: "#server-to-user-alice", expect: 403 },
    {
      name: "user, signed in as another",
      channel: "#server-to-user-bob",
      user: alice,
      expect: 403,
    },
    { name: "user", channel: "#server-to-user-alice", user: alice, expect: "ok" },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.expect}`, () => {
      const type = channelType(c.channel)!;
      const auth = typeof c.auth === "function" ? c.auth(c.channel) : c.auth;
      const result = authorize({
        app,
        socketId: SOCKET_ID,
        user: c.user,
        name: c.channel,
        kind: type.kind,
        request: { channel: c.channel, auth, channel_data: c.channel_data },
      });
      if (c.expect === "ok") {
        assert.ok(!("error" in result), JSON.stringify(result));
        if (c.member) assert.deepEqual(result, c.member);
        else assert.deepEqual(result, {});
        return;
      }
      assert.ok("error" in result, `refused: ${JSON.stringify(result)}`);
      const error = JSON.parse(result.error);
      assert.equal(error.event, "pusher:subscription_error");
      assert.equal(error.channel, c.channel);
      assert.equal(error.data.status, c.expect);
    });
  }
});

// A socket's channels keep the first in two fields and the rest in a Map: the same answers as a
// Map through any order of adds and removes (src/session/subscriptions.ts).
describe("session: subscriptions", { timeout: 10000 }, () => {
  it("answers like a Map after any order of adds and removes", () => {
    let seed = 3;
    const random = (n: number) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
    for (let round = 0; round < 500; round++) {
      const kept = new Subscriptions<{ n: number }>();
      const model = new Map<string, { n: number }>();
      for (let step = 0; step < 20; step++) {
        const name = `channel-${random(4)}`;
        const op = random(3);
        if (op === 0 && !model.has(name)) {
          const value = { n: step };
          kept.set(name, value);
          model.set(name, value);
        } else if (op === 1) {
          assert.equal(kept.delete(name), model.delete(name));
        }
        assert.equal(kept.get(name), model.get(name));
        assert.equal(kept.size, model.size);
        assert.deepEqual([...kept].sort(), [...model].sort());
      }
      kept.clear();
      assert.equal(kept.size, 0);
      assert.deepEqual([...kept], []);
    }
  });
});
