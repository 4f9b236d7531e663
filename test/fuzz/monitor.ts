// Global checks around a fuzz run: a canary subscriber that must see a gap-free numbered sequence
// of events triggered throughout, /up polled throughout, and the server's RSS and open fds.
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { childEnv } from "../support/env.ts";
import { spawnProcess } from "../support/process.ts";
import { isBun, repoRoot } from "../support/server.ts";
import { FuzzSocket } from "./client.ts";
import type { Tally } from "./report.ts";
import { hmac, httpStringToSign, MAIN, md5 } from "./spec.ts";

export interface Resources {
  rssMb: number;
  fds: number;
}

export function resources(pid: number): Resources | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
    const state = /State:\s+(\S)/.exec(status)?.[1];
    if (state === "Z") return undefined;
    return { rssMb: Math.round(kb / 102.4) / 10, fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return undefined;
  }
}

export async function trigger(origin: string, channel: string, data: string): Promise<number> {
  const path = `/apps/${MAIN.id}/events`;
  const body = JSON.stringify({ name: "tick", channel, data });
  const params = new URLSearchParams({
    auth_key: MAIN.key,
    auth_timestamp: String(Math.floor(Date.now() / 1000)),
    auth_version: "1.0",
    body_md5: md5(body),
  });
  params.set("auth_signature", hmac(MAIN.secret, httpStringToSign("POST", path, params)));
  const res = await fetch(`${origin}${path}?${params}`, {
    method: "POST",
    body,
    headers: { "content-type": "application/json" },
  });
  await res.body?.cancel();
  return res.status;
}

export interface Monitor {
  /** Stops triggering and polling; checks the canary got every event, in order. */
  stop(): Promise<void>;
}

export async function startMonitor(origin: string, wsUrl: string, tally: Tally): Promise<Monitor> {
  const canary = await FuzzSocket.connect(wsUrl);
  canary.send(JSON.stringify({ event: "pusher:subscribe", data: { channel: "canary" } }));
  await canary.collectUntil((f) => f.event === "pusher_internal:subscription_succeeded", 10_000);
  let running = true;
  let sent = 0;
  const ticker = (async () => {
    while (running) {
      const status = await trigger(origin, "canary", String(sent)).catch((e) => String(e));
      if (status !== 200) tally.problem(`canary trigger #${sent} answered ${status}`);
      else sent++;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const poller = startUpPoller(origin, tally);
  return {
    async stop() {
      running = false;
      await ticker;
      const polls = await poller.stop();
      canary.send('{"event":"pusher:ping","data":{}}');
      const got = await canary.collectPongs(1, 15_000);
      const seq = got.frames.filter((f) => f.event === "tick" && f.channel === "canary").map((f) =>
        Number(f.data)
      );
      const gap = seq.findIndex((n, i) => n !== i);
      tally.health.push(
        `canary got ${seq.length}/${sent} events${
          gap < 0 && seq.length === sent ? ", gap-free and in order" : ""
        }`,
      );
      tally.health.push(
        `/up polled ${polls.count} times from another process, slowest ${polls.slowestMs} ms`,
      );
      if (polls.count === 0) tally.problem("/up was never polled");
      if (gap >= 0 || seq.length !== sent) {
        tally.problem(
          `canary sequence broken: ${seq.length} of ${sent} received, first gap at #${gap} (${
            seq.slice(Math.max(0, gap - 2), gap + 3).join(",")
          })`,
        );
      }
      if (got.closed !== undefined) tally.problem(`canary socket closed with ${got.closed}`);
      await canary.closeAndWait();
    },
  };
}

/** /up, polled from a child process (the fuzzer's own loop is too busy to time it fairly). */
function startUpPoller(
  origin: string,
  tally: Tally,
): { stop(): Promise<{ count: number; slowestMs: number }> } {
  const file = fileURLToPath(new URL("./up-poller.ts", import.meta.url));
  const [cmd, args] = isBun
    ? [`${repoRoot}node_modules/.bin/bun`, ["run", file, origin]]
    : [`${repoRoot}node_modules/.bin/deno`, ["run", "--allow-net", file, origin]];
  const poller = spawnProcess({ cmd, args, env: childEnv() });
  let count = 0;
  let slowestMs = 0;
  let seen = 0;
  const tallyLines = () => {
    for (; seen < poller.stdout.length; seen++) {
      const [status, ms] = poller.stdout[seen].split(" ");
      count++;
      slowestMs = Math.max(slowestMs, Number(ms));
      if (status !== "200") tally.problem(`/up answered ${status} during the run`);
    }
  };
  return {
    async stop() {
      await poller.stop();
      tallyLines();
      for (const line of poller.stderr) console.error(line);
      return { count, slowestMs };
    },
  };
}
