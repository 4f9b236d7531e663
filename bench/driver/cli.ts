/**
 * The command line: the options of a run, their defaults, the `--help` text, and the check of
 * every flag's value.
 */
import { existsSync } from "node:fs";
import os from "node:os";
import { Flags } from "./flags.ts";
import { fail } from "./log.ts";
import { type Phase, PHASES, type TargetName, TARGETS, type Variant, VARIANTS } from "./names.ts";

export interface Options {
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
  /** The bare servers check signed API calls as Chorus must (BENCH_BARE_API=signed). */
  signedBare: boolean;
  /** Chorus keeps the bench channels' events for recovery (apps[].recovery). */
  recovery: boolean;
  /** Phases of the public variant to run (profiling one phase: pass just that one). */
  phases: Phase[];
  /** Pin the measured server to CPU 0 and the load generators to CPU 1 (taskset). */
  pin: boolean;
  repeat: number;
  quick: boolean;
}

export const HELP = `Usage: bun bench/run.ts [flags]

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
  --signed-bare           the bare servers read, hash and sign API calls as Chorus must
                          (BENCH_BARE_API=signed: bench/bare-bun.ts), for the api phase
  --recovery              Chorus keeps the bench channels' events (apps[].recovery
                          channels ["bench*"]): the cost of a recovery channel
  --perf                  perf record the measured server during every sequential phase
                          and the api phase (Deno with --perf-basic-prof) into bench/.out/prof/
  --heap-stats            Bun servers: JSC object counts per connection (heapStats())
  --no-pin                do not pin the measured server to CPU 0 and the load
                          generators to CPU 1 (pinning is on when there are 2+ CPUs)
  --summarize FILE        only recompute the medians and summary of a results file
  --cpu-prof              Bun servers: write a CPU profile to bench/.out/prof/ (bun --cpu-prof)
  -h, --help
`;

/** Every flag as `node:util` parseArgs knows it (bench/driver/flags.ts reads them). */
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
  "signed-bare": { type: "boolean" },
  recovery: { type: "boolean" },
  perf: { type: "boolean" },
  "heap-stats": { type: "boolean" },
  "no-pin": { type: "boolean" },
  summarize: { type: "string" },
  "cpu-prof": { type: "boolean" },
} as const;
/** What the command line asks for: a run, or only the summary of a results file. */
export type Invocation = { summarize: string } | { options: Options };

export function parseOptions(argv: string[]): Invocation {
  const flags = new Flags(argv, FLAGS, HELP);
  const summarize = flags.get("summarize");
  if (summarize) return { summarize: summarize.value };
  const number = flags.number.bind(flags);
  const integer = flags.integer.bind(flags);
  const names = flags.names.bind(flags);
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
    signedBare: flags.has("signed-bare"),
    recovery: flags.has("recovery"),
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
