// Runs frame cases: a pool of worker sockets (case i goes to worker i % workers, so a seed replays
// the same sequence per socket), each frame run checked against the oracle, and a peer per app
// that must receive exactly the client events the oracle says are relayed.
import type { Frame } from "../support/ws.ts";
import { FuzzSocket } from "./client.ts";
import type { FrameCase, Tpl } from "./frame-cases.ts";
import { ignorable, matchFrames } from "./frame-match.ts";
import { materialize, type Wire } from "./frame-wire.ts";
import { type Expect, expectFrame, type Model, type Relay, type Verdict } from "./frame-oracle.ts";
import { showInput, type Tally } from "./report.ts";
import { authFor, canonical, type FuzzApp, MAIN, NO_CLIENT, SMALL } from "./spec.ts";

export const WORKER_APPS: FuzzApp[] = [MAIN, MAIN, MAIN, SMALL, NO_CLIENT, MAIN];
const MARKER = '{"event":"pusher:ping","data":{}}';
const CASE_TIMEOUT_MS = 15_000;

export interface FrameRun {
  cases: FrameCase[];
  wsUrl(key: string): string;
  tally: Tally;
}

interface Peer {
  sock: FuzzSocket;
  expected: Map<string, Relay[]>;
  tainted: Set<string>;
}

const ceChannels = (w: number) => [`private-fzce-${w}`, `presence-fzce-${w}`];

export async function runFrames(run: FrameRun): Promise<void> {
  const peers = new Map<FuzzApp, Peer>();
  for (const app of new Set(WORKER_APPS.filter((a) => a.clientEvents))) {
    const sock = await FuzzSocket.connect(run.wsUrl(app.key));
    const peer: Peer = { sock, expected: new Map(), tainted: new Set() };
    for (const [w, a] of WORKER_APPS.entries()) {
      if (a !== app) continue;
      for (const channel of ceChannels(w)) {
        await subscribeOk(sock, app, channel, "peer-observer");
        peer.expected.set(channel, []);
      }
    }
    peers.set(app, peer);
  }
  const workers = await Promise.allSettled(
    WORKER_APPS.map((app, w) => runWorker(run, w, app, peers.get(app))),
  );
  for (const [w, r] of workers.entries()) {
    if (r.status === "rejected") {
      run.tally.problem(`frame worker ${w} stopped: ${String(r.reason)}`);
    }
  }
  for (const [app, peer] of peers) await checkPeer(run.tally, app, peer);
}

async function subscribeOk(
  sock: FuzzSocket,
  app: FuzzApp,
  channel: string,
  userId: string,
): Promise<void> {
  const channelData = JSON.stringify({ user_id: userId });
  const presence = channel.startsWith("presence-");
  const signed = presence ? `${sock.sid}:${channel}:${channelData}` : `${sock.sid}:${channel}`;
  const data = {
    channel,
    auth: authFor(app, signed),
    channel_data: presence ? channelData : undefined,
  };
  sock.send(JSON.stringify({ event: "pusher:subscribe", data }));
  const got = await sock.collectUntil(
    (f) => f.channel === channel && f.event.includes("subscription_"),
    10_000,
  );
  if (got.frames.at(-1)?.event !== "pusher_internal:subscription_succeeded") {
    throw new Error(`setup: subscribing ${channel} failed: ${JSON.stringify(got).slice(0, 500)}`);
  }
}

async function runWorker(
  run: FrameRun,
  w: number,
  app: FuzzApp,
  peer: Peer | undefined,
): Promise<void> {
  let sock: FuzzSocket | undefined;
  let model!: Model;
  const reopen = async () => {
    sock?.close();
    sock = await FuzzSocket.connect(run.wsUrl(app.key));
    model = { worker: w, app, sid: sock.sid, subs: new Map() };
    for (const channel of ceChannels(w)) {
      await subscribeOk(sock, app, channel, `fzce-${w}`);
      model.subs.set(
        channel,
        channel.startsWith("presence-")
          ? { kind: "presence", userId: `fzce-${w}`, info: null }
          : { kind: "private" },
      );
    }
  };
  await reopen();
  for (let index = w; index < run.cases.length; index += WORKER_APPS.length) {
    let stale: boolean;
    try {
      stale = await runCase(run, index, model, sock!, peer);
    } catch (error) {
      const { cat } = run.cases[index];
      run.tally.add("frames", cat, "RUNNER ERROR", "fail");
      run.tally.fail({
        domain: "frames",
        cat,
        index,
        input: "(see error)",
        why: `runner error: ${String(error)}`,
      });
      for (const channel of ceChannels(w)) peer?.tainted.add(channel);
      stale = true;
    }
    // After a close or a deviation the socket may differ from the model: start afresh.
    if (stale) await reopen();
  }
  await sock?.closeAndWait();
}

/** Sends one case on a worker's socket and checks the answers; true when the socket is stale. */
async function runCase(
  run: FrameRun,
  index: number,
  model: Model,
  sock: FuzzSocket,
  peer: Peer | undefined,
): Promise<boolean> {
  const { app, worker: w } = model;
  const { cat, tpl } = run.cases[index];
  const context = `worker ${w} app ${app.id} socket ${model.sid} signed in as ${
    JSON.stringify(model.user?.id ?? null)
  }, subscribed to ${JSON.stringify([...model.subs.keys()])}`;
  const items: Exclude<Tpl, { t: "burst" }>[] = tpl.t === "burst"
    ? tpl.items.filter((t) => t.t !== "burst")
    : [tpl];
  const wires: Wire[] = [];
  const verdicts: Verdict[] = [];
  for (const item of items) {
    const wire = materialize(item, model);
    const verdict = expectFrame(model, wire);
    wires.push(wire);
    verdicts.push(verdict);
    if (verdict.expect.t === "close") break;
  }
  const follow = tpl.t === "sized" && tpl.follow;
  const result = await exchange(sock, wires, verdicts.map((v) => v.expect), follow);
  run.tally.frames += wires.length;
  const input = wires.length === 1
    ? showWire(wires[0])
    : `${wires.length} frames: ${wires.slice(0, 8).map(showWire).join(", ")}...`;
  let verdict: "pass" | "known" | "fail" = result.why ? "fail" : "pass";
  const size = wires.length < 100 ? "< 100" : wires.length < 1000 ? "100-999" : ">= 1000";
  let outcome = wires.length === 1
    ? outcomeOf(verdicts[0].expect, result.frames)
    : `${size} frames`;
  let known = wires.length === 1 ? verdicts[0].known : undefined;
  if (follow && verdicts[0].expect.t === "close" && result.closed !== undefined) {
    known = {
      label: "close-code-lost-when-client-keeps-sending",
      expect: { t: "close", code: result.closed === 0 ? 0 : 1006 },
    };
  }
  if (result.why && known && !matchFrames([known.expect], result.frames, result.closed)) {
    verdict = "known";
    outcome = `${known.label}`;
    run.tally.knownDeviation(
      known.label,
      `FUZZ_SEED=${run.tally.seed} case #${index} on app ${app.id}: ${input}`,
    );
  }
  run.tally.add("frames", cat, verdict === "fail" ? "MISMATCH" : outcome, verdict);
  if (verdict === "fail") {
    run.tally.fail({ domain: "frames", cat, index, input, why: result.why!, context });
  }
  if (verdict === "pass") {
    for (const v of verdicts) {
      if (v.expect.t === "relay") {
        peer?.expected.get(v.expect.relay.channel)?.push(v.expect.relay);
      }
    }
  }
  if (verdict === "fail") { for (const channel of ceChannels(w)) peer?.tainted.add(channel); }
  return verdict !== "pass" || result.closed !== undefined || sock.closed !== undefined;
}

function showWire(wire: Wire): string {
  return showInput("text" in wire ? wire.text : wire.bytes);
}

async function exchange(
  sock: FuzzSocket,
  wires: Wire[],
  expected: Expect[],
  follow: boolean,
): Promise<{ frames: Frame[]; closed?: number; why?: string }> {
  for (const wire of wires) sock.send("text" in wire ? wire.text : wire.bytes);
  // The marker's pong ends the replies. A frame that must close the socket is followed by nothing
  // (a client that keeps sending races the close: `follow`), and its answer is the close or a frame.
  const closing = expected.some((e) => e.t === "close");
  if (!closing || follow) sock.send(MARKER);
  // Replies due before the close (cache misses counted when optional): one more means no close.
  const due = expected.reduce(
    (n, e) =>
      n +
      (e.t === "none" || e.t === "relay" || e.t === "close"
        ? 0
        : e.t === "sub_ok" && e.cache !== "no"
        ? 2
        : 1),
    0,
  );
  const got = closing && !follow
    ? await sock.collectUntil(
      (_f, taken) => taken.filter((f) => !ignorable(f)).length > due,
      CASE_TIMEOUT_MS,
    )
    : await sock.collectPongs(expected.filter((e) => e.t === "pong").length + 1, CASE_TIMEOUT_MS);
  const frames = got.frames.filter((f) => !ignorable(f));
  const why = (got.timedOut ? `timed out after ${CASE_TIMEOUT_MS} ms; ` : "") +
    (matchFrames(expected, frames, got.closed) ?? "");
  return { frames, closed: got.closed, why: why || undefined };
}

function outcomeOf(e: Expect, frames: Frame[]): string {
  const f = frames[0] as Frame | undefined;
  const data = f?.data as { code?: unknown; status?: unknown } | undefined;
  switch (e.t) {
    case "error":
      return `pusher:error ${String(data?.code)}`;
    case "sub_error":
      return `subscription_error ${String(data?.status)}`;
    case "sub_ok":
      return e.me ? "subscribed (presence)" : "subscribed";
    case "relay":
      return "client event relayed";
    case "close":
      return `close ${e.code}`;
    case "signin_ok":
      return "signed in";
    default:
      return e.t === "none" ? "no reply" : e.t;
  }
}

/** The peer must hold exactly the relayed events of every channel, in order. */
async function checkPeer(tally: Tally, app: FuzzApp, peer: Peer): Promise<void> {
  peer.sock.send(MARKER);
  const got = await peer.sock.collectPongs(1, CASE_TIMEOUT_MS);
  const seen = new Map<string, Frame[]>();
  for (const f of got.frames) {
    if (!f.event.startsWith("client-") || typeof f.channel !== "string") continue;
    seen.set(f.channel, [...(seen.get(f.channel) ?? []), f]);
  }
  let checked = 0;
  for (const [channel, relays] of peer.expected) {
    if (peer.tainted.has(channel)) continue;
    checked += relays.length;
    const frames = seen.get(channel) ?? [];
    const bad = relays.findIndex((r, i) => {
      const f = frames[i];
      return !f || f.event !== r.event || canonical(f.data) !== r.data || f.user_id !== r.userId;
    });
    tally.add(
      "frames",
      "peer-delivery",
      bad < 0 && frames.length === relays.length ? "all relayed, in order" : "MISMATCH",
      bad < 0 && frames.length === relays.length ? "pass" : "fail",
    );
    if (bad >= 0 || frames.length !== relays.length) {
      tally.fail({
        domain: "frames",
        cat: "peer-delivery",
        index: bad,
        input: `app ${app.id} channel ${channel}`,
        why:
          `peer got ${frames.length} client events, expected ${relays.length}; first difference at #${bad}: expected ${
            JSON.stringify(relays[bad])
          }, got ${JSON.stringify(frames[bad] ?? null).slice(0, 300)}`,
      });
    }
  }
  tally.health.push(
    `peer on app ${app.id} checked ${checked} relayed client events on ${
      peer.expected.size - peer.tainted.size
    } channels`,
  );
  await peer.sock.closeAndWait();
}
