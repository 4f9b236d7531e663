/** The command line of `bun bench/scale.ts`: its options, defaults and `--help`. */
import { Flags } from "../flags.ts";
import { fail } from "../log.ts";

export const SCALE_PHASES = ["fill", "cluster"] as const;
export type ScalePhase = (typeof SCALE_PHASES)[number];

export interface ScaleOptions {
  phases: ScalePhase[];
  /** fill: load generators, and at most this many sockets (Infinity: up to the file limit). */
  fillProcs: number;
  fillMax: number;
  /** cluster: sockets in all, nodes in all (of them `denoNodes` on Deno), load generators. */
  sockets: number;
  nodes: number;
  denoNodes: number;
  procs: number;
  publicChannels: number;
  presenceChannels: number;
  /** Every `presenceEvery`-th block of clients also joins a presence channel. */
  presenceEvery: number;
  /** Distinct users per presence channel. */
  presenceUsers: number;
  /** Saturation: seconds, deliveries in flight (fill, cluster). Moderate: events/s, seconds. */
  seconds: number;
  fillWindow: number;
  clusterWindow: number;
  rate: number;
  moderateSeconds: number;
  rampWindow: number;
  payload: number;
  redis: string;
}

/** Sockets a cluster node or a load generator is given by default (under 20 000 open files). */
export const DEFAULT_PER_PROCESS = 17_000;

export const SCALE_HELP = `Usage: bun bench/scale.ts [flags]   (bench/README.md, "Scale mode")

  --phases a,b            fill (one Bun node filled to its open-file limit), cluster
                          (N nodes over Redis holding --sockets together); default both
  fill:
  --fill-procs N          load generators (default 2; each holds at most 19 000 sockets)
  --fill-max N            stop at N sockets even if the node could hold more (default: the
                          node's limit: open-file limit minus Chorus's reserve minus 64)
  cluster:
  --sockets N             sockets over all nodes (default 100000)
  --nodes N               Chorus nodes in all (default: sockets / 17 000, at least 2)
  --deno-nodes N          of them on Deno (default 1), the others on Bun
  --procs N               load generators (default: sockets / 17 000)
  --public-channels N     public channels; every socket joins one (default 10)
  --presence-channels N   presence channels (default 10)
  --presence-every N      every N-th socket also joins a presence channel (default 2)
  --presence-users N      distinct users per presence channel (default 20)
  both:
  -d, --duration S        seconds of the saturation phase (default 5)
  --window N              deliveries in flight at saturation (default 100000 for fill,
                          30000 for cluster: the slowest node holds most of them)
  --rate N                events/s of the moderate phase (default 1)
  --moderate-duration S   seconds of the moderate phase (default 8)
  --ramp-window N         WebSocket handshakes in flight (default 500)
  --payload N             bytes of event data (default 100)
  --redis URL             Redis of the cluster (default redis://127.0.0.1:6379)
  -h, --help
`;

const FLAGS = {
  help: { type: "boolean", short: "h" },
  phases: { type: "string" },
  "fill-procs": { type: "string" },
  "fill-max": { type: "string" },
  sockets: { type: "string" },
  nodes: { type: "string" },
  "deno-nodes": { type: "string" },
  procs: { type: "string" },
  "public-channels": { type: "string" },
  "presence-channels": { type: "string" },
  "presence-every": { type: "string" },
  "presence-users": { type: "string" },
  duration: { type: "string", short: "d" },
  window: { type: "string" },
  rate: { type: "string" },
  "moderate-duration": { type: "string" },
  "ramp-window": { type: "string" },
  payload: { type: "string" },
  redis: { type: "string" },
} as const;

export function parseScaleOptions(argv: string[]): ScaleOptions {
  const flags = new Flags(argv, FLAGS, SCALE_HELP);
  const phases = flags.names("phases", SCALE_PHASES, "phase");
  const sockets = flags.integer("sockets", 1, 100_000);
  const perProcess = Math.ceil(sockets / DEFAULT_PER_PROCESS);
  const options: ScaleOptions = {
    phases: phases ? SCALE_PHASES.filter((p) => phases.includes(p)) : [...SCALE_PHASES],
    fillProcs: flags.integer("fill-procs", 1, 2),
    fillMax: flags.integer("fill-max", 1, Infinity),
    sockets,
    nodes: flags.integer("nodes", 1, Math.max(2, perProcess)),
    denoNodes: flags.integer("deno-nodes", 0, 1),
    procs: flags.integer("procs", 1, perProcess),
    publicChannels: flags.integer("public-channels", 1, 10),
    presenceChannels: flags.integer("presence-channels", 0, 10),
    presenceEvery: flags.integer("presence-every", 1, 2),
    presenceUsers: flags.integer("presence-users", 1, 20),
    seconds: flags.number("duration", 0.5, 5),
    fillWindow: flags.integer("window", 1, 100_000),
    clusterWindow: flags.integer("window", 1, 30_000),
    rate: flags.number("rate", 0.1, 1),
    moderateSeconds: flags.number("moderate-duration", 0.5, 8),
    rampWindow: flags.integer("ramp-window", 1, 500),
    payload: flags.integer("payload", 32, 100),
    redis: flags.get("redis")?.value ?? "redis://127.0.0.1:6379",
  };
  if (options.denoNodes > options.nodes) fail("--deno-nodes: more than --nodes");
  if (options.procs > options.sockets) options.procs = options.sockets;
  return options;
}
