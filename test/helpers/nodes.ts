// Starts Chorus cluster nodes on an explicitly chosen runtime, so one test can run node A on Bun
// and node B on Deno whichever runner (`bun test` / `deno test`) runs the suite. Same start-up
// contract as startChorus in ./server.ts: PORT=0, wait for the `{"msg":"listening","port":N}` line.
// Every node started here is killed by `stop()`, by `stopAllNodes()`, and (safety net) on exit.
import { spawn } from "node:child_process";
import process from "node:process";
import {
  type Chorus,
  type ChorusConfig,
  isBun,
  jsonLines,
  repoRoot,
  serverCommand,
  trackChild,
  writeTempConfig,
} from "./server.ts";
import { delay, until } from "./wait.ts";

export type Runtime = "bun" | "deno";
export type Signal = "SIGTERM" | "SIGINT" | "SIGKILL" | "SIGSTOP" | "SIGCONT";

/** The runtime running the tests (`bun test` -> bun). */
export const runnerRuntime: Runtime = isBun ? "bun" : "deno";
/** The other runtime, so a cluster always mixes Bun and Deno. */
export const otherRuntime: Runtime = isBun ? "deno" : "bun";

export interface NodeOptions {
  runtime: Runtime;
  /** A label for messages, e.g. "A". */
  name: string;
  /** REDIS_URL; the node runs the Redis cluster driver. */
  redisUrl: string;
  /** CHORUS_REDIS_PREFIX. */
  prefix: string;
  /** REDIS_SUBSCRIBE_URL. */
  subscribeUrl?: string;
  /** CHORUS_REGION (default "test"); null leaves it unset, so the node takes FLY_REGION. */
  region?: string | null;
  /** CHORUS_NODE_LEASE_MS. */
  leaseMs?: number;
  config?: ChorusConfig;
  env?: Record<string, string>;
  startTimeoutMs?: number;
  /** The command to run (from the repo root) instead of `serverCommand(runtime)`. */
  command?: { cmd: string; args: string[] };
}

export interface ClusterNode extends Chorus {
  name: string;
  runtime: Runtime;
  pid: number;
  /** Resolves with the exit code (or -1 when killed by a signal). */
  exited: Promise<number | null>;
  readonly running: boolean;
  /** Sends a signal (e.g. SIGKILL) without waiting. */
  kill(signal: Signal): void;
}

const nodes = new Set<ClusterNode>();

/** The test process's environment without anything that configures Chorus. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined) continue;
    if (k.startsWith("CHORUS_") || k.startsWith("REDIS_") || k === "FLY_REGION") continue;
    if (k === "PORT" || k === "HOST" || k === "LOG_LEVEL") continue;
    env[k] = v;
  }
  return env;
}

function lineCollector(sink: string[]): (chunk: Uint8Array | string) => void {
  let rest = "";
  const decoder = new TextDecoder();
  return (chunk) => {
    rest += typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = rest.indexOf("\n")) >= 0) {
      sink.push(rest.slice(0, nl).replace(/\r$/, ""));
      rest = rest.slice(nl + 1);
    }
  };
}

function listeningPort(lines: string[]): number | undefined {
  for (const j of jsonLines(lines)) {
    if (j && j.msg === "listening" && typeof j.port === "number") return j.port;
  }
  return undefined;
}

/** Starts one cluster node and resolves once it is listening. */
export async function startNode(o: NodeOptions): Promise<ClusterNode> {
  const env: Record<string, string> = {
    ...baseEnv(),
    HOST: "127.0.0.1",
    PORT: "0",
    LOG_LEVEL: "info",
    NO_COLOR: "1",
    REDIS_URL: o.redisUrl,
    CHORUS_REDIS_PREFIX: o.prefix,
    // SIGTERM drains sockets over this window (default 10 s); tests close their sockets first.
    CHORUS_DRAIN_MS: "0",
  };
  if (o.region !== null) env.CHORUS_REGION = o.region ?? "test";
  if (o.subscribeUrl !== undefined) env.REDIS_SUBSCRIBE_URL = o.subscribeUrl;
  if (o.leaseMs !== undefined) env.CHORUS_NODE_LEASE_MS = String(o.leaseMs);
  const tmp = o.config ? writeTempConfig(o.config) : undefined;
  if (tmp) env.CHORUS_CONFIG = tmp.path;
  Object.assign(env, o.env ?? {});

  const { cmd, args } = o.command ?? serverCommand(o.runtime);
  const child = spawn(cmd, args, { cwd: repoRoot, env, stdio: ["ignore", "pipe", "pipe"] });
  trackChild(child);
  const stdout: string[] = [];
  const stderr: string[] = [];
  child.stdout?.on("data", lineCollector(stdout));
  child.stderr?.on("data", lineCollector(stderr));
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.on("exit", (code, signal) => {
      exitCode = code ?? (signal ? -1 : null);
      resolve(exitCode);
    });
    child.on("error", (err) => {
      stderr.push(`spawn error: ${err.message}`);
      exitCode = -2;
      resolve(exitCode);
    });
  });
  const label = `node ${o.name} (${o.runtime})`;
  const output = () => `\nstdout:\n${stdout.join("\n")}\nstderr:\n${stderr.join("\n")}`;

  // Signals go through process.kill(pid): Deno's ChildProcess.kill() ignores every call after the
  // first one, which would leave a SIGSTOPped node frozen and a SIGTERM never followed by SIGKILL.
  const signal = (sig: Signal) => {
    if (exitCode !== undefined || child.pid === undefined) return;
    try {
      process.kill(child.pid, sig);
    } catch {
      // exited meanwhile
    }
  };
  const stop = async (): Promise<void> => {
    if (exitCode === undefined) {
      signal("SIGCONT"); // a frozen node cannot act on SIGTERM
      signal("SIGTERM");
      const timer = setTimeout(() => signal("SIGKILL"), 3000);
      await exited;
      clearTimeout(timer);
    }
    tmp?.remove();
  };

  const timeout = o.startTimeoutMs ?? 20000;
  const deadline = Date.now() + timeout;
  let port: number | undefined;
  while ((port = listeningPort(stdout)) === undefined) {
    if (exitCode !== undefined) {
      tmp?.remove();
      throw new Error(`${label} exited (code ${exitCode}) before listening${output()}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${label} did not log "listening" within ${timeout} ms${output()}`);
    }
    await delay(10);
  }

  const base = `127.0.0.1:${port}`;
  const node: ClusterNode = {
    name: o.name,
    runtime: o.runtime,
    pid: child.pid ?? -1,
    port,
    prefix: "",
    url: `http://${base}`,
    wsUrl(
      key: string,
      query: string | Record<string, string> = "protocol=7&client=js&version=8.4.0&flash=false",
    ) {
      const q = typeof query === "string" ? query : new URLSearchParams(query).toString();
      return `ws://${base}/app/${encodeURIComponent(key)}${q ? `?${q}` : ""}`;
    },
    stdout,
    stderr,
    exited,
    get running() {
      return exitCode === undefined;
    },
    kill(sig: Signal) {
      signal(sig);
    },
    stop: async () => {
      nodes.delete(node);
      await stop();
    },
  };
  nodes.add(node);
  return node;
}

/** Stops every node still running (call in `after`). */
export async function stopAllNodes(): Promise<void> {
  await Promise.all([...nodes].map((n) => n.stop()));
}

export interface Health {
  status: number;
  body: unknown;
}

/** GET a health route (unsigned); a refused connection reads as status 0. */
export async function health(node: ClusterNode, path: "/ready" | "/up"): Promise<Health> {
  try {
    const res = await fetch(`${node.url}${path}`);
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    return { status: res.status, body };
  } catch {
    return { status: 0, body: undefined };
  }
}

/** Polls GET /ready until it answers `status` (200 or 503). */
export async function waitReady(
  node: ClusterNode,
  status: 200 | 503 = 200,
  timeout = 15000,
): Promise<Health> {
  let last: Health | undefined;
  try {
    return await until(
      async () => {
        last = await health(node, "/ready");
        return last.status === status ? last : undefined;
      },
      `${node.name} GET /ready -> ${status}`,
      { timeout, interval: 50 },
    );
  } catch (err) {
    throw new Error(
      `${(err as Error).message}; last answer: ${JSON.stringify(last)}\n${
        node.stderr.slice(-20).join("\n")
      }`,
    );
  }
}
