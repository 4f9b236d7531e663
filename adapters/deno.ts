/** Deno runtime adapter: Deno.serve + hono/deno; fan-out walks the channel's subscriber set. */
// hono/deno's helpers are marked deprecated in favour of @hono/deno, which is not published yet.
import { getConnInfo, upgradeWebSocket } from "hono/deno";
import type {
  HttpApp,
  RunningServer,
  RuntimeAdapter,
  ServeOptions,
  SocketHandle,
  SocketSession,
  Subscriber,
} from "../src/runtime.ts";

const OPEN = 1;

class DenoSocket implements SocketHandle {
  constructor(readonly raw: WebSocket) {}

  send(frame: string): void {
    if (this.raw.readyState === OPEN) this.raw.send(frame);
  }

  close(code: number, reason: string): void {
    this.raw.close(code, reason);
  }

  subscribe(): void {}
  unsubscribe(): void {}

  bufferedAmount(): number {
    return this.raw.bufferedAmount;
  }
}

export function createDenoAdapter(): RuntimeAdapter {
  let budget = Infinity;
  return {
    name: "deno",

    websocket(accept) {
      return upgradeWebSocket((c) => {
        const session: SocketSession = accept(c);
        return {
          onOpen(_event, ws) {
            session.open(new DenoSocket(ws.raw as WebSocket));
          },
          onMessage(event) {
            session.message(event.data);
          },
          onClose(event) {
            session.close(event.code);
          },
        };
        // Liveness is Pusher's activity_timeout, done by the core; Deno's own pings are off.
      }, { idleTimeout: 0 }) as ReturnType<RuntimeAdapter["websocket"]>;
    },

    publish(_topic, frame, subscribers: ReadonlySet<Subscriber>, except?: Subscriber): boolean {
      let overBudget = false;
      for (const subscriber of subscribers) {
        if (subscriber === except) continue;
        subscriber.socket.send(frame);
        if (subscriber.socket.bufferedAmount() > budget) overBudget = true;
      }
      return overBudget;
    },

    clientAddress(c) {
      return getConnInfo(c).remote.address ?? "unknown";
    },

    serve(app: HttpApp, options: ServeOptions): Promise<RunningServer> {
      budget = options.socketBufferLimit;
      return new Promise((resolve) => {
        const server = Deno.serve({
          hostname: options.hostname,
          port: options.port,
          onListen: ({ port }) =>
            resolve({
              port,
              async stop() {
                await server.shutdown();
              },
            }),
        }, app.fetch);
      });
    },
  };
}
