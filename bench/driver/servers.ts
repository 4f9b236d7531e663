/**
 * Starting and stopping one server process under test, through the tests' one spawner
 * (test/support/process.ts).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { freePort, type Spawned, spawnProcess } from "../../test/support/index.ts";
import { treeRssBytes } from "../lib/proc.ts";
import { checkOpenFiles, NOFILE } from "./limits.ts";
import { log } from "./log.ts";
import { OUT, ROOT } from "./paths.ts";
import { now, sleep } from "./util.ts";

export interface ServerProcess {
  label: string;
  proc: Spawned;
  pid: number;
  port: number;
  logFile: string;
}

/**
 * Spawns `command` on a free port under the open-files limit (pinned to `cpu` when given), its
 * output in bench/.out/logs/<label>.log, and waits until it answers HTTP with at least
 * `needFiles` open files allowed.
 */
export async function startServer(
  label: string,
  command: string[],
  env: Record<string, string>,
  needFiles: number,
  cpu?: number,
): Promise<ServerProcess> {
  const port = await freePort();
  if (cpu !== undefined) command = ["taskset", "-c", String(cpu), ...command];
  const logFile = join(OUT, "logs", `${label}.log`);
  // A minimal environment of its own, not the driver's: nothing the developer set leaks in.
  const proc = spawnProcess({
    cmd: command[0],
    args: command.slice(1),
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: process.env.HOME ?? "/tmp",
      NO_COLOR: "1",
      DENO_NO_UPDATE_CHECK: "1",
      HOST: "127.0.0.1",
      PORT: String(port),
      LOG_LEVEL: "warn",
      ...env,
    },
    fileLimit: NOFILE,
    logFile,
  });
  const server = { label, proc, pid: proc.pid, port, logFile };
  // LOG_LEVEL=warn hides the "listening" line, so wait until the port answers HTTP.
  const deadline = now() + 30_000;
  for (let attempt = 0; attempt < 600 && now() < deadline; attempt++) {
    if (!proc.running) {
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

/** SIGTERM, then SIGKILL after 10 s. */
export async function stopServer(server: ServerProcess): Promise<void> {
  if (!server.proc.running) return;
  const timer = setTimeout(
    () => log(`${server.label} did not stop on SIGTERM within 10 s: SIGKILL`),
    10_000,
  );
  await server.proc.stop(10_000);
  clearTimeout(timer);
}

/** RSS of a server `waitMs` after asking it for a full GC (SIGUSR2, see bench/gc-hook.ts). */
export async function rssAfterGc(server: ServerProcess, waitMs: number): Promise<number> {
  server.proc.signal("SIGUSR2");
  await sleep(waitMs);
  return treeRssBytes(server.pid);
}

/** The last `lines` lines of a server's log, for error messages. */
export function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}
