// Starts a real Chorus process for the runtime that runs the tests: `bun test` -> src/bun.ts on
// Bun, `deno test` -> src/deno.ts on Deno. Every process started here is killed by `stop()` (and,
// as a safety net, when the test process exits).
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
export const runtimeName = isBun ? "bun" : "deno";
export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

const BUN = join(repoRoot, "node_modules/.bin/bun");
const DENO = join(repoRoot, "node_modules/.bin/deno");

/** The command that runs the server entry file on a runtime (default: the one under test). */
export function serverCommand(
  runtime: "bun" | "deno" = isBun ? "bun" : "deno",
): { cmd: string; args: string[] } {
  return runtime === "bun"
    ? { cmd: BUN, args: ["run", join(repoRoot, "src/bun.ts")] }
    : { cmd: DENO, args: ["run", "--allow-all", join(repoRoot, "src/deno.ts")] };
}

/** Per-app config, snake_case as in the config file. Every key is optional except id/key/secret. */
export interface AppConfig {
  id: string;
  key: string;
  secret: string;
  enabled?: boolean;
  allowed_origins?: string[];
  max_connections?: number | null;
  activity_timeout?: number;
  pong_timeout?: number;
  max_message_size?: number;
  client_events?: { enabled?: boolean; rate_limit?: number };
  max_presence_members?: number;
  max_presence_member_size?: number;
  max_request_size?: number;
  max_event_size?: number;
}

export interface ChorusConfig {
  host?: string;
  port?: number;
  path?: string;
  apps?: AppConfig[];
  [key: string]: unknown;
}

export interface StartOptions {
  /** Extra environment (merged over the defaults HOST=127.0.0.1, PORT=0, LOG_LEVEL=info). */
  env?: Record<string, string>;
  /** Written to a temp JSON file passed as CHORUS_CONFIG. */
  config?: ChorusConfig | string;
  /** How long to wait for the "listening" log line. */
  startTimeoutMs?: number;
}

export interface Chorus {
  port: number;
  /** Route prefix ("" or e.g. "/pusher"). */
  prefix: string;
  /** http://127.0.0.1:{port}{prefix} */
  url: string;
  /** ws://127.0.0.1:{port}{prefix}/app/{key}[?query] */
  wsUrl(key: string, query?: string | Record<string, string>): string;
  /** Every stdout line received so far. */
  stdout: string[];
  stderr: string[];
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Kills `child` if the test process exits while it still runs (every spawner uses this). */
export function trackChild(child: ChildProcess): void {
  installExitHook();
  live.add(child);
  child.on("exit", () => live.delete(child));
  child.on("error", () => live.delete(child));
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const child of live) {
      try {
        signal(child, "SIGKILL");
      } catch {
        // already gone
      }
    }
  });
}

function signal(child: ChildProcess, name: "SIGTERM" | "SIGKILL"): void {
  try {
    if (child.pid !== undefined) process.kill(child.pid, name);
  } catch {
    // already gone
  }
}

/** Environment for the child: the test process's env without any CHORUS_* / PORT / HOST. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined) continue;
    if (k.startsWith("CHORUS_") || k === "PORT" || k === "HOST" || k === "LOG_LEVEL") continue;
    if (k === "REDIS_URL" || k === "REDIS_SUBSCRIBE_URL") continue;
    env[k] = v;
  }
  return env;
}

/** Writes a config (object or raw text) to a fresh temp file; returns its path and a remover. */
export function writeTempConfig(config: ChorusConfig | string): { path: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), "chorus-test-"));
  const path = join(dir, "chorus.json");
  writeFileSync(path, typeof config === "string" ? config : JSON.stringify(config, null, 2));
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

interface Spawned {
  child: ChildProcess;
  stdout: string[];
  stderr: string[];
  exited: Promise<number | null>;
  /** Set while the process is expected to keep running (after "listening", before stop()). */
  watch: { running: boolean };
  cleanup(): void;
}

function spawnChorus(options: StartOptions): Spawned {
  installExitHook();
  const env: Record<string, string> = {
    ...baseEnv(),
    HOST: "127.0.0.1",
    PORT: "0",
    LOG_LEVEL: "info",
    NO_COLOR: "1",
    // Stop at once on SIGTERM instead of spreading socket closes over the default drain window.
    CHORUS_DRAIN_MS: "0",
  };
  let tmp: { path: string; remove(): void } | undefined;
  if (options.config !== undefined) {
    tmp = writeTempConfig(options.config);
    env.CHORUS_CONFIG = tmp.path;
  }
  Object.assign(env, options.env ?? {});
  const { cmd, args } = serverCommand();
  const child = spawn(cmd, args, { cwd: repoRoot, env, stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  const stdout: string[] = [];
  const stderr: string[] = [];
  const collect = (sink: string[]) => {
    let rest = "";
    return (chunk: Uint8Array | string) => {
      rest += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
      let nl: number;
      while ((nl = rest.indexOf("\n")) >= 0) {
        sink.push(rest.slice(0, nl).replace(/\r$/, ""));
        rest = rest.slice(nl + 1);
      }
    };
  };
  child.stdout?.on("data", collect(stdout));
  child.stderr?.on("data", collect(stderr));
  const watch = { running: false };
  const exited = new Promise<number | null>((resolve) => {
    child.on("exit", (code, signal) => {
      live.delete(child);
      if (watch.running) {
        // Tests talking to a dead server fail fast with connection errors: say why here.
        console.error(
          `Chorus (pid ${child.pid}) exited unexpectedly: code ${code}, signal ${signal}\n` +
            `stderr:\n${stderr.slice(-30).join("\n")}\nstdout (last lines):\n${
              stdout.slice(-10).join("\n")
            }`,
        );
      }
      resolve(code ?? (signal ? -1 : null));
    });
    child.on("error", (err) => {
      stderr.push(`spawn error: ${err.message}`);
      live.delete(child);
      resolve(-2);
    });
  });
  return { child, stdout, stderr, exited, watch, cleanup: () => tmp?.remove() };
}

function parseJsonLine(line: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(line);
    return v !== null && typeof v === "object" && !Array.isArray(v)
      ? v as Record<string, unknown>
      : undefined;
  } catch {
    return undefined;
  }
}

/** Parses the stdout lines of a server as JSON objects (undefined for non-JSON lines). */
export function jsonLines(lines: string[]): (Record<string, unknown> | undefined)[] {
  return lines.filter((l) => l.trim() !== "").map(parseJsonLine);
}

async function killAndWait(s: Spawned): Promise<void> {
  s.watch.running = false;
  if (s.child.exitCode === null && s.child.signalCode === null) {
    // process.kill, not child.kill: Deno's ChildProcess ignores every kill() after the first.
    signal(s.child, "SIGTERM");
    const timer = setTimeout(() => signal(s.child, "SIGKILL"), 3000);
    await s.exited;
    clearTimeout(timer);
  }
  s.cleanup();
}

/** Starts Chorus and resolves once it logged `{"msg":"listening","port":N}`. */
export async function startChorus(options: StartOptions = {}): Promise<Chorus> {
  const s = spawnChorus(options);
  const timeoutMs = options.startTimeoutMs ?? 15000;
  const port = await new Promise<number>((resolve, reject) => {
    let done = false;
    const finish = (err: Error | undefined, port?: number) => {
      if (done) return;
      done = true;
      clearInterval(poll);
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(port!);
    };
    const check = () => {
      for (const line of s.stdout) {
        const j = parseJsonLine(line);
        if (j && j.msg === "listening" && typeof j.port === "number") {
          return finish(undefined, j.port);
        }
      }
    };
    const poll = setInterval(check, 10);
    const timer = setTimeout(() => {
      finish(
        new Error(
          `Chorus did not log "listening" within ${timeoutMs} ms.\nstdout:\n${
            s.stdout.join("\n")
          }\nstderr:\n${s.stderr.join("\n")}`,
        ),
      );
    }, timeoutMs);
    s.exited.then((code) => {
      check();
      finish(
        new Error(
          `Chorus exited (code ${code}) before listening.\nstderr:\n${
            s.stderr.join("\n")
          }\nstdout:\n${s.stdout.join("\n")}`,
        ),
      );
    });
  }).catch(async (err) => {
    await killAndWait(s);
    throw err;
  });

  s.watch.running = true;
  const prefix = options.env?.CHORUS_PATH ??
    (typeof options.config === "object" && typeof options.config.path === "string"
      ? options.config.path
      : "");
  const base = `127.0.0.1:${port}${prefix}`;
  return {
    port,
    prefix,
    url: `http://${base}`,
    wsUrl(
      key: string,
      query: string | Record<string, string> = "protocol=7&client=js&version=8.4.0&flash=false",
    ) {
      const q = typeof query === "string" ? query : new URLSearchParams(query).toString();
      return `ws://${base}/app/${encodeURIComponent(key)}${q ? `?${q}` : ""}`;
    },
    stdout: s.stdout,
    stderr: s.stderr,
    stop: () => killAndWait(s),
  };
}

/**
 * Runs Chorus expecting it to refuse to start. Resolves with its exit code and output; if it
 * starts listening instead, it is killed and the result says so (`listened: true`).
 */
export async function runChorusExpectingExit(
  options: StartOptions & { timeoutMs?: number },
): Promise<{ code: number | null; stdout: string; stderr: string; listened: boolean }> {
  const s = spawnChorus(options);
  const timeoutMs = options.timeoutMs ?? 15000;
  let listened = false;
  const result = await new Promise<number | null>((resolve) => {
    const poll = setInterval(() => {
      if (s.stdout.some((l) => parseJsonLine(l)?.msg === "listening")) {
        listened = true;
        finish(null);
      }
    }, 10);
    const timer = setTimeout(() => finish(null), timeoutMs);
    let done = false;
    function finish(code: number | null) {
      if (done) return;
      done = true;
      clearInterval(poll);
      clearTimeout(timer);
      resolve(code);
    }
    s.exited.then((code) => finish(code));
  });
  await killAndWait(s);
  return { code: result, stdout: s.stdout.join("\n"), stderr: s.stderr.join("\n"), listened };
}
