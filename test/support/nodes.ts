// Starts Chorus cluster nodes on an explicitly chosen runtime, so one test can run node A on Bun
// and node B on Deno whichever runner (`bun test` / `deno test`) runs the suite. Same start-up
// contract as startChorus in ./server.ts: PORT=0, wait for the `{"msg":"listening","port":N}` line.
// Every node started here is killed by `stop()`, by `stopAllNodes()`, and (safety net) on exit.
import { type Signal, spawnProcess } from "./process.ts";
import {
  type Chorus,
  type ChorusConfig,
  isBun,
  repoRoot,
  serverCommand,
  serverEnv,
  serverUrls,
  waitListening,
  writeTempConfig,
} from "./server.ts";
import { until } from "./wait.ts";
import { adminClient, deleteKeys, randomPrefix, REDIS_URL } from "./redis.ts";

export type Runtime = "bun" | "deno";
export type { Signal };

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

/** Starts one cluster node and resolves once it is listening. */
export async function startNode(o: NodeOptions): Promise<ClusterNode> {
  const env = serverEnv({ REDIS_URL: o.redisUrl, CHORUS_REDIS_PREFIX: o.prefix });
  if (o.region !== null) env.CHORUS_REGION = o.region ?? "test";
  if (o.subscribeUrl !== undefined) env.REDIS_SUBSCRIBE_URL = o.subscribeUrl;
  if (o.leaseMs !== undefined) env.CHORUS_NODE_LEASE_MS = String(o.leaseMs);
  const tmp = o.config ? writeTempConfig(o.config) : undefined;
  if (tmp) env.CHORUS_CONFIG = tmp.path;
  Object.assign(env, o.env ?? {});

  const { cmd, args } = o.command ?? serverCommand(o.runtime);
  const p = spawnProcess({ cmd, args, env, cwd: repoRoot });
  let port: number;
  try {
    port = await waitListening(p, `node ${o.name} (${o.runtime})`, o.startTimeoutMs ?? 20000);
  } catch (err) {
    tmp?.remove();
    throw err;
  }
  const stop = async () => {
    nodes.delete(node);
    await p.stop();
    tmp?.remove();
  };
  const node: ClusterNode = {
    ...serverUrls(port),
    name: o.name,
    runtime: o.runtime,
    pid: p.pid,
    stdout: p.stdout,
    stderr: p.stderr,
    exited: p.exited,
    get running() {
      return p.running;
    },
    kill: (sig: Signal) => p.signal(sig),
    stop,
    [Symbol.asyncDispose]: stop,
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

export interface Pair {
  /** On the runner's runtime. */
  a: ClusterNode;
  /** On the other runtime. */
  b: ClusterNode;
  /** Stops both and deletes the prefix's keys. */
  stop(): Promise<void>;
}

/** A Bun+Deno pair over Redis under a fresh prefix, both ready. */
export async function startPair(
  label: string,
  o: { config?: ChorusConfig; envA?: Record<string, string> } = {},
): Promise<Pair> {
  const prefix = randomPrefix(label);
  const common = { redisUrl: REDIS_URL, prefix, config: o.config };
  const [a, b] = await Promise.all([
    startNode({ ...common, runtime: runnerRuntime, name: "A", env: o.envA }),
    startNode({ ...common, runtime: otherRuntime, name: "B" }),
  ]);
  await Promise.all([waitReady(a), waitReady(b)]);
  return {
    a,
    b,
    async stop() {
      await Promise.all([a.stop(), b.stop()]);
      const admin = adminClient(REDIS_URL);
      await deleteKeys(admin, prefix);
      admin.disconnect();
    },
  };
}
