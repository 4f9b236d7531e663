/**
 * Bun runtime adapter: Bun.serve + Hono, native uWS topics for fan-out. The upgrade goes straight
 * to Bun's `server.upgrade` with the session as the socket's data: hono/bun's helper would build a
 * URL per socket and a context and event object per message.
 */
import type { Server, ServerWebSocket, WebSocketHandler } from "bun";
// hono/bun's helpers are marked deprecated in favour of @hono/bun, which is not published yet.
import { getBunServer, getConnInfo } from "hono/bun";
import {
  CLOSE_DEADLINE_MS,
  HEADER_TIMEOUT_MS,
  type HttpApp,
  type ListenOptions,
  type RunningServer,
  type RuntimeAdapter,
  type ServeOptions,
  type SocketHandle,
  type SocketServer,
  type SocketSession,
} from "../src/runtime.ts";

const OPEN = 1;
const HARD_CAP_FACTOR = 16;

/** One socket: the core's handle, and the socket's data in Bun (one object per socket). */
class BunSocket implements SocketHandle {
  /** Set by `open`. */
  raw!: ServerWebSocket<BunSocket>;

  constructor(readonly session: SocketSession) {}

  send(frame: string): void {
    this.raw.send(frame);
  }

  /** Set once Chorus closed the socket: tears it down if the peer never answers. */
  deadline: ReturnType<typeof setTimeout> | undefined;

  close(code: number, reason: string): void {
    this.raw.close(code, reason);
    this.deadline ??= setTimeout(() => this.raw.terminate(), CLOSE_DEADLINE_MS);
  }

  bufferedAmount(): number {
    return this.raw.readyState === OPEN ? this.raw.getBufferedAmount() : 0;
  }
}

const handlers: WebSocketHandler<BunSocket> = {
  open(ws) {
    ws.data.raw = ws;
    ws.data.session.onOpen(ws.data);
  },
  message(ws, message) {
    // Text arrives as a string, binary as a Buffer (refused by the core with 4200).
    ws.data.session.onMessage(message);
  },
  close(ws, code) {
    clearTimeout(ws.data.deadline);
    ws.data.session.onClose(code);
  },
};

/** Bun's verdict on a publish: -1 some subscriber's data was queued (backpressure), 0 some were
 * over the hard cap and dropped. */
function overBudget(status: number): boolean {
  return status <= 0;
}

export function createBunAdapter(): RuntimeAdapter {
  return {
    name: "bun",

    websocket(accept) {
      return (c) => {
        const data = new BunSocket(accept(c));
        if (getBunServer<Server<BunSocket>>(c)?.upgrade(c.req.raw, { data })) {
          return new Response(null);
        }
        return c.json({ error: "Expected a WebSocket upgrade request" }, 426);
      };
    },

    clientAddress(c) {
      return getConnInfo(c).remote.address ?? "unknown";
    },

    serve(app: HttpApp, options: ServeOptions): Promise<SocketServer> {
      const server: Server<BunSocket> = Bun.serve({
        hostname: options.hostname,
        port: options.port,
        fetch: app.fetch,
        // Seconds an HTTP connection may stay silent (headers not finished, idle keep-alive).
        idleTimeout: HEADER_TIMEOUT_MS / 1000,
        websocket: {
          ...handlers,
          maxPayloadLength: options.maxFrameBytes,
          // A hard cap well above the budget bounds memory; the core closes slow sockets with
          // 4100 at the budget, while its error and close frames still fit.
          backpressureLimit: options.socketBufferLimit * HARD_CAP_FACTOR,
          closeOnBackpressureLimit: true,
          // Liveness is Pusher's activity_timeout, done by the core; Bun's own timer is off.
          idleTimeout: 0,
          sendPings: false,
        },
      });
      return Promise.resolve({
        port: server.port ?? options.port,
        // Native uWS topics: one publish reaches every member.
        join(topic, socket) {
          (socket as BunSocket).raw.subscribe(topic);
        },
        leave(topic, socket) {
          // uWS drops a closed socket's topics by itself.
          const { raw } = socket as BunSocket;
          if (raw.readyState === OPEN) raw.unsubscribe(topic);
        },
        publish(topic, frame, except) {
          const excluded = (except as BunSocket | undefined)?.raw;
          // A socket's own publish reaches every subscriber but itself: socket_id exclusion.
          if (excluded && excluded.readyState === OPEN) {
            return overBudget(excluded.publish(topic, frame));
          }
          return overBudget(server.publish(topic, frame));
        },
        async stop() {
          await server.stop(true);
        },
      });
    },

    serveHttp(app: HttpApp, options: ListenOptions): Promise<RunningServer> {
      const server = Bun.serve({
        hostname: options.hostname,
        port: options.port,
        fetch: app.fetch,
      });
      return Promise.resolve({
        port: server.port ?? options.port,
        async stop() {
          await server.stop(true);
        },
      });
    },
  };
}
