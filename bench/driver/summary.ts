/**
 * The end of a run: medians over repeats, the Chorus / bare ratios, the target checks and the
 * summary line; and `--summarize FILE`, which computes them again from a results file.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { emit, type Line, setResultsFile } from "./log.ts";
import { type TargetName, TARGETS, type Variant, VARIANTS } from "./names.ts";
import { OUT } from "./paths.ts";
import { round } from "./util.ts";

type Run = [TargetName, Variant];
/** A ratio of the summary: its name, the two lines (a / b) and the field. */
type Pair = [name: string, a: Run, b: Run, key: string];

const CPU = "cpu_s_per_1k_deliveries";
/** Chorus on each runtime and its bare baseline. */
const BASELINES = [["chorus-bun", "bare-bun"], ["chorus-deno", "bare-deno"]] as const;
/** The public-variant figures compared with the baseline: [name in the ratio, field]. */
const PUBLIC_FIGURES = [
  ["cpu_per_delivery", CPU],
  ["saturation cpu_per_delivery", "saturation_cpu_s_per_1k_deliveries"],
  ["bytes_per_connection", "bytes_per_connection"],
  ["deliveries_per_s", "deliveries_per_s"],
  ["connections_per_s", "connections_per_s"],
  ["api_cpu_per_call", "api_cpu_ms_per_call"],
] as const;

/** Every ratio, in the order the summary prints them. */
const PAIRS: Pair[] = [
  ...BASELINES.flatMap(([chorus, bare]) =>
    PUBLIC_FIGURES.map(([figure, key]): Pair => [
      `${chorus}/${bare} ${figure}`,
      [chorus, "public"],
      [bare, "public"],
      key,
    ])
  ),
  ["cluster-b/chorus-bun cpu_per_delivery", ["cluster", "public"], ["chorus-bun", "public"], CPU],
  ...(["batch", "presence"] as const).flatMap((variant) =>
    BASELINES.map(([chorus, bare]): Pair => [
      `${chorus}/${bare} ${variant} cpu_per_delivery`,
      [chorus, variant],
      [bare, variant],
      CPU,
    ])
  ),
  ...TARGETS.map((target): Pair => [
    `${target} batch/single cpu_per_delivery`,
    [target, "batch"],
    [target, "public"],
    CPU,
  ]),
];

const median = (values: number[]): number | null => {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/** With --repeat N: one line per target and variant with the median of every numeric field. */
export function medianLines(results: Map<TargetName, Line[]>, repeats: number): Line[] {
  const lines: Line[] = [];
  for (const [target, all] of results) {
    for (const variant of VARIANTS) {
      const runs = all.filter((line) => line.variant === variant);
      if (runs.length < 2) continue;
      const line: Line = { target, variant, repeat: "median", runs: runs.length, of: repeats };
      for (const key of Object.keys(runs[0])) {
        const values = runs.map((run) => run[key]).filter((v): v is number =>
          typeof v === "number"
        );
        if (key === "chorus_commit") {
          line[key] = [...new Set(runs.map((run) => run[key]))].join(",");
        }
        if (key === "clients" || key === "repeat" || values.length !== runs.length) continue;
        line[key] = round(median(values), 6);
      }
      lines.push(line);
    }
  }
  return lines;
}

/** The summary line: every ratio whose two lines exist, and the target checks. */
export function summarize(results: Map<TargetName, Line[]>, repeats: number): Line {
  const runs = (target: TargetName, variant: Variant) =>
    (results.get(target) ?? []).filter((line) => line.variant === variant);
  const value = (line: Line | undefined, key: string) =>
    typeof line?.[key] === "number" ? line[key] as number : undefined;
  /** a / b per repeat (same repeat of both targets), and their median. */
  const perRepeat = (
    a: Run,
    b: Run,
    key: string,
    keyB = key,
    combine: (x: number, y: number) => number = (x, y) => x / y,
  ) => {
    const list: number[] = [];
    for (let r = 1; r <= repeats; r++) {
      const x = value(runs(...a).find((line) => line.repeat === r), key);
      const y = value(runs(...b).find((line) => line.repeat === r), keyB);
      if (x !== undefined && y !== undefined && y !== 0) list.push(combine(x, y));
    }
    return { value: round(median(list)), runs: list.map((v) => round(v)) };
  };

  const ratios: Record<string, number | null> = {};
  const ratioRuns: Record<string, (number | null)[]> = {};
  for (const [name, a, b, key] of PAIRS) {
    const r = perRepeat(a, b, key);
    if (r.value === null) continue;
    ratios[name] = r.value;
    ratioRuns[name] = r.runs;
  }

  const checks: Line[] = [];
  const check = (name: string, ratio: string, limit: number) => {
    if (!(ratio in ratios)) return;
    const v = ratios[ratio];
    checks.push({
      check: name,
      value: v,
      limit,
      unit: "x",
      ...(repeats > 1 ? { runs: ratioRuns[ratio] } : {}),
      met: v === null ? null : v <= limit,
    });
  };
  check(
    "chorus-bun cpu per delivery <= 1.15x bare-bun",
    "chorus-bun/bare-bun cpu_per_delivery",
    1.15,
  );
  check(
    "chorus-bun bytes per connection <= 1.5x bare-bun",
    "chorus-bun/bare-bun bytes_per_connection",
    1.5,
  );
  check(
    "chorus-deno cpu per delivery <= 1.2x bare-deno",
    "chorus-deno/bare-deno cpu_per_delivery",
    1.2,
  );
  check(
    "cluster receiving node cpu per delivery <= 1.3x single-node chorus-bun",
    "cluster-b/chorus-bun cpu_per_delivery",
    1.3,
  );
  const p50 = perRepeat(
    ["cluster", "public"],
    ["chorus-bun", "public"],
    "lat_moderate_p50_ms",
    "lat_moderate_p50_ms",
    (x, y) => x - y,
  );
  const firstP50 = perRepeat(
    ["cluster", "public"],
    ["chorus-bun", "public"],
    "lat_moderate_first_delivery_p50_ms",
    "lat_moderate_first_delivery_p50_ms",
    (x, y) => x - y,
  );
  if (firstP50.value !== null) {
    ratios["cluster-chorus-bun first_delivery_p50 difference_ms"] = firstP50.value;
    ratioRuns["cluster-chorus-bun first_delivery_p50 difference_ms"] = firstP50.runs;
  }
  if (p50.value !== null) {
    checks.push({
      check: "cluster p50 at moderate rate <= single-node chorus-bun p50 + 1 ms",
      value: p50.value,
      limit: 1,
      unit: "ms over single node",
      ...(repeats > 1 ? { runs: p50.runs } : {}),
      met: p50.value <= 1,
    });
  }
  for (const target of ["chorus-bun", "chorus-deno"] as const) {
    const leak = runs(target, "leak")[0];
    if (!leak) continue;
    checks.push({
      check: `${target} no RSS growth over ${leak.rounds} connect/disconnect rounds`,
      value: leak.growth_bytes_per_connection_per_round,
      limit: leak.growth_threshold_bytes_per_connection_per_round,
      unit: "bytes per connection per round",
      met: leak.no_growth,
    });
  }
  return {
    summary: true,
    repeats,
    ratios,
    ...(repeats > 1 ? { ratios_per_repeat: ratioRuns } : {}),
    checks,
    all_met: checks.length > 0 && checks.every((c) => c.met === true),
  };
}

/**
 * `bun bench/run.ts --summarize <results.jsonl>`: the median lines and the summary again, from a
 * results file (e.g. of a run that was cut short), printed and kept as a new results file.
 */
export function summarizeFile(file: string): void {
  const lines = readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) =>
    JSON.parse(l) as Line
  );
  const results = new Map<TargetName, Line[]>();
  let repeats = 1;
  for (const line of lines) {
    if (typeof line.variant !== "string" || typeof line.repeat !== "number") continue;
    const target = line.target as TargetName;
    results.set(target, [...(results.get(target) ?? []), line]);
    repeats = Math.max(repeats, line.repeat);
  }
  mkdirSync(OUT, { recursive: true });
  setResultsFile(join(OUT, `summary-${new Date().toISOString().replace(/[:.]/g, "-")}.jsonl`));
  for (const line of lines) if (line.machine || typeof line.repeat === "number") emit(line);
  if (repeats > 1) { for (const line of medianLines(results, repeats)) emit(line); }
  emit({ ...summarize(results, repeats), summarized_from: file });
}
