// Hostile clients, fuzzed (issue "Hostile clients", item 8): a short seeded campaign of frames and
// HTTP requests against a real server, each answer checked against the spec oracle in test/fuzz/,
// with a canary subscriber, /up, fds and RSS watched throughout. A failure prints its seed and
// input; `FUZZ_SEED=<seed>` replays it. The long campaign is `npm run fuzz`.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { parseClientFrame } from "../src/protocol/index.ts";
import { runtimeName } from "./support/server.ts";
import { type CampaignResult, chooseSeed, runCampaign } from "./fuzz/campaign.ts";
import { closeAllFuzzSockets } from "./fuzz/client.ts";
import { describeFailure } from "./fuzz/report.ts";

const T = { timeout: 10_000 };

describe(`fuzz: hostile frames and HTTP requests (${runtimeName})`, { timeout: 120_000 }, () => {
  let result: CampaignResult;
  const seed = chooseSeed();

  before(async () => {
    result = await runCampaign({
      seed,
      frameCases: 5_000,
      httpCases: 3_000,
      rateCases: 6,
      burstMax: 400,
    });
    console.log(result.summary);
  }, { timeout: 110_000 });
  after(() => closeAllFuzzSockets());

  const failures = (domain: string) =>
    result.tally.failures.filter((f) => f.domain === domain).map((f) => describeFailure(seed, f))
      .join("\n");

  it("every frame gets the answer the spec gives", T, () => {
    assert.ok(result.tally.frames >= 5_000, `only ${result.tally.frames} frames sent`);
    assert.equal(failures("frames"), "", `FUZZ_SEED=${seed}`);
  });

  it("every HTTP request gets the status and body the spec gives", T, () => {
    assert.ok(result.tally.requests >= 3_000, `only ${result.tally.requests} requests sent`);
    assert.equal(failures("http"), "", `FUZZ_SEED=${seed}`);
  });

  it("the server stayed up, the canary saw every event, fds and RSS came back", T, () => {
    assert.deepEqual(
      result.tally.problems,
      [],
      `FUZZ_SEED=${seed}\n${result.tally.health.join("\n")}`,
    );
  });

  // Found by the fuzzer (FUZZ_SEED=1): a client frame's user_id of the wrong JSON type was ignored.
  it("a client frame whose user_id is not a string is a 4200 (protocol.md §2)", T, () => {
    for (const value of ["null", "5", "{}", "[]", "true"]) {
      const parsed = parseClientFrame(`{"event":"pusher:ping","user_id":${value}}`);
      assert.equal(parsed.ok, false, value);
    }
    assert.equal(parseClientFrame('{"event":"pusher:ping","user_id":"7"}').ok, true);
  });
});
