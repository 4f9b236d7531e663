// The fault suite's harness: two Chorus nodes on a private redis-server (node A optionally through a
// TcpProxy), a publisher sending numbered events through both nodes alternately, subscribers that
// record every socket session and reconnect like a Pusher client behind a load balancer (one of
// them, LEAVER, leaves for good during the fault), optional presence churn, and the accounting that
// runs once the fault has healed and the publisher has stopped:
//  - every API answer (200, 503 or other) came within MAX_ANSWER_MS; no request to a live node
//    timed out or failed without an HTTP answer;
//  (a) every event answered 200 reached every session subscribed (subscription_succeeded) before
//      its send started and still open DELIVERY_MARGIN_MS after its answer, unless that session
//      was told to reconnect (pusher:error 4200 or close 4200); a session our client closed itself
//      during the fault (LEAVER) is not held to events answered after (the margin before) the fault
//      began: nobody could tell it that its node missed them;
//  (b) events answered 503 or failed are never expected (their arrival is only counted);
//  (c) no 200-event arrives twice in one session (duplicates of other events are only reported);
//  (d) within CONVERGE_BOUND_MS of the heal, on both nodes, /connections, /channels/{presence}/users
//      and /channels?info=subscription_count,user_count equal the truth (the subscriber sockets
//      open now), and so does every open session's presence member list;
//  (e) no node process died except the ones the test killed;
//  (f) no session gets member_added for a member already in its view later than JOIN_RACE_MS
//      after it subscribed (earlier ones, and member_removed for a member not in the view, which
//      pusher-js ignores, are only noted);
//  (g) a session sent pusher:error 4200 is closed within 2 s.
// Every run prints one `FAULT-SUMMARY {json}` line on stdout, plus `FAULT-NOTE` lines for
// observations that do not fail (join-race member events, duplicates of non-200 events).
import assert from "node:assert/strict";
import { MAIN } from "./apps.ts";
import {
  type ClusterNode,
  otherRuntime,
  runnerRuntime,
  type Runtime,
  startNode,
  waitReady,
} from "./nodes.ts";
import { randomPrefix, RedisServer } from "./redis.ts";
import { Api, type ApiResponse, channelAuth } from "./sign.ts";
import { TcpProxy } from "./tcp-proxy.ts";
import { delay, until } from "./wait.ts";

/** Server settings for every fault node (the lead's "server behaviour" knobs). */
export const FAULT_ENV: Record<string, string> = {
  CHORUS_NODE_LEASE_MS: "2000",
  CHORUS_REDIS_TIMEOUT_MS: "1000",
  CHORUS_BUS_GRACE_MS: "2000",
  CHORUS_BUS_RECONNECT_SPREAD_MS: "500",
};

export const PUB = "faults-public";
export const PRES = "presence-faults";
type Ch = "pub" | "pres";
const CHANNELS: Record<Ch, string> = { pub: PUB, pres: PRES };

/** Every API answer (200, 503, anything) must come within this. */
export const MAX_ANSWER_MS = 2500;
/** Per-request timeout of the publisher's and the checker's HTTP calls. */
const REQUEST_TIMEOUT_MS = 5000;
/** A session closing less than this after an event's answer is not expected to have it. */
export const DELIVERY_MARGIN_MS = 300;
/** A member event contradicting a session's view this soon after its own presence subscription
 * may be a join race (the member list was read after a change whose event was still on its way);
 * later ones fail the test. */
export const JOIN_RACE_MS = 1000;
/** Convergence must be reached within this long after the heal. */
export const CONVERGE_BOUND_MS = 12000;
const WARMUP_MS = 1500;
const AFTER_HEAL_MS = 3000;
const SUBSCRIBERS_PER_NODE = 3;
const CHURNERS_PER_NODE = 2;
/** The subscriber that leaves during the fault (initially on node A). */
export const LEAVER = "u01";

/** `same`: both nodes on the runner's runtime; `mixed`: the runner's + the other one. */
export type Pairing = "same" | "mixed";
/** Half the faults use P, half Q: in `bun test` P = bun+bun and Q = bun+deno, in `deno test`
 * P = deno+bun and Q = deno+deno, so across both runs each fault runs on both runtimes and at
 * least once mixed. Node A (the faulted node where there is one) is always the runner's. */
export const PAIR_P: Pairing = runnerRuntime === "bun" ? "same" : "mixed";
export const PAIR_Q: Pairing = runnerRuntime === "bun" ? "mixed" : "same";

export function pairLabel(p: Pairing): string {
  return `A=${runnerRuntime}, B=${p === "same" ? runnerRuntime : otherRuntime}`;
}

const now = () => Date.now();
const rand = (lo: number, hi: number) => lo + Math.random() * (hi - lo);

// ---- signed HTTP with a timeout ------------------------------------------------------------------

/** A signed API call to a fault node, bounded by REQUEST_TIMEOUT_MS. */
function signedFetch(
  node: ClusterNode,
  method: "GET" | "POST",
  sub: string,
  o: { params?: Record<string, string>; body?: string } = {},
): Promise<ApiResponse> {
  return new Api(node, MAIN).request(method, sub, { ...o, timeoutMs: REQUEST_TIMEOUT_MS });
}

function parseData(data: unknown): unknown {
  if (typeof data !== "string") return data;
  try {
    return JSON.parse(data);
  } catch {
    return data;
  }
}

// ---- publisher -----------------------------------------------------------------------------------

export interface EventRecord {
  n: number;
  node: string;
  sentAt: number;
  answeredAt?: number;
  /** HTTP status, or undefined when `error` is set. */
  status?: number;
  error?: "timeout" | "network";
  /** The node had been killed by the test when the request was answered. */
  nodeKilled?: boolean;
  detail?: string;
}

class Publisher {
  readonly events: EventRecord[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #inflight = new Set<Promise<void>>();
  #stopped = false;

  constructor(readonly cluster: FaultCluster) {}

  start(): void {
    this.#tick();
  }

  #tick(): void {
    if (this.#stopped) return;
    const n = this.events.length;
    const node = this.cluster.nodes[n % this.cluster.nodes.length];
    const p = this.#send(n, node);
    this.#inflight.add(p);
    p.finally(() => this.#inflight.delete(p));
    this.#timer = setTimeout(() => this.#tick(), rand(20, 50));
  }

  async #send(n: number, node: ClusterNode): Promise<void> {
    const rec: EventRecord = { n, node: node.name, sentAt: now() };
    this.events.push(rec);
    const body = JSON.stringify({
      name: "tick",
      channels: [PUB, PRES],
      data: JSON.stringify({ n }),
    });
    try {
      const res = await signedFetch(node, "POST", "/events", { body });
      rec.status = res.status;
      if (res.status !== 200) rec.detail = res.text.slice(0, 200);
    } catch (err) {
      const e = err as Error;
      rec.error = e.name === "TimeoutError" || e.name === "AbortError" ? "timeout" : "network";
      rec.detail = `${e.name}: ${e.message}`.slice(0, 200);
    }
    rec.answeredAt = now();
    rec.nodeKilled = this.cluster.killed.has(node);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    while (this.#inflight.size > 0) await Promise.all([...this.#inflight]);
  }
}

// ---- subscriber sessions -------------------------------------------------------------------------

export interface Session {
  id: string;
  user: string;
  node: string;
  openedAt: number;
  establishedAt?: number;
  socketId?: string;
  subscribedAt: Partial<Record<Ch, number>>;
  closedAt?: number;
  closeCode?: number;
  /** Our client closed it (leaving, or retrying after a subscription_error). */
  closedByClient: boolean;
  got4200: boolean;
  /** When pusher:error 4200 arrived. */
  got4200At?: number;
  errors: string[];
  /** Event number -> how often and when (first) it arrived, per channel. */
  received: Record<Ch, Map<number, { count: number; at: number }>>;
  /** This session's view of the presence channel (from subscription_succeeded + member events). */
  members: Set<string> | undefined;
  /** member_added / member_removed as received, in order. */
  memberLog: { op: "+" | "-"; user: string; at: number; odd: boolean; late: boolean }[];
  /** member_added for a user already in the view, member_removed for one not in it. */
  oddities: number;
  ws: WebSocket;
  /** Clears the session's own timers. */
  clearTimers(): void;
}

function told4200(s: Session): boolean {
  return s.got4200 || s.closeCode === 4200;
}

function isOpen(s: Session): boolean {
  return s.closedAt === undefined && s.establishedAt !== undefined &&
    s.ws.readyState === WebSocket.OPEN;
}

/** One client: one socket at a time, subscribed to PUB (unless presence-only) and PRES. */
class Subscriber {
  readonly sessions: Session[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  #slot: number;
  #count = 0;
  current: Session | undefined;

  constructor(
    readonly cluster: FaultCluster,
    readonly name: string,
    slot: number,
    readonly kind: "subscriber" | "churner",
  ) {
    this.#slot = slot;
  }

  start(): void {
    this.#connect();
  }

  #schedule(ms: number): void {
    clearTimeout(this.#timer);
    if (this.#stopped) return;
    this.#timer = setTimeout(() => this.#connect(), ms);
  }

  #connect(): void {
    if (this.#stopped) return;
    const nodes = this.cluster.nodes;
    const node = nodes[this.#slot % nodes.length];
    // Subscribers alternate between the nodes on every reconnect; churners stay on theirs.
    if (this.kind === "subscriber") this.#slot = (this.#slot + 1) % nodes.length;
    const user = this.kind === "subscriber" ? this.name : `${this.name}-${this.#count}`;
    const id = `${this.name}#${this.#count++}@${node.name}`;
    let ws: WebSocket;
    try {
      ws = new WebSocket(node.wsUrl(MAIN.key));
    } catch {
      this.#schedule(rand(200, 500));
      return;
    }
    let holdTimer: ReturnType<typeof setTimeout> | undefined;
    const connectTimer = setTimeout(() => {
      if (s.establishedAt === undefined) {
        s.errors.push("no connection_established within 5 s");
        try {
          ws.close();
        } catch {
          // closing a socket that never opened
        }
      }
    }, 5000);
    const s: Session = {
      id,
      user,
      node: node.name,
      openedAt: now(),
      subscribedAt: {},
      closedByClient: false,
      got4200: false,
      errors: [],
      received: { pub: new Map(), pres: new Map() },
      members: undefined,
      memberLog: [],
      oddities: 0,
      ws,
      clearTimers: () => {
        clearTimeout(connectTimer);
        clearTimeout(holdTimer);
      },
    };
    this.sessions.push(s);
    this.current = s;
    const send = (frame: unknown) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
    };
    const subscribePresence = () => {
      const cd = JSON.stringify({ user_id: user, user_info: { name: user } });
      send({
        event: "pusher:subscribe",
        data: {
          channel: PRES,
          auth: channelAuth(MAIN, s.socketId ?? "", PRES, cd),
          channel_data: cd,
        },
      });
    };
    ws.addEventListener("message", (ev: MessageEvent) => {
      if (typeof ev.data !== "string") return;
      let f: { event?: unknown; channel?: unknown; data?: unknown };
      try {
        f = JSON.parse(ev.data);
      } catch {
        return;
      }
      const data = parseData(f.data);
      const ch: Ch | undefined = f.channel === PUB
        ? "pub"
        : f.channel === PRES
        ? "pres"
        : undefined;
      switch (f.event) {
        case "tick": {
          const n = (data as { n?: unknown } | undefined)?.n;
          if (ch && typeof n === "number") {
            const r = s.received[ch].get(n);
            if (r) r.count++;
            else s.received[ch].set(n, { count: 1, at: now() });
          }
          break;
        }
        case "pusher:connection_established":
          s.establishedAt = now();
          s.socketId = (data as { socket_id?: string }).socket_id;
          if (this.kind === "subscriber") {
            send({ event: "pusher:subscribe", data: { channel: PUB } });
          } else subscribePresence();
          break;
        case "pusher_internal:subscription_succeeded":
          if (!ch) break;
          s.subscribedAt[ch] = now();
          if (ch === "pub") subscribePresence();
          else {
            const ids = (data as { presence?: { ids?: unknown[] } }).presence?.ids ?? [];
            s.members = new Set(ids.map(String));
            if (this.kind === "churner") {
              holdTimer = setTimeout(() => ws.close(1000), rand(150, 400));
            }
          }
          break;
        case "pusher_internal:member_added":
        case "pusher_internal:member_removed": {
          if (ch !== "pres" || !s.members) break;
          const user = String((data as { user_id?: unknown }).user_id);
          const op = f.event === "pusher_internal:member_added" ? "+" : "-";
          const odd = (op === "+") === s.members.has(user);
          // Only a repeated member_added is visible (Echo's `joining` fires again); pusher-js
          // drops a member_removed for a member it does not have (presence_channel.ts), so a
          // late departure announcement is only noted.
          const late = odd && op === "+" && now() - (s.subscribedAt.pres ?? 0) > JOIN_RACE_MS;
          s.memberLog.push({ op, user, at: now(), odd, late });
          if (odd) s.oddities++;
          if (op === "+") s.members.add(user);
          else s.members.delete(user);
          break;
        }
        case "pusher:ping":
          send({ event: "pusher:pong", data: {} });
          break;
        case "pusher:error": {
          const code = (data as { code?: unknown } | undefined)?.code;
          if (code === 4200 && !s.got4200) {
            s.got4200 = true;
            s.got4200At = now();
          }
          s.errors.push(`pusher:error ${JSON.stringify(data)}`.slice(0, 200));
          break;
        }
        case "pusher:subscription_error":
          // An app would retry; so do we, on a new socket.
          s.errors.push(`subscription_error ${String(f.channel)} ${JSON.stringify(data)}`);
          s.closedByClient = true;
          ws.close(1000);
          break;
      }
    });
    ws.addEventListener("close", (ev: CloseEvent) => {
      s.clearTimers();
      s.closedAt = now();
      s.closeCode = ev.code;
      if (this.current === s) this.current = undefined;
      this.#schedule(this.kind === "subscriber" ? rand(200, 500) : rand(50, 150));
    });
  }

  /** Stops reconnecting and closes the current socket (waits for its close, at most 2 s). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    const s = this.current;
    if (!s || s.closedAt !== undefined) return;
    s.clearTimers();
    const closed = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000);
      s.ws.addEventListener("close", () => {
        clearTimeout(timer);
        resolve();
      });
    });
    s.closedByClient = true;
    try {
      s.ws.close(1000);
    } catch {
      // never opened
    }
    await closed;
  }
}

// ---- the cluster under test ----------------------------------------------------------------------

export interface FaultOptions {
  fault: string;
  pair: Pairing;
  /** Node A reaches Redis through a TcpProxy (`cluster.proxy`); B connects directly. */
  proxyA?: boolean;
  /** Presence joins/leaves on both nodes until the heal. */
  churn?: boolean;
  /** Subscriber LEAVER closes its socket for good this long into the fault (default 500 ms; `null`
   * for nobody): everyone still there must end up without it, through one member_removed. */
  leaveAfterMs?: number | null;
}

interface Truth {
  connections: number;
  users: string[];
  subs: Record<Ch, number>;
}

export interface FaultReport {
  summary: Record<string, unknown>;
  problems: string[];
  notes: string[];
}

export class FaultCluster {
  readonly prefix = randomPrefix("faults");
  /** The node serving each slot now (a killed node's slot gets its replacement). */
  readonly nodes: ClusterNode[] = [];
  readonly all: ClusterNode[] = [];
  readonly killed = new Set<ClusterNode>();
  proxy: TcpProxy | undefined;
  #frozen = false;
  readonly publisher = new Publisher(this);
  readonly subscribers: Subscriber[] = [];
  readonly churners: Subscriber[] = [];
  #disposed = false;
  /** When the fault was injected; member-event times in messages are relative to it. */
  #faultAt = 0;
  #healAt = Number.POSITIVE_INFINITY;

  private constructor(readonly o: FaultOptions, readonly redis: RedisServer) {}

  static async start(o: FaultOptions): Promise<FaultCluster> {
    const redis = await RedisServer.start();
    const c = new FaultCluster(o, redis);
    try {
      if (o.proxyA) c.proxy = await TcpProxy.start(redis.port);
      const runtimes: Runtime[] = [runnerRuntime, o.pair === "same" ? runnerRuntime : otherRuntime];
      const started = await Promise.all(runtimes.map((runtime, i) => c.#startNode(runtime, i)));
      c.nodes.push(...started);
      await Promise.all(c.nodes.map((n) => waitReady(n, 200, 15000)));
    } catch (err) {
      await c.dispose();
      throw err;
    }
    return c;
  }

  #startNode(runtime: Runtime, slot: number, name = slot === 0 ? "A" : "B"): Promise<ClusterNode> {
    const redisUrl = slot === 0 && this.proxy ? this.proxy.url : this.redis.url;
    return startNode({
      runtime,
      name,
      redisUrl,
      prefix: this.prefix,
      config: { apps: [{ ...MAIN }] },
      env: FAULT_ENV,
    }).then((n) => {
      this.all.push(n);
      return n;
    });
  }

  get runtimes(): string {
    return this.nodes.map((n) => n.runtime).join("+");
  }

  /** Fault helpers. */
  freezeRedis(): void {
    if (!this.redis.process?.running) throw new Error("redis-server is not running");
    this.redis.signal("SIGSTOP");
    this.#frozen = true;
  }

  thawRedis(): void {
    this.redis.signal("SIGCONT");
    this.#frozen = false;
  }

  /** SIGKILLs the node in `slot` and waits for it to be gone. */
  async killNode(slot: number): Promise<void> {
    const node = this.nodes[slot];
    this.killed.add(node);
    node.kill("SIGKILL");
    await node.exited;
  }

  /** Starts a node of the same runtime in `slot` (as a supervisor would) and waits until ready. */
  async replaceNode(slot: number): Promise<void> {
    const old = this.nodes[slot];
    const node = await this.#startNode(old.runtime, slot, `${old.name}2`);
    this.nodes[slot] = node;
    await waitReady(node, 200, 15000);
  }

  /**
   * The whole scenario: subscribers (and churners) up, publisher on, warm-up, `inject` (which
   * breaks something and resolves once it has healed it), traffic after the heal, then the
   * accounting. Prints FAULT-SUMMARY and fails with every problem found.
   */
  async run(inject: () => Promise<void>): Promise<FaultReport> {
    const t0 = now();
    this.nodes.forEach((_, slot) => {
      for (let i = 0; i < SUBSCRIBERS_PER_NODE; i++) {
        this.subscribers.push(
          new Subscriber(this, `u${slot}${i}`, slot, "subscriber"),
        );
      }
    });
    // One at a time, each once everyone before it has seen it join: a clean starting state, so
    // member events that contradict a view come from the fault, not from concurrent joins.
    for (const [i, sub] of this.subscribers.entries()) {
      sub.start();
      const earlier = this.subscribers.slice(0, i);
      await until(
        () =>
          sub.current?.subscribedAt.pres !== undefined &&
          earlier.every((e) => e.current?.members?.has(sub.name)),
        `${sub.name} subscribed to both channels and seen by the others`,
        { timeout: 10000, interval: 10 },
      );
    }
    if (this.o.churn) {
      this.nodes.forEach((_, slot) => {
        for (let i = 0; i < CHURNERS_PER_NODE; i++) {
          this.churners.push(new Subscriber(this, `churn${slot}${i}`, slot, "churner"));
        }
      });
      this.churners.forEach((s) => s.start());
    }
    this.publisher.start();
    await delay(WARMUP_MS);

    const faultAt = now();
    this.#faultAt = faultAt;
    const leaveAfter = this.o.leaveAfterMs === undefined ? 500 : this.o.leaveAfterMs;
    const leaver = this.subscribers.find((x) => x.name === LEAVER);
    const leaving = leaveAfter === null || !leaver
      ? undefined
      : delay(leaveAfter).then(() => leaver.stop());
    await inject();
    await leaving;
    const healAt = now();
    this.#healAt = healAt;
    if (this.o.churn) await Promise.all(this.churners.map((s) => s.stop()));

    // Readiness and convergence are watched from the heal on, while traffic goes on.
    let readyAt: number | undefined;
    const readyWatch = Promise.all(
      this.nodes.map((n) => waitReady(n, 200, CONVERGE_BOUND_MS).catch(() => undefined)),
    ).then((r) => {
      if (r.every((x) => x !== undefined)) readyAt = now();
    });
    const conv = this.#watchConvergence(healAt + CONVERGE_BOUND_MS);
    await delay(AFTER_HEAL_MS);
    await this.publisher.stop();
    await readyWatch;
    const convergedAt = await conv;

    // Let the last deliveries land (bounded), then account.
    let acc = this.#account();
    const settleUntil = now() + 3000;
    while (acc.misses.length > 0 && now() < settleUntil) {
      await delay(50);
      acc = this.#account();
    }
    // Still converged once traffic has stopped?
    let finalMismatch: string | undefined;
    if (convergedAt !== undefined) {
      try {
        await until(async () => (await this.#mismatch()) === undefined, "convergence holds", {
          timeout: 3000,
          interval: 200,
        });
      } catch {
        finalMismatch = await this.#mismatch();
      }
    }
    const lastMismatch = convergedAt === undefined ? await this.#mismatch() : undefined;

    const ev = this.publisher.events;
    const sessions = this.subscribers.flatMap((s) => s.sessions);
    const answerMs = ev.map((e) => (e.answeredAt ?? now()) - e.sentAt);
    const slow = ev.filter((_e, i) => answerMs[i] > MAX_ANSWER_MS);
    const timeouts = ev.filter((e) => e.error === "timeout");
    const badNetwork = ev.filter((e) => e.error === "network" && !e.nodeKilled);
    const odd = ev.filter((e) => e.status !== undefined && e.status !== 200 && e.status !== 503);
    const crashed = this.all.filter((n) => !this.killed.has(n) && !n.running);
    const statusOf = (e: EventRecord) => e.error ?? String(e.status);
    const summary = {
      fault: this.o.fault,
      runtimes: this.runtimes,
      runner: runnerRuntime,
      sent: ev.length,
      ok: ev.filter((e) => e.status === 200).length,
      s503: ev.filter((e) => e.status === 503).length,
      errors: ev.filter((e) => e.error !== undefined).length,
      timeouts: timeouts.length,
      otherStatus: odd.length,
      maxAnswerMs: Math.max(0, ...answerMs),
      expected: acc.expected,
      delivered: acc.delivered,
      missed: acc.misses.length,
      maxDeliveryMs: acc.maxDeliveryMs,
      dup200: acc.dup200.length,
      dupOther: acc.dupOther,
      delivered503: acc.delivered503,
      deliveredFailed: acc.deliveredFailed,
      sessions: sessions.filter((s) => s.establishedAt !== undefined).length,
      attempts: sessions.length,
      told4200: sessions.filter(told4200).length,
      close4200NoError: sessions.filter((s) => s.closeCode === 4200 && !s.got4200).length,
      subErrors: sessions.filter((s) => s.errors.some((e) => e.startsWith("subscription_error")))
        .length,
      presenceOddities: sessions.reduce((k, s) => k + s.oddities, 0),
      lateOddities: sessions.reduce((k, s) => k + s.memberLog.filter((m) => m.late).length, 0),
      churnSessions: this.churners.reduce((k, c) => k + c.sessions.length, 0),
      leaver: leaving ? LEAVER : null,
      faultMs: healAt - faultAt,
      readyMs: readyAt === undefined ? null : readyAt - healAt,
      convergeMs: convergedAt === undefined ? null : convergedAt - healAt,
      wallMs: now() - t0,
    };
    console.log(`FAULT-SUMMARY ${JSON.stringify(summary)}`);

    const problems: string[] = [];
    const few = <T>(xs: T[], f: (x: T) => string, k = 12) =>
      xs.slice(0, k).map(f).join("; ") + (xs.length > k ? `; ... (${xs.length} in all)` : "");
    if (slow.length > 0) {
      problems.push(
        `${slow.length} API answers took more than ${MAX_ANSWER_MS} ms: ${
          few(slow, (e) =>
            `#${e.n} via ${e.node} ${statusOf(e)} in ${(e.answeredAt ?? now()) - e.sentAt} ms`)
        }`,
      );
    }
    if (badNetwork.length > 0) {
      problems.push(
        `${badNetwork.length} requests to a live node failed without an HTTP answer: ${
          few(badNetwork, (e) => `#${e.n} via ${e.node}: ${e.detail}`, 4)
        }`,
      );
    }
    if (odd.length > 0) {
      problems.push(
        `${odd.length} answers neither 200 nor 503: ${
          few(odd, (e) => `#${e.n} ${e.status} ${e.detail}`, 4)
        }`,
      );
    }
    if (acc.misses.length > 0) {
      problems.push(
        `(a) ${acc.misses.length} of ${acc.expected} expected deliveries missing (sessions not told 4200): ${
          describeMisses(acc.misses)
        }`,
      );
    }
    if (acc.dup200.length > 0) {
      problems.push(
        `(c) 200-events delivered twice in one session: ${acc.dup200.slice(0, 12).join("; ")}`,
      );
    }
    if (convergedAt === undefined) {
      problems.push(
        `(d) no convergence within ${CONVERGE_BOUND_MS} ms of the heal: ${lastMismatch}`,
      );
    } else if (finalMismatch !== undefined) {
      problems.push(
        `(d) converged ${convergedAt - healAt} ms after the heal, then diverged: ${finalMismatch}`,
      );
    }
    // Member events that contradict a session's view: late ones fail, race-window ones are noted.
    const notes: string[] = [];
    const oddReport = (late: boolean) => {
      const hit = sessions.filter((s) => s.memberLog.some((m) => m.odd && m.late === late))
        .sort((x, y) => (x.subscribedAt.pres ?? 0) - (y.subscribedAt.pres ?? 0));
      return `${hit.length} sessions: ${
        few(
          hit,
          (s) =>
            `${s.id} (subscribed ${this.#rel(s.subscribedAt.pres ?? 0)}): ${
              s.memberLog.filter((m) => m.odd && m.late === late).map((m) => this.#memberEvent(m))
                .join(" ")
            }`,
          6,
        )
      }; all member events of ${hit[0]?.id}: ${
        hit[0]?.memberLog.slice(-12).map((m) => this.#memberEvent(m)).join(" ")
      }`;
    };
    if (summary.lateOddities > 0) {
      problems.push(
        `(f) member_added for a member already in the view, more than ${JOIN_RACE_MS} ms after the session subscribed, in ${
          oddReport(true)
        }`,
      );
    }
    if (summary.presenceOddities > summary.lateOddities) {
      notes.push(
        `member events contradicting the view (within ${JOIN_RACE_MS} ms of subscribing, or a member_removed pusher-js ignores), in ${
          oddReport(false)
        }`,
      );
    }
    const unclosed = sessions.filter((s) =>
      s.got4200At !== undefined && s.closedAt === undefined && now() - s.got4200At > 2000
    );
    if (unclosed.length > 0) {
      problems.push(
        `(g) sessions still open more than 2 s after pusher:error 4200: ${
          unclosed.map((s) => `${s.id} (4200 at ${this.#rel(s.got4200At ?? 0)})`).join(", ")
        }`,
      );
    }
    if (crashed.length > 0) {
      problems.push(
        `(e) node process(es) died: ${
          crashed.map((n) => `${n.name} (${n.runtime}): ${n.stderr.slice(-8).join(" | ")}`).join(
            "; ",
          )
        }`,
      );
    }
    if (acc.dupOther > 0) notes.push(`${acc.dupOther} non-200 events arrived twice in a session`);
    for (const n of notes) console.log(`FAULT-NOTE ${this.o.fault} (${this.runtimes}): ${n}`);
    const report = { summary, problems, notes };
    if (problems.length > 0) {
      assert.fail(`${this.o.fault} (${this.runtimes}):\n - ${problems.join("\n - ")}`);
    }
    return report;
  }

  /** Expected vs delivered, misses, duplicates. */
  #account(): {
    expected: number;
    delivered: number;
    misses: Miss[];
    dup200: string[];
    dupOther: number;
    delivered503: number;
    deliveredFailed: number;
    maxDeliveryMs: number;
  } {
    const ev = this.publisher.events;
    const byN = new Map(ev.map((e) => [e.n, e]));
    const ok = ev.filter((e) => e.status === 200 && e.answeredAt !== undefined);
    const sessions = this.subscribers.flatMap((s) => s.sessions);
    let expected = 0;
    let delivered = 0;
    const misses: Miss[] = [];
    const dup200: string[] = [];
    let dupOther = 0;
    let delivered503 = 0;
    let deliveredFailed = 0;
    let maxDeliveryMs = 0;
    for (const s of sessions) {
      for (const ch of ["pub", "pres"] as const) {
        for (const [n, { count }] of s.received[ch]) {
          const e = byN.get(n);
          const is200 = e?.status === 200;
          if (e?.status === 503) delivered503++;
          else if (!is200) deliveredFailed++;
          if (count > 1) {
            if (is200) dup200.push(`#${n} x${count} in ${s.id} on ${CHANNELS[ch]}`);
            else dupOther++;
          }
        }
        if (told4200(s)) continue;
        const subAt = s.subscribedAt[ch];
        if (subAt === undefined) continue;
        // A session our client closed during the fault could not be told it missed anything.
        const leftDuringFault = s.closedByClient && s.closedAt !== undefined &&
          s.closedAt >= this.#faultAt && s.closedAt <= this.#healAt;
        for (const e of ok) {
          if (subAt >= e.sentAt) continue;
          // Nor for one still on its way when the fault hit (answered within the margin of it).
          if (leftDuringFault && e.answeredAt! >= this.#faultAt - DELIVERY_MARGIN_MS) continue;
          if (s.closedAt !== undefined && s.closedAt <= e.answeredAt! + DELIVERY_MARGIN_MS) {
            continue;
          }
          expected++;
          const got = s.received[ch].get(e.n);
          if (got) {
            delivered++;
            maxDeliveryMs = Math.max(maxDeliveryMs, got.at - e.sentAt);
          } else {misses.push({
              session: s.id,
              node: s.node,
              channel: CHANNELS[ch],
              n: e.n,
              via: e.node,
            });}
        }
      }
    }
    return {
      expected,
      delivered,
      maxDeliveryMs,
      misses,
      dup200,
      dupOther,
      delivered503,
      deliveredFailed,
    };
  }

  /** `+u10@t+5063ms`, with `!` when it contradicts the session's view. */
  #memberEvent(m: Session["memberLog"][number]): string {
    return `${m.odd ? "!" : ""}${m.op}${m.user}@${this.#rel(m.at)}`;
  }

  /** `t+1234ms`: a time relative to the fault's start. */
  #rel(t: number): string {
    const d = t - this.#faultAt;
    return d >= 0 ? `t+${d}ms` : `t${d}ms`;
  }

  #truth(): Truth {
    const open = this.subscribers.map((s) => s.current).filter((s): s is Session =>
      s !== undefined && isOpen(s)
    );
    return {
      connections: open.length,
      users: open.filter((s) => s.subscribedAt.pres !== undefined).map((s) => s.user).sort(),
      subs: {
        pub: open.filter((s) => s.subscribedAt.pub !== undefined).length,
        pres: open.filter((s) => s.subscribedAt.pres !== undefined).length,
      },
    };
  }

  /** Undefined when every node and every open session agrees with the truth; else what differs. */
  async #mismatch(): Promise<string | undefined> {
    const truth = this.#truth();
    const wanted = JSON.stringify(truth.users);
    const diffs: string[] = [];
    for (const s of this.subscribers.map((x) => x.current)) {
      if (!s || !isOpen(s) || s.members === undefined) continue;
      const view = JSON.stringify([...s.members].sort());
      if (view !== wanted) {
        const log = s.memberLog.slice(-8).map((m) => this.#memberEvent(m));
        diffs.push(`session ${s.id} sees members ${view} (member events: ${log.join(" ")})`);
      }
    }
    await Promise.all(this.nodes.map(async (node) => {
      try {
        const conns = await signedFetch(node, "GET", "/connections");
        const got = (conns.json as { connections?: unknown } | undefined)?.connections;
        if (conns.status !== 200 || got !== truth.connections) {
          diffs.push(`${node.name} /connections ${conns.status} ${conns.text.slice(0, 80)}`);
        }
        const users = await signedFetch(node, "GET", `/channels/${PRES}/users`);
        const ids = ((users.json as { users?: { id: string }[] } | undefined)?.users ?? [])
          .map((u) => u.id).sort();
        if (users.status !== 200 || JSON.stringify(ids) !== wanted) {
          diffs.push(`${node.name} /users ${users.status} ${JSON.stringify(ids)}`);
        }
        const chans = await signedFetch(node, "GET", "/channels", {
          params: { info: "subscription_count,user_count" },
        });
        const want: Record<string, Record<string, number>> = {};
        if (truth.subs.pub > 0) want[PUB] = { subscription_count: truth.subs.pub };
        if (truth.subs.pres > 0) {
          want[PRES] = { user_count: truth.users.length, subscription_count: truth.subs.pres };
        }
        const gotChans = (chans.json as { channels?: Record<string, Record<string, number>> })
          ?.channels;
        if (chans.status !== 200 || !sameChannels(gotChans, want)) {
          diffs.push(`${node.name} /channels ${chans.status} ${chans.text.slice(0, 160)}`);
        }
      } catch (err) {
        diffs.push(`${node.name}: ${(err as Error).message}`);
      }
    }));
    if (diffs.length === 0) return undefined;
    return `truth ${JSON.stringify(truth)}; ${diffs.join("; ")}`;
  }

  async #watchConvergence(deadline: number): Promise<number | undefined> {
    while (now() < deadline && !this.#disposed) {
      if ((await this.#mismatch()) === undefined) return now();
      await delay(200);
    }
    return undefined;
  }

  /** Stops traffic and every process, proxy and socket this cluster started. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    const quiet = async (f: () => Promise<unknown> | unknown) => {
      try {
        await f();
      } catch {
        // best effort
      }
    };
    await quiet(() => this.publisher.stop());
    await Promise.all([...this.subscribers, ...this.churners].map((s) => quiet(() => s.stop())));
    if (this.#frozen) await quiet(() => this.thawRedis());
    await Promise.all(this.all.map((n) => quiet(() => n.stop())));
    await quiet(() => this.proxy?.close());
    await quiet(() => this.redis.dispose());
  }
}

interface Miss {
  session: string;
  node: string;
  channel: string;
  n: number;
  via: string;
}

function sameChannels(
  got: Record<string, Record<string, number>> | undefined,
  want: Record<string, Record<string, number>>,
): boolean {
  if (!got) return false;
  const norm = (x: Record<string, Record<string, number>>) =>
    JSON.stringify(
      Object.keys(x).sort().map((k) => [k, Object.keys(x[k]).sort().map((f) => [f, x[k][f]])]),
    );
  return norm(got) === norm(want);
}

/** Misses grouped per session and channel: how many, first..last, via which node, a sample. */
function describeMisses(misses: Miss[]): string {
  const groups = new Map<string, Miss[]>();
  for (const m of misses) {
    const key = `${m.session} (node ${m.node}) ${m.channel}`;
    groups.set(key, [...(groups.get(key) ?? []), m]);
  }
  const parts = [...groups].map(([key, ms]) => {
    const ns = ms.map((m) => m.n).sort((a, b) => a - b);
    const via = new Map<string, number>();
    for (const m of ms) via.set(m.via, (via.get(m.via) ?? 0) + 1);
    const vias = [...via].map(([n, k]) => `${k} via ${n}`).join(", ");
    const sample = ns.slice(0, 6).map((n) => `#${n}`).join(",");
    return `${key}: ${ms.length} missed, #${ns[0]}..#${ns[ns.length - 1]} (${vias}) [${sample}${
      ns.length > 6 ? ",..." : ""
    }]`;
  });
  return parts.slice(0, 12).join("; ") +
    (parts.length > 12 ? `; ... (${parts.length} groups)` : "");
}
