/**
 * Hostile-client measurements by hand (not part of the test suite): descriptors and RSS of a
 * Chorus node before, at the peak of and after an attack, RSS after a forced full GC.
 *
 *   bun bench/hostile.ts <bun|deno> <silent|frames|flood> [count]
 *
 * silent: `count` (1000) peers complete the handshake and never answer anything: descriptors
 *         before, while held, and 2 s after 4201 + the close deadline (activity/pong 1 s).
 * frames: 8 sockets each send one 50 MB binary frame: RSS before, peak, after.
 * flood:  `count` (10 000) sockets connect, then all are dropped: RSS before, peak, after GC.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { childEnv } from "../test/support/env.ts";
import { spawnProcess } from "../test/support/process.ts";
import { waitListening } from "../test/support/server.ts";

const [runtime = "bun", mode = "silent", countArg] = process.argv.slice(2);
const ROOT = new URL("..", import.meta.url).pathname;
const config = join(tmpdir(), `chorus-hostile-${process.pid}.json`);
writeFileSync(
  config,
  JSON.stringify({
    apps: [{
      id: "1",
      key: "k",
      secret: "s",
      activity_timeout: mode === "silent" ? 1 : 120,
      pong_timeout: 1,
    }],
  }),
);
const entry = join(ROOT, runtime === "bun" ? "src/bun.ts" : "src/deno.ts");
const hook = join(ROOT, "bench/heap-hook.ts");
const cmd = runtime === "bun"
  ? [join(ROOT, "node_modules/.bin/bun"), hook, entry]
  : [join(ROOT, "node_modules/.bin/deno"), "run", "-A", "--v8-flags=--expose-gc", hook, entry];
const server = spawnProcess({
  cmd: cmd[0],
  args: cmd.slice(1),
  env: childEnv({ HOST: "127.0.0.1", PORT: "0", CHORUS_CONFIG: config, LOG_LEVEL: "info" }),
});
const pid = server.pid;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const fds = () => readdirSync(`/proc/${pid}/fd`).length;
const rssMb = () => {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) =>
    l.startsWith("VmRSS")
  );
  return Math.round(Number(line?.split(/\s+/)[1] ?? 0) / 1024);
};
async function gcRss(): Promise<number> {
  process.kill(pid, "SIGUSR2");
  await sleep(1500);
  return rssMb();
}
let peak = 0;
const sampler = setInterval(() => peak = Math.max(peak, rssMb()), 50);

function handshake(p: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(p, "127.0.0.1", () =>
      s.write(
        "GET /app/k?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
      ));
    s.once("data", () => resolve(s));
    s.on("error", reject);
  });
}

const p = await waitListening(server, `Chorus on ${runtime}`, 15_000);
await sleep(500);
const before = { fds: fds(), rss: await gcRss() };
peak = 0;
const result: Record<string, unknown> = { runtime, mode, before };
if (mode === "silent") {
  const count = Number(countArg ?? 1000);
  const socks: net.Socket[] = [];
  for (let i = 0; i < count; i++) socks.push(await handshake(p));
  result.held = fds();
  const started = Date.now();
  const timeline: string[] = [];
  while (Date.now() - started < 10_000) {
    await sleep(1000);
    timeline.push(`${Math.round((Date.now() - started) / 1000)}s:${fds()}`);
  }
  result.timeline = timeline.join(" ");
  for (const s of socks) s.destroy();
} else if (mode === "frames") {
  const frame = Buffer.alloc(50 * 1024 * 1024 + 14); // 2 + 8 length + 4 mask bytes
  frame[0] = 0x82; // final binary frame
  frame[1] = 0x80 | 127;
  frame.writeBigUInt64BE(BigInt(50 * 1024 * 1024), 2); // then a zero mask, zero payload
  const socks = await Promise.all(Array.from({ length: 8 }, () => handshake(p)));
  const got = socks.map((s) => {
    const chunks: Buffer[] = [];
    s.on("data", (c: Buffer) => chunks.push(c));
    return chunks;
  });
  const closes = socks.map((s) => new Promise((resolve) => s.on("close", resolve)));
  for (const s of socks) s.write(frame);
  await Promise.race([Promise.all(closes), sleep(20_000)]);
  result.closedAll = socks.every((s) => s.destroyed);
  // The close code: the last frame the server sent (opcode 8, 2-byte code).
  result.closeCodes = got.map((chunks) => {
    const bytes = Buffer.concat(chunks);
    const at = bytes.lastIndexOf(Buffer.from([0x88]));
    return at >= 0 && bytes[at + 1] >= 2 ? bytes.readUInt16BE(at + 2) : undefined;
  });
  for (const s of socks) s.destroy();
  await sleep(1000);
} else {
  // ROUNDS=n repeats the flood: a plateau means memory is reused, growth would be a leak.
  const count = Number(countArg ?? 10_000);
  const rounds: unknown[] = [];
  for (let round = 0; round < Number(process.env.ROUNDS ?? 1); round++) {
    const socks: net.Socket[] = [];
    for (let i = 0; i < count; i += 500) {
      const batch = Array.from({ length: Math.min(500, count - i) }, () => handshake(p));
      socks.push(...await Promise.all(batch));
    }
    await sleep(1000);
    const held = { fds: fds(), rss: rssMb() };
    for (const s of socks) s.destroy();
    await sleep(3000);
    rounds.push({ held, after: { fds: fds(), rss: await gcRss() } });
  }
  result.rounds = rounds;
}
clearInterval(sampler);
result.peakRss = peak;
result.after = { fds: fds(), rss: await gcRss() };
console.log(JSON.stringify(result));
server.signal("SIGKILL");
process.exit(0);
