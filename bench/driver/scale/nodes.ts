/**
 * The scale mode's processes: Chorus nodes started through servers.ts, their descriptor counts,
 * and one list of what to stop, run at the end, on an error and on SIGINT / SIGTERM alike.
 */
import { readdirSync } from "node:fs";
import { openFilesLimit } from "../../lib/proc.ts";
import { log } from "../log.ts";
import { type ServerProcess, startServer, stopServer, tail } from "../servers.ts";
import { chorusCommand } from "../targets.ts";

export interface NodeSpec {
  label: string;
  runtime: "bun" | "deno";
}

/** Cleanup steps, run last-in first-out, each once and bounded (`run` never throws). */
export class Cleanup {
  readonly #steps: { what: string; step: () => Promise<unknown> }[] = [];

  add(what: string, step: () => Promise<unknown>): void {
    this.#steps.push({ what, step });
  }

  async run(): Promise<void> {
    while (this.#steps.length > 0) {
      const { what, step } = this.#steps.pop()!;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), 30_000);
      });
      try {
        const result = await Promise.race([step(), timeout]);
        if (result === "timeout") log(`cleanup: ${what} did not finish within 30 s`);
      } catch (error) {
        log(`cleanup: ${what} failed: ${(error as Error).message}`);
      } finally {
        clearTimeout(timer);
      }
    }
  }
}

/**
 * Starts the nodes one after the other (each bounded by servers.ts), each under the open-file
 * limit with `needFiles` allowed; each is stopped by `cleanup`. Chorus's config and cluster
 * settings come in `env`.
 */
export async function startNodes(
  specs: NodeSpec[],
  env: Record<string, string>,
  needFiles: number,
  cleanup: Cleanup,
): Promise<ServerProcess[]> {
  const nodes: ServerProcess[] = [];
  for (const { label, runtime } of specs) {
    const command = chorusCommand(runtime, label, { cpuProf: false, perf: false });
    const node = await startServer(label, command, env, needFiles);
    nodes.push(node);
    cleanup.add(`stopping ${label}`, () => stopServer(node));
  }
  return nodes;
}

/** Stops nodes together (each SIGTERM, SIGKILL after 10 s). */
export async function stopNodes(nodes: ServerProcess[]): Promise<void> {
  await Promise.all(nodes.map((node) => stopServer(node)));
}

/** Throws when a node died, with its exit and log tail. */
export function assertNodesAlive(nodes: ServerProcess[]): void {
  for (const node of nodes) {
    if (!node.proc.running) {
      throw new Error(
        `${node.label} died (exit ${node.proc.exitCode}, signal ${node.proc.signalCode}):\n` +
          tail(node.logFile),
      );
    }
  }
}

/** Descriptors a process holds now (each WebSocket is one). */
export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** The soft open-file limit a process runs under. */
export function fileLimit(pid: number): number {
  return openFilesLimit(pid).soft;
}

/** What the nodes logged (they run with LOG_LEVEL=warn: warnings and errors only). */
export function nodeLogLines(nodes: ServerProcess[]): { count: number; first: string[] } {
  let count = 0;
  const first: string[] = [];
  for (const node of nodes) {
    // bench/gc-hook.ts notes each forced GC: not the node's own.
    const lines = tail(node.logFile, Infinity).split("\n")
      .filter((line) => line.trim() !== "" && !line.includes('"msg":"bench gc"'));
    count += lines.length;
    for (const line of lines.slice(0, 3 - first.length)) first.push(`${node.label}: ${line}`);
  }
  return { count, first: first.map((line) => line.slice(0, 300)) };
}
