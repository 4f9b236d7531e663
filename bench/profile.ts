/**
 * Summarises a V8/Bun `.cpuprofile` (from `--cpu-prof`): the functions with the most self time,
 * and the Chorus functions (src/, adapters/) with the most inclusive time.
 *
 *   bun bench/profile.ts bench/.out/prof/chorus-bun-....cpuprofile [--top 25] [--from ms --to ms]
 *
 * JSC's sampler takes samples on the wall clock, idle or not, and an idle thread's samples land
 * on whatever ran last: restrict to a phase in which the server was busy (--from / --to, from
 * the phase's `window_epoch_ms` in the results line) for percentages that mean CPU.
 */
import { readFileSync } from "node:fs";
import process from "node:process";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const args = process.argv.slice(2);
const file = args.find((a, i) => !a.startsWith("--") && (i === 0 || !args[i - 1].startsWith("--")));
const flag = (name: string) => {
  const at = args.indexOf(name);
  return at >= 0 ? Number(args[at + 1]) : undefined;
};
const top = flag("--top") ?? 25;
/** Only samples in this wall-clock window (Date.now() ms, as in a phase's `window_epoch_ms`). */
const fromMs = flag("--from");
const toMs = flag("--to");
if (!file) {
  console.error("usage: bun bench/profile.ts <file.cpuprofile> [--top N] [--from ms --to ms]");
  process.exit(2);
}

const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const parent = new Map<number, number>();
for (const node of profile.nodes) {
  for (const child of node.children ?? []) parent.set(child, node.id);
}

const selfUs = new Map<number, number>();
// startTime is in µs since the epoch; each sample's time is the running sum of timeDeltas.
let sampleAt = profile.startTime;
for (let i = 0; i < profile.samples.length; i++) {
  sampleAt += profile.timeDeltas[i] ?? 0;
  if (fromMs !== undefined && sampleAt / 1000 < fromMs) continue;
  if (toMs !== undefined && sampleAt / 1000 > toMs) continue;
  const id = profile.samples[i];
  selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
}
const totalUs = [...selfUs.values()].reduce((a, b) => a + b, 0);

function label(frame: CallFrame): string {
  const url = frame.url.replace(/^file:\/\//, "").replace(
    /^.*\/(src|adapters|bench|node_modules)\//,
    "$1/",
  );
  const name = frame.functionName || "(anonymous)";
  return url ? `${name} ${url}:${frame.lineNumber + 1}` : name;
}

const self = new Map<string, number>();
const inclusive = new Map<string, number>();
for (const [id, us] of selfUs) {
  const node = byId.get(id)!;
  const key = label(node.callFrame);
  self.set(key, (self.get(key) ?? 0) + us);
  // Inclusive: every distinct function on the stack once.
  const seen = new Set<string>();
  for (let at: number | undefined = id, depth = 0; at !== undefined && depth < 500; depth++) {
    const frameKey = label(byId.get(at)!.callFrame);
    if (!seen.has(frameKey)) {
      seen.add(frameKey);
      inclusive.set(frameKey, (inclusive.get(frameKey) ?? 0) + us);
    }
    at = parent.get(at);
  }
}

const pct = (us: number) => `${((100 * us) / totalUs).toFixed(1).padStart(5)} %`;
const ms = (us: number) => `${(us / 1000).toFixed(1).padStart(9)} ms`;
console.log(`${file}: ${(totalUs / 1e6).toFixed(2)} s sampled`);
console.log(`\nTop ${top} by self time:`);
for (const [key, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`${ms(us)} ${pct(us)}  ${key}`);
}
console.log(`\nTop ${top} Chorus functions (src/, adapters/) by inclusive time:`);
const chorus = [...inclusive].filter(([key]) => / (src|adapters)\//.test(key));
for (const [key, us] of chorus.sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`${ms(us)} ${pct(us)}  ${key}`);
}
