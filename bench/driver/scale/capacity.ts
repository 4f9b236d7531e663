/**
 * What the scale mode asks of the machine, checked before anything starts: open files per node
 * and per load generator, ephemeral ports per destination, memory, Redis. When something does not
 * fit, the run stops with a message and exit 2 instead of failing (or hanging) half-way.
 */
import { readFileSync } from "node:fs";
import { reserveFor } from "../../../src/fds.ts";
import { ephemeralPorts, NOFILE } from "../limits.ts";
import { fail, type Line } from "../log.ts";
import { pingRedis } from "../redis.ts";
import type { ScaleOptions } from "./cli.ts";

/** Descriptors a filled node keeps free below Chorus's own ceiling (HTTP calls, the runtime). */
export const FILL_FD_MARGIN = 64;
/** Descriptors a cluster node needs beyond its sockets (Redis, HTTP calls, the runtime). */
export const NODE_FD_MARGIN = 300;
/** Sockets one load generator may hold (it runs under the same open-file limit). */
export const MAX_PER_LOADGEN = Math.min(19_000, NOFILE - 200);
/** Ports kept free per source/destination pair (other connections, TIME_WAIT). */
const PORT_MARGIN = 3_000;

/**
 * Bytes per socket, rounded up from the scale runs on Bun 1.4.5 / Deno 2.9.6 (bench/README.md):
 * a Bun WebSocket client in a load generator, a socket on a Chorus node on Bun and on Deno, and
 * the kernel's share of a loopback TCP connection (both ends, not in any process's RSS).
 */
const BYTES = { client: 16_000, bun: 8_000, deno: 40_000, kernel: 4_000 };
/** RSS of a process before its sockets. */
const PROCESS_BYTES = 120 * 2 ** 20;

/** The sockets Chorus accepts before it refuses upgrades (503): its limit minus its reserve. */
export function fdCeiling(limit: number): number {
  return limit - reserveFor(limit);
}

function memAvailable(): number {
  const match = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync("/proc/meminfo", "utf8"));
  return match ? Number(match[1]) * 1024 : Infinity;
}

const mib = (bytes: number) => Math.round(bytes / 2 ** 20);

/** The plan of each phase, after checking that the machine can hold it (else exit 2). */
export async function checkScale(o: ScaleOptions): Promise<Line> {
  const ports = ephemeralPorts();
  const problems: string[] = [];
  const plan: Line = { open_files_limit: NOFILE, ephemeral_ports: ports.count };
  let memory = 0;
  if (o.phases.includes("fill")) {
    const sockets = Math.min(o.fillMax, fdCeiling(NOFILE) - FILL_FD_MARGIN);
    const perProc = Math.ceil(sockets / o.fillProcs);
    if (perProc > MAX_PER_LOADGEN) {
      problems.push(
        `fill: ${sockets} sockets over ${o.fillProcs} load generator(s) is ${perProc} each, ` +
          `above ${MAX_PER_LOADGEN}; use --fill-procs ${Math.ceil(sockets / MAX_PER_LOADGEN)}`,
      );
    }
    if (sockets > ports.count - PORT_MARGIN) {
      problems.push(`fill: ${sockets} sockets to one port exceed the ephemeral port range`);
    }
    memory = Math.max(
      memory,
      sockets * (BYTES.client + BYTES.bun + BYTES.kernel) + (1 + o.fillProcs) * PROCESS_BYTES,
    );
    plan.fill = { sockets_at_most: sockets, per_load_generator: perProc };
  }
  if (o.phases.includes("cluster")) {
    const perNode = Math.ceil(o.sockets / o.nodes);
    const perProc = Math.ceil(o.sockets / o.procs);
    const nodeCap = fdCeiling(NOFILE) - NODE_FD_MARGIN;
    if (perNode > nodeCap) {
      problems.push(
        `cluster: ${o.sockets} sockets over ${o.nodes} nodes is ${perNode} per node, above ` +
          `${nodeCap} (open-file limit ${NOFILE} minus Chorus's reserve and ${NODE_FD_MARGIN}); ` +
          `use --nodes ${Math.ceil(o.sockets / nodeCap)} or more`,
      );
    }
    if (perNode > ports.count - PORT_MARGIN) {
      problems.push(
        `cluster: ${perNode} sockets from 127.0.0.1 to one node exceed the ${ports.count} ` +
          "ephemeral ports; use more --nodes",
      );
    }
    if (perProc > MAX_PER_LOADGEN) {
      problems.push(
        `cluster: ${perProc} sockets per load generator, above ${MAX_PER_LOADGEN}; use --procs ` +
          `${Math.ceil(o.sockets / MAX_PER_LOADGEN)} or more`,
      );
    }
    const deno = Math.round((o.sockets * o.denoNodes) / o.nodes);
    const nodes = (o.sockets - deno) * BYTES.bun + deno * BYTES.deno;
    memory = Math.max(
      memory,
      o.sockets * (BYTES.client + BYTES.kernel) + nodes + (o.nodes + o.procs) * PROCESS_BYTES,
    );
    try {
      await pingRedis(o.redis);
    } catch (error) {
      problems.push(`cluster: Redis at ${o.redis} does not answer: ${(error as Error).message}`);
    }
    plan.cluster = {
      sockets: o.sockets,
      nodes: o.nodes,
      deno_nodes: o.denoNodes,
      per_node: perNode,
      load_generators: o.procs,
      per_load_generator: perProc,
    };
  }
  const available = memAvailable();
  plan.memory_needed_mib = mib(memory);
  plan.memory_available_mib = mib(available);
  if (memory > 0.85 * available) {
    problems.push(
      `about ${mib(memory)} MiB needed (at ${BYTES.client + BYTES.kernel} B per client socket ` +
        `and ${BYTES.bun} / ${BYTES.deno} B per socket on a Bun / Deno node), ` +
        `${mib(available)} MiB available; ask for fewer sockets`,
    );
  }
  if (problems.length > 0) fail(`this machine cannot hold the run:\n  ${problems.join("\n  ")}`);
  return plan;
}
