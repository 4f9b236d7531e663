// Starts Chorus under a shell `ulimit -n` (the process is the runtime itself, via exec), exposes
// its pid for /proc/<pid>/fd counts, and offers raw TCP clients: silent, half a request, and a
// WebSocket that does the handshake by hand and then never answers anything.
import { readdirSync } from "node:fs";
import net from "node:net";
import { spawnProcess } from "./process.ts";
import {
  type Chorus,
  type ChorusConfig,
  repoRoot,
  serverCommand,
  serverEnv,
  serverUrls,
  waitListening,
  writeTempConfig,
} from "./server.ts";

export interface LimitedChorus extends Chorus {
  pid: number;
  alive(): boolean;
  /** Descriptors the server process holds now. */
  fds(): number;
}

export async function startLimited(
  config: ChorusConfig,
  fileLimit: number,
  env: Record<string, string> = {},
): Promise<LimitedChorus> {
  const tmp = writeTempConfig(config);
  const { cmd, args } = serverCommand();
  const p = spawnProcess({
    cmd,
    args,
    env: serverEnv({ CHORUS_CONFIG: tmp.path, ...env }),
    cwd: repoRoot,
    fileLimit,
  });
  let port: number;
  try {
    port = await waitListening(p, `Chorus (ulimit -n ${fileLimit})`, 15000);
  } catch (err) {
    tmp.remove();
    throw err;
  }
  const stop = async () => {
    p.signal("SIGKILL");
    await p.exited;
    tmp.remove();
  };
  return {
    ...serverUrls(port),
    pid: p.pid,
    stdout: p.stdout,
    stderr: p.stderr,
    alive: () => p.running,
    fds: () => readdirSync(`/proc/${p.pid}/fd`).length,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** A raw TCP connection that is closed (by either side) when `closed` resolves. */
export interface RawConn {
  socket: net.Socket;
  closed: Promise<void>;
  /** Everything received so far. */
  received(): Buffer;
}

export function rawConnect(port: number, send = ""): Promise<RawConn> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    const closed = new Promise<void>((done) => socket.on("close", () => done()));
    socket.once("error", reject);
    socket.once("connect", () => {
      socket.removeListener("error", reject);
      socket.on("error", () => {});
      if (send) socket.write(send);
      resolve({ socket, closed, received: () => Buffer.concat(chunks) });
    });
  });
}

/** Completes a WebSocket handshake by hand; the caller then stays silent (or pauses reading). */
export async function rawWebSocket(port: number, path: string): Promise<RawConn> {
  const conn = await rawConnect(
    port,
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
  );
  const started = Date.now();
  while (!conn.received().includes("\r\n\r\n")) {
    if (Date.now() - started > 5000) throw new Error("no 101 from the server");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return conn;
}

/** The close code of the first close frame in server-to-client bytes, if any. */
export function closeCodeIn(bytes: Buffer): number | undefined {
  let at = bytes.indexOf("\r\n\r\n") + 4;
  while (at + 2 <= bytes.length) {
    const opcode = bytes[at] & 0x0f;
    let length = bytes[at + 1] & 0x7f;
    let header = 2;
    if (length === 126) {
      length = bytes.readUInt16BE(at + 2);
      header = 4;
    } else if (length === 127) {
      length = Number(bytes.readBigUInt64BE(at + 2));
      header = 10;
    }
    if (at + header + length > bytes.length) return undefined;
    if (opcode === 8) return length >= 2 ? bytes.readUInt16BE(at + header) : 1005;
    at += header + length;
  }
  return undefined;
}

/** Sends one masked text frame (clients must mask) on a hand-made WebSocket. */
export function sendText(conn: RawConn, text: string): void {
  const payload = Buffer.from(text);
  const mask = Buffer.from([1, 2, 3, 4]);
  const length = payload.length;
  const header = length < 126
    ? Buffer.from([0x81, 0x80 | length])
    : Buffer.from([0x81, 0x80 | 126, length >> 8, length & 0xff]);
  const masked = Buffer.alloc(length);
  for (let i = 0; i < length; i++) masked[i] = payload[i] ^ mask[i % 4];
  conn.socket.write(Buffer.concat([header, mask, masked]));
}
