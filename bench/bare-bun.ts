/**
 * Baseline for the benchmark: the least a Bun server can do to look like Chorus to the load
 * generator. Bun.serve accepts sockets, answers connection_established / subscription_succeeded,
 * and fans out `POST /apps/{id}/events` and `/batch_events` with the native `server.publish`
 * topic, building the very same frame bytes Chorus sends. No signature checks; the only state is
 * which users a presence channel has seen (for member_added).
 *
 *   HOST=127.0.0.1 PORT=0 bun bench/bare-bun.ts
 */
import type { Server, ServerWebSocket } from "bun";

interface EventBody {
  name: string;
  data: unknown;
  channel?: string;
  channels?: string[];
}

const hostname = process.env.HOST ?? "127.0.0.1";
const port = Number(process.env.PORT ?? 0);
let sequence = 0;

function eventFrame(name: string, channel: string, data: unknown): string {
  // Chorus sends `data` as the string it was given (an object is JSON-encoded first).
  return JSON.stringify({
    event: name,
    channel,
    data: typeof data === "string" ? data : JSON.stringify(data),
  });
}

function publishEvent(server: Server<unknown>, event: EventBody): void {
  const channels = event.channels ?? (event.channel === undefined ? [] : [event.channel]);
  for (const channel of channels) {
    server.publish(channel, eventFrame(event.name, channel, event.data));
  }
}

// As many members as the bench's presence users (bench/loadgen.ts signs `u{i}` with
// `{"n":i}`), encoded once per channel: the member-list bytes every server must send.
const presenceUsers = Number(process.env.BENCH_PRESENCE_USERS ?? 0);
const presenceFrames = new Map<string, string>();

function presenceData(): string {
  const ids: string[] = [];
  const hash: Record<string, unknown> = {};
  for (let i = 0; i < presenceUsers; i++) {
    ids.push(`u${i}`);
    hash[`u${i}`] = { n: i };
  }
  return JSON.stringify({ presence: { ids, hash, count: presenceUsers } });
}

function subscribed(channel: string): string {
  if (!channel.startsWith("presence-")) {
    return JSON.stringify({ event: "pusher_internal:subscription_succeeded", channel, data: "{}" });
  }
  let frame = presenceFrames.get(channel);
  if (frame === undefined) {
    frame = JSON.stringify({
      event: "pusher_internal:subscription_succeeded",
      channel,
      data: presenceData(),
    });
    presenceFrames.set(channel, frame);
  }
  return frame;
}

// A user new to a presence channel is announced to the channel's other sockets, as every Pusher
// server must: bytes, like the member list, not overhead.
const presenceMembers = new Map<string, Set<string>>();

function memberAdded(channel: string, channelData: string | undefined): string | undefined {
  if (!channel.startsWith("presence-") || channelData === undefined) return undefined;
  const member = JSON.parse(channelData) as { user_id: string | number; user_info?: unknown };
  const userId = String(member.user_id);
  let users = presenceMembers.get(channel);
  if (!users) presenceMembers.set(channel, users = new Set());
  if (users.has(userId)) return undefined;
  users.add(userId);
  const data = JSON.stringify({ user_id: userId, user_info: member.user_info });
  return JSON.stringify({ event: "pusher_internal:member_added", channel, data });
}

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
      publishEvent(server, await request.json() as EventBody);
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
        ws.send(subscribed(channel));
        const added = memberAdded(channel, frame.data.channel_data);
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
