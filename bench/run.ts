/**
 * Chorus benchmark: `bun bench/run.ts [flags]` (bench/README.md has the details).
 *
 * For each target (Chorus on Bun / Deno, the bare baselines, a two-node Redis cluster) it starts
 * the server as a subprocess, opens C WebSocket clients in load-generator processes
 * (bench/loadgen.ts), subscribes them, triggers events through the signed HTTP API and prints
 * one JSON line per target and variant, then a summary line with the ratios and target checks.
 * Everything it writes goes to bench/.out/.
 */
import type { Subprocess } from "bun";
import { execFileSync } from "node:child_process";
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { writeFileSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Histogram } from "./lib/hist.ts";
import {
  findProcess,
  machineCpuSeconds,
  openFilesLimit,
  treeCpuSeconds,
  treeRssBytes,
} from "./lib/proc.ts";
import { signedGet, signedPost } from "./lib/sign.ts";
import type { Command, Report } from "./loadgen.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const OUT = join(ROOT, "bench", ".out");
const localBin = (name: string) => join(ROOT, "node_modules", ".bin", name);
const BUN = existsSync(localBin("bun")) ? localBin("bun") : process.execPath;
const DENO = existsSync(localBin("deno")) ? localBin("deno") : "deno";

const APP = { id: "bench", key: "bench-key", secret: "bench-secret" } as const;
const EVENT = "bench-event";
/** Every client subscribes here: the saturation channel. */
const FANOUT = "bench";
/** The first `--lat-subs` clients also subscribe here: the moderate-rate latency channel. */
const LATENCY = "bench-lat";
const PRESENCE = "presence-bench";
const LEAK_PRESENCE = "presence-leak";
/** Nobody subscribes here: the HTTP API's own cost. */
const EMPTY = "bench-empty";
const LEAK_PRESENCE_USERS = 10;
const BATCH_SIZE = 10;

const TARGETS = ["bare-bun", "chorus-bun", "bare-deno", "chorus-deno", "cluster"] as const;
type TargetName = (typeof TARGETS)[number];
const VARIANTS = ["public", "batch", "presence", "leak"] as const;
type Variant = (typeof VARIANTS)[number];
const PHASES = ["moderate", "sequential", "saturation"] as const;
type Phase = (typeof PHASES)[number];

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  clients: number;
  targets: TargetName[];
  /** Explicit variants for every target; undefined = each target's defaults. */
  variants?: Variant[];
  rate: number;
  latSubs: number;
  moderateSeconds: number;
  seconds: number;
  window: number;
  procs: number;
  rounds: number;
  payload: number;
  presenceUsers: number;
  rampWindow: number;
  redis: string;
  clusterRuntime: "bun" | "deno";
  settleMs: number;
  quietCores: number;
  quietWaitSeconds: number;
  maxForeign: number;
  retries: number;
  cpuProf: boolean;
  heapStats: boolean;
  /** perf record the measured server during every sequential phase and the api phase. */
  perf: boolean;
  apiSeconds: number;
  /** Phases of the public variant to run (profiling one phase: pass just that one). */
  phases: Phase[];
  /** Pin the measured server to CPU 0 and the load generators to CPU 1 (taskset). */
  pin: boolean;
  repeat: number;
  quick: boolean;
}

const HELP = `Usage: bun bench/run.ts [flags]

  --quick                 check that it works: 1000 clients, 2 s phases, 100 presence
                          users, no re-runs, at most 5 s waits for a quiet machine
  --repeat N              run the targets N times, alternating; the summary uses medians of
                          the per-repeat ratios (default 1)
  -c, --clients N         WebSocket clients per target (default 10000)
  --targets a,b           ${TARGETS.join(",")} (default: all)
  --variants a,b          public (always), batch, presence, leak
                          (default: chorus-* all four, bare-* public,batch,presence,
                          cluster public,batch)
  --rate N                moderate rate, events/s (default 20)
  --lat-subs N            subscribers of the moderate-rate channel (default 1000)
  --moderate-duration S   seconds at the moderate rate (default 8)
  -d, --duration S        seconds per closed-loop phase (default 4)
  --window N              deliveries in flight at saturation (default 80000)
  --procs N               load-generator processes (default 1)
  --rounds N              connect/disconnect rounds of the leak check (default 10)
  --payload N             bytes of event data (default 100)
  --presence-users N      distinct presence users, user = client index % N (default 1000)
  --ramp-window N         WebSocket handshakes in flight during the ramp-up (default 500)
  --redis URL             Redis for the cluster target (default redis://127.0.0.1:6379)
  --cluster-runtime R     bun or deno, runtime of the two cluster nodes (default bun)
  --quiet CORES           before each phase wait until fewer cores than this are busy
                          (default 0.15; 0 = do not wait)
  --quiet-wait S          longest wait for a quiet machine (default 60)
  --max-foreign CORES     run a phase again when other work took more cores than this
                          during it (default 0.1)
  --retries N             at most this many extra runs of a disturbed phase (default 2)
  --phases a,b            phases of the public variant: moderate, sequential, saturation
                          (default all; e.g. one phase with --cpu-prof to profile it)
  --api-duration S        seconds of the api phase (default 2)
  --perf                  perf record the measured server during every sequential phase
                          and the api phase (Deno with --perf-basic-prof) into bench/.out/prof/
  --heap-stats            Bun servers: JSC object counts per connection (heapStats())
  --no-pin                do not pin the measured server to CPU 0 and the load
                          generators to CPU 1 (pinning is on when there are 2+ CPUs)
  --summarize FILE        only recompute the medians and summary of a results file
  --cpu-prof              Bun servers: write a CPU profile to bench/.out/prof/ (bun --cpu-prof)
  -h, --help
`;

function fail(message: string): never {
  console.error(`bench: ${message}`);
  process.exit(2);
}

/**
 * Every flag as `node:util` parseArgs knows it. Numbers and lists are strings here and checked in
 * `parseOptions`, so that a bad value names the flag as it was typed.
 */
const FLAGS = {
  help: { type: "boolean", short: "h" },
  quick: { type: "boolean" },
  repeat: { type: "string" },
  clients: { type: "string", short: "c" },
  targets: { type: "string" },
  variants: { type: "string" },
  rate: { type: "string" },
  "lat-subs": { type: "string" },
  "moderate-duration": { type: "string" },
  duration: { type: "string", short: "d" },
  window: { type: "string" },
  procs: { type: "string" },
  rounds: { type: "string" },
  payload: { type: "string" },
  "presence-users": { type: "string" },
  "ramp-window": { type: "string" },
  redis: { type: "string" },
  "cluster-runtime": { type: "string" },
  quiet: { type: "string" },
  "quiet-wait": { type: "string" },
  "max-foreign": { type: "string" },
  retries: { type: "string" },
  phases: { type: "string" },
  "api-duration": { type: "string" },
  perf: { type: "boolean" },
  "heap-stats": { type: "boolean" },
  "no-pin": { type: "boolean" },
  summarize: { type: "string" },
  "cpu-prof": { type: "boolean" },
} as const;
type Flag = keyof typeof FLAGS;

/** A flag as given: `raw` is its spelling (`-c` or `--clients`), for messages. */
interface Given {
  raw: string;
  value: string;
}

const isFlag = (name: string): name is Flag => Object.hasOwn(FLAGS, name);

/**
 * The flags of `argv`, checked in order (`--help` prints the help there); the last of a repeated
 * flag wins. parseArgs runs non-strict so that the messages are ours and the same on Bun and
 * Deno; its tokens keep each flag's spelling and tell `--flag=value` and `--flag value` apart.
 */
function readFlags(argv: string[]): Map<Flag, Given> {
  const { tokens } = parseArgs({
    args: argv,
    options: FLAGS,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const given = new Map<Flag, Given>();
  for (const token of tokens) {
    if (token.kind === "positional") fail(`unknown flag "${token.value}" (see --help)`);
    if (token.kind === "option-terminator") fail(`unknown flag "--" (see --help)`);
    if (!isFlag(token.name)) fail(`unknown flag "${token.rawName}" (see --help)`);
    const { type } = FLAGS[token.name];
    if (type === "string" && token.value === undefined) fail(`${token.rawName} needs a value`);
    if (type === "boolean" && token.value !== undefined) fail(`${token.rawName} takes no value`);
    if (token.name === "help") {
      console.log(HELP);
      process.exit(0);
    }
    given.set(token.name, { raw: token.rawName, value: token.value ?? "" });
  }
  return given;
}

/** What the command line asks for: a run, or only the summary of a results file. */
type Invocation = { summarize: string } | { options: Options };

function parseOptions(argv: string[]): Invocation {
  const flags = readFlags(argv);
  const summarize = flags.get("summarize");
  if (summarize) return { summarize: summarize.value };
  /** The flag's number, or `fallback` when it was not given. */
  const number = (flag: Flag, min: number, fallback: number): number => {
    const given = flags.get(flag);
    if (given === undefined) return fallback;
    const n = Number(given.value);
    if (!Number.isFinite(n) || n < min) {
      fail(`${given.raw}: expected a number >= ${min}, got "${given.value}"`);
    }
    return n;
  };
  const integer = (flag: Flag, min: number, fallback: number) =>
    Math.floor(number(flag, min, fallback));
  /** The flag's comma-separated names, each one of `known`; undefined when not given. */
  const names = (flag: Flag, known: readonly string[], what: string): string[] | undefined => {
    const list = flags.get(flag)?.value.split(",").map((s) => s.trim()).filter(Boolean);
    for (const name of list ?? []) if (!known.includes(name)) fail(`unknown ${what} "${name}"`);
    return list;
  };
  const targets = names("targets", TARGETS, "target");
  const variants = names("variants", VARIANTS, "variant");
  const phases = names("phases", PHASES, "phase");
  const runtime = flags.get("cluster-runtime")?.value ?? "bun";
  if (runtime !== "bun" && runtime !== "deno") fail("--cluster-runtime: bun or deno");
  // --quick changes the defaults only: a flag given explicitly keeps its value.
  const quick = flags.has("quick");
  // Key order as before: the machine line prints the options object as it is.
  const options: Options = {
    clients: integer("clients", 1, quick ? 1_000 : 10_000),
    targets: targets ? TARGETS.filter((t) => targets.includes(t)) : [...TARGETS],
    rate: number("rate", 0.1, 20),
    latSubs: integer("lat-subs", 1, 1_000),
    moderateSeconds: number("moderate-duration", 0.5, quick ? 2 : 8),
    seconds: number("duration", 0.5, quick ? 2 : 4),
    window: integer("window", 1, 80_000),
    procs: integer("procs", 1, 1),
    rounds: integer("rounds", 2, 10),
    payload: integer("payload", 16, 100),
    presenceUsers: integer("presence-users", 1, quick ? 100 : 1_000),
    rampWindow: integer("ramp-window", 1, 500),
    redis: flags.get("redis")?.value ?? "redis://127.0.0.1:6379",
    clusterRuntime: runtime,
    settleMs: quick ? 500 : 1_000,
    quietCores: number("quiet", 0, 0.15),
    quietWaitSeconds: number("quiet-wait", 0, quick ? 5 : 60),
    maxForeign: number("max-foreign", 0, 0.1),
    retries: integer("retries", 0, quick ? 0 : 2),
    cpuProf: flags.has("cpu-prof"),
    phases: phases ? PHASES.filter((p) => phases.includes(p)) : [...PHASES],
    heapStats: flags.has("heap-stats"),
    perf: flags.has("perf"),
    apiSeconds: number("api-duration", 0.5, 2),
    pin: !flags.has("no-pin") && os.availableParallelism() >= 2 &&
      existsSync("/usr/bin/taskset"),
    repeat: integer("repeat", 1, 1),
    quick,
  };
  // Last, as before: only when given ("public" always runs).
  if (variants) options.variants = VARIANTS.filter((v) => v === "public" || variants.includes(v));
  options.latSubs = Math.min(options.latSubs, options.clients);
  options.presenceUsers = Math.min(options.presenceUsers, options.clients);
  options.procs = Math.min(options.procs, options.clients);
  return { options };
}

function variantsFor(target: TargetName, options: Options): Variant[] {
  if (options.variants) return options.variants;
  if (target === "cluster") return ["public", "batch"];
  if (target.startsWith("bare-")) return ["public", "batch", "presence"];
  return [...VARIANTS];
}

// ---------------------------------------------------------------------------------------------
// Small helpers

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const now = () => performance.now();
const round = (n: number | null | undefined, digits = 3): number | null =>
  n === null || n === undefined || !Number.isFinite(n) ? null : Number(n.toFixed(digits));

function log(message: string): void {
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`);
}

let resultsFile = "";

function emit(line: Record<string, unknown>): void {
  const text = JSON.stringify(line);
  console.log(text);
  appendFileSync(resultsFile, text + "\n");
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function firstLine(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: "utf8" }).split("\n")[0].trim();
  } catch {
    return "unknown";
  }
}

// ---------------------------------------------------------------------------------------------
// Open-files limit: every child runs under `ulimit -n <hard limit>` and is checked afterwards.

const LIMIT = openFilesLimit("self");
const NOFILE = Number.isFinite(LIMIT.hard) ? LIMIT.hard : 1_048_576;
const ULIMIT_EXEC = 'ulimit -n "$BENCH_NOFILE" || exit 111; exec "$0" "$@"';

function checkOpenFiles(pid: number, needed: number, what: string): void {
  const { soft } = openFilesLimit(pid);
  if (soft < needed) {
    throw new Error(
      `${what}: open-files soft limit is ${soft}, needs ${needed} (hard limit ${LIMIT.hard}); ` +
        "raise the hard limit (ulimit -Hn) or lower --clients / raise --procs",
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Servers under test

interface ServerProcess {
  label: string;
  proc: Subprocess;
  pid: number;
  port: number;
  logFile: string;
}

async function startServer(
  label: string,
  command: string[],
  env: Record<string, string>,
  needFiles: number,
  cpu?: number,
): Promise<ServerProcess> {
  const port = await freePort();
  if (cpu !== undefined) command = ["taskset", "-c", String(cpu), ...command];
  const logFile = join(OUT, "logs", `${label}.log`);
  const fd = openSync(logFile, "w");
  const proc = Bun.spawn(["/bin/sh", "-c", ULIMIT_EXEC, ...command], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: process.env.HOME ?? "/tmp",
      NO_COLOR: "1",
      DENO_NO_UPDATE_CHECK: "1",
      HOST: "127.0.0.1",
      PORT: String(port),
      LOG_LEVEL: "warn",
      BENCH_NOFILE: String(NOFILE),
      ...(heapStatsPrefix ? { BENCH_HEAP_STATS: heapStatsPrefix(label) } : {}),
      ...env,
    },
    stdin: "ignore",
    stdout: fd,
    stderr: fd,
  });
  closeSync(fd);
  const server = { label, proc, pid: proc.pid, port, logFile };
  // LOG_LEVEL=warn hides the "listening" line, so wait until the port answers HTTP.
  const deadline = now() + 30_000;
  for (let attempt = 0; attempt < 600 && now() < deadline; attempt++) {
    if (proc.exitCode !== null) {
      throw new Error(`${label} exited with ${proc.exitCode}:\n${tail(logFile)}`);
    }
    try {
      const response = await fetch(`http://127.0.0.1:${port}/`, {
        signal: AbortSignal.timeout(1_000),
      });
      await response.arrayBuffer();
      checkOpenFiles(proc.pid, needFiles, label);
      return server;
    } catch (error) {
      if (error instanceof Error && error.message.includes("open-files")) {
        await stopServer(server);
        throw error;
      }
      await sleep(50);
    }
  }
  await stopServer(server);
  throw new Error(`${label} did not answer on port ${port} within 30 s:\n${tail(logFile)}`);
}

/** Throws when a server of the target died (with its exit code or signal and log tail). */
function assertAlive(running: Running): void {
  for (const server of running.servers) {
    const { exitCode, signalCode } = server.proc;
    if (exitCode !== null || signalCode !== null) {
      throw new Error(
        `${server.label} died (exit ${exitCode}, signal ${signalCode}):\n${tail(server.logFile)}`,
      );
    }
  }
}

let heapStatsPrefix: ((label: string) => string) | undefined;

/** JSC object counts per connection: heap dump 2 (with C) minus dump 1 (idle), top types. */
function heapPerConnection(label: string, connections: number): Line | undefined {
  if (!heapStatsPrefix) return undefined;
  try {
    type Stats = { heapSize: number; objectTypeCounts: Record<string, number> };
    const read = (n: number) =>
      JSON.parse(readFileSync(`${heapStatsPrefix!(label)}-${n}.json`, "utf8")) as Stats;
    const idle = read(1);
    const busy = read(2);
    const perType = Object.entries(busy.objectTypeCounts)
      .map(([type, count]) => [type, (count - (idle.objectTypeCounts[type] ?? 0)) / connections])
      .filter(([, n]) => (n as number) >= 0.5)
      .sort((a, b) => (b[1] as number) - (a[1] as number))
      .slice(0, 25)
      .map(([type, n]) => [type, round(n as number, 2)]);
    return {
      heap_bytes_per_connection: Math.round((busy.heapSize - idle.heapSize) / connections),
      objects_per_connection: Object.fromEntries(perType),
    };
  } catch (error) {
    log(`heap stats for ${label}: ${(error as Error).message}`);
    return undefined;
  }
}

/** RSS of the measured server after a forced full GC (SIGUSR2, see bench/gc-hook.ts). */
async function liveRss(running: Running, options: Options): Promise<number> {
  assertAlive(running);
  running.measured.proc.kill("SIGUSR2");
  await sleep(Math.max(300, options.settleMs / 2));
  return treeRssBytes(running.measured.pid);
}

function tail(file: string): string {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-15).join("\n");
  } catch {
    return "";
  }
}

async function stopServer(server: ServerProcess): Promise<void> {
  if (server.proc.exitCode !== null || server.proc.signalCode !== null) return;
  server.proc.kill("SIGTERM");
  const exited = await Promise.race([server.proc.exited.then(() => true), sleep(10_000)]);
  if (!exited) {
    log(`${server.label} did not stop on SIGTERM within 10 s: SIGKILL`);
    server.proc.kill("SIGKILL");
    await Promise.race([server.proc.exited, sleep(5_000)]);
  }
}

interface Running {
  name: TargetName;
  chorus: boolean;
  servers: ServerProcess[];
  /** Where the clients connect; its CPU and RSS are what the run reports. */
  measured: ServerProcess;
  /** Where events are posted. */
  http: ServerProcess;
  redisPrefix?: string;
}

function chorusConfig(options: Options): string {
  const file = join(OUT, "chorus-config.json");
  writeFileSync(
    file,
    JSON.stringify(
      {
        apps: [{
          ...APP,
          max_connections: null,
          activity_timeout: 30,
          max_presence_members: Math.max(100, options.presenceUsers),
        }],
      },
      null,
      2,
    ),
  );
  return file;
}

/** Every server runs through bench/gc-hook.ts, so that SIGUSR2 forces a full GC. */
const GC_HOOK = join(ROOT, "bench/gc-hook.ts");
let DENO_RUN = [DENO, "run", "--v8-flags=--expose-gc"];

function chorusCommand(runtime: "bun" | "deno", label: string, options: Options): string[] {
  if (runtime === "deno") {
    // The permissions of `deno task start`.
    return [
      ...DENO_RUN,
      "--allow-net",
      "--allow-env",
      "--allow-read",
      "--allow-sys",
      GC_HOOK,
      join(ROOT, "src/deno.ts"),
    ];
  }
  return [BUN, ...bunProfileFlags(label, options), GC_HOOK, join(ROOT, "src/bun.ts")];
}

function bunProfileFlags(label: string, options: Options): string[] {
  if (!options.cpuProf) return [];
  mkdirSync(join(OUT, "prof"), { recursive: true });
  return [
    "--cpu-prof",
    `--cpu-prof-dir=${join(OUT, "prof")}`,
    `--cpu-prof-name=${label}-${Date.now()}.cpuprofile`,
  ];
}

async function startTarget(name: TargetName, options: Options): Promise<Running> {
  const needFiles = options.clients + 100;
  const cpu = options.pin ? 0 : undefined;
  switch (name) {
    case "bare-bun": {
      const server = await startServer(
        name,
        [
          BUN,
          ...bunProfileFlags(name, options),
          GC_HOOK,
          join(ROOT, "bench/bare-bun.ts"),
        ],
        {},
        needFiles,
        cpu,
      );
      return { name, chorus: false, servers: [server], measured: server, http: server };
    }
    case "bare-deno": {
      const server = await startServer(
        name,
        [
          ...DENO_RUN,
          "--allow-net",
          "--allow-env",
          "--allow-read",
          GC_HOOK,
          join(ROOT, "bench/bare-deno.ts"),
        ],
        {},
        needFiles,
        cpu,
      );
      return { name, chorus: false, servers: [server], measured: server, http: server };
    }
    case "chorus-bun":
    case "chorus-deno": {
      const runtime = name === "chorus-bun" ? "bun" : "deno";
      const server = await startServer(
        name,
        chorusCommand(runtime, name, options),
        { CHORUS_CONFIG: chorusConfig(options) },
        needFiles,
        cpu,
      );
      return { name, chorus: true, servers: [server], measured: server, http: server };
    }
    case "cluster": {
      await cleanStaleRedis(options.redis);
      const prefix = `bench-${process.pid}-${Date.now()}`;
      const env = {
        CHORUS_CONFIG: chorusConfig(options),
        REDIS_URL: options.redis,
        CHORUS_REDIS_PREFIX: prefix,
      };
      const runtime = options.clusterRuntime;
      const a = await startServer(
        "cluster-a",
        chorusCommand(runtime, "cluster-a", options),
        env,
        200,
      );
      let b: ServerProcess;
      try {
        b = await startServer(
          "cluster-b",
          chorusCommand(runtime, "cluster-b", options),
          env,
          needFiles,
          cpu,
        );
      } catch (error) {
        await stopServer(a);
        throw error;
      }
      return { name, chorus: true, servers: [a, b], measured: b, http: a, redisPrefix: prefix };
    }
  }
}

async function stopTarget(running: Running, options: Options): Promise<void> {
  // Stop the receiving node first so that node A's shutdown does not fan out to it.
  for (const server of [...running.servers].reverse()) await stopServer(server);
  if (running.redisPrefix) await cleanRedis(options.redis, running.redisPrefix);
}

/** Removes what the cluster left in Redis under its run-unique prefix (bounded SCAN). */
async function cleanRedis(url: string, prefix: string): Promise<void> {
  await deleteKeys(url, `chorus:${prefix}:*`, () => true);
}

/**
 * Removes what an earlier run left when it was killed before its own cleanup: keys under
 * `chorus:bench-<pid>-<time>:` whose run.ts process (<pid>) is gone.
 */
async function cleanStaleRedis(url: string): Promise<void> {
  await deleteKeys(url, "chorus:bench-*", (key) => {
    const pid = /^chorus:bench-(\d+)-\d+:/.exec(key)?.[1];
    return pid !== undefined && Number(pid) !== process.pid && !existsSync(`/proc/${pid}`);
  });
}

async function deleteKeys(url: string, pattern: string, pick: (key: string) => boolean) {
  const { Redis } = await import("ioredis");
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on("error", () => {});
  try {
    await redis.connect();
    let cursor = "0";
    let removed = 0;
    for (let i = 0; i < 1_000; i++) {
      const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      const mine = keys.filter(pick);
      if (mine.length > 0) removed += await redis.del(...mine);
      cursor = next;
      if (cursor === "0") break;
    }
    if (removed > 0) log(`redis: removed ${removed} leftover keys matching ${pattern}`);
  } catch (error) {
    log(`redis cleanup failed: ${(error as Error).message}`);
  } finally {
    redis.disconnect();
  }
}

// ---------------------------------------------------------------------------------------------
// Load generators

type Request = {
  [K in Command["cmd"]]: Omit<Extract<Command, { cmd: K }>, "id">;
}[Command["cmd"]];

interface Reply {
  id: number;
  [key: string]: unknown;
}

class LoadGenerator {
  readonly proc: Subprocess;
  readonly #pending = new Map<number, (reply: Reply) => void>();
  #nextId = 1;
  progress = 0;
  readonly ready: Promise<void>;

  constructor(onProgress: () => void, cpu: number | undefined) {
    let ready!: () => void;
    this.ready = new Promise((resolve) => (ready = resolve));
    const pin = cpu === undefined ? [] : ["taskset", "-c", String(cpu)];
    const command = [...pin, BUN, join(ROOT, "bench/loadgen.ts")];
    this.proc = Bun.spawn(["/bin/sh", "-c", ULIMIT_EXEC, ...command], {
      cwd: ROOT,
      env: { ...process.env, BENCH_NOFILE: String(NOFILE) },
      stdin: "ignore",
      stdout: "inherit",
      stderr: "inherit",
      ipc: (message: Reply & { progress?: number; ready?: boolean }) => {
        if (message.progress !== undefined) {
          this.progress = message.progress;
          onProgress();
        } else if (message.ready) {
          ready();
        } else {
          const resolve = this.#pending.get(message.id);
          this.#pending.delete(message.id);
          resolve?.(message);
        }
      },
    });
  }

  call(request: Request, timeoutMs = 120_000): Promise<Reply> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`load generator: no answer to ${request.cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      this.proc.send({ ...request, id });
    });
  }
}

interface MergedReport {
  delivered: number;
  other: number;
  dropped: number;
  errors: string[];
  latency: Histogram;
  /** Latency of each event's first delivery (over all load generators). */
  firstDelivery: Histogram;
}

class ClientPool {
  readonly gens: LoadGenerator[] = [];
  /** Client index range [from, to) of each load generator. */
  readonly ranges: [number, number][] = [];
  #wake: (() => void) | undefined;
  clockSkewMs = 0;

  constructor(readonly clients: number, procs: number, pin: boolean) {
    for (let i = 0; i < procs; i++) {
      this.gens.push(new LoadGenerator(() => this.#signal(), pin ? 1 : undefined));
      this.ranges.push([
        Math.floor((i * clients) / procs),
        Math.floor(((i + 1) * clients) / procs),
      ]);
    }
  }

  /** Wakes a phase loop waiting in `wait` (an HTTP call finished). */
  poke(): void {
    this.#signal();
  }

  #signal(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Resolves on the next progress report or after `ms`. */
  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  get delivered(): number {
    let total = 0;
    for (const gen of this.gens) total += gen.progress;
    return total;
  }

  get pids(): number[] {
    return this.gens.map((gen) => gen.proc.pid);
  }

  async start(): Promise<void> {
    const ready = Promise.all(this.gens.map((gen) => gen.ready));
    const ok = await Promise.race([ready.then(() => true), sleep(20_000).then(() => false)]);
    if (!ok) throw new Error("load generators did not start within 20 s");
    this.gens.forEach((gen, i) =>
      checkOpenFiles(gen.proc.pid, this.ranges[i][1] - this.ranges[i][0] + 100, "load generator")
    );
    // Clock offsets (NTP-style over IPC): each process's performance.now() minus ours.
    for (const gen of this.gens) {
      let best = { rtt: Infinity, offset: 0 };
      for (let i = 0; i < 40; i++) {
        const sent = now();
        const reply = await gen.call({ cmd: "clock" }, 5_000);
        const received = now();
        const rtt = received - sent;
        if (rtt < best.rtt) best = { rtt, offset: (reply.now as number) - (sent + received) / 2 };
      }
      this.clockSkewMs = Math.max(this.clockSkewMs, best.rtt / 2);
      await gen.call({ cmd: "offset", offset: best.offset });
    }
  }

  async connect(url: string, window: number): Promise<{ opened: number; failed: number }> {
    const timeoutMs = 30_000 + this.clients * 5;
    const replies = await Promise.all(this.gens.map((gen, i) =>
      gen.call({
        cmd: "connect",
        url,
        from: this.ranges[i][0],
        to: this.ranges[i][1],
        window: Math.max(1, Math.ceil(window / this.gens.length)),
        timeoutMs,
      }, timeoutMs + 10_000)
    ));
    return {
      opened: replies.reduce((n, r) => n + (r.opened as number), 0),
      failed: replies.reduce((n, r) => n + (r.failed as number), 0),
    };
  }

  /** Subscribes `count` clients, spread evenly over the load generators. */
  async subscribe(
    channel: string,
    count: number,
    presence?: { users: number },
  ): Promise<{ ok: number; failed: number }> {
    const timeoutMs = 30_000 + count * 5;
    const replies = await Promise.all(this.gens.map((gen, i) => {
      const [from, to] = this.ranges[i];
      const share = Math.floor(((i + 1) * count) / this.gens.length) -
        Math.floor((i * count) / this.gens.length);
      return gen.call({
        cmd: "subscribe",
        channel,
        from,
        to: Math.min(to, from + share),
        window: 1_000,
        timeoutMs,
        presence: presence ? { app: { ...APP }, users: presence.users } : undefined,
      }, timeoutMs + 10_000);
    }));
    return {
      ok: replies.reduce((n, r) => n + (r.ok as number), 0),
      failed: replies.reduce((n, r) => n + (r.failed as number), 0),
    };
  }

  async measure(latency: boolean, firstPerEvent = false): Promise<void> {
    for (const gen of this.gens) gen.progress = 0;
    await Promise.all(
      this.gens.map((gen) => gen.call({ cmd: "measure", latency, firstPerEvent, progressMs: 5 })),
    );
  }

  async report(): Promise<MergedReport> {
    const merged: MergedReport = {
      delivered: 0,
      other: 0,
      dropped: 0,
      errors: [],
      latency: new Histogram(),
      firstDelivery: new Histogram(),
    };
    const first = new Map<number, number>();
    for (const gen of this.gens) {
      const { report } = await gen.call({ cmd: "report" }) as unknown as { report: Report };
      merged.delivered += report.delivered;
      merged.other += report.other;
      merged.dropped += report.dropped;
      merged.errors.push(...report.errors);
      merged.latency.add(report.latency);
      for (const [seq, ms] of report.firstPerEvent) {
        const seen = first.get(seq);
        if (seen === undefined || ms < seen) first.set(seq, ms);
      }
    }
    for (const ms of first.values()) merged.firstDelivery.record(ms);
    return merged;
  }

  async close(): Promise<void> {
    await Promise.all(this.gens.map((gen) => gen.call({ cmd: "close", timeoutMs: 30_000 })));
  }

  async exit(): Promise<void> {
    await Promise.all(this.gens.map(async (gen) => {
      try {
        await gen.call({ cmd: "exit" }, 3_000);
      } catch {
        // killed below
      }
      const exited = await Promise.race([gen.proc.exited.then(() => true), sleep(3_000)]);
      if (!exited) gen.proc.kill("SIGKILL");
    }));
  }
}

// ---------------------------------------------------------------------------------------------
// Triggering events through the signed HTTP API

class Trigger {
  inFlight = 0;
  calls = 0;
  failures = 0;
  readonly errors: string[] = [];
  readonly #pad: string;

  constructor(readonly base: string, payload: number, readonly onDone: () => void) {
    // `{"t":1234567.123,"s":123,"p":""}` is about 32 bytes; pad the rest.
    this.#pad = "x".repeat(Math.max(0, payload - 32));
  }

  #data(seq: number): string {
    return `{"t":${now().toFixed(3)},"s":${seq},"p":"${this.#pad}"}`;
  }

  single(channel: string, seq: number): Promise<boolean> {
    const body = JSON.stringify({ name: EVENT, channel, data: this.#data(seq) });
    return this.#post(`/apps/${APP.id}/events`, body);
  }

  batch(channel: string, seq: number, size: number): Promise<boolean> {
    const batch = [];
    for (let i = 0; i < size; i++) batch.push({ name: EVENT, channel, data: this.#data(seq + i) });
    return this.#post(`/apps/${APP.id}/batch_events`, JSON.stringify({ batch }));
  }

  reset(): void {
    this.failures = 0;
    this.errors.length = 0;
  }

  async #post(path: string, body: string): Promise<boolean> {
    this.inFlight++;
    this.calls++;
    try {
      const response = await fetch(this.base + signedPost(APP, path, body), {
        method: "POST",
        body,
        headers: { "content-type": "application/json" },
        signal: AbortSignal.timeout(10_000),
      });
      const text = await response.text();
      if (!response.ok) throw new Error(`HTTP ${response.status}: ${text.slice(0, 200)}`);
      return true;
    } catch (error) {
      this.failures++;
      if (this.errors.length < 10) this.errors.push((error as Error).message);
      return false;
    } finally {
      this.inFlight--;
      this.onDone();
    }
  }

  async get(path: string): Promise<unknown> {
    const response = await fetch(this.base + signedGet(APP, path), {
      signal: AbortSignal.timeout(10_000),
    });
    if (!response.ok) throw new Error(`GET ${path}: HTTP ${response.status}`);
    return await response.json();
  }
}

// ---------------------------------------------------------------------------------------------
// Phases

interface Context {
  options: Options;
  running: Running;
  pool: ClientPool;
  trigger: Trigger;
}

interface CpuSample {
  server: number;
  others: number[];
  loadgen: number;
  /** This process (run.ts: the HTTP triggers). */
  self: number;
  machine: number;
  irq: number;
  at: number;
  /** Date.now(), to line phases up with profiles. */
  epochMs: number;
}

function sampleCpu(ctx: Context): CpuSample {
  const others = ctx.running.servers.filter((s) => s !== ctx.running.measured)
    .map((s) => treeCpuSeconds(s.pid));
  if (ctx.running.redisPrefix) {
    const redis = findProcess("redis-server");
    others.push(redis === undefined ? NaN : treeCpuSeconds(redis));
  }
  const usage = process.cpuUsage();
  const machine = machineCpuSeconds();
  return {
    server: treeCpuSeconds(ctx.running.measured.pid),
    others,
    loadgen: ctx.pool.pids.reduce((sum, pid) => sum + treeCpuSeconds(pid), 0),
    self: (usage.user + usage.system) / 1e6,
    machine: machine.busy,
    irq: machine.irq,
    at: now(),
    epochMs: Date.now(),
  };
}

/**
 * Other work on the machine skews every figure (on a 2-vCPU VM the vCPUs may be SMT siblings, so
 * a busy neighbour slows our instructions too). Before each measured phase, wait (bounded) until
 * the machine is quiet: fewer than `--quiet` cores busy over half a second while our processes
 * idle. Answers the busy cores seen last.
 */
async function waitQuiet(options: Options, what: string): Promise<number> {
  if (options.quietCores <= 0) return NaN;
  const deadline = now() + options.quietWaitSeconds * 1000;
  let busy = Infinity;
  let warned = false;
  for (let i = 0; i < 10_000 && now() < deadline; i++) {
    const start = { machine: machineCpuSeconds().busy, at: now() };
    await sleep(500);
    busy = (machineCpuSeconds().busy - start.machine) / ((now() - start.at) / 1000);
    if (busy < options.quietCores) return busy;
    if (!warned) {
      log(`${what}: waiting for the machine to be quiet (${busy.toFixed(2)} cores busy)`);
      warned = true;
    }
  }
  log(`${what}: machine still busy (${busy.toFixed(2)} cores) after ${options.quietWaitSeconds} s`);
  return busy;
}

/** Waits until `expected` deliveries were counted (or `timeoutMs`). */
async function drain(ctx: Context, expected: number, timeoutMs: number): Promise<void> {
  const deadline = now() + timeoutMs;
  while (ctx.pool.delivered < expected && now() < deadline) await ctx.pool.wait(10);
}

interface PhaseResult {
  events: number;
  expected: number;
  delivered: number;
  lost: number;
  seconds: number;
  deliveriesPerSecond: number;
  serverCpuSeconds: number;
  cpuPer1k: number;
  serverUtilisation: number;
  loadgenUtilisation: number;
  /** Busy cores on the whole machine; the part in IRQ/softirq (loopback TCP); the part that no
   * process of this run nor the IRQ time accounts for (someone else's work). */
  machineBusyCores: number;
  irqCores: number;
  foreignCores: number;
  otherCpuSeconds: number[];
  latency: Histogram;
  firstDelivery: Histogram;
  httpFailures: number;
  errors: string[];
  /** Busy cores on the machine just before the phase. */
  busyBefore: number;
  attempts: number;
  /** Wall-clock window (Date.now()), e.g. for `bun bench/profile.ts --from --to`. */
  window: [number, number];
}

function phaseResult(
  ctx: Context,
  before: CpuSample,
  after: CpuSample,
  events: number,
  subscribers: number,
  report: MergedReport,
  steady: { deliveries: number; seconds: number } | undefined,
  busyBefore: number,
): PhaseResult {
  const seconds = (after.at - before.at) / 1000;
  const serverCpu = after.server - before.server;
  const others = after.others.map((cpu, i) => cpu - before.others[i]);
  const ours = serverCpu + (after.loadgen - before.loadgen) + (after.self - before.self) +
    others.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
  const machineBusy = after.machine - before.machine;
  const irq = after.irq - before.irq;
  return {
    events,
    expected: events * subscribers,
    delivered: report.delivered,
    lost: events * subscribers - report.delivered,
    seconds,
    deliveriesPerSecond: steady ? steady.deliveries / steady.seconds : report.delivered / seconds,
    serverCpuSeconds: serverCpu,
    cpuPer1k: report.delivered > 0 ? serverCpu / (report.delivered / 1000) : NaN,
    serverUtilisation: serverCpu / seconds,
    loadgenUtilisation: (after.loadgen - before.loadgen) / seconds,
    machineBusyCores: machineBusy / seconds,
    irqCores: irq / seconds,
    foreignCores: Math.max(0, machineBusy - irq - ours) / seconds,
    otherCpuSeconds: others,
    latency: report.latency,
    firstDelivery: report.firstDelivery,
    httpFailures: ctx.trigger.failures,
    errors: [
      ...(report.dropped > 0 ? [`${report.dropped} sockets closed by the server`] : []),
      ...report.errors,
      ...ctx.trigger.errors,
    ],
    busyBefore,
    attempts: 1,
    window: [before.epochMs, after.epochMs],
  };
}

/**
 * Runs a phase; when someone else's work took more than `--max-foreign` cores during it, runs it
 * again (at most `--retries` more times) and keeps the least disturbed run.
 */
async function measured(
  ctx: Context,
  label: string,
  run: () => Promise<PhaseResult>,
): Promise<PhaseResult> {
  let best: PhaseResult | undefined;
  for (let attempt = 1; attempt <= 1 + ctx.options.retries; attempt++) {
    const result = await run();
    result.attempts = attempt;
    if (!best || result.foreignCores < best.foreignCores) best = result;
    if (result.foreignCores <= ctx.options.maxForeign) break;
    if (attempt <= ctx.options.retries) {
      log(`${label}: ${result.foreignCores.toFixed(2)} cores of other work meanwhile; again`);
    }
  }
  return best!;
}

/** A fixed, moderate rate of single events (open loop), for latency. */
async function moderatePhase(
  ctx: Context,
  channel: string,
  subscribers: number,
): Promise<PhaseResult> {
  const { rate, moderateSeconds } = ctx.options;
  const events = Math.max(1, Math.round(rate * moderateSeconds));
  const quiet = await waitQuiet(ctx.options, `${ctx.running.name} moderate`);
  await ctx.pool.measure(true, true);
  ctx.trigger.reset();
  const before = sampleCpu(ctx);
  const posts: Promise<boolean>[] = [];
  for (let i = 0; i < events; i++) {
    const wait = before.at + (i * 1000) / rate - now();
    if (wait > 0) await sleep(wait);
    posts.push(ctx.trigger.single(channel, i));
  }
  await Promise.all(posts);
  await drain(ctx, events * subscribers, 5_000);
  const after = sampleCpu(ctx);
  const report = await ctx.pool.report();
  return phaseResult(ctx, before, after, events, subscribers, report, undefined, quiet);
}

/**
 * Closed loop: a new HTTP call (1 event, or a batch of `perCall`) goes out as soon as fewer than
 * `windowEvents` events are still on their way to some subscriber. With `windowEvents ==
 * perCall` ("sequential") the next call waits until every subscriber got the previous one: each
 * event is then handled alone, the same way on every target, whichever process is the
 * bottleneck, which makes CPU per delivery comparable. A larger window ("saturation") keeps the
 * pipeline full for throughput; neither side's buffers grow beyond the window.
 */
async function closedLoopPhase(
  ctx: Context,
  channel: string,
  subscribers: number,
  perCall: number,
  windowEvents: number,
): Promise<PhaseResult> {
  const maxHttp = 8;
  const quiet = await waitQuiet(ctx.options, `${ctx.running.name} closed loop`);
  await ctx.pool.measure(true);
  ctx.trigger.reset();
  const before = sampleCpu(ctx);
  const end = before.at + ctx.options.seconds * 1000;
  const warmAt = before.at + Math.min(500, ctx.options.seconds * 250);
  let warm: { at: number; delivered: number } | undefined;
  let sent = 0;
  /** Deliveries given up on (a stall of 2 s): the loop goes on without them. */
  let forgiven = 0;
  let lastChange = { at: now(), delivered: -1 };
  for (let loops = 0; loops < 10_000_000; loops++) {
    const t = now();
    if (t >= end) break;
    const delivered = ctx.pool.delivered;
    if (!warm && t >= warmAt) warm = { at: t, delivered };
    if (delivered !== lastChange.delivered) lastChange = { at: t, delivered };
    else if (t - lastChange.at > 2_000 && ctx.trigger.inFlight === 0) {
      forgiven = sent * subscribers - delivered;
      lastChange = { at: t, delivered };
    }
    const completed = (delivered + forgiven) / subscribers;
    while (ctx.trigger.inFlight < maxHttp && sent - completed + perCall <= windowEvents + 1e-9) {
      if (perCall === 1) ctx.trigger.single(channel, sent);
      else ctx.trigger.batch(channel, sent, perCall);
      sent += perCall;
    }
    await ctx.pool.wait(5);
  }
  const stop = { at: now(), delivered: ctx.pool.delivered };
  await drain(ctx, sent * subscribers, 10_000);
  for (let i = 0; i < 1_000 && ctx.trigger.inFlight > 0; i++) await sleep(10);
  const after = sampleCpu(ctx);
  const steady = warm && stop.at > warm.at
    ? { deliveries: stop.delivered - warm.delivered, seconds: (stop.at - warm.at) / 1000 }
    : undefined;
  const report = await ctx.pool.report();
  return phaseResult(ctx, before, after, sent, subscribers, report, steady, quiet);
}

function saturationWindow(options: Options, subscribers: number, perCall: number): number {
  return Math.max(2 * perCall, Math.ceil(options.window / subscribers));
}

function latencyFields(
  prefix: string,
  histogram: Histogram | undefined,
): Record<string, number | null> {
  return {
    [`${prefix}_p50_ms`]: round(histogram?.percentile(0.5)),
    [`${prefix}_p99_ms`]: round(histogram?.percentile(0.99)),
  };
}

/** `perf record` of the measured server while a phase runs (--perf); a text report next to it. */
function startPerf(ctx: Context, phase: string): { stop(): Promise<void> } | undefined {
  if (!ctx.options.perf) return undefined;
  const dir = join(OUT, "prof");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${ctx.running.measured.label}-${phase}-${Date.now()}.perf.data`);
  const pid = String(
    ctx.running.http === ctx.running.measured || phase !== "api"
      ? ctx.running.measured.pid
      : ctx.running.http.pid,
  );
  const proc = Bun.spawn(["perf", "record", "-F", "499", "-g", "-p", pid, "-o", file], {
    stdout: "ignore",
    stderr: "ignore",
  });
  return {
    async stop() {
      proc.kill("SIGINT");
      await Promise.race([proc.exited, sleep(10_000)]);
      const report = Bun.spawn([
        "perf",
        "report",
        "-i",
        file,
        "--stdio",
        "--no-children",
        "-g",
        "none",
        "--sort",
        "dso,symbol",
        "--percent-limit",
        "0.3",
      ], { stdout: "pipe", stderr: "ignore" });
      const text = await Promise.race([new Response(report.stdout).text(), sleep(60_000)]);
      if (typeof text === "string") writeFileSync(file.replace(/\.data$/, ".txt"), text);
      else report.kill("SIGKILL");
      log(`perf: ${file}`);
    },
  };
}

interface ApiResult {
  calls: number;
  seconds: number;
  callsPerSecond: number;
  /** Server CPU per HTTP call, in ms. */
  cpuMsPerCall: number;
  failures: number;
  errors: string[];
  window_epoch_ms: [number, number];
}

/**
 * The HTTP API alone: single events to a channel nobody is subscribed to, 8 calls in flight,
 * for `--api-duration` (2 s). Its CPU per call (of the node that takes the HTTP calls) is what each event
 * costs before fan-out.
 */
async function apiPhase(ctx: Context): Promise<ApiResult> {
  const seconds = ctx.options.apiSeconds;
  await waitQuiet(ctx.options, `${ctx.running.name} api`);
  const perf = startPerf(ctx, "api");
  ctx.trigger.reset();
  const pid = ctx.running.http.pid;
  const before = { at: now(), cpu: treeCpuSeconds(pid), epochMs: Date.now() };
  const end = before.at + seconds * 1000;
  let calls = 0;
  for (let loops = 0; loops < 10_000_000 && now() < end; loops++) {
    while (ctx.trigger.inFlight < 8) ctx.trigger.single(EMPTY, calls++);
    await ctx.pool.wait(5);
  }
  for (let i = 0; i < 1_000 && ctx.trigger.inFlight > 0; i++) await sleep(5);
  const after = { at: now(), cpu: treeCpuSeconds(pid), epochMs: Date.now() };
  await perf?.stop();
  const elapsed = (after.at - before.at) / 1000;
  return {
    calls,
    seconds: round(elapsed)!,
    callsPerSecond: calls / elapsed,
    cpuMsPerCall: ((after.cpu - before.cpu) * 1000) / calls,
    failures: ctx.trigger.failures,
    errors: ctx.trigger.errors.slice(0, 5),
    window_epoch_ms: [before.epochMs, after.epochMs],
  };
}

/** Everything measured in one phase, for the `phases` object of a result line. */
function phaseDetails(result: PhaseResult): Record<string, unknown> {
  const bottleneck = result.serverUtilisation >= 0.9
    ? "server"
    : result.loadgenUtilisation >= 0.9
    ? "load generator"
    : result.machineBusyCores >= 1.8
    ? "machine (server, load generator and kernel share 2 cores)"
    : "none (the loop waits for deliveries)";
  return {
    events: result.events,
    deliveries: result.delivered,
    lost: result.lost,
    seconds: round(result.seconds),
    deliveries_per_s: Math.round(result.deliveriesPerSecond),
    cpu_s_per_1k_deliveries: round(result.cpuPer1k, 6),
    server_cpu_s: round(result.serverCpuSeconds),
    server_cpu_utilisation: round(result.serverUtilisation),
    loadgen_cpu_utilisation: round(result.loadgenUtilisation),
    machine_busy_cores: round(result.machineBusyCores),
    irq_cores: round(result.irqCores),
    foreign_cores: round(result.foreignCores),
    busy_cores_before: round(result.busyBefore),
    attempts: result.attempts,
    p50_ms: round(result.latency.percentile(0.5)),
    p90_ms: round(result.latency.percentile(0.9)),
    p99_ms: round(result.latency.percentile(0.99)),
    max_ms: round(result.latency.count ? result.latency.max : null),
    window_epoch_ms: result.window,
    bottleneck,
  };
}

function problems(...results: PhaseResult[]): string[] {
  const list: string[] = [];
  for (const result of results) {
    if (result.lost !== 0) list.push(`${result.lost} deliveries missing`);
    if (result.httpFailures > 0) list.push(`${result.httpFailures} HTTP calls failed`);
    list.push(...result.errors);
  }
  return list.slice(0, 10);
}

// ---------------------------------------------------------------------------------------------
// One target

type Line = Record<string, unknown>;

async function runTarget(name: TargetName, options: Options, repeat: number): Promise<Line[]> {
  // The leak check is long and about the process, not about noise: first repeat only.
  const variants = variantsFor(name, options).filter((v) => v !== "leak" || repeat === 1);
  const C = options.clients;
  log(`${name}: starting (${C} clients, variants ${variants.join(",")}, repeat ${repeat})`);
  const running = await startTarget(name, options);
  const lines: Line[] = [];
  const pool = new ClientPool(C, options.procs, options.pin);
  const emitLine = (line: Line) => {
    emit(line);
    lines.push(line);
  };
  try {
    await pool.start();
    const trigger = new Trigger(
      `http://127.0.0.1:${running.http.port}`,
      options.payload,
      () => pool.poke(),
    );
    const ctx: Context = { options, running, pool, trigger };
    const url = `ws://127.0.0.1:${running.measured.port}/app/${APP.key}?protocol=7&client=bench`;
    const base = {
      target: name,
      repeat,
      // The code under test can change between targets (a working tree): say which it was.
      chorus_commit: gitCommit(),
      runtime: name === "cluster" ? options.clusterRuntime : name.endsWith("deno") ? "deno" : "bun",
      clients: C,
    };
    const seq = async (channel: string, subscribers: number, perCall: number) => {
      const perf = startPerf(ctx, `${channel}-${perCall === 1 ? "single" : "batch"}-sequential`);
      const result = await measured(
        ctx,
        `${name} ${channel} sequential`,
        () => closedLoopPhase(ctx, channel, subscribers, perCall, perCall),
      );
      await perf?.stop();
      return result;
    };
    const sat = (channel: string, subscribers: number, perCall: number) =>
      measured(
        ctx,
        `${name} ${channel} saturation`,
        () =>
          closedLoopPhase(
            ctx,
            channel,
            subscribers,
            perCall,
            saturationWindow(options, subscribers, perCall),
          ),
      );

    await sleep(options.settleMs);
    const rssIdleRaw = treeRssBytes(running.measured.pid);
    const rssIdle = await liveRss(running, options);

    log(`${name}: ramp-up`);
    await waitQuiet(options, `${name} ramp-up`);
    const rampStart = now();
    const ramp = await pool.connect(url, options.rampWindow);
    const rampSeconds = (now() - rampStart) / 1000;
    if (ramp.opened === 0) throw new Error(`${name}: no client could connect`);
    const subStart = now();
    const subs = await pool.subscribe(FANOUT, C);
    const subSeconds = (now() - subStart) / 1000;
    const latSubs = await pool.subscribe(LATENCY, options.latSubs);
    // Background cost with C idle connections (timers, sweeps): server CPU over a quiet while.
    await sleep(options.settleMs / 2);
    const idleSeconds = options.quick ? 1 : 3;
    const idleBefore = { at: now(), cpu: treeCpuSeconds(running.measured.pid) };
    await sleep(idleSeconds * 1000);
    const idleCpu = (treeCpuSeconds(running.measured.pid) - idleBefore.cpu) /
      ((now() - idleBefore.at) / 1000);
    const rssWithRaw = treeRssBytes(running.measured.pid);
    const rssWith = await liveRss(running, options);

    const has = (phase: Phase) => options.phases.includes(phase);
    let moderate: PhaseResult | undefined;
    if (has("moderate")) {
      log(`${name}: moderate rate, ${options.rate} events/s to ${latSubs.ok} subscribers`);
      moderate = await measured(
        ctx,
        `${name} moderate`,
        () => moderatePhase(ctx, LATENCY, latSubs.ok),
      );
    }
    log(`${name}: single events to ${subs.ok} subscribers (${options.phases.join(", ")})`);
    const single = has("sequential") ? await seq(FANOUT, subs.ok, 1) : undefined;
    const saturation = has("saturation") ? await sat(FANOUT, subs.ok, 1) : undefined;
    const api = has("sequential") ? await apiPhase(ctx) : undefined;
    const ran = [moderate, single, saturation].filter((r): r is PhaseResult => r !== undefined);
    emitLine({
      ...base,
      variant: "public",
      deliveries_per_s: saturation ? Math.round(saturation.deliveriesPerSecond) : null,
      cpu_s_per_1k_deliveries: round(single?.cpuPer1k, 6),
      saturation_cpu_s_per_1k_deliveries: round(saturation?.cpuPer1k, 6),
      ...latencyFields("lat_moderate", moderate?.latency),
      ...latencyFields("lat_saturation", saturation?.latency),
      // Per event, the latency of its first delivery: the path without the fan-out's queue.
      ...latencyFields("lat_moderate_first_delivery", moderate?.firstDelivery),
      rss_idle_bytes: rssIdle,
      rss_with_bytes: rssWith,
      bytes_per_connection: Math.round((rssWith - rssIdle) / ramp.opened),
      connections_per_s: Math.round(ramp.opened / rampSeconds),
      subscriptions_per_s: Math.round(subs.ok / subSeconds),
      idle_cpu_utilisation: round(idleCpu, 4),
      idle_cpu_us_per_connection_per_s: round((idleCpu * 1e6) / ramp.opened, 4),
      api_calls_per_s: api ? Math.round(api.callsPerSecond) : null,
      api_cpu_ms_per_call: round(api?.cpuMsPerCall, 4),
      connections_opened: ramp.opened,
      connections_failed: ramp.failed,
      subscriptions_failed: subs.failed + latSubs.failed,
      moderate_rate: options.rate,
      moderate_subscribers: latSubs.ok,
      rss_idle_bytes_before_gc: rssIdleRaw,
      rss_with_bytes_before_gc: rssWithRaw,
      bytes_per_connection_before_gc: Math.round((rssWithRaw - rssIdleRaw) / ramp.opened),
      clock_skew_bound_ms: round(pool.clockSkewMs, 4),
      ...(name === "cluster" && single ? clusterExtras(single) : {}),
      ...(options.heapStats && base.runtime === "bun"
        ? { heap: heapPerConnection(running.measured.label, ramp.opened) }
        : {}),
      phases: {
        ...(moderate ? { moderate: phaseDetails(moderate) } : {}),
        ...(single ? { sequential: phaseDetails(single) } : {}),
        ...(saturation ? { saturation: phaseDetails(saturation) } : {}),
        ...(api ? { api } : {}),
      },
      problems: [...problems(...ran), ...(api?.errors ?? [])].slice(0, 10),
    });

    if (variants.includes("batch")) {
      log(`${name}: batch_events of ${BATCH_SIZE}, sequential then saturation`);
      const batch = await seq(FANOUT, subs.ok, BATCH_SIZE);
      const batchSaturation = await sat(FANOUT, subs.ok, BATCH_SIZE);
      emitLine({
        ...base,
        variant: "batch",
        events_per_call: BATCH_SIZE,
        deliveries_per_s: Math.round(batchSaturation.deliveriesPerSecond),
        cpu_s_per_1k_deliveries: round(batch.cpuPer1k, 6),
        cpu_vs_single_events: single ? round(batch.cpuPer1k / single.cpuPer1k) : null,
        ...latencyFields("lat_saturation", batchSaturation.latency),
        ...(name === "cluster" ? clusterExtras(batch) : {}),
        phases: { sequential: phaseDetails(batch), saturation: phaseDetails(batchSaturation) },
        problems: problems(batch, batchSaturation),
      });
    }

    if (variants.includes("presence")) {
      log(`${name}: presence, ${C} clients as ${options.presenceUsers} users`);
      await waitQuiet(options, `${name} presence subscribe`);
      const start = now();
      const startEpoch = Date.now();
      const joined = await pool.subscribe(PRESENCE, C, { users: options.presenceUsers });
      const seconds = (now() - start) / 1000;
      const subscribeWindow = [startEpoch, Date.now()];
      const presence = await seq(PRESENCE, joined.ok, 1);
      emitLine({
        ...base,
        variant: "presence",
        presence_users: options.presenceUsers,
        cpu_s_per_1k_deliveries: round(presence.cpuPer1k, 6),
        cpu_vs_public: single ? round(presence.cpuPer1k / single.cpuPer1k) : null,
        ...latencyFields("lat_sequential", presence.latency),
        presence_subscriptions_per_s: Math.round(joined.ok / seconds),
        presence_subscriptions_failed: joined.failed,
        presence_subscribe_window_epoch_ms: subscribeWindow,
        phases: { sequential: phaseDetails(presence) },
        problems: problems(presence),
      });
    }

    await pool.close();

    if (variants.includes("leak")) {
      log(`${name}: leak check, ${options.rounds} rounds of ${C} connect/disconnect`);
      emitLine({ ...base, variant: "leak", ...await leakRounds(ctx, url, rssIdle, rssWith) });
    }
  } finally {
    await pool.exit();
    await stopTarget(running, options);
  }
  return lines;
}

/** Node A (HTTP API, publishes to Redis) and Redis, per 1 000 deliveries on node B. */
function clusterExtras(result: PhaseResult): Line {
  const per1k = (cpu: number | undefined) =>
    cpu === undefined || result.delivered === 0 ? null : round(cpu / (result.delivered / 1000), 6);
  return {
    node_a_cpu_s_per_1k_deliveries: per1k(result.otherCpuSeconds[0]),
    redis_cpu_s_per_1k_deliveries: per1k(result.otherCpuSeconds[1]),
  };
}

/**
 * The leak check: `rounds` times connect C clients, subscribe them (all to the public channel,
 * the first --lat-subs to a presence channel as 10 users), disconnect them all, then force a full GC and
 * read RSS. Round 1 warms up allocator pools, so growth is judged from the lowest RSS of rounds
 * 2-4 to the lowest of the last three rounds (the lowest, because GC noise only adds): it must
 * stay under 2 % of the bytes a connection costs, per connection per round. For Chorus the
 * HTTP API must also report no connection and no occupied channel after every round.
 */
async function leakRounds(
  ctx: Context,
  url: string,
  rssIdle: number,
  rssWith: number,
): Promise<Line> {
  const { options, running, pool, trigger } = ctx;
  const C = options.clients;
  const after: number[] = [];
  const peak: number[] = [];
  const connectionsLeft: (number | null)[] = [];
  const channelsLeft: (number | null)[] = [];
  const rates: number[] = [];
  let failures = 0;
  const started = now();
  await sleep(options.settleMs);
  const before = await liveRss(running, options);
  for (let r = 1; r <= options.rounds; r++) {
    assertAlive(running);
    const start = now();
    const ramp = await pool.connect(url, options.rampWindow);
    rates.push(Math.round(ramp.opened / ((now() - start) / 1000)));
    const subs = await pool.subscribe(FANOUT, C);
    // Few users, so that member_added / member_removed stay rare: this exercises presence
    // join and leave without turning the round into an O(members²) broadcast storm.
    const joined = await pool.subscribe(LEAK_PRESENCE, options.latSubs, {
      users: Math.min(LEAK_PRESENCE_USERS, options.presenceUsers),
    });
    failures += ramp.failed + subs.failed + joined.failed;
    peak.push(treeRssBytes(running.measured.pid));
    await pool.close();
    await sleep(Math.min(500, options.settleMs));
    after.push(await liveRss(running, options));
    if (running.chorus) {
      try {
        const connections = await trigger.get(`/apps/${APP.id}/connections`) as {
          connections: number;
        };
        const channels = await trigger.get(`/apps/${APP.id}/channels`) as {
          channels: Record<string, unknown>;
        };
        connectionsLeft.push(connections.connections);
        channelsLeft.push(Object.keys(channels.channels).length);
      } catch (error) {
        log(`leak check: state query failed: ${(error as Error).message}`);
        connectionsLeft.push(null);
        channelsLeft.push(null);
      }
    }
  }
  const early = Math.min(...after.slice(1, Math.min(4, after.length)));
  const late = Math.min(...after.slice(-3));
  // From the middle of rounds 2-4 (round 3) to the middle of the last three.
  const span = Math.max(1, (after.length - 1) - 3);
  const perConnPerRound = (late - early) / span / C;
  const bytesPerConnection = (rssWith - rssIdle) / C;
  const threshold = 0.02 * bytesPerConnection;
  const stateClean = connectionsLeft.every((n) => n === 0) && channelsLeft.every((n) => n === 0);
  return {
    rounds: options.rounds,
    rss_before_bytes: before,
    rss_after_round_bytes: after,
    rss_peak_round_bytes_before_gc: peak,
    connections_per_s_by_round: rates,
    server_connections_after_round: running.chorus ? connectionsLeft : undefined,
    server_channels_after_round: running.chorus ? channelsLeft : undefined,
    growth_bytes: late - early,
    growth_bytes_per_connection_per_round: round(perConnPerRound, 2),
    growth_threshold_bytes_per_connection_per_round: round(threshold, 2),
    state_clean: running.chorus ? stateClean : undefined,
    failures,
    seconds: round((now() - started) / 1000, 1),
    no_growth: perConnPerRound <= threshold && (!running.chorus || stateClean) && failures === 0,
  };
}

// ---------------------------------------------------------------------------------------------
// Summary

const median = (values: number[]): number | null => {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/** With --repeat N: one line per target and variant with the median of every numeric field. */
function medianLines(results: Map<TargetName, Line[]>, repeats: number): Line[] {
  const lines: Line[] = [];
  for (const [target, all] of results) {
    for (const variant of VARIANTS) {
      const runs = all.filter((line) => line.variant === variant);
      if (runs.length < 2) continue;
      const line: Line = { target, variant, repeat: "median", runs: runs.length, of: repeats };
      for (const key of Object.keys(runs[0])) {
        const values = runs.map((run) => run[key]).filter((v): v is number =>
          typeof v === "number"
        );
        if (key === "chorus_commit") {
          line[key] = [...new Set(runs.map((run) => run[key]))].join(",");
        }
        if (key === "clients" || key === "repeat" || values.length !== runs.length) continue;
        line[key] = round(median(values), 6);
      }
      lines.push(line);
    }
  }
  return lines;
}

function summarize(results: Map<TargetName, Line[]>, repeats: number): Line {
  const runs = (target: TargetName, variant: Variant) =>
    (results.get(target) ?? []).filter((line) => line.variant === variant);
  const value = (line: Line | undefined, key: string) =>
    typeof line?.[key] === "number" ? line[key] as number : undefined;
  /** a / b per repeat (same repeat of both targets), and their median. */
  const perRepeat = (
    a: [TargetName, Variant],
    b: [TargetName, Variant],
    key: string,
    keyB = key,
    combine: (x: number, y: number) => number = (x, y) => x / y,
  ) => {
    const list: number[] = [];
    for (let r = 1; r <= repeats; r++) {
      const x = value(runs(...a).find((line) => line.repeat === r), key);
      const y = value(runs(...b).find((line) => line.repeat === r), keyB);
      if (x !== undefined && y !== undefined && y !== 0) list.push(combine(x, y));
    }
    return { value: round(median(list)), runs: list.map((v) => round(v)) };
  };

  const cpu = "cpu_s_per_1k_deliveries";
  const pairs: [string, [TargetName, Variant], [TargetName, Variant], string][] = [
    ["chorus-bun/bare-bun cpu_per_delivery", ["chorus-bun", "public"], ["bare-bun", "public"], cpu],
    ["chorus-bun/bare-bun saturation cpu_per_delivery", ["chorus-bun", "public"], [
      "bare-bun",
      "public",
    ], "saturation_cpu_s_per_1k_deliveries"],
    [
      "chorus-bun/bare-bun bytes_per_connection",
      ["chorus-bun", "public"],
      ["bare-bun", "public"],
      "bytes_per_connection",
    ],
    [
      "chorus-bun/bare-bun deliveries_per_s",
      ["chorus-bun", "public"],
      ["bare-bun", "public"],
      "deliveries_per_s",
    ],
    [
      "chorus-bun/bare-bun connections_per_s",
      ["chorus-bun", "public"],
      ["bare-bun", "public"],
      "connections_per_s",
    ],
    [
      "chorus-bun/bare-bun api_cpu_per_call",
      ["chorus-bun", "public"],
      ["bare-bun", "public"],
      "api_cpu_ms_per_call",
    ],
    [
      "chorus-deno/bare-deno cpu_per_delivery",
      ["chorus-deno", "public"],
      ["bare-deno", "public"],
      cpu,
    ],
    ["chorus-deno/bare-deno saturation cpu_per_delivery", ["chorus-deno", "public"], [
      "bare-deno",
      "public",
    ], "saturation_cpu_s_per_1k_deliveries"],
    ["chorus-deno/bare-deno bytes_per_connection", ["chorus-deno", "public"], [
      "bare-deno",
      "public",
    ], "bytes_per_connection"],
    [
      "chorus-deno/bare-deno deliveries_per_s",
      ["chorus-deno", "public"],
      ["bare-deno", "public"],
      "deliveries_per_s",
    ],
    [
      "chorus-deno/bare-deno connections_per_s",
      ["chorus-deno", "public"],
      ["bare-deno", "public"],
      "connections_per_s",
    ],
    [
      "chorus-deno/bare-deno api_cpu_per_call",
      ["chorus-deno", "public"],
      ["bare-deno", "public"],
      "api_cpu_ms_per_call",
    ],
    ["cluster-b/chorus-bun cpu_per_delivery", ["cluster", "public"], ["chorus-bun", "public"], cpu],
    [
      "chorus-bun/bare-bun batch cpu_per_delivery",
      ["chorus-bun", "batch"],
      ["bare-bun", "batch"],
      cpu,
    ],
    ["chorus-deno/bare-deno batch cpu_per_delivery", ["chorus-deno", "batch"], [
      "bare-deno",
      "batch",
    ], cpu],
    ["chorus-bun/bare-bun presence cpu_per_delivery", ["chorus-bun", "presence"], [
      "bare-bun",
      "presence",
    ], cpu],
    ["chorus-deno/bare-deno presence cpu_per_delivery", ["chorus-deno", "presence"], [
      "bare-deno",
      "presence",
    ], cpu],
  ];
  for (const target of TARGETS) {
    pairs.push([
      `${target} batch/single cpu_per_delivery`,
      [target, "batch"],
      [target, "public"],
      cpu,
    ]);
  }
  const ratios: Record<string, number | null> = {};
  const ratioRuns: Record<string, (number | null)[]> = {};
  for (const [name, a, b, key] of pairs) {
    const r = perRepeat(a, b, key);
    if (r.value === null) continue;
    ratios[name] = r.value;
    ratioRuns[name] = r.runs;
  }

  const checks: Line[] = [];
  const check = (name: string, ratio: string, limit: number) => {
    if (!(ratio in ratios)) return;
    const v = ratios[ratio];
    checks.push({
      check: name,
      value: v,
      limit,
      unit: "x",
      ...(repeats > 1 ? { runs: ratioRuns[ratio] } : {}),
      met: v === null ? null : v <= limit,
    });
  };
  check(
    "chorus-bun cpu per delivery <= 1.15x bare-bun",
    "chorus-bun/bare-bun cpu_per_delivery",
    1.15,
  );
  check(
    "chorus-bun bytes per connection <= 1.5x bare-bun",
    "chorus-bun/bare-bun bytes_per_connection",
    1.5,
  );
  check(
    "chorus-deno cpu per delivery <= 1.2x bare-deno",
    "chorus-deno/bare-deno cpu_per_delivery",
    1.2,
  );
  check(
    "cluster receiving node cpu per delivery <= 1.3x single-node chorus-bun",
    "cluster-b/chorus-bun cpu_per_delivery",
    1.3,
  );
  const p50 = perRepeat(
    ["cluster", "public"],
    ["chorus-bun", "public"],
    "lat_moderate_p50_ms",
    "lat_moderate_p50_ms",
    (x, y) => x - y,
  );
  const firstP50 = perRepeat(
    ["cluster", "public"],
    ["chorus-bun", "public"],
    "lat_moderate_first_delivery_p50_ms",
    "lat_moderate_first_delivery_p50_ms",
    (x, y) => x - y,
  );
  if (firstP50.value !== null) {
    ratios["cluster-chorus-bun first_delivery_p50 difference_ms"] = firstP50.value;
    ratioRuns["cluster-chorus-bun first_delivery_p50 difference_ms"] = firstP50.runs;
  }
  if (p50.value !== null) {
    checks.push({
      check: "cluster p50 at moderate rate <= single-node chorus-bun p50 + 1 ms",
      value: p50.value,
      limit: 1,
      unit: "ms over single node",
      ...(repeats > 1 ? { runs: p50.runs } : {}),
      met: p50.value <= 1,
    });
  }
  for (const target of ["chorus-bun", "chorus-deno"] as const) {
    const leak = runs(target, "leak")[0];
    if (!leak) continue;
    checks.push({
      check: `${target} no RSS growth over ${leak.rounds} connect/disconnect rounds`,
      value: leak.growth_bytes_per_connection_per_round,
      limit: leak.growth_threshold_bytes_per_connection_per_round,
      unit: "bytes per connection per round",
      met: leak.no_growth,
    });
  }
  return {
    summary: true,
    repeats,
    ratios,
    ...(repeats > 1 ? { ratios_per_repeat: ratioRuns } : {}),
    checks,
    all_met: checks.length > 0 && checks.every((c) => c.met === true),
  };
}

// ---------------------------------------------------------------------------------------------
// Main

/** HEAD, with "+dirty" when src/ or adapters/ differ from it. */
function gitCommit(): string {
  const head = firstLine("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"]);
  const changed = gitChangedFiles();
  return changed ? `${head}+dirty` : head;
}

/** Files that differ from HEAD: the run measures the working tree, not the commit. */
function gitChangedFiles(): number | null {
  try {
    const out = execFileSync(
      "git",
      ["-C", ROOT, "status", "--porcelain", "--", "src", "adapters"],
      {
        encoding: "utf8",
      },
    );
    return out.split("\n").filter(Boolean).length;
  } catch {
    return null;
  }
}

function machine(): Line {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "unknown";
  const read = (file: string) => {
    try {
      return readFileSync(file, "utf8").trim();
    } catch {
      return "unknown";
    }
  };
  return {
    machine: true,
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpu_model: model,
    mem_total_bytes: os.totalmem(),
    kernel: os.release(),
    bun: firstLine(BUN, ["--version"]),
    deno: firstLine(DENO, ["--version"]),
    open_files_limit: LIMIT,
    ephemeral_ports: read("/proc/sys/net/ipv4/ip_local_port_range").replace(/\s+/, "-"),
    tcp_tw_reuse: read("/proc/sys/net/ipv4/tcp_tw_reuse"),
    git_commit: firstLine("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"]),
    git_changed_files: gitChangedFiles(),
  };
}

/**
 * `bun bench/run.ts --summarize <results.jsonl>`: the median lines and the summary again, from a
 * results file (e.g. of a run that was cut short), printed and kept as a new results file.
 */
function summarizeFile(file: string): void {
  const lines = readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) =>
    JSON.parse(l) as Line
  );
  const results = new Map<TargetName, Line[]>();
  let repeats = 1;
  for (const line of lines) {
    if (typeof line.variant !== "string" || typeof line.repeat !== "number") continue;
    const target = line.target as TargetName;
    results.set(target, [...(results.get(target) ?? []), line]);
    repeats = Math.max(repeats, line.repeat);
  }
  mkdirSync(OUT, { recursive: true });
  resultsFile = join(OUT, `summary-${new Date().toISOString().replace(/[:.]/g, "-")}.jsonl`);
  for (const line of lines) if (line.machine || typeof line.repeat === "number") emit(line);
  if (repeats > 1) { for (const line of medianLines(results, repeats)) emit(line); }
  emit({ ...summarize(results, repeats), summarized_from: file });
}

async function main(): Promise<void> {
  const invocation = parseOptions(process.argv.slice(2));
  if ("summarize" in invocation) {
    summarizeFile(invocation.summarize);
    return;
  }
  const { options } = invocation;
  mkdirSync(join(OUT, "logs"), { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  resultsFile = join(OUT, `results-${stamp}.jsonl`);
  if (options.perf) DENO_RUN = [DENO, "run", "--v8-flags=--expose-gc,--perf-basic-prof"];
  if (options.heapStats) {
    mkdirSync(join(OUT, "heap"), { recursive: true });
    heapStatsPrefix = (label) => join(OUT, "heap", `${label}-${stamp}`);
  }

  if (NOFILE < options.clients / options.procs + 200) {
    fail(
      `the open-files hard limit (${LIMIT.hard}) is too low for ${options.clients} clients in ` +
        `${options.procs} process(es); raise it or use --procs / --clients`,
    );
  }
  const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim()
    .split(/\s+/).map(Number);
  if (high - low + 1 < options.clients) {
    fail(`${options.clients} clients do not fit the ephemeral port range ${low}-${high}`);
  }

  emit({
    ...machine(),
    command: ["bun", "bench/run.ts", ...process.argv.slice(2)].join(" "),
    options,
  });
  const results = new Map<TargetName, Line[]>();
  const started = now();
  for (let repeat = 1; repeat <= options.repeat; repeat++) {
    for (const target of options.targets) {
      const t0 = now();
      try {
        const lines = await runTarget(target, options, repeat);
        results.set(target, [...(results.get(target) ?? []), ...lines]);
      } catch (error) {
        log(`${target} failed: ${(error as Error).stack ?? error}`);
        emit({ target, repeat, error: (error as Error).message });
      }
      log(`${target}: done in ${((now() - t0) / 1000).toFixed(1)} s`);
    }
  }
  if (options.repeat > 1) { for (const line of medianLines(results, options.repeat)) emit(line); }
  const summary = summarize(results, options.repeat);
  if (options.quick) {
    // 1 000 clients and 2 s phases check that everything runs; they do not settle the targets.
    summary.note = "quick mode: the checks are indicative only; judge targets on a full run";
  }
  summary.total_seconds = round((now() - started) / 1000, 1);
  emit(summary);
  writeFileSync(join(OUT, "latest.jsonl"), readFileSync(resultsFile));
  log(`results: ${resultsFile}`);
}

await main();
