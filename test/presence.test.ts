// Presence channels (protocol.md §4): members deduplicated by user_id, member_added only for a
// user's first connection and member_removed only for its last, user_id always a string, and the
// member-count / member-size limits.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { type Chorus, startChorus } from "./support/server.ts";
import { LIMITED, MAIN, standardConfig } from "./support/apps.ts";
import { closeAllRawSockets, connectSocket, dataOf, type Frame, RawSocket } from "./support/ws.ts";
import { Api, type AppCreds, channelAuth } from "./support/sign.ts";
import { assertSubscriptionError } from "./support/assertions.ts";
import { until } from "./support/wait.ts";

const T = { timeout: 20000 };

interface PresenceData {
  presence: { ids: string[]; hash: Record<string, unknown>; count: number };
}

describe("presence", { timeout: 120000 }, () => {
  let server: Chorus;
  let api: Api;
  let limitedApi: Api;
  let n = 0;
  const uniq = (base: string) => `${base}-${++n}`;

  before(async () => {
    server = await startChorus({ config: standardConfig() });
    api = new Api(server, MAIN);
    limitedApi = new Api(server, LIMITED);
  });
  after(async () => {
    await closeAllRawSockets();
    await server?.stop();
  });

  async function member(app: AppCreds): Promise<RawSocket> {
    return await connectSocket(server.wsUrl(app.key));
  }

  function join(
    sock: RawSocket,
    app: AppCreds,
    channel: string,
    user: { user_id: unknown; user_info?: unknown },
  ): Promise<Frame> {
    const cd = JSON.stringify(user);
    return sock.subscribeResult(channel, {
      auth: channelAuth(app, sock.socketId!, channel, cd),
      channel_data: cd,
    });
  }

  async function joinOk(
    sock: RawSocket,
    app: AppCreds,
    channel: string,
    user: { user_id: unknown; user_info?: unknown },
  ): Promise<PresenceData> {
    const f = await join(sock, app, channel, user);
    assert.equal(f.event, "pusher_internal:subscription_succeeded", JSON.stringify(f));
    assert.equal(typeof f.data, "string", "subscription_succeeded data is a JSON string");
    return dataOf(f) as PresenceData;
  }

  /** Triggers a marker over HTTP and waits until every socket got it. */
  async function marker(channel: string, ...socks: RawSocket[]): Promise<void> {
    const name = `marker-${++n}`;
    const res = await api.trigger({ name, channel, data: "{}" });
    assert.equal(res.status, 200, res.text);
    await Promise.all(socks.map((s) => s.nextEvent(name, channel)));
  }

  const sorted = (a: string[]) => [...a].sort();

  it("dedupes one user on two sockets; added on first join, removed on last leave", T, async () => {
    const ch = uniq("presence-dedup");
    const a = await member(MAIN); // u1, first socket
    const c = await member(MAIN); // u2
    const b = await member(MAIN); // u1, second socket

    const pa = await joinOk(a, MAIN, ch, { user_id: "u1", user_info: { name: "Ann" } });
    assert.deepEqual(pa.presence, { ids: ["u1"], hash: { u1: { name: "Ann" } }, count: 1 });

    const pc = await joinOk(c, MAIN, ch, { user_id: "u2", user_info: { name: "Cy" } });
    assert.equal(pc.presence.count, 2);
    assert.deepEqual(sorted(pc.presence.ids), ["u1", "u2"]);
    assert.deepEqual(pc.presence.hash, { u1: { name: "Ann" }, u2: { name: "Cy" } });

    const added = await a.nextEvent("pusher_internal:member_added", ch);
    assert.equal(typeof added.data, "string", "member_added data is a JSON string");
    assert.deepEqual(dataOf(added), { user_id: "u2", user_info: { name: "Cy" } });

    const pb = await joinOk(b, MAIN, ch, { user_id: "u1", user_info: { name: "Ann" } });
    assert.equal(pb.presence.count, 2, "u1 counted once");
    assert.deepEqual(sorted(pb.presence.ids), ["u1", "u2"], "ids have one entry per user");

    await marker(ch, a, b, c);
    assert.deepEqual(
      c.received((f) => f.event === "pusher_internal:member_added"),
      [],
      "no member_added for u1's second connection",
    );
    assert.equal(
      a.received((f) => f.event === "pusher_internal:member_added").length,
      1,
      "a saw only u2 join",
    );
    assert.deepEqual(
      b.received((f) => f.event === "pusher_internal:member_added"),
      [],
      "the joining socket gets no member_added about anyone",
    );

    const users = await api.get(`/channels/${ch}/users`);
    assert.equal(users.status, 200, users.text);
    const list = (users.json as { users: { id: string }[] }).users;
    assert.deepEqual(sorted(list.map((u) => u.id)), ["u1", "u2"]);
    const info = await api.get(`/channels/${ch}`, { info: "user_count,subscription_count" });
    assert.deepEqual(info.json, { occupied: true, user_count: 2, subscription_count: 3 });

    // u1 leaves on one socket only: nobody is told
    await a.closeAndWait();
    await until(async () => {
      const r = await api.get(`/channels/${ch}`, { info: "subscription_count" });
      return (r.json as { subscription_count?: number }).subscription_count === 2;
    }, "the server to drop the closed socket");
    await marker(ch, b, c);
    assert.deepEqual(
      c.received((f) => f.event === "pusher_internal:member_removed"),
      [],
      "no member_removed while u1 still has a connection",
    );

    // u1's last connection leaves
    await b.closeAndWait();
    const removed = await c.nextEvent("pusher_internal:member_removed", ch);
    assert.equal(typeof removed.data, "string", "member_removed data is a JSON string");
    assert.deepEqual(dataOf(removed), { user_id: "u1" });
    const left = await api.get(`/channels/${ch}/users`);
    assert.deepEqual((left.json as { users: { id: string }[] }).users, [{ id: "u2" }]);
    c.close();
  });

  it("unsubscribing (not closing) also counts as leaving", T, async () => {
    const ch = uniq("presence-unsub");
    const a = await member(MAIN);
    const c = await member(MAIN);
    await joinOk(a, MAIN, ch, { user_id: "x1" });
    await joinOk(c, MAIN, ch, { user_id: "x2" });
    a.send({ event: "pusher:unsubscribe", data: { channel: ch } });
    const removed = await c.nextEvent("pusher_internal:member_removed", ch);
    assert.deepEqual(dataOf(removed), { user_id: "x1" });
    a.close();
    c.close();
  });

  it('writes a numeric user_id as a string everywhere and dedupes 42 with "42"', T, async () => {
    const ch = uniq("presence-numeric");
    const watcher = await member(MAIN);
    await joinOk(watcher, MAIN, ch, { user_id: "w" });

    const num = await member(MAIN);
    const p = await joinOk(num, MAIN, ch, { user_id: 42, user_info: { n: 1 } });
    assert.deepEqual(sorted(p.presence.ids), ["42", "w"]);
    assert.ok(p.presence.ids.every((id) => typeof id === "string"), "ids are strings");
    assert.deepEqual(Object.keys(p.presence.hash).sort(), ["42", "w"]);
    assert.deepEqual(p.presence.hash["42"], { n: 1 });

    const added = await watcher.nextEvent("pusher_internal:member_added", ch);
    assert.deepEqual(dataOf(added), { user_id: "42", user_info: { n: 1 } });

    const str = await member(MAIN);
    const p2 = await joinOk(str, MAIN, ch, { user_id: "42", user_info: { n: 1 } });
    assert.equal(p2.presence.count, 2, '42 and "42" are the same user');
    await marker(ch, watcher);
    assert.equal(
      watcher.received((f) => f.event === "pusher_internal:member_added").length,
      1,
      'no second member_added for "42"',
    );

    const users = await api.get(`/channels/${ch}/users`);
    const ids = (users.json as { users: { id: unknown }[] }).users.map((u) => u.id);
    assert.deepEqual(sorted(ids as string[]), ["42", "w"]);

    await num.closeAndWait();
    await str.closeAndWait();
    const removed = await watcher.nextEvent("pusher_internal:member_removed", ch);
    assert.deepEqual(dataOf(removed), { user_id: "42" });
    watcher.close();
  });

  describe("limits", { timeout: 60000 }, () => {
    it(
      "403 LimitReached past max_presence_members; existing users may still add sockets",
      T,
      async () => {
        const ch = uniq("presence-full");
        const s1 = await member(LIMITED);
        const s2 = await member(LIMITED);
        const s3 = await member(LIMITED);
        const s1b = await member(LIMITED);
        await joinOk(s1, LIMITED, ch, { user_id: "1" });
        await joinOk(s2, LIMITED, ch, { user_id: "2" });
        assertSubscriptionError(
          await join(s3, LIMITED, ch, { user_id: "3" }),
          ch,
          403,
          "LimitReached",
        );
        const again = await joinOk(s1b, LIMITED, ch, { user_id: "1" });
        assert.equal(again.presence.count, 2, "a second socket of a member is not a new member");

        // a slot frees up when a user leaves
        await s2.closeAndWait();
        await until(async () => {
          const r = await limitedApi.get(`/channels/${ch}`, { info: "user_count" });
          return (r.json as { user_count?: number }).user_count === 1;
        }, "user 2 to leave");
        const p3 = await joinOk(s3, LIMITED, ch, { user_id: "3" });
        assert.equal(p3.presence.count, 2);
        [s1, s3, s1b].forEach((s) => s.close());
      },
    );

    it("403 LimitReached when user_info is over max_presence_member_size", T, async () => {
      const ch = uniq("presence-size");
      const s = await member(LIMITED);
      // JSON.stringify({b: "x".repeat(56)}) is exactly 64 bytes: allowed; 65 bytes: refused.
      const ok = { b: "x".repeat(56) };
      const big = { b: "x".repeat(57) };
      assert.equal(JSON.stringify(ok).length, 64);
      assertSubscriptionError(
        await join(s, LIMITED, ch, { user_id: "big", user_info: big }),
        ch,
        403,
        "LimitReached",
      );
      await joinOk(s, LIMITED, ch, { user_id: "fits", user_info: ok });
      s.close();
    });
  });
});
