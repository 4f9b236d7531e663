// Which address a socket is counted under for CHORUS_IP_CONNECTION_RATE: the one header of the
// configured proxy (`fly`: Fly-Client-IP; `xff`: the X-Forwarded-For entry our proxy appended),
// never a header a client can choose, and the peer without CHORUS_TRUST_PROXY. Each request is a
// plain GET of the socket endpoint: the rate limit answers before the upgrade is looked at.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { MAIN, standardConfig } from "./support/apps.ts";
import { type Chorus, runtimeName, startChorus } from "./support/server.ts";

const T = { timeout: 20000 };
/** Two new sockets per second per address; the tests send far faster than the refill. */
const RATE = "2";

function opener(server: Chorus): (headers: Record<string, string>) => Promise<number> {
  return async (headers) => {
    const res = await fetch(`${server.url}/app/${MAIN.key}?protocol=7`, { headers });
    await res.body?.cancel();
    return res.status;
  };
}

/** Three tries per address: the third is over the burst of two. */
async function thirdIsLimited(
  open: (headers: Record<string, string>) => Promise<number>,
  headersFor: (attempt: number) => Record<string, string>,
): Promise<number[]> {
  const statuses: number[] = [];
  for (let attempt = 0; attempt < 3; attempt++) statuses.push(await open(headersFor(attempt)));
  return statuses;
}

function limitedOnlyThird(statuses: number[], what: string): void {
  assert.notEqual(statuses[0], 429, `${what}: first ${statuses}`);
  assert.notEqual(statuses[1], 429, `${what}: second ${statuses}`);
  assert.equal(statuses[2], 429, `${what}: third ${statuses}`);
}

function start(trust: string | undefined): Promise<Chorus> {
  const env: Record<string, string> = { CHORUS_IP_CONNECTION_RATE: RATE };
  if (trust !== undefined) env.CHORUS_TRUST_PROXY = trust;
  return startChorus({ config: standardConfig(), env });
}

describe(`client addresses cannot be spoofed (${runtimeName})`, { timeout: 60000 }, () => {
  const servers: Chorus[] = [];
  let fly: Chorus;
  let xff: Chorus;
  let twoHops: Chorus;
  let direct: Chorus;

  before(async () => {
    [fly, xff, twoHops, direct] = await Promise.all([
      start("fly"),
      start("xff"),
      start("2"),
      start(undefined),
    ]);
    servers.push(fly, xff, twoHops, direct);
  });
  after(() => Promise.all(servers.map((server) => server.stop())));

  it("fly: Fly-Client-IP names the client; X-Forwarded-For changes nothing", T, async () => {
    const open = opener(fly);
    limitedOnlyThird(
      await thirdIsLimited(open, (n) => ({
        "Fly-Client-IP": "203.0.113.1",
        "X-Forwarded-For": `198.51.100.${n}`,
      })),
      "one Fly-Client-IP, changing X-Forwarded-For",
    );
    assert.notEqual(await open({ "Fly-Client-IP": "203.0.113.2" }), 429, "another client");
  });

  it(
    "xff: the last X-Forwarded-For entry names the client; Fly-Client-IP and earlier entries change nothing",
    T,
    async () => {
      const open = opener(xff);
      limitedOnlyThird(
        await thirdIsLimited(open, (n) => ({
          "X-Forwarded-For": `10.9.9.${n}, 203.0.113.1`,
          "Fly-Client-IP": `198.51.100.${n}`,
        })),
        "one appended address, client-chosen entries and Fly-Client-IP",
      );
      assert.notEqual(await open({ "X-Forwarded-For": "203.0.113.2" }), 429, "another client");
    },
  );

  it("a hop count takes the entry that many proxies from the end", T, async () => {
    const open = opener(twoHops);
    limitedOnlyThird(
      await thirdIsLimited(open, (n) => ({
        "X-Forwarded-For": `10.9.9.${n}, 203.0.113.1, 10.0.0.${n}`,
      })),
      "two hops: the second entry from the end",
    );
  });

  it("without CHORUS_TRUST_PROXY every header is ignored: the peer is the client", T, async () => {
    const open = opener(direct);
    limitedOnlyThird(
      await thirdIsLimited(open, (n) => ({
        "Fly-Client-IP": `203.0.113.${n}`,
        "X-Forwarded-For": `198.51.100.${n}`,
      })),
      "changing headers from one peer",
    );
  });
});
