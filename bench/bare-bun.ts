/**
 * Baseline for the benchmark: the least a Bun server can do to look like Chorus to the load
 * generator. Bun.serve accepts sockets, answers connection_established / subscription_succeeded,
 * and fans out `POST /apps/{id}/events` and `/batch_events` with the native `server.publish`
 * topic, building the very same frame bytes Chorus sends. No signature checks; the only state is
 * which users a presence channel has seen (for member_added).
 *
 *   HOST=127.0.0.1 PORT=0 bun bench/bare-bun.ts
 *
 * With BENCH_BARE_API=signed, `POST .../events` does the work every Pusher server must do for a
 * signed call (bench/RESULTS.md, "HTTP API: what a signed call costs"): the body read as bytes,
 * their MD5 and one HMAC-SHA256 over method, path and query, the bytes decoded and parsed; the
 * signature is computed, not compared.
 */
import type { Server, ServerWebSocket } from "bun";
import { eventFrame, SubscribeAnswers } from "./lib/bare-frames.ts";
import { signedBody } from "./lib/bare-signed.ts";

interface EventBody {
  name: string;
  data: unknown;
  channel?: string;
  channels?: string[];
}

const hostname = process.env.HOST ?? "127.0.0.1";
const port = Number(process.env.PORT ?? 0);
let sequence = 0;

function publishEvent(server: Server<unknown>, event: EventBody): void {
  const channels = event.channels ?? (event.channel === undefined ? [] : [event.channel]);
  for (const channel of channels) {
    server.publish(channel, eventFrame(event.name, channel, event.data));
  }
}

const signed = process.env.BENCH_BARE_API === "signed";

const answers = new SubscribeAnswers(Number(process.env.BENCH_PRESENCE_USERS ?? 0));

const server = Bun.serve({
  hostname,
  port,
  async fetch(request, server) {
    const path = new URL(request.url).pathname;
    if (path.startsWith("/app/")) {
      return server.upgrade(request, { data: undefined })
        ? undefined
        : new Response("expected a WebSocket upgrade", { status: 400 });
    }
    if (request.method === "POST" && path.endsWith("/batch_events")) {
      const body = await request.json() as { batch: EventBody[] };
      for (const event of body.batch) publishEvent(server, event);
      return Response.json({ batch: body.batch.map(() => ({})) });
    }
    if (request.method === "POST" && path.endsWith("/events")) {
      publishEvent(
        server,
        signed ? await signedBody<EventBody>(request, path) : await request.json(),
      );
      return Response.json({});
    }
    return new Response("not found", { status: 404 });
  },
  websocket: {
    // The same socket settings as Chorus's Bun adapter.
    maxPayloadLength: 10_000,
    idleTimeout: 0,
    sendPings: false,
    open(ws: ServerWebSocket<unknown>) {
      const socketId = `1.${++sequence}`;
      ws.send(JSON.stringify({
        event: "pusher:connection_established",
        data: JSON.stringify({ socket_id: socketId, activity_timeout: 30 }),
      }));
    },
    message(ws: ServerWebSocket<unknown>, message: string | Buffer) {
      const frame = JSON.parse(String(message)) as {
        event: string;
        data?: { channel?: string; channel_data?: string };
      };
      if (frame.event === "pusher:subscribe" && frame.data?.channel) {
        const channel = frame.data.channel;
        ws.subscribe(channel);
        ws.send(answers.subscribed(channel));
        const added = answers.memberAdded(channel, frame.data.channel_data);
        if (added !== undefined) ws.publish(channel, added);
      } else if (frame.event === "pusher:unsubscribe" && frame.data?.channel) {
        ws.unsubscribe(frame.data.channel);
      } else if (frame.event === "pusher:ping") {
        ws.send('{"event":"pusher:pong","data":"{}"}');
      }
    },
  },
});

console.log(JSON.stringify({ level: "info", msg: "listening", port: server.port, runtime: "bun" }));
process.on("SIGTERM", () => {
  server.stop(true);
  process.exit(0);
});
