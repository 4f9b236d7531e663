/**
 * The targets under test: which variants each one runs, and how to start and stop its servers
 * (bare-bun, chorus-bun, bare-deno, chorus-deno, and the two-node cluster over Redis).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import type { Options } from "./cli.ts";
import { heapStatsEnv } from "./heap.ts";
import { APP, type TargetName, type Variant, VARIANTS } from "./names.ts";
import { BUN, DENO, GC_HOOK, OUT, ROOT } from "./paths.ts";
import { cleanRedis, cleanStaleRedis } from "./redis.ts";
import { type ServerProcess, startServer, stopServer, tail } from "./servers.ts";

/** A started target. */
export interface Running {
  name: TargetName;
  chorus: boolean;
  servers: ServerProcess[];
  /** Where the clients connect; its CPU and RSS are what the run reports. */
  measured: ServerProcess;
  /** Where events are posted. */
  http: ServerProcess;
  redisPrefix?: string;
}

/** The variants `target` runs: `--variants` for all, or the target's defaults. */
export function variantsFor(target: TargetName, options: Options): Variant[] {
  if (options.variants) return options.variants;
  if (target === "cluster") return ["public", "batch"];
  if (target.startsWith("bare-")) return ["public", "batch", "presence"];
  return [...VARIANTS];
}

/** Throws when a server of the target died (with its exit code or signal and log tail). */
export function assertAlive(running: Running): void {
  for (const server of running.servers) {
    const { exitCode, signalCode, running } = server.proc;
    if (!running) {
      throw new Error(
        `${server.label} died (exit ${exitCode}, signal ${signalCode}):\n${tail(server.logFile)}`,
      );
    }
  }
}

/** The flags that change how a server is started (profilers). */
export type StartFlags = Pick<Options, "cpuProf" | "perf">;

/**
 * Chorus's config file `name` in bench/.out/: the bench app, presence limit `presenceUsers`;
 * `recovery`: the bench channels keep their events.
 */
export function chorusConfig(
  presenceUsers: number,
  name = "chorus-config.json",
  recovery = false,
): string {
  const file = join(OUT, name);
  writeFileSync(
    file,
    JSON.stringify(
      {
        apps: [{
          ...APP,
          max_connections: null,
          activity_timeout: 30,
          max_presence_members: Math.max(100, presenceUsers),
          ...(recovery ? { recovery: { channels: ["bench*"] } } : {}),
        }],
      },
      null,
      2,
    ),
  );
  return file;
}

/** `deno run` with the GC hook's flag (and perf's symbol maps with --perf). */
function denoRun(options: StartFlags): string[] {
  const v8 = options.perf ? "--v8-flags=--expose-gc,--perf-basic-prof" : "--v8-flags=--expose-gc";
  return [DENO, "run", v8];
}

export function chorusCommand(
  runtime: "bun" | "deno",
  label: string,
  options: StartFlags,
): string[] {
  if (runtime === "deno") {
    // The permissions of `deno task start`.
    return [
      ...denoRun(options),
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

function bunProfileFlags(label: string, options: StartFlags): string[] {
  if (!options.cpuProf) return [];
  mkdirSync(join(OUT, "prof"), { recursive: true });
  return [
    "--cpu-prof",
    `--cpu-prof-dir=${join(OUT, "prof")}`,
    `--cpu-prof-name=${label}-${Date.now()}.cpuprofile`,
  ];
}

/**
 * A bare server answers every presence subscribe with a list of as many members as the run has
 * users (the ones bench/loadgen.ts signs), encoded once: the bytes every server must send, with
 * none of the bookkeeping.
 */
function bareEnv(options: Options): Record<string, string> {
  return {
    BENCH_PRESENCE_USERS: String(options.presenceUsers),
    ...(options.signedBare ? { BENCH_BARE_API: "signed" } : {}),
  };
}

export async function startTarget(name: TargetName, options: Options): Promise<Running> {
  const needFiles = options.clients + 100;
  const cpu = options.pin ? 0 : undefined;
  // startServer with the --heap-stats dump prefix of the server, when that is on.
  const start = (
    label: string,
    command: string[],
    env: Record<string, string>,
    files: number,
    at?: number,
  ) => startServer(label, command, { ...heapStatsEnv(label), ...env }, files, at);
  switch (name) {
    case "bare-bun": {
      const server = await start(
        name,
        [
          BUN,
          ...bunProfileFlags(name, options),
          GC_HOOK,
          join(ROOT, "bench/bare-bun.ts"),
        ],
        bareEnv(options),
        needFiles,
        cpu,
      );
      return { name, chorus: false, servers: [server], measured: server, http: server };
    }
    case "bare-deno": {
      const server = await start(
        name,
        [
          ...denoRun(options),
          "--allow-net",
          "--allow-env",
          "--allow-read",
          GC_HOOK,
          join(ROOT, "bench/bare-deno.ts"),
        ],
        bareEnv(options),
        needFiles,
        cpu,
      );
      return { name, chorus: false, servers: [server], measured: server, http: server };
    }
    case "chorus-bun":
    case "chorus-deno": {
      const runtime = name === "chorus-bun" ? "bun" : "deno";
      const server = await start(
        name,
        chorusCommand(runtime, name, options),
        { CHORUS_CONFIG: chorusConfig(options.presenceUsers, undefined, options.recovery) },
        needFiles,
        cpu,
      );
      return { name, chorus: true, servers: [server], measured: server, http: server };
    }
    case "cluster": {
      await cleanStaleRedis(options.redis);
      const prefix = `bench-${process.pid}-${Date.now()}`;
      const env = {
        CHORUS_CONFIG: chorusConfig(options.presenceUsers, undefined, options.recovery),
        REDIS_URL: options.redis,
        CHORUS_REDIS_PREFIX: prefix,
      };
      const runtime = options.clusterRuntime;
      const a = await start(
        "cluster-a",
        chorusCommand(runtime, "cluster-a", options),
        env,
        200,
      );
      let b: ServerProcess;
      try {
        b = await start(
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

export async function stopTarget(running: Running, options: Options): Promise<void> {
  // Stop the receiving node first so that node A's shutdown does not fan out to it.
  for (const server of [...running.servers].reverse()) await stopServer(server);
  if (running.redisPrefix) await cleanRedis(options.redis, running.redisPrefix);
}
