// One fuzz campaign against a fresh Chorus on the runtime running this file: frames, HTTP and
// rate-limit cases at once, under the canary and the /up poller, with the server's fds and RSS
// measured before and after. Everything it opens is closed before it returns.
import { runtimeName, startChorus } from "../support/server.ts";
import { until } from "../support/wait.ts";
import { closeAllFuzzSockets } from "./client.ts";
import { frameCases } from "./frame-cases.ts";
import { runFrames } from "./frame-runner.ts";
import { httpCases } from "./http-cases.ts";
import { runHttp } from "./http-runner.ts";
import { type Resources, resources, startMonitor } from "./monitor.ts";
import { runRate } from "./rate-runner.ts";
import { Tally } from "./report.ts";
import { fuzzConfig, MAIN } from "./spec.ts";

export interface CampaignOptions {
  seed: number;
  /** Frame cases (a burst case sends many frames). */
  frameCases: number;
  httpCases: number;
  rateCases: number;
  burstMax: number;
}

export interface CampaignResult {
  tally: Tally;
  wallMs: number;
  summary: string;
}

/** FUZZ_SEED when set (to replay a failure), else a fresh one. */
export function chooseSeed(): number {
  const env = typeof process !== "undefined" ? process.env.FUZZ_SEED : undefined;
  if (env !== undefined && env !== "") {
    const seed = Number(env);
    if (!Number.isSafeInteger(seed)) throw new Error(`FUZZ_SEED must be an integer, got ${env}`);
    return seed;
  }
  return Math.floor(Math.random() * 2 ** 31);
}

const show = (r: Resources | undefined) => (r ? `${r.fds} fds, ${r.rssMb} MB RSS` : "process gone");

export async function runCampaign(options: CampaignOptions): Promise<CampaignResult> {
  const started = Date.now();
  const tally = new Tally(options.seed);
  console.log(`fuzz (${runtimeName}): FUZZ_SEED=${options.seed}`);
  const server = await startChorus({ config: fuzzConfig() });
  try {
    const pid = server.pid;
    console.log(`fuzz (${runtimeName}): server pid ${pid}, port ${server.port}`);
    const origin = `http://127.0.0.1:${server.port}`;
    const wsUrl = (key: string) => server.wsUrl(key);
    const monitor = await startMonitor(origin, wsUrl(MAIN.key), tally);
    const before = resources(pid);
    let peak = before;
    const sampler = setInterval(() => {
      const now = resources(pid);
      if (now && peak && now.rssMb > peak.rssMb) peak = now;
    }, 250);
    const guard = (what: string) => (error: unknown) => {
      tally.problem(
        `${what} stopped: ${error instanceof Error ? error.stack ?? error.message : String(error)}`,
      );
    };
    const timed = async (what: string, work: Promise<void>) => {
      const t0 = Date.now();
      await work.catch(guard(what));
      tally.health.push(`${what} took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    };
    try {
      await Promise.all([
        timed(
          "frames",
          runFrames({
            cases: frameCases(options.seed, options.frameCases, options.burstMax),
            wsUrl,
            tally,
          }),
        ),
        timed(
          "http",
          runHttp({
            cases: httpCases(options.seed ^ 0x5bd1e995, options.httpCases),
            origin,
            tally,
            lanes: 6,
          }),
        ),
        timed("rate", runRate({ seed: options.seed, count: options.rateCases, wsUrl, tally })),
      ]);
    } finally {
      clearInterval(sampler);
      await monitor.stop().catch(guard("monitor"));
      await closeAllFuzzSockets();
    }
    // Every fuzz socket is closed: the server's fds come back to about where they were.
    const limitFds = (before?.fds ?? 0) + 20;
    await until(() => (resources(pid)?.fds ?? 0) <= limitFds, "fds back near the baseline", {
      timeout: 15_000,
      interval: 100,
    })
      .catch(() =>
        tally.problem(`fds did not come back: ${show(resources(pid))}, limit ${limitFds}`)
      );
    const after = resources(pid);
    tally.health.push(
      `server before: ${show(before)}; peak RSS ${peak?.rssMb} MB; after: ${show(after)}`,
    );
    if (!after) tally.problem("the server process is gone");
    const rssLimit = 2 * (before?.rssMb ?? 0) + 50;
    if (after && after.rssMb > rssLimit) tally.problem(`RSS ${after.rssMb} MB over ${rssLimit} MB`);
    const crashLines = [...server.stderr, ...server.stdout].filter((l) =>
      /Uncaught|panicked|Segmentation|unhandled/i.test(l)
    );
    if (crashLines.length > 0) {
      tally.problem(
        `server output has ${crashLines.length} crash lines, e.g. ${crashLines[0].slice(0, 300)}`,
      );
    }
    const errors = server.stdout.filter((l) => l.includes('"level":"error"'));
    tally.health.push(
      `server logged ${errors.length} error lines${
        errors.length ? `, e.g. ${errors[0].slice(0, 200)}` : ""
      }`,
    );
  } finally {
    await closeAllFuzzSockets();
    await server.stop();
  }
  const wallMs = Date.now() - started;
  return { tally, wallMs, summary: tally.summary(runtimeName, wallMs) };
}
