/**
 * Baseline for the benchmark: the least a Deno server can do to look like Chorus to the load
 * generator. Deno.serve + Deno.upgradeWebSocket; each channel is a Set of sockets and fan-out is
 * a loop over it, sending the very same frame bytes Chorus sends. No signature checks; the only
 * other state is which users a presence channel has seen (for member_added).
 *
 *   HOST=127.0.0.1 PORT=0 deno run --allow-net --allow-env bench/bare-deno.ts
 *
 * With BENCH_BARE_API=signed, `POST .../events` does what bench/bare-bun.ts does in that mode:
 * the body read as bytes, their MD5 and one HMAC-SHA256 over method, path and query, the bytes
 * decoded and parsed; the signature is computed, not compared.
 */
import { eventFrame, SubscribeAnswers } from "./lib/bare-frames.ts";
import { signedBody } from "./lib/bare-signed.ts";

interface EventBody {
  name: string;
  data: unknown;
  channel?: string;
  channels?: string[];
}

const OPEN = 1;
const hostname = Deno.env.get("HOST") ?? "127.0.0.1";
const port = Number(Deno.env.get("PORT") ?? 0);
const channels = new Map<string, Set<WebSocket>>();
let sequence = 0;

function publishEvent(event: EventBody): void {
  const names = event.channels ?? (event.channel === undefined ? [] : [event.channel]);
  for (const name of names) {
    const sockets = channels.get(name);
    if (!sockets) continue;
    const frame = eventFrame(event.name, name, event.data);
    for (const socket of sockets) {
      if (socket.readyState === OPEN) socket.send(frame);
    }
  }
}

const answers = new SubscribeAnswers(Number(Deno.env.get("BENCH_PRESENCE_USERS") ?? 0));

const signed = Deno.env.get("BENCH_BARE_API") === "signed";

function accept(request: Request): Response {
  const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: 0 });
  const joined = new Set<string>();
  socket.onopen = () => {
    const socketId = `1.${++sequence}`;
    socket.send(JSON.stringify({
      event: "pusher:connection_established",
      data: JSON.stringify({ socket_id: socketId, activity_timeout: 30 }),
    }));
  };
  socket.onmessage = (message) => {
    const frame = JSON.parse(String(message.data)) as {
      event: string;
      data?: { channel?: string; channel_data?: string };
    };
    const channel = frame.data?.channel;
    if (frame.event === "pusher:subscribe" && channel) {
      let sockets = channels.get(channel);
      if (!sockets) channels.set(channel, sockets = new Set());
      sockets.add(socket);
      joined.add(channel);
      socket.send(answers.subscribed(channel));
      const added = answers.memberAdded(channel, frame.data?.channel_data);
      if (added !== undefined) {
        for (const other of sockets) {
          if (other !== socket && other.readyState === OPEN) other.send(added);
        }
      }
    } else if (frame.event === "pusher:unsubscribe" && channel) {
      channels.get(channel)?.delete(socket);
      joined.delete(channel);
    } else if (frame.event === "pusher:ping") {
      socket.send('{"event":"pusher:pong","data":"{}"}');
    }
  };
  socket.onclose = () => {
    for (const channel of joined) {
      const sockets = channels.get(channel);
      sockets?.delete(socket);
      if (sockets?.size === 0) channels.delete(channel);
    }
  };
  return response;
}

const server = Deno.serve({
  hostname,
  port,
  onListen: ({ port }) => {
    console.log(JSON.stringify({ level: "info", msg: "listening", port, runtime: "deno" }));
  },
}, async (request) => {
  const path = new URL(request.url).pathname;
  if (path.startsWith("/app/")) return accept(request);
  if (request.method === "POST" && path.endsWith("/batch_events")) {
    const body = await request.json() as { batch: EventBody[] };
    for (const event of body.batch) publishEvent(event);
    return Response.json({ batch: body.batch.map(() => ({})) });
  }
  if (request.method === "POST" && path.endsWith("/events")) {
    publishEvent(
      signed ? await signedBody<EventBody>(request, path) : await request.json() as EventBody,
    );
    return Response.json({});
  }
  return new Response("not found", { status: 404 });
});

Deno.addSignalListener("SIGTERM", () => {
  server.shutdown().finally(() => Deno.exit(0));
});
