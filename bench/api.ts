/**
 * The signed HTTP API alone, by hand: calls/s and server CPU µs per `POST /apps/{id}/events`, for
 * Chorus on Bun and Deno and the bare baselines (bench/bare-bun.ts, bench/bare-deno.ts).
 *
 *   bun bench/api.ts                          # every target, 3 runs each, medians
 *   bun bench/api.ts --targets chorus-bun,bare-bun --calls 20000 --repeat 3 --concurrency 8
 *   bun bench/api.ts --targets chorus-bun --cpu-prof   # a profile of the measured window
 *   bun bench/api.ts --targets chorus-deno@/tmp/old,chorus-deno   # another checkout against this
 *
 * Targets run round robin, `--repeat` rounds. Each run starts a fresh server (one app, LOG_LEVEL=warn), sends `--warmup` calls, then `--calls`
 * signed calls with `--concurrency` in flight to a channel nobody is subscribed to, and reads the
 * server's utime + stime from /proc before and after. With `--subscriber`, one WebSocket client
 * is subscribed to the channel and every call is one delivery. With `--pin` (2+ CPUs) the server
 * runs on CPU 0 and this process on CPU 1. Before each measured window it waits (up to a minute)
 * until fewer than `--quiet` (0.3) cores are busy; `otherCores` in each result line is what the
 * rest of the machine used meanwhile, and a window with more than `--max-other` (0.3) is measured
 * again, at most `--retries` (2) times, the calmest kept (`attempts`).
 *
 * `--cpu-prof` writes bench/.out/prof/api-<target>-<time>.cpuprofile: Bun's `--cpu-prof` (the
 * whole run; the measured window is printed for `bun bench/profile.ts --from --to`), on Deno a
 * V8 profile of the measured window only, taken over the inspector protocol. `--perf` runs
 * `perf record` on the server during the measured window (bench/.out/prof/*.perf.txt).
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import { recordPerf } from "./driver/perf.ts";
import { machineCpuSeconds, treeCpuSeconds } from "./lib/proc.ts";
import {
  childEnv,
  freePort,
  repoRoot,
  signedParams,
  type Spawned,
  spawnProcess,
  toQuery,
  writeTempConfig,
} from "../test/support/index.ts";

const TARGETS = ["chorus-bun", "bare-bun", "chorus-deno", "bare-deno"] as const;
type Target = (typeof TARGETS)[number];

/** A target, optionally Chorus from another checkout (`chorus-bun@DIR`: DIR/src/bun.ts). */
interface TargetSpec {
  name: string;
  kind: Target;
  root: string;
}

function parseTarget(text: string): TargetSpec {
  const [kind, dir] = text.split("@");
  if (!(TARGETS as readonly string[]).includes(kind)) throw new Error(`unknown target ${kind}`);
  if (dir !== undefined && !kind.startsWith("chorus-")) throw new Error(`${kind} takes no @DIR`);
  return { name: text, kind: kind as Target, root: dir === undefined ? repoRoot : resolve(dir) };
}

const APP = { id: "bench", key: "bench-key", secret: "bench-secret" } as const;
const BUN = join(repoRoot, "node_modules/.bin/bun");
const DENO = join(repoRoot, "node_modules/.bin/deno");
const OUT = join(repoRoot, "bench/.out");

interface Options {
  targets: TargetSpec[];
  calls: number;
  warmup: number;
  concurrency: number;
  repeat: number;
  subscriber: boolean;
  pin: boolean;
  cpuProf: boolean;
  perf: boolean;
  /** Write each server's stdout and stderr to `<this>.<time>` (e.g. with DENO_V8_FLAGS set). */
  serverLog?: string;
  /** Wait before each measured run until fewer cores than this are busy. */
  quietCores: number;
  /** Measure a window again when other work took more cores than this during it... */
  maxOther: number;
  /** ...at most this many times. */
  retries: number;
  /** Another baseline script in place of bench/bare-bun.ts / bench/bare-deno.ts. */
  bareBun: string;
  bareDeno: string;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    targets: TARGETS.map((t) => parseTarget(t)),
    calls: 40_000,
    warmup: 20_000,
    concurrency: 8,
    repeat: 3,
    subscriber: false,
    pin: false,
    cpuProf: false,
    perf: false,
    quietCores: 0.3,
    maxOther: 0.3,
    retries: 2,
    bareBun: "bench/bare-bun.ts",
    bareDeno: "bench/bare-deno.ts",
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const int = () => {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} needs a whole number`);
      return n;
    };
    switch (flag) {
      case "--targets":
        o.targets = value().split(",").map(parseTarget);
        break;
      case "--calls":
        o.calls = Math.max(1, int());
        break;
      case "--warmup":
        o.warmup = int();
        break;
      case "--concurrency":
        o.concurrency = Math.max(1, int());
        break;
      case "--repeat":
        o.repeat = Math.max(1, int());
        break;
      case "--subscriber":
        o.subscriber = true;
        break;
      case "--pin":
        o.pin = os.availableParallelism() >= 2 && existsSync("/usr/bin/taskset");
        break;
      case "--bare-bun":
        o.bareBun = value();
        break;
      case "--bare-deno":
        o.bareDeno = value();
        break;
      case "--cpu-prof":
        o.cpuProf = true;
        break;
      case "--perf":
        o.perf = true;
        break;
      case "--server-log":
        o.serverLog = resolve(value());
        break;
      case "--quiet":
        o.quietCores = Number(value());
        break;
      case "--max-other":
        o.maxOther = Number(value());
        break;
      case "--retries":
        o.retries = int();
        break;
      default:
        throw new Error(`unknown flag ${flag} (see the comment at the top of bench/api.ts)`);
    }
  }
  return o;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Server {
  process: Spawned;
  port: number;
  inspectorPort?: number;
  profileFile?: string;
  stop(): Promise<void>;
}

async function startServer(spec: TargetSpec, o: Options): Promise<Server> {
  const target = spec.kind;
  const port = await freePort();
  const env = childEnv({
    HOST: "127.0.0.1",
    PORT: String(port),
    LOG_LEVEL: "warn",
    NO_COLOR: "1",
    DENO_NO_UPDATE_CHECK: "1",
    CHORUS_DRAIN_MS: "0",
  });
  let config: { path: string; remove(): void } | undefined;
  if (target.startsWith("chorus-")) {
    config = writeTempConfig({ apps: [{ ...APP, max_connections: null }] });
    env.CHORUS_CONFIG = config.path;
  }
  const stamp = `${target}-${Date.now()}`;
  let profileFile: string | undefined;
  let inspectorPort: number | undefined;
  let args: string[];
  let cmd: string;
  if (target.endsWith("-bun")) {
    cmd = BUN;
    const prof = o.cpuProf
      ? [
        "--cpu-prof",
        `--cpu-prof-dir=${join(OUT, "prof")}`,
        `--cpu-prof-name=api-${stamp}.cpuprofile`,
      ]
      : [];
    if (o.cpuProf) profileFile = join(OUT, "prof", `api-${stamp}.cpuprofile`);
    args = [
      ...prof,
      resolve(repoRoot, target === "chorus-bun" ? join(spec.root, "src/bun.ts") : o.bareBun),
    ];
  } else {
    cmd = DENO;
    const inspect: string[] = [];
    if (o.cpuProf) {
      inspectorPort = await freePort();
      inspect.push(`--inspect=127.0.0.1:${inspectorPort}`);
      profileFile = join(OUT, "prof", `api-${stamp}.cpuprofile`);
    }
    // The permissions of `deno task start`.
    args = [
      "run",
      ...inspect,
      ...(o.perf ? ["--v8-flags=--perf-basic-prof"] : []),
      "--allow-net",
      "--allow-env",
      "--allow-read",
      "--allow-sys",
      resolve(repoRoot, target === "chorus-deno" ? join(spec.root, "src/deno.ts") : o.bareDeno),
    ];
  }
  if (o.cpuProf || o.perf) mkdirSync(join(OUT, "prof"), { recursive: true });
  if (o.pin) [cmd, args] = ["taskset", ["-c", "0", cmd, ...args]];
  const child = spawnProcess({
    cmd,
    args,
    env,
    cwd: repoRoot,
    keepLines: 200,
    ...(o.serverLog ? { logFile: `${o.serverLog}.${Date.now()}` } : {}),
  });
  // LOG_LEVEL=warn hides Chorus's "listening" line: wait until the port answers HTTP.
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (!child.running) {
      config?.remove();
      throw new Error(`${target} exited (${child.exitCode}):\n${child.stderr.join("\n")}`);
    }
    try {
      await (await fetch(`http://127.0.0.1:${port}/up`)).arrayBuffer();
      break;
    } catch {
      if (Date.now() > deadline) {
        await child.stop();
        config?.remove();
        throw new Error(`${target} did not answer HTTP within 30 s`);
      }
      await sleep(20);
    }
  }
  return {
    process: child,
    port,
    inspectorPort,
    profileFile,
    async stop() {
      await child.stop(10_000);
      config?.remove();
    },
  };
}

/**
 * `perf record` of the server while the measured calls run (`--perf`; Deno runs with
 * --perf-basic-prof so that its JIT code has names), and a text report (`.txt`) next to it.
 */
function startPerf(pid: number, name: string): { stop(): Promise<string> } {
  return recordPerf(pid, join(OUT, "prof", `${name}.perf.data`), 999);
}

/** A minimal Chrome DevTools Protocol client for a V8 inspector (Deno --inspect). */
class Inspector {
  #next = 1;
  readonly #pending = new Map<number, (result: unknown) => void>();
  private constructor(readonly socket: WebSocket) {
    socket.onmessage = (event) => {
      const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown };
      if (message.id !== undefined) this.#pending.get(message.id)?.(message.result);
    };
  }

  static async connect(port: number): Promise<Inspector> {
    const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json() as {
      webSocketDebuggerUrl: string;
    }[];
    const socket = new WebSocket(targets[0].webSocketDebuggerUrl);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = reject;
    });
    return new Inspector(socket);
  }

  send(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.#next++;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }
}

/** One WebSocket client subscribed to `channel`, counting the events it receives. */
async function subscribe(
  port: number,
  channel: string,
): Promise<{ received(): number; close(): void }> {
  const socket = new WebSocket(
    `ws://127.0.0.1:${port}/app/${APP.key}?protocol=7&client=js&version=8.4.0&flash=false`,
  );
  let received = 0;
  let subscribed: () => void = () => {};
  const ready = new Promise<void>((resolve) => (subscribed = resolve));
  socket.onmessage = (message) => {
    const frame = JSON.parse(String(message.data)) as { event: string };
    if (frame.event === "pusher:connection_established") {
      socket.send(JSON.stringify({ event: "pusher:subscribe", data: { channel } }));
    } else if (frame.event === "pusher_internal:subscription_succeeded") {
      subscribed();
    } else if (frame.event === EVENT) {
      received++;
    }
  };
  await Promise.race([
    ready,
    sleep(10_000).then(() => {
      throw new Error("subscription timed out");
    }),
  ]);
  return { received: () => received, close: () => socket.close() };
}

const EVENT = "bench-event";
const PATH = `/apps/${APP.id}/events`;

/** Signs `body` for `POST /apps/{id}/events` again once a second (the timestamp moves). */
function signer(body: string): () => string {
  let at = 0;
  let query = "";
  return () => {
    const second = Math.floor(Date.now() / 1000);
    if (second !== at) {
      at = second;
      query = toQuery(signedParams({
        method: "POST",
        path: PATH,
        body,
        key: APP.key,
        secret: APP.secret,
        timestamp: second,
      }));
    }
    return query;
  };
}

/** `count` calls with `concurrency` in flight; answers the number that failed. */
async function drive(
  port: number,
  body: string,
  count: number,
  concurrency: number,
  errors: string[],
): Promise<number> {
  const query = signer(body);
  let sent = 0;
  let failures = 0;
  const worker = async () => {
    while (sent < count) {
      sent++;
      try {
        const response = await fetch(`http://127.0.0.1:${port}${PATH}?${query()}`, {
          method: "POST",
          body,
          headers: { "content-type": "application/json" },
        });
        const text = await response.text();
        if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${text}`);
      } catch (error) {
        failures++;
        if (errors.length < 5) errors.push((error as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return failures;
}

interface RunResult {
  target: string;
  calls: number;
  seconds: number;
  callsPerSecond: number;
  cpuUsPerCall: number;
  failures: number;
  otherCores: number;
  quietBefore: number;
  attempts: number;
  delivered?: number;
  windowEpochMs: [number, number];
  profile?: string;
  perf?: string;
}

async function runOnce(spec: TargetSpec, o: Options): Promise<RunResult> {
  const target = spec.name;
  const server = await startServer(spec, o);
  try {
    const channel = o.subscriber ? "bench-one" : "bench-empty";
    const sub = o.subscriber ? await subscribe(server.port, channel) : undefined;
    const body = JSON.stringify({
      name: EVENT,
      channel,
      data: JSON.stringify({ t: 1234567.123, s: 123, p: "" }),
    });
    const errors: string[] = [];
    await drive(server.port, body, o.warmup, o.concurrency, errors);
    let quiet = await waitQuiet(o.quietCores);
    const inspector = server.inspectorPort === undefined
      ? undefined
      : await Inspector.connect(server.inspectorPort);
    if (inspector) {
      await inspector.send("Profiler.enable");
      await inspector.send("Profiler.setSamplingInterval", { interval: 200 });
      await inspector.send("Profiler.start");
    }
    const pid = server.process.pid;
    const perf = o.perf ? startPerf(pid, `api-${target}-${Date.now()}`) : undefined;
    const startDelivered = sub?.received() ?? 0;
    const self = () => {
      const usage = process.cpuUsage();
      return (usage.user + usage.system) / 1e6;
    };
    const sample = () => ({
      at: performance.now(),
      cpu: treeCpuSeconds(pid),
      self: self(),
      machine: machineCpuSeconds().busy,
      epoch: Date.now(),
    });
    /** Cores busy with other work (machine minus server and this process; the kernel's share of
     * loopback traffic lands here too). */
    const other = (a: ReturnType<typeof sample>, b: ReturnType<typeof sample>) =>
      ((b.machine - a.machine) - (b.cpu - a.cpu) - (b.self - a.self)) / ((b.at - a.at) / 1000);
    let before = sample();
    let failures = await drive(server.port, body, o.calls, o.concurrency, errors);
    let after = sample();
    // A window other work disturbed is measured again (not while profiling), the calmest kept.
    let attempts = 1;
    while (!perf && !inspector && attempts <= o.retries && other(before, after) > o.maxOther) {
      attempts++;
      const waited = await waitQuiet(o.quietCores);
      const again = sample();
      const failed = await drive(server.port, body, o.calls, o.concurrency, errors);
      const done = sample();
      if (other(again, done) < other(before, after)) {
        [before, after, failures, quiet] = [again, done, failed, waited];
      }
    }
    const perfFile = await perf?.stop();
    if (inspector && server.profileFile) {
      const result = await inspector.send("Profiler.stop") as { profile: unknown };
      writeFileSync(server.profileFile, JSON.stringify(result.profile));
      inspector.socket.close();
    }
    if (sub) {
      for (let i = 0; i < 100 && sub.received() - startDelivered < o.calls - failures; i++) {
        await sleep(20);
      }
      sub.close();
    }
    if (errors.length > 0) console.error(`${target}: ${failures} failures, e.g. ${errors[0]}`);
    const seconds = (after.at - before.at) / 1000;
    return {
      target,
      calls: o.calls,
      seconds: Math.round(seconds * 1000) / 1000,
      callsPerSecond: Math.round(o.calls / seconds),
      cpuUsPerCall: Math.round(((after.cpu - before.cpu) * 1e6 / o.calls) * 10) / 10,
      failures,
      otherCores: Math.round(other(before, after) * 100) / 100,
      quietBefore: quiet,
      attempts,
      ...(sub ? { delivered: sub.received() - startDelivered } : {}),
      windowEpochMs: [before.epoch, after.epoch],
      ...(server.profileFile ? { profile: server.profileFile } : {}),
      ...(perfFile ? { perf: perfFile } : {}),
    };
  } finally {
    await server.stop();
  }
}

/**
 * Waits (at most a minute) until fewer than `cores` cores were busy over half a second: other work
 * on a shared machine moves the CPU per call. Answers the busy cores seen last.
 */
async function waitQuiet(cores: number): Promise<number> {
  let busy = Infinity;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const start = { busy: machineCpuSeconds().busy, at: performance.now() };
    await sleep(500);
    busy = (machineCpuSeconds().busy - start.busy) / ((performance.now() - start.at) / 1000);
    if (busy < cores) break;
  }
  if (busy >= cores) console.error(`machine still busy: ${busy.toFixed(2)} cores`);
  return Math.round(busy * 100) / 100;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (o.pin) execFileSync("taskset", ["-pc", "1", String(process.pid)], { stdio: "ignore" });
  // Round robin (each target once, then again): drifts of a shared machine spread over all.
  const runs = new Map<string, RunResult[]>(o.targets.map((t) => [t.name, []]));
  for (let i = 0; i < o.repeat; i++) {
    for (const spec of o.targets) {
      const result = await runOnce(spec, o);
      console.log(JSON.stringify(result));
      runs.get(spec.name)!.push(result);
    }
  }
  const summary: Record<string, { cpu_us_per_call: number; calls_per_s: number }> = {};
  for (const [name, results] of runs) {
    summary[name] = {
      cpu_us_per_call: median(results.map((r) => r.cpuUsPerCall)),
      calls_per_s: median(results.map((r) => r.callsPerSecond)),
    };
  }
  const ratios: Record<string, number> = {};
  for (const spec of o.targets) {
    const bare = spec.kind === "chorus-bun" ? "bare-bun" : "bare-deno";
    if (!spec.kind.startsWith("chorus-") || !summary[bare]) continue;
    ratios[`${spec.name}/${bare} cpu`] =
      Math.round((summary[spec.name].cpu_us_per_call / summary[bare].cpu_us_per_call) * 100) / 100;
  }
  console.log(JSON.stringify({
    medians: summary,
    ...ratios,
    options: {
      calls: o.calls,
      concurrency: o.concurrency,
      repeat: o.repeat,
      subscriber: o.subscriber,
    },
  }));
}

await main();
process.exit(0);
