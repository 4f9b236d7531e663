// The one process spawner of the tests and the bench: every child it starts is killed when the
// parent exits (one exit hook), its output is kept as lines (or written to a log file), and
// signals go through process.kill(pid) because Deno's ChildProcess.kill() ignores every call
// after the first one (a SIGSTOPped child could never be stopped).
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import process from "node:process";

export type Signal = "SIGTERM" | "SIGINT" | "SIGKILL" | "SIGSTOP" | "SIGCONT" | "SIGUSR2";

export interface ProcessOptions {
  cmd: string;
  args?: string[];
  /** The child's whole environment (build it with `childEnv`). */
  env: Record<string, string>;
  cwd?: string;
  /** Run under `ulimit -n N` (the shell execs the command, so the pid is the command's). */
  fileLimit?: number;
  /** Send stdout and stderr to this file instead of keeping them as lines. */
  logFile?: string;
  /** Keep at most this many lines per stream (default: all). */
  keepLines?: number;
}

export interface Spawned {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly stdout: string[];
  readonly stderr: string[];
  /** Resolves with the exit code, -1 when killed by a signal, -2 when it could not start. */
  readonly exited: Promise<number | null>;
  /** The exit code once it exited (see `exited`), undefined while it runs. */
  readonly exitCode: number | null | undefined;
  /** The signal that ended it, if one did. */
  readonly signalCode: string | null;
  readonly running: boolean;
  /** Sends a signal without waiting; nothing happens once it exited. */
  signal(sig: Signal): void;
  /** SIGCONT (a frozen child cannot act on SIGTERM), SIGTERM, SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const live = new Set<Spawned>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const spawned of live) spawned.signal("SIGKILL");
  });
}

/** Turns chunks into lines pushed onto `sink` (at most `keep` of them). */
function lineCollector(
  sink: string[],
  keep = Infinity,
): (chunk: Uint8Array | string) => void {
  let rest = "";
  const decoder = new TextDecoder();
  return (chunk) => {
    rest += typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = rest.indexOf("\n")) >= 0) {
      sink.push(rest.slice(0, nl).replace(/\r$/, ""));
      rest = rest.slice(nl + 1);
    }
    if (sink.length > keep) sink.splice(0, sink.length - keep);
  };
}

const ULIMIT_EXEC = 'ulimit -n "$1" || exit 111; shift; exec "$@"';

export function spawnProcess(o: ProcessOptions): Spawned {
  installExitHook();
  let [cmd, args] = [o.cmd, o.args ?? []];
  if (o.fileLimit !== undefined) {
    [cmd, args] = ["/bin/sh", ["-c", ULIMIT_EXEC, "sh", String(o.fileLimit), cmd, ...args]];
  }
  const log = o.logFile === undefined ? undefined : openSync(o.logFile, "w");
  const child = spawn(cmd, args, {
    cwd: o.cwd,
    env: o.env,
    stdio: log === undefined ? ["ignore", "pipe", "pipe"] : ["ignore", log, log],
  });
  if (log !== undefined) closeSync(log);
  const stdout: string[] = [];
  const stderr: string[] = [];
  child.stdout?.on("data", lineCollector(stdout, o.keepLines));
  child.stderr?.on("data", lineCollector(stderr, o.keepLines));
  let exitCode: number | null | undefined;
  let signalCode: string | null = null;
  const exited = new Promise<number | null>((resolve) => {
    child.on("exit", (code, sig) => {
      exitCode = code ?? (sig ? -1 : null);
      signalCode = sig;
      live.delete(spawned);
      resolve(exitCode);
    });
    child.on("error", (err) => {
      stderr.push(`spawn error: ${err.message}`);
      exitCode = -2;
      live.delete(spawned);
      resolve(exitCode);
    });
  });
  const signal = (sig: Signal) => {
    if (exitCode !== undefined || child.pid === undefined) return;
    try {
      process.kill(child.pid, sig);
    } catch {
      // exited meanwhile
    }
  };
  const stop = async (graceMs = 3000) => {
    if (exitCode !== undefined) return;
    signal("SIGCONT");
    signal("SIGTERM");
    const timer = setTimeout(() => signal("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  };
  const spawned: Spawned = {
    child,
    pid: child.pid ?? -1,
    stdout,
    stderr,
    exited,
    get exitCode() {
      return exitCode;
    },
    get signalCode() {
      return signalCode;
    },
    get running() {
      return exitCode === undefined;
    },
    signal,
    stop,
    [Symbol.asyncDispose]: () => stop(),
  };
  live.add(spawned);
  return spawned;
}
