/**
 * Load generator process, started by bench/run.ts and bench/scale.ts (`bun bench/loadgen.ts`)
 * and driven over IPC. It holds a share of the benchmark's WebSocket clients (Bun's global
 * WebSocket), connects and subscribes them on command, counts event deliveries (in all and per
 * client, for `check`) and records their end-to-end latency from the send timestamp that the
 * driver puts in each event's data.
 *
 * Every command carries an `id`; the reply echoes it. Every wait is bounded by `timeoutMs`.
 */
import process from "node:process";
import { Histogram } from "./lib/hist.ts";
import { type Spread, spreadSlot } from "./lib/spread.ts";
import { type AppCreds, channelAuth } from "../test/support/index.ts";

export type Command =
  | { id: number; cmd: "clock" }
  | { id: number; cmd: "offset"; offset: number }
  | {
    id: number;
    cmd: "connect";
    /** Client `index` connects to `urls[index % urls.length]`. */
    urls: string[];
    from: number;
    to: number;
    window: number;
    timeoutMs: number;
  }
  | {
    id: number;
    cmd: "subscribe";
    channel: string;
    from: number;
    to: number;
    window: number;
    timeoutMs: number;
    /** Presence channels: sign `channel_data` with the app secret; user id = index % users. */
    presence?: { app: AppCreds; users: number };
  }
  | {
    id: number;
    cmd: "subscribe-spread";
    /** Each client of [from, to) joins the channel `spread` gives it (bench/lib/spread.ts). */
    spread: Spread;
    from: number;
    to: number;
    window: number;
    timeoutMs: number;
    /** Presence channels: signed `channel_data` with the user id `spread` gives. */
    app?: AppCreds;
  }
  | {
    id: number;
    cmd: "measure";
    latency: boolean;
    /** Also keep, per event (its `s` sequence number), the latency of its first delivery. */
    firstPerEvent?: boolean;
    progressMs: number;
  }
  | { id: number; cmd: "report" }
  | {
    id: number;
    cmd: "check";
    /** Events sent per channel since `measure`: each client must have their sum over its
     * channels. */
    events: Record<string, number>;
  }
  | { id: number; cmd: "close"; timeoutMs: number }
  | { id: number; cmd: "exit" };

export interface Report {
  delivered: number;
  /** Frames that were not bench events (control frames, member events, pings). */
  other: number;
  latency: ReturnType<Histogram["toSparse"]>;
  /** [sequence, latency of its first delivery in this process (ms)] per event. */
  firstPerEvent: [number, number][];
  /** Sockets the server closed or that failed while they were expected to stay open. */
  dropped: number;
  errors: string[];
}

/** The answer to `check`: how many open clients got exactly, fewer or more events. */
export interface CheckReport {
  clients: number;
  open: number;
  exact: number;
  short: number;
  over: number;
  /** Deliveries expected over all clients, and received. */
  expected: number;
  received: number;
  /** A few of the clients that were off: "index: received/expected". */
  samples: string[];
}

/** Bench events are named `bench-...`: a frame starting `{"event":"b` is one of ours. */
const B = "b".charCodeAt(0);
const EVENT_NAME_AT = '{"event":"'.length;
/** The send timestamp: event data is `{"t":<ms>,...}`, JSON-encoded again inside the frame. */
const T_MARK = '{\\"t\\":';
/** The event's sequence number, right after the timestamp: `,"s":<n>` (escaped likewise). */
const S_MARK = ',\\"s\\":';

interface Client {
  index: number;
  ws: WebSocket;
  socketId: string;
  open: boolean;
  closing: boolean;
  /** Bench events since the last `measure`. */
  received: number;
  /** Channels whose subscription_succeeded arrived. */
  channels: string[];
}

const clients = new Map<number, Client>();
let delivered = 0;
let other = 0;
let dropped = 0;
let latency: Histogram | null = null;
let firstPerEvent: Map<number, number> | null = null;
/** This process's performance.now() minus run.ts's, measured by run.ts over IPC. */
let offset = 0;
let progress: ReturnType<typeof setInterval> | undefined;
const errors: string[] = [];
/** Channel -> what to do on each subscription_succeeded while a subscribe command runs. */
const awaitingSubscription = new Map<string, (client: Client) => void>();
let onEstablished: ((client: Client, ok: boolean) => void) | undefined;
let onClosed: (() => void) | undefined;

function noteError(message: string): void {
  if (errors.length < 20) errors.push(message.slice(0, 300));
}

function onFrame(client: Client, data: unknown): void {
  if (typeof data !== "string") {
    other++;
    return;
  }
  if (data.charCodeAt(EVENT_NAME_AT) === B) {
    delivered++;
    client.received++;
    if (latency) {
      const at = data.indexOf(T_MARK);
      if (at >= 0) {
        const sent = parseFloat(data.substring(at + T_MARK.length, at + T_MARK.length + 24));
        const ms = performance.now() - offset - sent;
        latency.record(ms);
        if (firstPerEvent) {
          const s = data.indexOf(S_MARK, at);
          const seq = s >= 0
            ? parseInt(data.substring(s + S_MARK.length, s + S_MARK.length + 12))
            : NaN;
          const seen = firstPerEvent.get(seq);
          if (seen === undefined || ms < seen) firstPerEvent.set(seq, ms);
        }
      }
    }
    return;
  }
  other++;
  if (data.startsWith('{"event":"pusher:connection_established"')) {
    const match = /socket_id\\":\\"([0-9.]+)/.exec(data);
    client.socketId = match ? match[1] : "";
    client.open = true;
    onEstablished?.(client, true);
  } else if (data.startsWith('{"event":"pusher_internal:subscription_succeeded"')) {
    const match = /"channel":"([^"]+)"/.exec(data);
    if (match) {
      client.channels.push(match[1]);
      awaitingSubscription.get(match[1])?.(client);
    }
  } else if (data.startsWith('{"event":"pusher:ping"')) {
    client.ws.send('{"event":"pusher:pong","data":{}}');
  } else if (
    data.startsWith('{"event":"pusher:error"') ||
    data.startsWith('{"event":"pusher:subscription_error"')
  ) {
    noteError(data);
  }
}

function openClient(url: string, index: number): Client {
  const ws = new WebSocket(url);
  const client: Client = {
    index,
    ws,
    socketId: "",
    open: false,
    closing: false,
    received: 0,
    channels: [],
  };
  ws.onmessage = (event) => onFrame(client, event.data);
  ws.onerror = () => {
    if (!client.open) noteError(`socket ${index}: error before connection_established`);
  };
  ws.onclose = (event) => {
    const wasOpen = client.open;
    client.open = false;
    clients.delete(index);
    if (!wasOpen && !client.closing) {
      noteError(`socket ${index}: closed ${event.code} before connection_established`);
      onEstablished?.(client, false);
    } else if (!client.closing) {
      dropped++;
      noteError(`socket ${index}: closed by the server (${event.code} ${event.reason})`);
    }
    onClosed?.();
  };
  clients.set(index, client);
  return client;
}

/**
 * Opens the sockets of [from, to) that are not open (all of them, the first time; again those
 * that failed), with at most `window` handshakes in flight.
 */
function connect(
  c: Extract<Command, { cmd: "connect" }>,
): Promise<{ opened: number; failed: number; ms: number }> {
  const started = performance.now();
  const todo: number[] = [];
  for (let i = c.from; i < c.to; i++) if (!clients.has(i)) todo.push(i);
  let next = 0;
  let inFlight = 0;
  let opened = 0;
  let failed = 0;
  const total = todo.length;
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      onEstablished = undefined;
      resolve({ opened, failed, ms: performance.now() - started });
    };
    const timer = setTimeout(() => {
      failed = total - opened;
      noteError(`connect: timed out with ${opened}/${total} open`);
      finish();
    }, c.timeoutMs);
    const pump = () => {
      while (inFlight < c.window && next < total) {
        inFlight++;
        const index = todo[next++];
        openClient(c.urls[index % c.urls.length], index);
      }
    };
    onEstablished = (_client, ok) => {
      inFlight--;
      if (ok) opened++;
      else failed++;
      if (opened + failed >= total) finish();
      else pump();
    };
    if (total <= 0) finish();
    else pump();
  });
}

/** Subscribes sockets [from, to) to a channel, at most `window` requests in flight. */
function subscribe(
  c: Extract<Command, { cmd: "subscribe" }>,
): Promise<{ ok: number; failed: number; ms: number }> {
  const started = performance.now();
  const targets: Client[] = [];
  for (let i = c.from; i < c.to; i++) {
    const client = clients.get(i);
    if (client?.open) targets.push(client);
  }
  let sent = 0;
  let ok = 0;
  return new Promise((resolve) => {
    const finish = (timedOut: boolean) => {
      clearTimeout(timer);
      awaitingSubscription.delete(c.channel);
      if (timedOut) noteError(`subscribe ${c.channel}: timed out with ${ok}/${targets.length}`);
      resolve({ ok, failed: targets.length - ok, ms: performance.now() - started });
    };
    const timer = setTimeout(() => finish(true), c.timeoutMs);
    const send = () => {
      while (sent < targets.length && sent - ok < c.window) {
        const client = targets[sent++];
        const presence = c.presence
          ? { app: c.presence.app, user: client.index % c.presence.users }
          : undefined;
        client.ws.send(subscribeFrame(client, c.channel, presence));
      }
    };
    awaitingSubscription.set(c.channel, () => {
      if (++ok >= targets.length) finish(false);
      else send();
    });
    if (targets.length === 0) finish(false);
    else send();
  });
}

/** The `pusher:subscribe` frame of `client` for `channel` (signed for presence). */
function subscribeFrame(
  client: Client,
  channel: string,
  presence?: { app: AppCreds; user: number },
): string {
  const data: Record<string, string> = { channel };
  if (presence) {
    const { user } = presence;
    const channelData = JSON.stringify({ user_id: `u${user}`, user_info: { n: user } });
    data.channel_data = channelData;
    data.auth = channelAuth(presence.app, client.socketId, channel, channelData);
  }
  return JSON.stringify({ event: "pusher:subscribe", data });
}

/**
 * Subscribes each open client of [from, to) to the channel `spread` gives it (if any), at most
 * `window` requests in flight; answers the successes per channel.
 */
function subscribeSpread(c: Extract<Command, { cmd: "subscribe-spread" }>): Promise<{
  ok: number;
  failed: number;
  perChannel: Record<string, number>;
  /** Errors noted meanwhile (subscription errors, sockets closed). */
  errors: string[];
  ms: number;
}> {
  const started = performance.now();
  const errorsBefore = errors.length;
  const targets: { client: Client; channel: string; user: number }[] = [];
  for (let i = c.from; i < c.to; i++) {
    const client = clients.get(i);
    const slot = spreadSlot(i, c.spread);
    if (client?.open && slot) targets.push({ client, ...slot });
  }
  const perChannel: Record<string, number> = {};
  let sent = 0;
  let ok = 0;
  return new Promise((resolve) => {
    const names = new Set(targets.map((t) => t.channel));
    const finish = (timedOut: boolean) => {
      clearTimeout(timer);
      for (const name of names) awaitingSubscription.delete(name);
      if (timedOut) noteError(`subscribe ${c.spread.prefix}*: timed out, ${ok}/${targets.length}`);
      resolve({
        ok,
        failed: targets.length - ok,
        perChannel,
        errors: errors.slice(errorsBefore),
        ms: performance.now() - started,
      });
    };
    const timer = setTimeout(() => finish(true), c.timeoutMs);
    const send = () => {
      while (sent < targets.length && sent - ok < c.window) {
        const { client, channel, user } = targets[sent++];
        const presence = c.app && c.spread.users !== undefined ? { app: c.app, user } : undefined;
        client.ws.send(subscribeFrame(client, channel, presence));
      }
    };
    const onSucceeded = (client: Client) => {
      const channel = client.channels[client.channels.length - 1];
      perChannel[channel] = (perChannel[channel] ?? 0) + 1;
      if (++ok >= targets.length) finish(false);
      else send();
    };
    for (const name of names) awaitingSubscription.set(name, onSucceeded);
    if (targets.length === 0) finish(false);
    else send();
  });
}

/** Compares each client's events since `measure` with the events sent to its channels. */
function check(events: Record<string, number>): CheckReport {
  const report: CheckReport = {
    clients: clients.size,
    open: 0,
    exact: 0,
    short: 0,
    over: 0,
    expected: 0,
    received: 0,
    samples: [],
  };
  for (const client of clients.values()) {
    if (client.open) report.open++;
    let expected = 0;
    for (const channel of client.channels) expected += events[channel] ?? 0;
    report.expected += expected;
    report.received += client.received;
    if (client.received === expected) {
      report.exact++;
      continue;
    }
    if (client.received < expected) report.short++;
    else report.over++;
    if (report.samples.length < 5) {
      report.samples.push(`${client.index}: ${client.received}/${expected}`);
    }
  }
  return report;
}

/** Closes every socket; resolves once all are closed (or on timeout). */
function closeAll(timeoutMs: number): Promise<{ closed: number; ms: number }> {
  const started = performance.now();
  const total = clients.size;
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      onClosed = undefined;
      resolve({ closed: total - clients.size, ms: performance.now() - started });
    };
    const timer = setTimeout(() => {
      noteError(`close: timed out with ${clients.size} still open`);
      for (const client of clients.values()) {
        (client.ws as WebSocket & { terminate?: () => void }).terminate?.();
      }
      clients.clear();
      finish();
    }, timeoutMs);
    onClosed = () => {
      if (clients.size === 0) finish();
    };
    for (const client of clients.values()) {
      client.closing = true;
      client.ws.close(1000, "bench done");
    }
    if (total === 0) finish();
  });
}

function reply(id: number, body: Record<string, unknown>): void {
  process.send!({ id, ...body });
}

process.on("message", async (message: Command) => {
  switch (message.cmd) {
    case "clock":
      reply(message.id, { now: performance.now() });
      return;
    case "offset":
      offset = message.offset;
      reply(message.id, {});
      return;
    case "connect":
      reply(message.id, await connect(message));
      return;
    case "subscribe":
      reply(message.id, await subscribe(message));
      return;
    case "subscribe-spread":
      reply(message.id, await subscribeSpread(message));
      return;
    case "check":
      reply(message.id, { check: check(message.events) });
      return;
    case "measure":
      delivered = 0;
      other = 0;
      dropped = 0;
      errors.length = 0;
      latency = message.latency ? new Histogram() : null;
      firstPerEvent = message.firstPerEvent ? new Map() : null;
      for (const client of clients.values()) client.received = 0;
      clearInterval(progress);
      progress = setInterval(() => process.send!({ progress: delivered }), message.progressMs);
      reply(message.id, {});
      return;
    case "report": {
      clearInterval(progress);
      progress = undefined;
      const report: Report = {
        delivered,
        other,
        dropped,
        errors: [...errors],
        latency: (latency ?? new Histogram()).toSparse(),
        firstPerEvent: [...(firstPerEvent ?? new Map<number, number>())],
      };
      reply(message.id, { report });
      return;
    }
    case "close":
      reply(message.id, await closeAll(message.timeoutMs));
      return;
    case "exit":
      clearInterval(progress);
      reply(message.id, {});
      process.exit(0);
  }
});

// Orphaned (the driver was killed): close everything rather than hold the sockets forever.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(1);
}, 2_000).unref?.();

process.send!({ ready: true });
