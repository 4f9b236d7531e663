// End to end with the real client libraries: pusher-js 8 and Laravel Echo 2 (reverb broadcaster)
// on one side, the official `pusher` server SDK on the other. Public, private, encrypted and
// presence channels, client events / whispers, subscription errors, refused connections.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type PusherServer from "pusher";
import { type Chorus, startChorus } from "./support/server.ts";
import { LIMITED, MAIN, SOCKET_ID, standardConfig } from "./support/apps.ts";
import {
  connected,
  disconnectAll,
  echoClient,
  echoPusher,
  nextEvent,
  type PresenceChannel,
  pusherClient,
  serverSdk,
  subscribed,
  subscriptionError,
} from "./support/clients.ts";
import { closeAllRawSockets, connectSocket, dataOf } from "./support/ws.ts";
import { channelAuth } from "./support/sign.ts";
import { deferred, withTimeout } from "./support/wait.ts";

const T = { timeout: 20000 };

describe("client libraries", { timeout: 180000 }, () => {
  let server: Chorus;
  let sdk: PusherServer;
  let encSdk: PusherServer;
  let n = 0;
  const uniq = (base: string) => `${base}-${++n}`;

  before(async () => {
    server = await startChorus({ config: standardConfig() });
    sdk = serverSdk(server, MAIN);
    encSdk = serverSdk(server, MAIN, true);
  });
  after(async () => {
    disconnectAll();
    await closeAllRawSockets();
    await server?.stop();
  });

  describe("pusher-js", { timeout: 90000 }, () => {
    it("connects and gets a socket_id", T, async () => {
      const p = pusherClient(server, MAIN);
      const id = await connected(p);
      assert.match(id, SOCKET_ID);
      assert.equal(p.connection.state, "connected");
      p.disconnect();
    });

    it("receives SDK-triggered events on a public channel", T, async () => {
      const p = pusherClient(server, MAIN);
      const ch = p.subscribe(uniq("public-feed"));
      await subscribed(ch);
      const got = nextEvent(ch, "update");
      await sdk.trigger(ch.name, "update", { price: 42, tags: ["x"] });
      assert.deepEqual((await got).data, { price: 42, tags: ["x"] });
      p.disconnect();
    });

    it("subscribes to a private channel with a locally signed auth", T, async () => {
      const p = pusherClient(server, MAIN);
      const ch = p.subscribe(uniq("private-inbox"));
      await subscribed(ch);
      const got = nextEvent(ch, "mail");
      await sdk.trigger(ch.name, "mail", { subject: "hi" });
      assert.deepEqual((await got).data, { subject: "hi" });
      p.disconnect();
    });

    it("decrypts an encrypted channel event; the server relays ciphertext only", T, async () => {
      const name = uniq("private-encrypted-vault");
      const p = pusherClient(server, MAIN);
      const ch = p.subscribe(name);
      await subscribed(ch);
      const raw = await connectSocket(server.wsUrl(MAIN.key));
      await raw.subscribeOk(name, { auth: channelAuth(MAIN, raw.socketId!, name) });
      const got = nextEvent(ch, "secret");
      await encSdk.trigger(name, "secret", { code: "1234" });
      assert.deepEqual((await got).data, { code: "1234" });
      const f = await raw.nextEvent("secret", name);
      const payload = dataOf(f) as Record<string, unknown>;
      assert.equal(typeof payload.nonce, "string", "ciphertext envelope relayed as-is");
      assert.equal(typeof payload.ciphertext, "string");
      assert.ok(!JSON.stringify(f).includes("1234"), "plaintext never on the wire");
      raw.close();
      p.disconnect();
    });

    it("presence: members, member_added, member_removed", T, async () => {
      const name = uniq("presence-room");
      const alice = pusherClient(server, MAIN, {
        user: { user_id: "alice", user_info: { name: "Alice" } },
      });
      const bob = pusherClient(server, MAIN, {
        user: { user_id: "bob", user_info: { name: "Bob" } },
      });
      const ca = alice.subscribe(name) as PresenceChannel;
      await subscribed(ca);
      assert.equal(ca.members.count, 1);
      assert.equal(ca.members.me.id, "alice");

      const added = nextEvent<{ id: string; info: unknown }>(ca, "pusher:member_added");
      const cb = bob.subscribe(name) as PresenceChannel;
      await subscribed(cb);
      assert.equal(cb.members.count, 2);
      assert.deepEqual(cb.members.get("alice").info, { name: "Alice" });
      const a = await added;
      assert.equal(a.data.id, "bob");
      assert.deepEqual(a.data.info, { name: "Bob" });
      assert.equal(ca.members.count, 2);

      const removed = nextEvent<{ id: string }>(ca, "pusher:member_removed");
      bob.disconnect();
      assert.equal((await removed).data.id, "bob");
      assert.equal(ca.members.count, 1);
      alice.disconnect();
    });

    it("client events reach the other client with the data as sent", T, async () => {
      const name = uniq("private-chat");
      const a = pusherClient(server, MAIN);
      const b = pusherClient(server, MAIN);
      const ca = a.subscribe(name);
      const cb = b.subscribe(name);
      await Promise.all([subscribed(ca), subscribed(cb)]);
      const got = nextEvent(cb, "client-typing");
      assert.equal(ca.trigger("client-typing", { who: "a", n: [1, 2] }), true);
      assert.deepEqual((await got).data, { who: "a", n: [1, 2] });
      a.disconnect();
      b.disconnect();
    });

    it("surfaces a 401 AuthError subscription_error for a bad signature", T, async () => {
      const p = pusherClient(server, MAIN, { authSecret: "wrong-secret" });
      const ch = p.subscribe(uniq("private-locked"));
      const err = await subscriptionError(ch);
      assert.equal((err as { status: number }).status, 401);
      assert.equal((err as { type: string }).type, "AuthError");
      assert.equal(typeof (err as { error: unknown }).error, "string");
      p.disconnect();
    });

    it(
      "surfaces a 403 LimitReached subscription_error when the presence channel is full",
      T,
      async () => {
        const name = uniq("presence-small"); // LIMITED: 2 members
        const clients = ["1", "2", "3"].map((id) =>
          pusherClient(server, LIMITED, { user: { user_id: id } })
        );
        await subscribed(clients[0].subscribe(name));
        await subscribed(clients[1].subscribe(name));
        const err = await subscriptionError(clients[2].subscribe(name));
        assert.deepEqual(
          { status: (err as { status: number }).status, type: (err as { type: string }).type },
          { status: 403, type: "LimitReached" },
        );
        clients.forEach((c) => c.disconnect());
      },
    );

    it("is refused (no reconnect loop) for an unknown key: error 4001", T, async () => {
      const p = pusherClient(server, { id: "x", key: "unknown-key", secret: "x" });
      const err = await nextEvent<{ error?: { data?: { code?: number } } }>(p.connection, "error");
      assert.equal(err.data.error?.data?.code, 4001, JSON.stringify(err.data));
      await withTimeout(
        new Promise<void>((resolve) => {
          if (p.connection.state === "disconnected") resolve();
          p.connection.bind("disconnected", () => resolve());
        }),
        5000,
        "pusher-js to give up",
      );
      p.disconnect();
    });
  });

  describe("Laravel Echo (reverb broadcaster)", { timeout: 90000 }, () => {
    it("listens to a public channel ('.Event' = no namespace)", T, async () => {
      const echo = echoClient(server, MAIN);
      const name = uniq("orders");
      const got = deferred<unknown>();
      echo.channel(name).subscribed(() => {
        sdk.trigger(name, "OrderShipped", { order: 1 }).catch(got.reject);
      }).listen(".OrderShipped", (e: unknown) => got.resolve(e));
      assert.deepEqual(await withTimeout(got.promise, 5000, "OrderShipped"), { order: 1 });
      echo.disconnect();
    });

    it("uses the App.Events namespace for event names (backslashes in names)", T, async () => {
      const echo = echoClient(server, MAIN);
      const name = uniq("orders");
      const got = deferred<unknown>();
      echo.channel(name).subscribed(() => {
        sdk.trigger(name, "App\\Events\\OrderPaid", { order: 2 }).catch(got.reject);
      }).listen("OrderPaid", (e: unknown) => got.resolve(e));
      assert.deepEqual(await withTimeout(got.promise, 5000, "App\\Events\\OrderPaid"), {
        order: 2,
      });
      echo.disconnect();
    });

    it("listens on a private channel", T, async () => {
      const echo = echoClient(server, MAIN);
      const name = uniq("user");
      const got = deferred<unknown>();
      echo.private(name).subscribed(() => {
        sdk.trigger(`private-${name}`, "Notice", { text: "hi" }).catch(got.reject);
      }).listen(".Notice", (e: unknown) => got.resolve(e));
      assert.deepEqual(await withTimeout(got.promise, 5000, "Notice"), { text: "hi" });
      echo.disconnect();
    });

    it("listens on an encrypted private channel", T, async () => {
      const echo = echoClient(server, MAIN);
      const name = uniq("vault");
      const got = deferred<unknown>();
      echo.encryptedPrivate(name).subscribed(() => {
        encSdk.trigger(`private-encrypted-${name}`, "Sealed", { pin: 9 }).catch(got.reject);
      }).listen(".Sealed", (e: unknown) => got.resolve(e));
      assert.deepEqual(await withTimeout(got.promise, 5000, "Sealed"), { pin: 9 });
      echo.disconnect();
    });

    it("presence: here / joining / leaving", T, async () => {
      const name = uniq("lobby");
      const e1 = echoClient(server, MAIN, { user: { user_id: 1, user_info: { name: "One" } } });
      const e2 = echoClient(server, MAIN, { user: { user_id: 2, user_info: { name: "Two" } } });
      const here1 = deferred<unknown[]>();
      const joining = deferred<unknown>();
      const leaving = deferred<unknown>();
      e1.join(name)
        .here((users: unknown[]) => here1.resolve(users))
        .joining((u: unknown) => joining.resolve(u))
        .leaving((u: unknown) => leaving.resolve(u));
      assert.deepEqual(await withTimeout(here1.promise, 5000, "here (1)"), [{ name: "One" }]);

      const here2 = deferred<unknown[]>();
      e2.join(name).here((users: unknown[]) => here2.resolve(users));
      const users = await withTimeout(here2.promise, 5000, "here (2)");
      assert.deepEqual(
        (users as { name: string }[]).map((u) => u.name).sort(),
        ["One", "Two"],
      );
      assert.deepEqual(await withTimeout(joining.promise, 5000, "joining"), { name: "Two" });
      e2.disconnect();
      assert.deepEqual(await withTimeout(leaving.promise, 5000, "leaving"), { name: "Two" });
      e1.disconnect();
    });

    it("whispers reach the other Echo client", T, async () => {
      const name = uniq("chat");
      const e1 = echoClient(server, MAIN);
      const e2 = echoClient(server, MAIN);
      const ready = deferred<void>();
      const got = deferred<unknown>();
      e2.private(name)
        .listenForWhisper("typing", (e: unknown) => got.resolve(e))
        .subscribed(() => ready.resolve());
      const c1 = e1.private(name);
      const ready1 = deferred<void>();
      c1.subscribed(() => ready1.resolve());
      await withTimeout(Promise.all([ready.promise, ready1.promise]), 5000, "both subscribed");
      c1.whisper("typing", { name: "One" });
      assert.deepEqual(await withTimeout(got.promise, 5000, "whisper"), { name: "One" });
      e1.disconnect();
      e2.disconnect();
    });

    it("toOthers(): an SDK trigger with the Echo socket id skips that client", T, async () => {
      const name = uniq("others");
      const me = echoClient(server, MAIN);
      const other = echoClient(server, MAIN);
      const mine: unknown[] = [];
      const theirs = deferred<unknown>();
      const marker = deferred<void>();
      const sub1 = deferred<void>();
      const sub2 = deferred<void>();
      me.channel(name).subscribed(() => sub1.resolve())
        .listen(".Posted", (e: unknown) => mine.push(e))
        .listen(".Marker", () => marker.resolve());
      other.channel(name).subscribed(() => sub2.resolve())
        .listen(".Posted", (e: unknown) => theirs.resolve(e));
      await withTimeout(Promise.all([sub1.promise, sub2.promise]), 5000, "subscriptions");
      const socketId = me.socketId();
      assert.match(socketId ?? "", SOCKET_ID);
      await sdk.trigger(name, "Posted", { p: 1 }, { socket_id: socketId });
      assert.deepEqual(await withTimeout(theirs.promise, 5000, "Posted"), { p: 1 });
      await sdk.trigger(name, "Marker", {});
      await withTimeout(marker.promise, 5000, "Marker");
      assert.deepEqual(mine, [], "the sender's own socket was excluded");
      me.disconnect();
      other.disconnect();
    });

    it(".error() fires on a refused private subscription", T, async () => {
      const echo = echoClient(server, MAIN, { authSecret: "nope" });
      const got = deferred<unknown>();
      echo.private(uniq("forbidden")).error((e: unknown) => got.resolve(e));
      const err = await withTimeout(got.promise, 5000, "Echo .error()");
      assert.equal((err as { status: number }).status, 401);
      assert.equal((err as { type: string }).type, "AuthError");
      assert.equal(echoPusher(echo).connection.state, "connected", "still connected");
      echo.disconnect();
    });
  });
});
