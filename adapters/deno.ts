/** Deno runtime adapter: Deno.serve + hono/deno; fan-out walks the channel's subscriber set. */
// hono/deno's helpers are marked deprecated in favour of @hono/deno, which is not published yet.
import { getConnInfo, upgradeWebSocket } from "hono/deno";
import type {
  HttpApp,
  ListenOptions,
  RunningServer,
  RuntimeAdapter,
  ServeOptions,
  SocketHandle,
  SocketServer,
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

/** Sends to each subscriber but `except`; true when one now holds more than `budget` bytes. */
function sendToEach(
  frame: string,
  subscribers: ReadonlySet<Subscriber>,
  except: Subscriber | undefined,
  budget: number,
): boolean {
  let overBudget = false;
  for (const subscriber of subscribers) {
    if (subscriber === except) continue;
    subscriber.socket.send(frame);
    if (subscriber.socket.bufferedAmount() > budget) overBudget = true;
  }
  return overBudget;
}

/** Deno.serve, resolved once it listens (port 0 picks a free port). */
function listen(app: HttpApp, options: ListenOptions): Promise<RunningServer> {
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
}

export function createDenoAdapter(): RuntimeAdapter {
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

    clientAddress(c) {
      return getConnInfo(c).remote.address ?? "unknown";
    },

    async serve(app: HttpApp, options: ServeOptions): Promise<SocketServer> {
      const running = await listen(app, options);
      // Deno has no topics: fan-out walks the channel's subscribers, under this server's budget.
      const budget = options.socketBufferLimit;
      return {
        port: running.port,
        publish: (_topic, frame, subscribers, except) =>
          sendToEach(frame, subscribers, except, budget),
        stop: () => running.stop(),
      };
    },

    serveHttp(app: HttpApp, options: ListenOptions): Promise<RunningServer> {
      return listen(app, options);
    },
  };
}
