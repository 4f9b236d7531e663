// WebSocket at the byte level over node:net, for what the runtime's WebSocket cannot show: the
// HTTP status of a refused upgrade, a client that stops reading (slow consumer), and the exact
// frames a server sends before it closes. Also a small TCP proxy that chooses its backend per
// connection and records the WebSocket frames that pass from the backend to the client.
import { Buffer } from "node:buffer";
import { randomBytes } from "node:crypto";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { withTimeout } from "./wait.ts";

export interface WireFrame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

export const OP_TEXT = 0x1;
export const OP_CLOSE = 0x8;

/** Incremental parser of WebSocket frames (RFC 6455 §5.2); masked frames are unmasked. */
export class FrameParser {
  #buf: Buffer = Buffer.alloc(0);
  readonly frames: WireFrame[] = [];

  push(chunk: Uint8Array): WireFrame[] {
    this.#buf = this.#buf.length === 0
      ? Buffer.from(chunk)
      : Buffer.concat([this.#buf, Buffer.from(chunk)]);
    const out: WireFrame[] = [];
    for (;;) {
      const b = this.#buf;
      if (b.length < 2) break;
      const fin = (b[0] & 0x80) !== 0;
      const opcode = b[0] & 0x0f;
      const masked = (b[1] & 0x80) !== 0;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) break;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) break;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      const maskOff = off;
      if (masked) off += 4;
      if (b.length < off + len) break;
      const payload = Buffer.from(b.subarray(off, off + len));
      if (masked) {
        for (let i = 0; i < payload.length; i++) payload[i] ^= b[maskOff + (i % 4)];
      }
      this.#buf = b.subarray(off + len);
      const frame = { fin, opcode, payload };
      out.push(frame);
      this.frames.push(frame);
    }
    return out;
  }
}

/** A masked client frame (text by default), as RFC 6455 requires clients to send. */
export function clientFrame(data: string | Uint8Array, opcode = OP_TEXT): Buffer {
  const payload = typeof data === "string" ? Buffer.from(data, "utf8") : Buffer.from(data);
  const mask = randomBytes(4);
  let header: Buffer;
  if (payload.length < 126) {
    header = Buffer.from([0x80 | opcode, 0x80 | payload.length]);
  } else if (payload.length < 65536) {
    header = Buffer.alloc(4);
    header[0] = 0x80 | opcode;
    header[1] = 0x80 | 126;
    header.writeUInt16BE(payload.length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x80 | opcode;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  const body = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) body[i] = payload[i] ^ mask[i % 4];
  return Buffer.concat([header, mask, body]);
}

/** The close code of a close frame (undefined when the frame carries none). */
export function closeCode(frame: WireFrame): number | undefined {
  return frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : undefined;
}

/** Text frames parsed as JSON objects (others skipped). */
export function jsonFrames(frames: WireFrame[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const f of frames) {
    if (f.opcode !== OP_TEXT) continue;
    try {
      const v: unknown = JSON.parse(f.payload.toString("utf8"));
      if (v && typeof v === "object" && !Array.isArray(v)) out.push(v as Record<string, unknown>);
    } catch {
      // not JSON
    }
  }
  return out;
}

export interface UpgradeResult {
  /** HTTP status of the answer (101 when upgraded). */
  status: number;
  headers: Record<string, string>;
  /** Bytes after the header block (body of a refusal, or the first frames after 101). */
  rest: Buffer;
  socket: Socket;
}

const sockets = new Set<Socket>();
const servers = new Set<Server>();

/**
 * Sends a WebSocket upgrade request by hand (GET {path} with Upgrade headers) and resolves with
 * the server's status line and headers. The socket stays open; `destroyAllWire()` closes it.
 */
export function upgrade(
  port: number,
  path: string,
  extraHeaders: Record<string, string> = {},
  timeout = 5000,
): Promise<UpgradeResult> {
  const socket = createConnection({ host: "127.0.0.1", port });
  sockets.add(socket);
  socket.on("close", () => sockets.delete(socket));
  const p = new Promise<UpgradeResult>((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (chunk: Uint8Array) => {
      buf = Buffer.concat([buf, Buffer.from(chunk)]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.off("data", onData);
      socket.pause();
      const head = buf.subarray(0, end).toString("latin1").split("\r\n");
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? "");
      if (!m) {
        reject(new Error(`not an HTTP answer: ${JSON.stringify(head[0])}`));
        return;
      }
      const headers: Record<string, string> = {};
      for (const line of head.slice(1)) {
        const i = line.indexOf(":");
        if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status: Number(m[1]), headers, rest: buf.subarray(end + 4), socket });
    };
    socket.on("data", onData);
    socket.on("error", reject);
    socket.on("close", () => reject(new Error("connection closed before an HTTP answer")));
    socket.on("connect", () => {
      const lines = [
        `GET ${path} HTTP/1.1`,
        `Host: 127.0.0.1:${port}`,
        "Upgrade: websocket",
        "Connection: Upgrade",
        `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}`,
        "Sec-WebSocket-Version: 13",
        ...Object.entries(extraHeaders).map(([k, v]) => `${k}: ${v}`),
      ];
      socket.write(lines.join("\r\n") + "\r\n\r\n");
    });
  });
  return withTimeout(p, timeout, `HTTP answer to the upgrade of ${path}`).catch((err) => {
    socket.destroy();
    throw err;
  });
}

/** A WebSocket client on a raw TCP socket: frames parsed as they arrive (while reading). */
export class WireClient {
  readonly parser = new FrameParser();
  /** Every byte received since the upgrade, in order. */
  received = 0;
  readonly ended: Promise<void>;
  /** Set once the TCP connection is closed. */
  closed = false;
  #listeners = new Set<() => void>();

  constructor(readonly socket: Socket, rest: Buffer) {
    this.ended = new Promise<void>((resolve) =>
      socket.once("close", () => {
        this.closed = true;
        resolve();
      })
    );
    socket.on("error", () => {}); // a reset after the server's close is expected
    socket.on("data", (chunk: Uint8Array) => this.#take(chunk));
    if (rest.length > 0) this.#take(rest);
  }

  #take(chunk: Uint8Array): void {
    this.received += chunk.length;
    this.parser.push(chunk);
    for (const l of [...this.#listeners]) l();
  }

  get frames(): WireFrame[] {
    return this.parser.frames;
  }

  sendText(text: string): void {
    this.socket.write(clientFrame(text));
  }

  /** Waits until a received JSON text frame matches `pred`. */
  waitJson(
    pred: (f: Record<string, unknown>) => boolean,
    what: string,
    timeout = 5000,
  ): Promise<Record<string, unknown>> {
    const find = () => jsonFrames(this.frames).find(pred);
    const found = find();
    if (found) return Promise.resolve(found);
    let listener: (() => void) | undefined;
    const p = new Promise<Record<string, unknown>>((resolve) => {
      listener = () => {
        const f = find();
        if (f) resolve(f);
      };
      this.#listeners.add(listener);
    });
    return withTimeout(p, timeout, what).finally(() => this.#listeners.delete(listener!));
  }
}

/** Upgrades by hand and requires 101; resolves with a reading WireClient. */
export async function wireConnect(port: number, path: string): Promise<WireClient> {
  const res = await upgrade(port, path);
  if (res.status !== 101) {
    res.socket.destroy();
    throw new Error(`upgrade of ${path} answered ${res.status}, expected 101`);
  }
  const client = new WireClient(res.socket, res.rest);
  res.socket.resume();
  return client;
}

/** Destroys every socket and proxy opened by these helpers (call in `after`). */
export async function destroyAllWire(): Promise<void> {
  for (const s of sockets) s.destroy();
  sockets.clear();
  await Promise.all([...servers].map((srv) => new Promise<void>((r) => srv.close(() => r()))));
  servers.clear();
}

/** One connection through the proxy: where it went, and what the backend sent back. */
export interface ProxiedConnection {
  backend: string;
  openedAt: number;
  /** Frames backend -> client, with the time each was seen. */
  frames: { at: number; frame: WireFrame }[];
  /** When the backend's close frame passed, if it did. */
  closeAt?: number;
  closeCode?: number;
}

export interface Proxy {
  port: number;
  connections: ProxiedConnection[];
  close(): Promise<void>;
}

/**
 * A TCP proxy on 127.0.0.1 that asks `choose()` for a backend port for every new connection (a
 * load balancer with a health check) and pipes bytes both ways, parsing what the backend sends
 * as WebSocket frames after the 101 answer.
 */
export function startProxy(
  choose: () => Promise<{ name: string; port: number }>,
): Promise<Proxy> {
  const connections: ProxiedConnection[] = [];
  const server = createServer((client: Socket) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.pause();
    client.on("error", () => {});
    choose().then(({ name, port }) => {
      const conn: ProxiedConnection = { backend: name, openedAt: Date.now(), frames: [] };
      connections.push(conn);
      const upstream = createConnection({ host: "127.0.0.1", port });
      sockets.add(upstream);
      upstream.on("close", () => {
        sockets.delete(upstream);
        client.destroy();
      });
      upstream.on("error", () => client.destroy());
      client.on("close", () => upstream.destroy());
      const parser = new FrameParser();
      let head: Buffer | undefined = Buffer.alloc(0);
      upstream.on("data", (chunk: Uint8Array) => {
        client.write(chunk);
        let bytes: Buffer = Buffer.from(chunk);
        if (head !== undefined) {
          head = Buffer.concat([head, bytes]);
          const end = head.indexOf("\r\n\r\n");
          if (end < 0) return;
          bytes = head.subarray(end + 4);
          head = undefined;
        }
        const at = Date.now();
        for (const frame of parser.push(bytes)) {
          conn.frames.push({ at, frame });
          if (frame.opcode === OP_CLOSE && conn.closeAt === undefined) {
            conn.closeAt = at;
            conn.closeCode = closeCode(frame);
          }
        }
      });
      client.on("data", (chunk: Uint8Array) => upstream.write(chunk));
      client.resume();
    }, () => client.destroy());
  });
  servers.add(server);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const addr = server.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      resolve({
        port,
        connections,
        close: () =>
          new Promise<void>((r) => {
            servers.delete(server);
            server.close(() => r());
          }),
      });
    });
  });
}
