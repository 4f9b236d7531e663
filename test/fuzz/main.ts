// The long campaign, by hand: `npm run fuzz` runs it on Bun, then on Deno, with one seed each
// (FUZZ_SEED=<seed> replays one). Sizes: FUZZ_FRAME_CASES, FUZZ_HTTP_CASES, FUZZ_RATE_CASES.
import process from "node:process";
import { chooseSeed, runCampaign } from "./campaign.ts";

const num = (name: string, fallback: number) => Number(process.env[name] ?? fallback);

const result = await runCampaign({
  seed: chooseSeed(),
  frameCases: num("FUZZ_FRAME_CASES", 20_000),
  httpCases: num("FUZZ_HTTP_CASES", 10_000),
  rateCases: num("FUZZ_RATE_CASES", 60),
  burstMax: num("FUZZ_BURST_MAX", 3_000),
});
console.log(result.summary);
process.exit(result.tally.ok ? 0 : 1);
