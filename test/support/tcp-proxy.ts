// A small TCP proxy (node:net) between one Chorus node and its redis-server, to break that node's
// Redis traffic alone. Modes:
//  - `pass`:  bytes flow both ways;
//  - `pause`: a blackhole that later heals: nothing is forwarded in either direction (bytes wait
//             and flow on heal, as TCP retransmission would deliver them), new connections are
//             accepted and held without RST, and closes are held too;
//  - `reset`: every current connection is destroyed (RST where the runtime can), and new ones are
//             destroyed as soon as they are accepted.
// `heal()` goes back to `pass`. Works the same under Bun and Deno.
import { connect, createServer, type Server, type Socket } from "node:net";

export type ProxyMode = "pass" | "pause" | "reset";

interface Pair {
  client: Socket;
  upstream: Socket | undefined;
  /** Bytes held while paused, per direction. */
  toUpstream: Uint8Array[];
  toClient: Uint8Array[];
  /** A side closed while paused; the pair is torn down on heal. */
  closedWhilePaused: boolean;
  dead: boolean;
}

function hardDestroy(s: Socket | undefined): void {
  if (!s || s.destroyed) return;
  const withReset = s as Socket & { resetAndDestroy?: () => Socket };
  try {
    if (typeof withReset.resetAndDestroy === "function") withReset.resetAndDestroy();
    else s.destroy();
  } catch {
    s.destroy();
  }
}

function toBytes(d: Uint8Array | string): Uint8Array {
  return typeof d === "string" ? new TextEncoder().encode(d) : d;
}

export class TcpProxy {
  #mode: ProxyMode = "pass";
  readonly #pairs = new Set<Pair>();
  #closed = false;
  /** Connections accepted, and connections destroyed on accept in `reset` mode. */
  accepted = 0;
  refused = 0;

  private constructor(
    readonly server: Server,
    readonly port: number,
    readonly targetHost: string,
    readonly targetPort: number,
  ) {}

  /** Listens on a free 127.0.0.1 port and forwards to `targetPort`. */
  static start(targetPort: number, targetHost = "127.0.0.1"): Promise<TcpProxy> {
    return new Promise((resolve, reject) => {
      const server = createServer();
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const addr = server.address();
        const port = typeof addr === "object" && addr ? addr.port : 0;
        if (!port) {
          reject(new Error("tcp proxy: no port"));
          return;
        }
        const proxy = new TcpProxy(server, port, targetHost, targetPort);
        server.on("connection", (client: Socket) => proxy.#accept(client));
        server.on("error", () => {
          // listener errors after start are not expected; connections report their own
        });
        resolve(proxy);
      });
    });
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get mode(): ProxyMode {
    return this.#mode;
  }

  /** Connections currently held (open on the client side). */
  get connections(): number {
    return [...this.#pairs].filter((p) => !p.dead).length;
  }

  pause(): void {
    this.#mode = "pause";
    for (const p of this.#pairs) {
      p.client.pause();
      p.upstream?.pause();
    }
  }

  reset(): void {
    this.#mode = "reset";
    for (const p of [...this.#pairs]) this.#kill(p);
  }

  heal(): void {
    this.#mode = "pass";
    for (const p of [...this.#pairs]) {
      if (p.closedWhilePaused) {
        this.#kill(p);
        continue;
      }
      if (!p.upstream) this.#connectUpstream(p);
      else this.#flush(p);
      p.client.resume();
      p.upstream?.resume();
    }
  }

  /** Closes the listener and every connection. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    for (const p of [...this.#pairs]) this.#kill(p);
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, 1000);
      this.server.close(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  #accept(client: Socket): void {
    this.accepted++;
    if (this.#closed || this.#mode === "reset") {
      this.refused++;
      client.on("error", () => {});
      hardDestroy(client);
      return;
    }
    const pair: Pair = {
      client,
      upstream: undefined,
      toUpstream: [],
      toClient: [],
      closedWhilePaused: false,
      dead: false,
    };
    this.#pairs.add(pair);
    client.setNoDelay(true);
    client.on("data", (d: Uint8Array | string) => {
      if (this.#mode === "pass" && pair.upstream && !pair.upstream.connecting) {
        pair.upstream.write(d);
      } else {
        pair.toUpstream.push(toBytes(d));
      }
    });
    client.on("error", () => this.#sideClosed(pair));
    client.on("close", () => this.#sideClosed(pair));
    if (this.#mode === "pause") client.pause();
    else this.#connectUpstream(pair);
  }

  #connectUpstream(pair: Pair): void {
    const upstream = connect({ host: this.targetHost, port: this.targetPort });
    pair.upstream = upstream;
    upstream.setNoDelay(true);
    upstream.on("connect", () => {
      if (this.#mode === "pass") this.#flush(pair);
    });
    upstream.on("data", (d: Uint8Array | string) => {
      if (this.#mode === "pass") pair.client.write(d);
      else pair.toClient.push(toBytes(d));
    });
    upstream.on("error", () => this.#sideClosed(pair));
    upstream.on("close", () => this.#sideClosed(pair));
    if (this.#mode === "pause") upstream.pause();
  }

  #flush(pair: Pair): void {
    if (pair.dead) return;
    const up = pair.upstream;
    if (up && !up.connecting && !up.destroyed) {
      for (const b of pair.toUpstream.splice(0)) up.write(b);
    }
    if (!pair.client.destroyed) {
      for (const b of pair.toClient.splice(0)) pair.client.write(b);
    }
  }

  #sideClosed(pair: Pair): void {
    if (pair.dead) return;
    if (this.#mode === "pause") {
      // A partition carries no FIN: the other side learns nothing until the network heals.
      pair.closedWhilePaused = true;
      return;
    }
    // Forward what is still buffered, then close the other side.
    this.#flush(pair);
    this.#kill(pair, false);
  }

  #kill(pair: Pair, reset = true): void {
    if (pair.dead) return;
    pair.dead = true;
    this.#pairs.delete(pair);
    pair.client.on("error", () => {});
    pair.upstream?.on("error", () => {});
    if (reset) {
      hardDestroy(pair.client);
      hardDestroy(pair.upstream);
    } else {
      pair.client.destroy();
      pair.upstream?.destroy();
    }
  }
}
