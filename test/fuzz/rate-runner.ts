// Client-event rate limit (§5): a fresh socket sends a burst of valid client events without
// awaiting. The bucket starts full (rate tokens) and refills at rate/s, so of K events at least
// min(K, rate) pass, at most rate + refill(elapsed) + 1 do, every other one gets pusher:error 4301,
// and a peer receives exactly the ones that passed, in order.
import fc from "fast-check";
import { FuzzSocket } from "./client.ts";
import { showInput, type Tally } from "./report.ts";
import { authFor, RATE } from "./spec.ts";

export interface RateRun {
  seed: number;
  count: number;
  wsUrl(key: string): string;
  tally: Tally;
}

async function subscribe(sock: FuzzSocket, channel: string): Promise<boolean> {
  const auth = authFor(RATE, `${sock.sid}:${channel}`);
  sock.send(JSON.stringify({ event: "pusher:subscribe", data: { channel, auth } }));
  const got = await sock.collectUntil((f) => f.channel === channel, 10_000);
  return got.frames.at(-1)?.event === "pusher_internal:subscription_succeeded";
}

export async function runRate(run: RateRun): Promise<void> {
  const bursts = fc.sample(fc.integer({ min: 5, max: 60 }), {
    seed: run.seed ^ 0x5a5a,
    numRuns: run.count,
  });
  const peer = await FuzzSocket.connect(run.wsUrl(RATE.key));
  try {
    for (const [index, k] of bursts.entries()) {
      const channel = `private-rate-${index}`;
      if (!(await subscribe(peer, channel))) {
        throw new Error(`rate peer could not subscribe ${channel}`);
      }
      const sock = await FuzzSocket.connect(run.wsUrl(RATE.key));
      if (!(await subscribe(sock, channel))) {
        throw new Error(`rate sender could not subscribe ${channel}`);
      }
      const started = Date.now();
      for (let i = 0; i < k; i++) {
        sock.send(JSON.stringify({ event: "client-tick", channel, data: { i } }));
      }
      sock.send('{"event":"pusher:ping","data":{}}');
      const got = await sock.collectPongs(1, 15_000);
      const elapsed = (Date.now() - started) / 1000;
      await sock.closeAndWait();
      peer.send('{"event":"pusher:ping","data":{}}');
      const delivered = (await peer.collectPongs(1, 15_000)).frames
        .filter((f) => f.event === "client-tick" && f.channel === channel)
        .map((f) => (f.data as { i: number }).i);
      peer.send(JSON.stringify({ event: "pusher:unsubscribe", data: { channel } }));
      run.tally.frames += k;
      const refused = got.frames.filter((f) => {
        const data = f.data as { code?: unknown } | undefined;
        return f.event === "pusher:error" && data?.code === 4301;
      }).length;
      const passed = k - refused;
      const most = RATE.rateLimit + Math.ceil(elapsed * RATE.rateLimit) + 1;
      const why = got.frames.length !== refused
        ? `replies other than 4301: ${JSON.stringify(got.frames).slice(0, 300)}`
        : passed < Math.min(k, RATE.rateLimit) || passed > most
        ? `${passed} of ${k} passed in ${elapsed} s (allowed ${
          Math.min(k, RATE.rateLimit)
        }..${most})`
        : delivered.length !== passed || delivered.some((v, i) => i > 0 && v <= delivered[i - 1])
        ? `peer got ${JSON.stringify(delivered)} while ${passed} passed`
        : undefined;
      const outcome = refused > 0 ? "over the limit: 4301" : "within the limit";
      run.tally.add("frames", "rate-limit", why ? "MISMATCH" : outcome, why ? "fail" : "pass");
      if (why) {
        run.tally.fail({
          domain: "frames",
          cat: "rate-limit",
          index,
          input: `${k} x ${
            showInput(`{"event":"client-tick","channel":"${channel}","data":{"i":n}}`)
          }`,
          why,
        });
      }
    }
  } finally {
    await peer.closeAndWait();
  }
}
