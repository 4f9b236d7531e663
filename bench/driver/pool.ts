/**
 * The clients: load-generator processes (bench/loadgen.ts) driven over Bun IPC, each holding a
 * share of the WebSocket clients, and their reports merged into one.
 */
import type { Subprocess } from "bun";
import { join } from "node:path";
import process from "node:process";
import { Histogram } from "../lib/hist.ts";
import type { Spread } from "../lib/spread.ts";
import type { CheckReport, Command, Report } from "../loadgen.ts";
import { checkOpenFiles, NOFILE, ULIMIT_EXEC } from "./limits.ts";
import { APP } from "./names.ts";
import { BUN, ROOT } from "./paths.ts";
import { now, sleep } from "./util.ts";

type Request = {
  [K in Command["cmd"]]: Omit<Extract<Command, { cmd: K }>, "id">;
}[Command["cmd"]];

interface Reply {
  id: number;
  [key: string]: unknown;
}

/** Load generators still running: killed when the driver exits, however it exits. */
const live = new Set<Subprocess>();
process.on("exit", () => {
  for (const proc of live) proc.kill("SIGKILL");
});

/** One bench/loadgen.ts process (pinned to `cpu` when given); `call` answers its reply. */
class LoadGenerator {
  readonly proc: Subprocess;
  readonly #pending = new Map<number, (reply: Reply) => void>();
  #nextId = 1;
  progress = 0;
  /** Clients of its range connected so far (indices from its range's start). */
  connected = 0;
  readonly ready: Promise<void>;

  constructor(onProgress: () => void, cpu: number | undefined) {
    let ready!: () => void;
    this.ready = new Promise((resolve) => (ready = resolve));
    const pin = cpu === undefined ? [] : ["taskset", "-c", String(cpu)];
    const command = [...pin, BUN, join(ROOT, "bench/loadgen.ts")];
    this.proc = Bun.spawn(["/bin/sh", "-c", ULIMIT_EXEC, ...command], {
      cwd: ROOT,
      env: { ...process.env, BENCH_NOFILE: String(NOFILE) },
      stdin: "ignore",
      stdout: "inherit",
      stderr: "inherit",
      ipc: (message: Reply & { progress?: number; ready?: boolean }) => {
        if (message.progress !== undefined) {
          this.progress = message.progress;
          onProgress();
        } else if (message.ready) {
          ready();
        } else {
          const resolve = this.#pending.get(message.id);
          this.#pending.delete(message.id);
          resolve?.(message);
        }
      },
    });
    live.add(this.proc);
    this.proc.exited.then(() => live.delete(this.proc));
  }

  call(request: Request, timeoutMs = 120_000): Promise<Reply> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`load generator: no answer to ${request.cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      this.proc.send({ ...request, id });
    });
  }
}

export interface MergedReport {
  delivered: number;
  other: number;
  dropped: number;
  errors: string[];
  latency: Histogram;
  /** Latency of each event's first delivery (over all load generators). */
  firstDelivery: Histogram;
}

/** C clients spread over `procs` load generators by index range, used as one. */
export class ClientPool {
  readonly gens: LoadGenerator[] = [];
  /** Client index range [from, to) of each load generator. */
  readonly ranges: [number, number][] = [];
  #wake: (() => void) | undefined;
  clockSkewMs = 0;

  constructor(readonly clients: number, procs: number, pin: boolean) {
    for (let i = 0; i < procs; i++) {
      this.gens.push(new LoadGenerator(() => this.#signal(), pin ? 1 : undefined));
      this.ranges.push([
        Math.floor((i * clients) / procs),
        Math.floor(((i + 1) * clients) / procs),
      ]);
    }
  }

  /** Wakes a phase loop waiting in `wait` (an HTTP call finished). */
  poke(): void {
    this.#signal();
  }

  #signal(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Resolves on the next progress report or after `ms`. */
  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  get delivered(): number {
    let total = 0;
    for (const gen of this.gens) total += gen.progress;
    return total;
  }

  get pids(): number[] {
    return this.gens.map((gen) => gen.proc.pid);
  }

  async start(): Promise<void> {
    const ready = Promise.all(this.gens.map((gen) => gen.ready));
    const ok = await Promise.race([ready.then(() => true), sleep(20_000).then(() => false)]);
    if (!ok) throw new Error("load generators did not start within 20 s");
    this.gens.forEach((gen, i) =>
      checkOpenFiles(gen.proc.pid, this.ranges[i][1] - this.ranges[i][0] + 100, "load generator")
    );
    // Clock offsets (NTP-style over IPC): each process's performance.now() minus ours.
    for (const gen of this.gens) {
      let best = { rtt: Infinity, offset: 0 };
      for (let i = 0; i < 40; i++) {
        const sent = now();
        const reply = await gen.call({ cmd: "clock" }, 5_000);
        const received = now();
        const rtt = received - sent;
        if (rtt < best.rtt) best = { rtt, offset: (reply.now as number) - (sent + received) / 2 };
      }
      this.clockSkewMs = Math.max(this.clockSkewMs, best.rtt / 2);
      await gen.call({ cmd: "offset", offset: best.offset });
    }
  }

  /**
   * Connects the clients not connected yet, up to `upTo` of them in all (default: every one),
   * spread evenly over the load generators; client `index` connects to `urls[index %
   * urls.length]`.
   */
  async connect(
    urls: string | string[],
    window: number,
    upTo = this.clients,
  ): Promise<{ opened: number; failed: number }> {
    const timeoutMs = 30_000 + upTo * 5;
    const replies = await Promise.all(this.gens.map((gen, i) => {
      const [from, to] = this.ranges[i];
      const share = Math.floor(((i + 1) * upTo) / this.gens.length) -
        Math.floor((i * upTo) / this.gens.length);
      const end = Math.min(to, from + share);
      const start = from + gen.connected;
      gen.connected = Math.max(gen.connected, end - from);
      return gen.call({
        cmd: "connect",
        urls: typeof urls === "string" ? [urls] : urls,
        from: start,
        to: Math.max(start, end),
        window: Math.max(1, Math.ceil(window / this.gens.length)),
        timeoutMs,
      }, timeoutMs + 10_000);
    }));
    return {
      opened: replies.reduce((n, r) => n + (r.opened as number), 0),
      failed: replies.reduce((n, r) => n + (r.failed as number), 0),
    };
  }

  /** Subscribes `count` clients, spread evenly over the load generators. */
  async subscribe(
    channel: string,
    count: number,
    presence?: { users: number },
  ): Promise<{ ok: number; failed: number }> {
    const timeoutMs = 30_000 + count * 5;
    const replies = await Promise.all(this.gens.map((gen, i) => {
      const [from, to] = this.ranges[i];
      const share = Math.floor(((i + 1) * count) / this.gens.length) -
        Math.floor((i * count) / this.gens.length);
      return gen.call({
        cmd: "subscribe",
        channel,
        from,
        to: Math.min(to, from + share),
        window: 1_000,
        timeoutMs,
        presence: presence ? { app: { ...APP }, users: presence.users } : undefined,
      }, timeoutMs + 10_000);
    }));
    return {
      ok: replies.reduce((n, r) => n + (r.ok as number), 0),
      failed: replies.reduce((n, r) => n + (r.failed as number), 0),
    };
  }

  /** Connects again, in each load generator's range so far, the clients that are not open. */
  async reconnect(urls: string[], window: number): Promise<{ opened: number; failed: number }> {
    const timeoutMs = 30_000 + this.clients * 2;
    const replies = await Promise.all(this.gens.map((gen, i) =>
      gen.call({
        cmd: "connect",
        urls,
        from: this.ranges[i][0],
        to: this.ranges[i][0] + gen.connected,
        window: Math.max(1, Math.ceil(window / this.gens.length)),
        timeoutMs,
      }, timeoutMs + 10_000)
    ));
    return {
      opened: replies.reduce((n, r) => n + (r.opened as number), 0),
      failed: replies.reduce((n, r) => n + (r.failed as number), 0),
    };
  }

  /** Subscribes every connected client to the channel `spread` gives it (bench/lib/spread.ts). */
  async subscribeSpread(
    spread: Spread,
    count: number,
  ): Promise<{ ok: number; failed: number; perChannel: Map<string, number>; errors: string[] }> {
    const timeoutMs = 30_000 + count * 5;
    const replies = await Promise.all(this.gens.map((gen, i) =>
      gen.call({
        cmd: "subscribe-spread",
        spread,
        from: this.ranges[i][0],
        to: this.ranges[i][1],
        window: 500,
        timeoutMs,
        app: spread.users === undefined ? undefined : { ...APP },
      }, timeoutMs + 10_000)
    ));
    const perChannel = new Map<string, number>();
    for (const reply of replies) {
      for (const [channel, n] of Object.entries(reply.perChannel as Record<string, number>)) {
        perChannel.set(channel, (perChannel.get(channel) ?? 0) + n);
      }
    }
    return {
      ok: replies.reduce((n, r) => n + (r.ok as number), 0),
      failed: replies.reduce((n, r) => n + (r.failed as number), 0),
      perChannel,
      errors: replies.flatMap((r) => r.errors as string[]).slice(0, 10),
    };
  }

  /** Every client's events since `measure` against the events sent to its channels. */
  async check(events: Map<string, number>): Promise<CheckReport> {
    const merged: CheckReport = {
      clients: 0,
      open: 0,
      exact: 0,
      short: 0,
      over: 0,
      expected: 0,
      received: 0,
      samples: [],
    };
    const body = Object.fromEntries(events);
    for (const gen of this.gens) {
      const { check } = await gen.call({ cmd: "check", events: body }) as unknown as {
        check: CheckReport;
      };
      for (
        const key of ["clients", "open", "exact", "short", "over", "expected", "received"] as const
      ) {
        merged[key] += check[key];
      }
      merged.samples.push(...check.samples.slice(0, 5 - merged.samples.length));
    }
    return merged;
  }

  async measure(latency: boolean, firstPerEvent = false): Promise<void> {
    for (const gen of this.gens) gen.progress = 0;
    await Promise.all(
      this.gens.map((gen) => gen.call({ cmd: "measure", latency, firstPerEvent, progressMs: 5 })),
    );
  }

  async report(): Promise<MergedReport> {
    const merged: MergedReport = {
      delivered: 0,
      other: 0,
      dropped: 0,
      errors: [],
      latency: new Histogram(),
      firstDelivery: new Histogram(),
    };
    const first = new Map<number, number>();
    for (const gen of this.gens) {
      const { report } = await gen.call({ cmd: "report" }) as unknown as { report: Report };
      merged.delivered += report.delivered;
      merged.other += report.other;
      merged.dropped += report.dropped;
      merged.errors.push(...report.errors);
      merged.latency.add(report.latency);
      for (const [seq, ms] of report.firstPerEvent) {
        const seen = first.get(seq);
        if (seen === undefined || ms < seen) first.set(seq, ms);
      }
    }
    for (const ms of first.values()) merged.firstDelivery.record(ms);
    return merged;
  }

  async close(): Promise<void> {
    await Promise.all(this.gens.map((gen) => gen.call({ cmd: "close", timeoutMs: 30_000 })));
    for (const gen of this.gens) gen.connected = 0;
  }

  async exit(): Promise<void> {
    await Promise.all(this.gens.map(async (gen) => {
      try {
        await gen.call({ cmd: "exit" }, 3_000);
      } catch {
        // killed below
      }
      const exited = await Promise.race([gen.proc.exited.then(() => true), sleep(3_000)]);
      if (!exited) gen.proc.kill("SIGKILL");
    }));
  }
}
