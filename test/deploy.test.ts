/**
 * The deployment files, checked without building or deploying anything: fly.toml's keys (parsed
 * with smol-toml), and that each Dockerfile runs the command the README starts Chorus with
 * (package.json's `start` script for Bun, deno.json's `start` task for Deno) and copies every file
 * that command loads.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parse } from "smol-toml";

const ROOT = new URL("../", import.meta.url);
/** Chorus's drain window when CHORUS_DRAIN_MS is not set (README). */
const DEFAULT_DRAIN_MS = 10_000;
/** Chorus's port when PORT is not set (README). */
const DEFAULT_PORT = 8080;
/** Fly's upper bound for kill_timeout, in seconds. */
const FLY_MAX_KILL_TIMEOUT = 300;

type Table = Record<string, unknown>;

function readText(path: string): string {
  return readFileSync(new URL(path, ROOT), "utf8");
}

function isTable(value: unknown): value is Table {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function table(value: unknown, name: string): Table {
  assert.ok(isTable(value), `${name} should be a table`);
  return value;
}

/** Fly accepts durations as a number of seconds or as Go-style strings ("30s", "1m30s"). */
function seconds(value: unknown, name: string): number {
  if (typeof value === "number") return value;
  assert.equal(typeof value, "string", `${name} should be a number of seconds or a duration`);
  const text = value as string;
  const units: Record<string, number> = { h: 3600, m: 60, s: 1, ms: 0.001 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)];
  assert.ok(
    parts.length > 0 && parts.map((part) => part[0]).join("") === text,
    `${name}: cannot read duration "${text}"`,
  );
  return parts.reduce((total, [, amount, unit]) => total + Number(amount) * units[unit], 0);
}

function integerEnv(env: Table, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined) return fallback;
  assert.equal(typeof raw, "string", `[env] ${name} should be a string (Fly passes env as text)`);
  assert.match(raw as string, /^\d+$/, `[env] ${name} should be a whole number`);
  return Number(raw);
}

// --- Dockerfile reading -------------------------------------------------------------------------

interface Instruction {
  keyword: string;
  args: string;
}

/** Instructions in order: comments dropped, backslash continuations joined. */
function instructions(text: string): Instruction[] {
  const result: Instruction[] = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("#")) continue;
    if (line.endsWith("\\")) {
      pending += line.slice(0, -1) + " ";
      continue;
    }
    const logical = (pending + line).trim();
    pending = "";
    if (!logical) continue;
    const match = /^(\S+)\s*(.*)$/s.exec(logical)!;
    result.push({ keyword: match[1].toUpperCase(), args: match[2] });
  }
  return result;
}

/** The instructions of the last stage, the one that becomes the image. */
function finalStage(all: Instruction[]): Instruction[] {
  const from = all.map((instruction) => instruction.keyword).lastIndexOf("FROM");
  assert.ok(from >= 0, "Dockerfile has no FROM");
  return all.slice(from);
}

/** The last CMD of the final stage, which must be in exec (JSON array) form. */
function finalCommand(stage: Instruction[]): string[] {
  const cmd = stage.filter((instruction) => instruction.keyword === "CMD").at(-1);
  assert.ok(cmd, "the final stage has no CMD");
  let argv: unknown;
  try {
    argv = JSON.parse(cmd.args);
  } catch {
    assert.fail(`CMD should be a JSON array (exec form, so signals reach Chorus): ${cmd.args}`);
  }
  assert.ok(
    Array.isArray(argv) && argv.length > 0 && argv.every((arg) => typeof arg === "string"),
    `CMD should be a non-empty JSON array of strings: ${cmd.args}`,
  );
  return argv as string[];
}

/** Source paths of the final stage's COPY/ADD instructions that take files from the context. */
function copiedFromContext(stage: Instruction[]): string[] {
  const sources: string[] = [];
  for (const { keyword, args } of stage) {
    if (keyword !== "COPY" && keyword !== "ADD") continue;
    const words = args.trim().startsWith("[")
      ? JSON.parse(args) as string[]
      : args.trim().split(/\s+/);
    const flags = words.filter((word) => word.startsWith("--"));
    if (flags.some((flag) => flag.startsWith("--from="))) continue;
    const paths = words.filter((word) => !word.startsWith("--"));
    sources.push(...paths.slice(0, -1).map((path) => path.replace(/^\.\//, "").replace(/\/$/, "")));
  }
  return sources;
}

/** Repository files an entry point loads: itself and its relative imports, transitively. */
function localModules(entry: string): string[] {
  const seen = new Set<string>();
  const queue = [new URL(entry, ROOT)];
  while (queue.length > 0) {
    const url = queue.pop()!;
    const path = url.href.slice(ROOT.href.length);
    if (seen.has(path)) continue;
    seen.add(path);
    const source = readFileSync(url, "utf8");
    for (const match of source.matchAll(/\b(?:from|import)\s*\(?\s*["'](\.\.?\/[^"']+)["']/g)) {
      queue.push(new URL(match[1], url));
    }
  }
  return [...seen].sort();
}

function dockerignored(): string[] {
  if (!existsSync(new URL(".dockerignore", ROOT))) return [];
  return readText(".dockerignore").split("\n").map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#") && !line.startsWith("!"))
    .map((line) => line.replace(/^\.?\//, "").replace(/\/$/, ""));
}

/** Each file must sit under a path the final stage copies, and not be left out of the context. */
function assertCopied(stage: Instruction[], files: string[], dockerfile: string): void {
  const copied = copiedFromContext(stage);
  const ignored = dockerignored();
  for (const file of files) {
    const source = copied.find((path) =>
      path === "." || file === path || file.startsWith(path + "/")
    );
    assert.ok(source !== undefined, `${dockerfile} does not copy ${file}`);
    const top = file.split("/")[0];
    assert.ok(!ignored.includes(top), `.dockerignore leaves out ${top}, which ${file} needs`);
  }
}

/** Every npm install is `npm ci`, which installs exactly package-lock.json or fails. */
function assertInstallsFromLockfile(name: string): void {
  const runs = instructions(readText(name)).filter((instruction) => instruction.keyword === "RUN");
  assert.ok(runs.some((run) => /\bnpm ci\b/.test(run.args)), `${name} should run npm ci`);
  for (const run of runs) {
    assert.doesNotMatch(run.args, /\bnpm (install|i)\b/, `${name}: npm install ignores the lock`);
  }
}

function dockerfile(name: string): Instruction[] {
  return finalStage(instructions(readText(name)));
}

const packageJson = JSON.parse(readText("package.json")) as {
  scripts: Record<string, string>;
  devDependencies: Record<string, string>;
};
const denoJson = JSON.parse(readText("deno.json")) as { tasks: Record<string, string> };

// --- fly.toml -----------------------------------------------------------------------------------

/** fly.toml, parsed in each test, so that a broken file fails the tests, not this file's loading. */
function readFly(): { fly: Table; env: Table } {
  const fly = parse(readText("fly.toml")) as Table;
  return { fly, env: fly.env === undefined ? {} : table(fly.env, "[env]") };
}

function httpService(fly: Table): Table {
  return table(fly.http_service, "[http_service]");
}

/** The port Chorus listens on in the machine: PORT from [env], else Chorus's default. */
function listenPort(env: Table): number {
  return integerEnv(env, "PORT", DEFAULT_PORT);
}

describe("fly.toml", () => {
  it("sends SIGTERM and waits longer than the drain window before killing", () => {
    const { fly, env } = readFly();
    assert.equal(fly.kill_signal, "SIGTERM");
    const drainMs = integerEnv(env, "CHORUS_DRAIN_MS", DEFAULT_DRAIN_MS);
    const killTimeout = seconds(fly.kill_timeout, "kill_timeout");
    assert.ok(
      killTimeout > drainMs / 1000,
      `kill_timeout ${killTimeout}s should exceed CHORUS_DRAIN_MS ${drainMs} ms`,
    );
    assert.ok(killTimeout <= FLY_MAX_KILL_TIMEOUT, `Fly caps kill_timeout at 300 s`);
  });

  it("routes to the port Chorus listens on", () => {
    const { fly, env } = readFly();
    assert.equal(httpService(fly).internal_port, listenPort(env));
  });

  it("never stops machines for being idle", () => {
    assert.equal(httpService(readFly().fly).auto_stop_machines, "off");
  });

  it("limits concurrency by connections, with soft_limit below hard_limit", () => {
    const service = httpService(readFly().fly);
    const concurrency = table(service.concurrency, "[http_service.concurrency]");
    assert.equal(concurrency.type, "connections");
    const { soft_limit: soft, hard_limit: hard } = concurrency;
    assert.ok(Number.isInteger(soft) && (soft as number) > 0, "soft_limit should be set");
    assert.ok(Number.isInteger(hard) && (hard as number) > 0, "hard_limit should be set");
    assert.ok((soft as number) < (hard as number), `soft_limit ${soft} < hard_limit ${hard}`);
  });

  it("checks GET /ready over HTTP", () => {
    const { fly, env } = readFly();
    const service = httpService(fly);
    assert.ok(Array.isArray(service.checks), "[[http_service.checks]] should be present");
    const prefix = typeof env.CHORUS_PATH === "string" ? env.CHORUS_PATH.replace(/\/$/, "") : "";
    const ready = service.checks
      .map((check, index) => table(check, `[[http_service.checks]] #${index + 1}`))
      .find((check) => check.path === `${prefix}/ready`);
    assert.ok(ready, `an HTTP check on ${prefix}/ready`);
    assert.equal(String(ready.method ?? "GET").toUpperCase(), "GET");
    if (ready.port !== undefined) assert.equal(ready.port, listenPort(env));
    if (ready.protocol !== undefined) assert.equal(ready.protocol, "http");
    for (const key of ["interval", "timeout"]) {
      if (ready[key] !== undefined) assert.ok(seconds(ready[key], key) > 0);
    }
  });

  it("lets each machine take its region from FLY_REGION", () => {
    const { fly, env } = readFly();
    assert.equal(env.CHORUS_REGION, undefined, "CHORUS_REGION would override FLY_REGION");
    assert.equal(fly.regions, undefined, "place machines with `fly scale count --region`");
  });

  it("keeps secrets out of the file", () => {
    const { env } = readFly();
    for (const name of ["CHORUS_APP_SECRET", "CHORUS_METRICS_TOKEN", "REDIS_URL"]) {
      assert.equal(env[name], undefined, `${name} belongs in \`fly secrets set\``);
    }
  });

  it("scrapes /metrics where Chorus serves it", () => {
    const { fly, env } = readFly();
    if (fly.metrics === undefined) return;
    const metrics = table(fly.metrics, "[metrics]");
    assert.equal(metrics.path, "/metrics");
    assert.equal(metrics.port, integerEnv(env, "CHORUS_METRICS_PORT", listenPort(env)));
  });

  it("builds with a Dockerfile of this repository", () => {
    const { fly } = readFly();
    const build = fly.build === undefined ? {} : table(fly.build, "[build]");
    const name = typeof build.dockerfile === "string" ? build.dockerfile : "Dockerfile";
    assert.ok(existsSync(new URL(name, ROOT)), `${name} should exist`);
  });
});

// --- Dockerfiles --------------------------------------------------------------------------------

describe("Dockerfile (Bun)", () => {
  it("runs package.json's start command", () => {
    const cmd = finalCommand(dockerfile("Dockerfile"));
    assert.deepEqual(cmd, packageJson.scripts.start.trim().split(/\s+/));
  });

  it("leaves the base image's entry point alone (it execs CMD)", () => {
    const stage = dockerfile("Dockerfile");
    assert.equal(stage.some((instruction) => instruction.keyword === "ENTRYPOINT"), false);
  });

  it("uses the Bun version package.json pins", () => {
    const stage = dockerfile("Dockerfile");
    const from = stage[0].args.split(/\s+/).find((word) => !word.startsWith("--"))!;
    const match = /^oven\/bun:(.+)$/.exec(from);
    assert.ok(match, `the final stage should be an oven/bun image, not ${from}`);
    const version = packageJson.devDependencies.bun;
    assert.ok(
      match[1] === version || match[1].startsWith(`${version}-`),
      `oven/bun:${match[1]} should be Bun ${version}`,
    );
  });

  it("installs dependencies from the lockfile", () => {
    assertInstallsFromLockfile("Dockerfile");
  });

  it("copies every file the start command loads", () => {
    const stage = dockerfile("Dockerfile");
    const entry = finalCommand(stage).find((arg) => arg.endsWith(".ts"))!;
    assertCopied(stage, ["package.json", ...localModules(entry)], "Dockerfile");
  });
});

describe("Dockerfile.deno", () => {
  it("runs deno.json's start task: the same deno, flags and entry file", () => {
    const cmd = finalCommand(dockerfile("Dockerfile.deno"));
    const task = denoJson.tasks.start.trim().split(/\s+/);
    // The task calls ./node_modules/.bin/deno; the image has that binary on its PATH.
    assert.equal(cmd[0].split("/").at(-1), "deno");
    assert.equal(task[0].split("/").at(-1), "deno");
    assert.deepEqual(cmd.slice(1), task.slice(1));
  });

  it("has no entry point in front of the command", () => {
    const stage = dockerfile("Dockerfile.deno");
    assert.equal(stage.some((instruction) => instruction.keyword === "ENTRYPOINT"), false);
  });

  it("installs dependencies, Deno included, from the lockfile", () => {
    assertInstallsFromLockfile("Dockerfile.deno");
  });

  it("copies every file the start task loads, and deno.json", () => {
    const stage = dockerfile("Dockerfile.deno");
    const entry = finalCommand(stage).find((arg) => arg.endsWith(".ts"))!;
    assertCopied(stage, ["package.json", "deno.json", ...localModules(entry)], "Dockerfile.deno");
  });
});
