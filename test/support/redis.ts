// Redis for the cluster suites: the shared server's URL, per-test key prefixes, admin clients for
// PUBSUB inspection, and private redis-server processes (spawned per suite, killed by pid) for
// outage and replica tests.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { Redis } from "ioredis";
import { childEnv } from "./env.ts";
import { freePort } from "./ports.ts";
import { type Spawned, spawnProcess } from "./process.ts";
import { delay, until } from "./wait.ts";

export { freePort };

/** The shared Redis (REDIS_URL, default redis://127.0.0.1:6379). */
export const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379";

/** A fresh CHORUS_REDIS_PREFIX, so suites never see each other's keys or channels. */
export function randomPrefix(label: string): string {
  return `t-${label}-${randomBytes(5).toString("hex")}`;
}

/** The pub/sub channel a node listens on for one Pusher channel. */
export function busChannel(prefix: string, appId: string, channel: string): string {
  return `chorus:${prefix}:${appId}:ev:${channel}`;
}

const clients = new Set<Redis>();

/** An ioredis client for inspection; closed by `closeRedisClients()`. */
export function adminClient(url: string): Redis {
  const client = new Redis(url, {
    maxRetriesPerRequest: 1,
    retryStrategy: (times: number) => Math.min(times * 100, 500),
  });
  client.on("error", () => {
    // connection errors are expected while a test has stopped its redis-server
  });
  clients.add(client);
  return client;
}

export async function closeRedisClients(): Promise<void> {
  const all = [...clients];
  clients.clear();
  for (const c of all) c.disconnect();
  await Promise.all(
    all.map((c) =>
      c.status === "end" ? undefined : new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        c.once("end", () => {
          clearTimeout(timer);
          resolve();
        });
      })
    ),
  );
}

/** PUBSUB CHANNELS <pattern>, sorted. */
export async function pubsubChannels(client: Redis, pattern: string): Promise<string[]> {
  const reply: unknown = await client.call("PUBSUB", "CHANNELS", pattern);
  if (!Array.isArray(reply)) throw new Error(`PUBSUB CHANNELS answered ${JSON.stringify(reply)}`);
  return reply.map(String).sort();
}

/** PUBSUB NUMSUB <channel>: how many connections (= nodes) are subscribed to it. */
export async function numsub(client: Redis, channel: string): Promise<number> {
  const reply: unknown = await client.call("PUBSUB", "NUMSUB", channel);
  if (!Array.isArray(reply) || reply.length !== 2) {
    throw new Error(`PUBSUB NUMSUB answered ${JSON.stringify(reply)}`);
  }
  return Number(reply[1]);
}

/** Polls PUBSUB NUMSUB until it equals `n`; the error names the channels that do exist. */
export async function waitNumsub(
  client: Redis,
  prefix: string,
  channel: string,
  n: number,
  timeout = 3000,
): Promise<void> {
  let last = -1;
  try {
    await until(
      async () => {
        last = await numsub(client, channel);
        return last === n;
      },
      `PUBSUB NUMSUB ${channel} == ${n}`,
      { timeout, interval: 20 },
    );
  } catch (err) {
    const existing = await pubsubChannels(client, `chorus:${prefix}:*`).catch(() => []);
    throw new Error(
      `${(err as Error).message} (last: ${last}; channels under the prefix: ${
        JSON.stringify(existing)
      })`,
    );
  }
}

/** Deletes every key under `chorus:{prefix}:` (suite clean-up on the shared Redis). */
export async function deleteKeys(client: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await client.scan(cursor, "MATCH", `chorus:${prefix}:*`, "COUNT", 500);
    cursor = next;
    if (keys.length > 0) await client.del(...keys);
  } while (cursor !== "0");
}

/** True when a PING over a fresh TCP connection is answered +PONG within `ms`. */
export function pingRedis(port: number, ms = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: "127.0.0.1", port });
    let buf = "";
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), ms);
    sock.on("connect", () => sock.write("PING\r\n"));
    sock.on("data", (d: Uint8Array | string) => {
      buf += typeof d === "string" ? d : new TextDecoder().decode(d);
      if (buf.includes("\r\n")) done(buf.startsWith("+PONG"));
    });
    sock.on("error", () => done(false));
  });
}

const servers = new Set<RedisServer>();

/** A private redis-server (no persistence) on a fixed port, stoppable and restartable. */
export class RedisServer {
  process: Spawned | undefined;
  readonly #dir = mkdtempSync(join(tmpdir(), "chorus-redis-"));

  private constructor(readonly port: number, readonly extraArgs: string[]) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.process?.pid;
  }

  /** The last lines redis-server printed. */
  get output(): string[] {
    return [...(this.process?.stdout ?? []), ...(this.process?.stderr ?? [])];
  }

  /** Starts redis-server on a free port (or `port`), resolving once it answers PING. */
  static async start(o: { port?: number; args?: string[] } = {}): Promise<RedisServer> {
    const s = new RedisServer(o.port ?? await freePort(), o.args ?? []);
    servers.add(s);
    await s.startProcess();
    return s;
  }

  /** (Re)starts the process on the same port. */
  async startProcess(): Promise<void> {
    const args = [
      "--port",
      String(this.port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      this.#dir,
      ...this.extraArgs,
    ];
    const p = spawnProcess({ cmd: "redis-server", args, env: childEnv(), keepLines: 200 });
    this.process = p;
    const deadline = Date.now() + 10000;
    while (!(await pingRedis(this.port))) {
      if (!p.running || Date.now() > deadline) {
        throw new Error(
          `redis-server on port ${this.port} did not start:\n${this.output.join("\n")}`,
        );
      }
      await delay(20);
    }
  }

  /** Stops the process with `signal` (SIGKILL after 5 s) and waits until it is gone. */
  async stopProcess(signal: "SIGTERM" | "SIGKILL" = "SIGKILL"): Promise<void> {
    const p = this.process;
    if (!p?.running) return;
    if (signal === "SIGKILL") p.signal("SIGKILL");
    await p.stop(5000);
  }

  /** Freezes (SIGSTOP) or thaws (SIGCONT) the process: a hung Redis, not a gone one. */
  signal(sig: "SIGSTOP" | "SIGCONT"): void {
    this.process?.signal(sig);
  }

  /** Stops the process for good and removes its directory. */
  async dispose(): Promise<void> {
    servers.delete(this);
    await this.stopProcess("SIGKILL");
    rmSync(this.#dir, { recursive: true, force: true });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}

/** Kills every redis-server started by these helpers (call in `after`). */
export async function stopAllRedisServers(): Promise<void> {
  await Promise.all([...servers].map((s) => s.dispose()));
}

/** Waits until a replica reports `master_link_status:up`. */
export async function waitReplicaLinked(replica: Redis, timeout = 10000): Promise<void> {
  await until(
    async () => {
      const info = await replica.info("replication");
      return /master_link_status:up/.test(info);
    },
    "the replica to sync with its primary",
    { timeout, interval: 50 },
  );
}
