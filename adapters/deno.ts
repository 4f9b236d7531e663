/**
 * Deno runtime adapter: Deno.serve and Deno.upgradeWebSocket (not hono/deno's helper, which keeps
 * a WSContext, a URL and six closures per socket); fan-out walks the channel's subscriber set.
 */
// hono/deno's helpers are marked deprecated in favour of @hono/deno, which is not published yet.
import { getConnInfo } from "hono/deno";
import {
  type AcceptErrorReason,
  CLOSE_DEADLINE_MS,
  type HttpApp,
  type ListenOptions,
  type RunningServer,
  type RuntimeAdapter,
  type ServeOptions,
  type SocketHandle,
  type SocketServer,
  type SocketSession,
} from "../src/runtime.ts";

interface DenoInternals {
  core?: { tryClose?(rid: number): void };
}

/** Deno's internal namespace (`Deno[Deno.internal]`), when this Deno has one. */
function denoInternals(): DenoInternals | undefined {
  const deno = Deno as unknown as { internal?: symbol } & Record<symbol, unknown>;
  const internal = deno.internal === undefined ? undefined : deno[deno.internal];
  return typeof internal === "object" && internal !== null ? internal as DenoInternals : undefined;
}

interface ListenBounds extends ListenOptions {
  onAcceptError?(reason: AcceptErrorReason, error: unknown): void;
}

/** How long to wait before listening again after the accept loop failed. */
const RELISTEN_MS = 1_000;

/**
 * Deno.serve, its accept loop's failure reported and the listener opened again. Deno.serve's loop
 * ends with an uncaught "Too many open files" at the descriptor limit (the node used to die of it);
 * here the failure is logged and counted, upgraded sockets keep being served, and the same port is
 * listened on again once a descriptor is free. (Our own accept loop over Deno's internal
 * per-connection server, `serveHttpOnConnection`, was measured: it closes every WebSocket upgraded
 * on a connection as soon as that connection's HTTP side ends, so it cannot be used.)
 */
function listen(app: HttpApp, options: ListenBounds): Promise<RunningServer> {
  let stopped = false;
  let current: Deno.HttpServer | undefined;
  const start = (port: number, onListen: (port: number) => void) => {
    const server = Deno.serve({
      hostname: options.hostname,
      port,
      onListen: (addr) => onListen(addr.port),
    }, (request, info) => app.fetch(request, info));
    current = server;
    server.finished.catch((error) => {
      if (stopped) return;
      options.onAcceptError?.("accept", error);
      const retry = () => {
        if (stopped) return;
        try {
          start(server.addr.port, () => {});
        } catch (error) {
          options.onAcceptError?.("accept", error);
          setTimeout(retry, RELISTEN_MS);
        }
      };
      setTimeout(retry, RELISTEN_MS);
    });
  };
  return new Promise((resolve) => {
    start(options.port, (port) =>
      resolve({
        port,
        async stop() {
          stopped = true;
          await current?.shutdown();
        },
      }));
  });
}

const OPEN = 1;
const CLOSED = 3;

/**
 * Drops a WebSocket's connection at once. Deno's close() sends the close frame and then waits
 * for the peer's forever; the resource id (a private symbol on the object) is closed instead,
 * which makes Deno fire `close` and free the descriptor.
 */
function teardown(ws: WebSocket): void {
  if (ws.readyState === CLOSED) return;
  const ridKey = Object.getOwnPropertySymbols(ws).find((key) => key.description === "[[rid]]");
  const rid = ridKey === undefined ? undefined : (ws as unknown as Record<symbol, unknown>)[ridKey];
  const tryClose = denoInternals()?.core?.tryClose;
  if (typeof rid === "number" && tryClose) tryClose(rid);
}

/**
 * One upgraded socket: the runtime handle the core sends through, and the listener of its
 * events (`handleEvent`: one object per socket, no closures, no Hono WSContext or URL kept).
 */
class DenoSocket implements SocketHandle, EventListenerObject {
  /** Set once Chorus closed the socket: tears it down if the peer never answers. */
  deadline: ReturnType<typeof setTimeout> | undefined;
  /**
   * At least the socket's bufferedAmount: what it held when last asked, plus every byte sent
   * since. A fan-out asks the runtime only once this bound is over the budget, so the check
   * stays exact without a runtime call per recipient.
   */
  bufferBound = 0;

  constructor(readonly raw: WebSocket, readonly session: SocketSession) {
    for (const type of ["open", "message", "close", "error"]) raw.addEventListener(type, this);
  }

  handleEvent(event: Event): void {
    switch (event.type) {
      case "message":
        this.session.onMessage((event as MessageEvent).data);
        return;
      case "open":
        this.session.onOpen(this);
        return;
      case "close":
        clearTimeout(this.deadline);
        this.session.onClose((event as CloseEvent).code);
        return;
        // "error": a close event follows; nothing to do before it.
    }
  }

  send(frame: string): void {
    if (this.raw.readyState === OPEN) this.raw.send(frame);
    // UTF-16 units: a bound on bytes within 3x, without encoding the frame here.
    this.bufferBound += frame.length * 3;
  }

  close(code: number, reason: string): void {
    this.raw.close(code, reason);
    this.deadline ??= setTimeout(() => teardown(this.raw), CLOSE_DEADLINE_MS);
  }

  bufferedAmount(): number {
    return this.bufferBound = this.raw.bufferedAmount;
  }
}

/**
 * Deno has no topics: each socket server keeps its own, topic -> sockets, and a publish walks
 * the set (the frame string is the same for every send).
 */
class Topics {
  readonly #members = new Map<string, Set<DenoSocket>>();

  constructor(readonly budget: number) {}

  join(topic: string, socket: DenoSocket): void {
    let members = this.#members.get(topic);
    if (!members) this.#members.set(topic, members = new Set());
    members.add(socket);
  }

  leave(topic: string, socket: DenoSocket): void {
    const members = this.#members.get(topic);
    if (members?.delete(socket) && members.size === 0) this.#members.delete(topic);
  }

  /** True when a recipient now holds more than the budget. */
  publish(topic: string, frame: string, except?: SocketHandle): boolean {
    const members = this.#members.get(topic);
    if (!members) return false;
    const { budget } = this;
    let overBudget = false;
    for (const socket of members) {
      if (socket === except) continue;
      socket.send(frame);
      if (socket.bufferBound > budget && socket.bufferedAmount() > budget) overBudget = true;
    }
    return overBudget;
  }
}

export function createDenoAdapter(): RuntimeAdapter {
  return {
    name: "deno",

    websocket(accept) {
      return (c) => {
        const session = accept(c);
        const protocol = c.req.header("sec-websocket-protocol")?.split(",")[0]?.trim();
        const { response, socket } = Deno.upgradeWebSocket(c.req.raw, {
          ...(protocol ? { protocol } : {}),
          // Liveness is Pusher's activity_timeout, done by the core; Deno's own pings are off.
          idleTimeout: 0,
        });
        new DenoSocket(socket, session);
        return response;
      };
    },

    clientAddress(c) {
      return getConnInfo(c).remote.address ?? "unknown";
    },

    async serve(app: HttpApp, options: ServeOptions): Promise<SocketServer> {
      const running = await listen(app, options);
      const topics = new Topics(options.socketBufferLimit);
      return {
        port: running.port,
        join: (topic, socket) => topics.join(topic, socket as DenoSocket),
        leave: (topic, socket) => topics.leave(topic, socket as DenoSocket),
        publish: (topic, frame, except) => topics.publish(topic, frame, except),
        stop: () => running.stop(),
      };
    },

    serveHttp(app: HttpApp, options: ListenOptions): Promise<RunningServer> {
      return listen(app, options);
    },
  };
}
