// WebSocket connection lifecycle (protocol.md §1, §2, §7 ping): connection_established, the open
// checks with their error and close codes, ping/pong, malformed frames, and max_message_size.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { type Chorus, startChorus } from "./support/server.ts";
import {
  DISABLED,
  LIMITED,
  MAIN,
  ORIGINS,
  QUOTA,
  SOCKET_ID,
  standardConfig,
} from "./support/apps.ts";
import { closeAllRawSockets, connectSocket, dataOf, RawSocket } from "./support/ws.ts";
import { until } from "./support/wait.ts";

const T = { timeout: 20000 };

describe("connection", { timeout: 120000 }, () => {
  let server: Chorus;
  before(async () => {
    server = await startChorus({ config: standardConfig() });
  });
  after(async () => {
    await closeAllRawSockets();
    await server?.stop();
  });

  /** Expects pusher:error {code} then close with the same code. */
  async function expectRefused(sock: RawSocket, code: number): Promise<void> {
    const f = await sock.nextEvent("pusher:error");
    assert.equal(typeof f.data, "object", "pusher:error data is an object");
    const d = f.data as { code: unknown; message: unknown };
    assert.equal(d.code, code, `pusher:error code: ${JSON.stringify(f)}`);
    assert.equal(typeof d.message, "string");
    assert.ok((d.message as string).length > 0, "error message is not empty");
    const closed = await sock.closed;
    assert.equal(closed.code, code, "close code equals the error code");
    assert.equal(
      sock.received((x) => x.event === "pusher:connection_established").length,
      0,
      "no connection_established before the refusal",
    );
  }

  describe("connection_established", { timeout: 60000 }, () => {
    it("carries a socket_id like 123.456 and the app's activity_timeout", T, async () => {
      const sock = await connectSocket(server.wsUrl(MAIN.key));
      const f = sock.log[0];
      assert.equal(f.event, "pusher:connection_established", "first frame");
      assert.equal(typeof f.data, "string", "data is a JSON-encoded string");
      const d = dataOf(f) as { socket_id: unknown; activity_timeout: unknown };
      assert.equal(typeof d.socket_id, "string");
      assert.match(d.socket_id as string, SOCKET_ID);
      assert.equal(d.activity_timeout, 30, "default activity_timeout");
      sock.close();
    });

    it("gives every connection a distinct socket_id", T, async () => {
      const socks = await Promise.all(
        Array.from({ length: 5 }, () => connectSocket(server.wsUrl(MAIN.key))),
      );
      const ids = new Set(socks.map((s) => s.socketId));
      assert.equal(ids.size, 5);
      socks.forEach((s) => s.close());
    });

    it("accepts a missing protocol parameter (as 7)", T, async () => {
      const sock = await connectSocket(server.wsUrl(MAIN.key, ""));
      assert.match(sock.socketId ?? "", SOCKET_ID);
      sock.close();
    });

    it("accepts protocol 5 and 6", T, async () => {
      for (const p of ["5", "6"]) {
        const sock = await connectSocket(server.wsUrl(MAIN.key, { protocol: p }));
        assert.match(sock.socketId ?? "", SOCKET_ID);
        sock.close();
      }
    });

    it("accepts any Origin for an app allowing *", T, async () => {
      const sock = await connectSocket(server.wsUrl(MAIN.key), { origin: "https://x.example" });
      sock.close();
    });
  });

  describe("open checks", { timeout: 60000 }, () => {
    it("4001 for an unknown app key", T, async () => {
      await expectRefused(new RawSocket(server.wsUrl("no-such-key")), 4001);
    });

    it("4003 for a disabled app", T, async () => {
      await expectRefused(new RawSocket(server.wsUrl(DISABLED.key)), 4003);
    });

    it("4006 for a protocol that is not an integer", T, async () => {
      await expectRefused(new RawSocket(server.wsUrl(MAIN.key, { protocol: "abc" })), 4006);
    });

    it("4007 for protocol 4", T, async () => {
      await expectRefused(new RawSocket(server.wsUrl(MAIN.key, { protocol: "4" })), 4007);
    });

    it("4007 for protocol 8", T, async () => {
      await expectRefused(new RawSocket(server.wsUrl(MAIN.key, { protocol: "8" })), 4007);
    });

    it("4009 for an Origin outside allowed_origins", T, async () => {
      const sock = new RawSocket(server.wsUrl(ORIGINS.key), { origin: "https://evil.example" });
      await expectRefused(sock, 4009);
    });

    it("accepts an Origin listed in allowed_origins", T, async () => {
      const sock = await connectSocket(server.wsUrl(ORIGINS.key), {
        origin: "https://good.example",
      });
      sock.close();
    });

    it("checks in order: unknown key before protocol", T, async () => {
      await expectRefused(new RawSocket(server.wsUrl("no-such-key", { protocol: "abc" })), 4001);
    });

    it("checks in order: disabled before protocol", T, async () => {
      await expectRefused(new RawSocket(server.wsUrl(DISABLED.key, { protocol: "4" })), 4003);
    });

    it("checks in order: protocol before origin", T, async () => {
      const sock = new RawSocket(server.wsUrl(ORIGINS.key, { protocol: "9" }), {
        origin: "https://evil.example",
      });
      await expectRefused(sock, 4007);
    });

    it("4004 once the app is at max_connections, and frees the slot on close", T, async () => {
      const a = await connectSocket(server.wsUrl(QUOTA.key));
      const b = await connectSocket(server.wsUrl(QUOTA.key));
      await expectRefused(new RawSocket(server.wsUrl(QUOTA.key)), 4004);
      await a.closeAndWait();
      // The server notices the close asynchronously: retry until a new connection is accepted.
      const c = await until(async () => {
        const s = new RawSocket(server.wsUrl(QUOTA.key));
        const f = await s.next(
          (x) => x.event === "pusher:connection_established" || x.event === "pusher:error",
          "established or error",
        );
        if (f.event === "pusher:connection_established") return s;
        await s.closed;
        return undefined;
      }, "a connection slot to free up after a close");
      c.close();
      b.close();
    });
  });

  describe("ping and malformed frames", { timeout: 60000 }, () => {
    it('answers pusher:ping with pusher:pong data "{}"', T, async () => {
      const sock = await connectSocket(server.wsUrl(MAIN.key));
      const pong = await sock.ping();
      assert.equal(pong.data, "{}");
      sock.send({ event: "pusher:ping" });
      const pong2 = await sock.nextEvent("pusher:pong");
      assert.equal(pong2.data, "{}", "ping without data is answered too");
      sock.close();
    });

    const malformed: { name: string; frame: () => string | ArrayBuffer }[] = [
      { name: "invalid JSON", frame: () => "{not json" },
      { name: "a binary frame", frame: () => new Uint8Array([123, 34, 101, 125]).buffer },
      { name: "a JSON array", frame: () => "[1,2,3]" },
      { name: "a missing event", frame: () => JSON.stringify({ data: {} }) },
      { name: "a numeric event", frame: () => JSON.stringify({ event: 42, data: {} }) },
      {
        name: "a numeric channel",
        frame: () => JSON.stringify({ event: "client-x", channel: 123, data: {} }),
      },
      {
        name: "a subscribe with a numeric channel",
        frame: () => JSON.stringify({ event: "pusher:subscribe", data: { channel: 5 } }),
      },
      {
        name: "a subscribe whose data is a string that is not JSON",
        frame: () => JSON.stringify({ event: "pusher:subscribe", data: "{oops" }),
      },
      {
        name: "an unknown pusher: event",
        frame: () => JSON.stringify({ event: "pusher:bogus", data: {} }),
      },
      {
        name: "an event that is neither pusher: nor client-",
        frame: () => JSON.stringify({ event: "hello", channel: "x", data: {} }),
      },
    ];
    for (const m of malformed) {
      it(`answers ${m.name} with pusher:error 4200 and keeps the socket open`, T, async () => {
        const sock = await connectSocket(server.wsUrl(MAIN.key));
        sock.sendRaw(m.frame());
        const err = await sock.nextError();
        assert.equal(err.code, 4200, JSON.stringify(err));
        assert.equal(typeof err.message, "string");
        assert.ok((err.message as string).length > 0, "the message names the problem");
        await sock.ping();
        assert.ok(sock.isOpen, "socket still open");
        sock.close();
      });
    }
  });

  describe("max_message_size", { timeout: 60000 }, () => {
    it("accepts a frame under the limit", T, async () => {
      const sock = await connectSocket(server.wsUrl(MAIN.key));
      sock.send({ event: "pusher:ping", data: { pad: "x".repeat(9000) } });
      await sock.nextEvent("pusher:pong");
      sock.close();
    });

    it("closes with 1009 on a frame over the limit (default 10 000 bytes)", T, async () => {
      const sock = await connectSocket(server.wsUrl(MAIN.key));
      sock.send({ event: "pusher:ping", data: { pad: "x".repeat(12000) } });
      const closed = await sock.closed;
      assert.equal(closed.code, 1009);
      assert.equal(sock.received((f) => f.event === "pusher:pong").length, 0);
    });

    it("uses the app's own max_message_size (2 000 bytes for the limited app)", T, async () => {
      const ok = await connectSocket(server.wsUrl(LIMITED.key));
      ok.send({ event: "pusher:ping", data: { pad: "x".repeat(1500) } });
      await ok.nextEvent("pusher:pong");
      ok.send({ event: "pusher:ping", data: { pad: "x".repeat(2500) } });
      const closed = await ok.closed;
      assert.equal(closed.code, 1009);
    });
  });
});
