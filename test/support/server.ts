// Starts a real Chorus process for the runtime that runs the tests: `bun test` -> src/bun.ts on
// Bun, `deno test` -> src/deno.ts on Deno. Every process started here is killed by `stop()` (and,
// as a safety net, when the test process exits).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { childEnv } from "./env.ts";
import { type Spawned, spawnProcess } from "./process.ts";

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
  recovery?: { channels: string[]; ttl_s?: number; max_messages?: number };
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
  /** The server process (for /proc figures and signals). */
  pid: number;
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
  /** `await using server = await startChorus()` stops it at the end of the block. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Writes a config (object or raw text) to a fresh temp file; returns its path and a remover. */
export function writeTempConfig(config: ChorusConfig | string): { path: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), "chorus-test-"));
  const path = join(dir, "chorus.json");
  writeFileSync(path, typeof config === "string" ? config : JSON.stringify(config, null, 2));
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

interface Launched {
  process: Spawned;
  cleanup(): void;
}

/** The environment every test server starts with: listening on a free port, no drain window. */
export function serverEnv(extra: Record<string, string> = {}): Record<string, string> {
  return childEnv({
    HOST: "127.0.0.1",
    PORT: "0",
    LOG_LEVEL: "info",
    NO_COLOR: "1",
    // Stop at once on SIGTERM instead of spreading socket closes over the default drain window.
    CHORUS_DRAIN_MS: "0",
    ...extra,
  });
}

function launch(options: StartOptions): Launched {
  const env = serverEnv();
  let tmp: { path: string; remove(): void } | undefined;
  if (options.config !== undefined) {
    tmp = writeTempConfig(options.config);
    env.CHORUS_CONFIG = tmp.path;
  }
  Object.assign(env, options.env ?? {});
  const { cmd, args } = serverCommand();
  const process = spawnProcess({ cmd, args, env, cwd: repoRoot });
  return { process, cleanup: () => tmp?.remove() };
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

function listeningPort(lines: string[]): number | undefined {
  for (const line of lines) {
    const j = parseJsonLine(line);
    if (j && j.msg === "listening" && typeof j.port === "number") return j.port;
  }
  return undefined;
}

/**
 * Resolves with the port once the process logged `{"msg":"listening","port":N}`; rejects (after
 * stopping it) when it exits first or stays silent for `timeoutMs`.
 */
export async function waitListening(p: Spawned, label: string, timeoutMs: number): Promise<number> {
  const output = () => `\nstderr:\n${p.stderr.join("\n")}\nstdout:\n${p.stdout.join("\n")}`;
  const deadline = Date.now() + timeoutMs;
  let port: number | undefined;
  while ((port = listeningPort(p.stdout)) === undefined) {
    if (!p.running) {
      throw new Error(`${label} exited (code ${p.exitCode}) before listening${output()}`);
    }
    if (Date.now() > deadline) {
      await p.stop();
      throw new Error(`${label} did not log "listening" within ${timeoutMs} ms${output()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return port;
}

/** The URLs of a server listening on `port` under `prefix`. */
export function serverUrls(
  port: number,
  prefix = "",
): Pick<Chorus, "port" | "prefix" | "url" | "wsUrl"> {
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
  };
}

/** Starts Chorus and resolves once it logged `{"msg":"listening","port":N}`. */
export async function startChorus(options: StartOptions = {}): Promise<Chorus> {
  const { process: p, cleanup } = launch(options);
  let port: number;
  try {
    port = await waitListening(p, "Chorus", options.startTimeoutMs ?? 15000);
  } catch (err) {
    cleanup();
    throw err;
  }
  let expectRunning = true;
  p.exited.then((code) => {
    // Tests talking to a dead server fail fast with connection errors: say why here.
    if (!expectRunning) return;
    console.error(
      `Chorus (pid ${p.pid}) exited unexpectedly: code ${code}\n` +
        `stderr:\n${p.stderr.slice(-30).join("\n")}\nstdout (last lines):\n${
          p.stdout.slice(-10).join("\n")
        }`,
    );
  });
  const prefix = options.env?.CHORUS_PATH ??
    (typeof options.config === "object" && typeof options.config.path === "string"
      ? options.config.path
      : "");
  const stop = async () => {
    expectRunning = false;
    await p.stop();
    cleanup();
  };
  return {
    ...serverUrls(port, prefix),
    pid: p.pid,
    stdout: p.stdout,
    stderr: p.stderr,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * Runs Chorus expecting it to refuse to start. Resolves with its exit code and output; if it
 * starts listening instead, it is stopped and the result says so (`listened: true`).
 */
export async function runChorusExpectingExit(
  options: StartOptions & { timeoutMs?: number },
): Promise<{ code: number | null; stdout: string; stderr: string; listened: boolean }> {
  const { process: p, cleanup } = launch(options);
  const deadline = Date.now() + (options.timeoutMs ?? 15000);
  let listened = false;
  while (p.running && Date.now() < deadline) {
    if (listeningPort(p.stdout) !== undefined) {
      listened = true;
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const code = p.running ? null : p.exitCode ?? null;
  await p.stop();
  cleanup();
  return { code, stdout: p.stdout.join("\n"), stderr: p.stderr.join("\n"), listened };
}
