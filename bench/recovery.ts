/**
 * The duplicate window of unmodified clients (docs/recovery.md), by hand: `clients` session
 * sockets that answer pings as pusher-js does, each on one of `channels` recovery channels;
 * `rate` events per second in all through the HTTP API; every 100 ms one client's socket closes
 * without warning and comes back at once with its session. At the end: events lost and repeated
 * per client (a repeat is an event sent after the socket's last confirmed ping).
 *
 *   bun bench/recovery.ts [clients=200] [seconds=20] [rate=50] [channels=10]
 *
 * With REDIS_URL set, the node runs the Redis driver (history and sessions in Redis).
 */
import process from "node:process";
import { adminClient, deleteKeys } from "../test/support/redis.ts";
import { startChorus } from "../test/support/server.ts";
import { serverSdk } from "../test/support/clients.ts";
import { closeAllRawSockets, connectSocket, type RawSocket } from "../test/support/ws.ts";

const [clients, seconds, rate, channelCount] = [200, 20, 50, 10].map((fallback, i) => {
  const n = Number(process.argv[2 + i] ?? fallback);
  if (!Number.isInteger(n) || n < 1) throw new Error(`argument ${i + 1}: a whole number >= 1`);
  return n;
});
const APP = { id: "recovery", key: "recovery-key", secret: "recovery-secret" };
const redis = process.env.REDIS_URL;
const prefix = `bench-recovery-${process.pid}`;
const server = await startChorus({
  config: { apps: [{ ...APP, recovery: { channels: ["*"] } }] },
  env: redis ? { REDIS_URL: redis, CHORUS_REDIS_PREFIX: prefix } : {},
});
const sdk = serverSdk(server, APP);
const channels = Array.from({ length: channelCount }, (_, i) => `room-${i}`);

interface Client {
  id: string;
  channel: string;
  socket: RawSocket;
  got: number[];
}

async function open(client: Omit<Client, "socket"> & { socket?: RawSocket }): Promise<Client> {
  const url = server.wsUrl(APP.key).replace("/app/", `/session/${client.id}/app/`);
  const socket = await connectSocket(url, { answerPings: true });
  socket.subscribe(client.channel);
  const done = { ...client, socket } as Client;
  socket.closed.then(() => {
    const values = socket.received((f) => f.event === "e" && f.channel === client.channel);
    done.got.push(...values.map((f) => Number(f.data)));
  });
  await socket.nextEvent("pusher_internal:subscription_succeeded", client.channel);
  return done;
}

const all = await Promise.all(
  Array.from(
    { length: clients },
    (_, i) =>
      open({
        id: `bench-session-${i}-${Date.now()}`,
        channel: channels[i % channelCount],
        got: [],
      }),
  ),
);
const sent = new Map(channels.map((c) => [c, 0]));
let publishing = true;
const publisher = (async () => {
  let next = Date.now();
  for (let i = 0; publishing; i++) {
    const channel = channels[i % channelCount];
    const n = sent.get(channel)! + 1;
    sent.set(channel, n);
    await sdk.trigger(channel, "e", String(n));
    next += 1000 / rate;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, next - Date.now())));
  }
})();
let drops = 0;
const dropper = setInterval(async () => {
  const i = Math.floor(Math.random() * all.length);
  const client = all[i];
  drops++;
  client.socket.close();
  await client.socket.closed;
  all[i] = await open(client);
}, 100);
await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
clearInterval(dropper);
publishing = false;
await publisher;
await new Promise((resolve) => setTimeout(resolve, 1500)); // the last events and replays
await closeAllRawSockets();
await new Promise((resolve) => setTimeout(resolve, 200));

let lost = 0;
let repeated = 0;
const repeatsPerClient: number[] = [];
for (const client of all) {
  const first = client.got[0] ?? 1;
  const last = sent.get(client.channel)!;
  const seen = new Set(client.got);
  const missing: number[] = [];
  for (let n = first; n <= last; n++) if (!seen.has(n)) missing.push(n);
  lost += missing.length;
  if (missing.length > 0 && process.env.BENCH_DEBUG) {
    console.error(JSON.stringify({ client: client.id, missing, got: client.got }));
  }
  const repeats = client.got.length - seen.size;
  repeated += repeats;
  repeatsPerClient.push(repeats);
}
repeatsPerClient.sort((a, b) => a - b);
console.log(JSON.stringify({
  driver: redis ? "redis" : "local",
  clients,
  seconds,
  rate,
  channels: channelCount,
  drops,
  events: [...sent.values()].reduce((a, b) => a + b, 0),
  lost,
  repeated,
  repeats_per_drop: Number((repeated / Math.max(1, drops)).toFixed(2)),
  repeats_per_client_max: repeatsPerClient.at(-1),
  events_per_channel_per_s: rate / channelCount,
}));
await server.stop();
if (redis) {
  const admin = adminClient(redis);
  await deleteKeys(admin, prefix);
  admin.disconnect();
}
process.exit(0);
