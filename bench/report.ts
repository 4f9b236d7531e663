/**
 * Renders a results file of bench/run.ts as Markdown tables (for bench/RESULTS.md).
 *
 *   bun bench/report.ts [bench/.out/latest.jsonl]
 */
import { readFileSync } from "node:fs";
import process from "node:process";

type Line = Record<string, unknown>;

const file = process.argv[2] ?? new URL("./.out/latest.jsonl", import.meta.url).pathname;
const lines: Line[] = readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) =>
  JSON.parse(l)
);
const machine = lines.find((l) => l.machine);
const summary = lines.find((l) => l.summary);
const repeats = Number(summary?.repeats ?? 1);
/** With repeats, the median lines; else the single run's lines. */
const results = lines.filter((l) =>
  typeof l.variant === "string" && (repeats > 1 ? l.repeat === "median" : true)
);
const of = (variant: string) => results.filter((l) => l.variant === variant);

const n = (v: unknown, digits = 0): string =>
  typeof v === "number" && Number.isFinite(v)
    ? v.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : "–";
const ms = (v: unknown) => n(v, 1);
const us1k = (v: unknown) => (typeof v === "number" ? n(v * 1000, 3) : "–");
const mb = (v: unknown) => (typeof v === "number" ? n(v / 2 ** 20, 1) : "–");

function table(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(" | ")} |`,
    `| ${head.map((_h, i) => (i === 0 ? "---" : "---:")).join(" | ")} |`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
}

const out: string[] = [];
if (machine) {
  const options = machine.options as Line;
  out.push("### Machine and run\n");
  out.push(table(["", ""], [
    ["CPU", `${machine.nproc} × ${machine.cpu_model}`],
    ["Memory", `${n((machine.mem_total_bytes as number) / 2 ** 30, 1)} GiB`],
    ["Kernel", String(machine.kernel)],
    ["Bun / Deno", `${machine.bun} / ${machine.deno}`],
    ["Chorus", `commit ${machine.git_commit}, ${machine.git_changed_files} changed files in src/`],
    ["Open files (soft/hard)", JSON.stringify(machine.open_files_limit)],
    ["Ephemeral ports, tcp_tw_reuse", `${machine.ephemeral_ports}, ${machine.tcp_tw_reuse}`],
    ["Command", `\`${machine.command}\``],
    [
      "Clients, phases",
      `${options.clients} clients; moderate ${options.moderateSeconds} s, closed-loop phases ` +
      `${options.seconds} s, window ${options.window}, pinned: ${options.pin}`,
    ],
    ["Total time", `${n(summary?.total_seconds, 0)} s`],
  ]));
}

out.push(`\n### Public channel, single events${repeats > 1 ? ` (median of ${repeats})` : ""}\n`);
out.push(table(
  [
    "target",
    "deliveries/s (sat.)",
    "CPU ms / 1k deliveries (seq.)",
    "CPU ms / 1k (sat.)",
    "p50 / p99 ms, 20/s",
    "first delivery p50 ms, 20/s",
    "p50 / p99 ms, sat.",
    "RSS idle MiB",
    "RSS with C MiB",
    "bytes / conn",
    "conn/s",
    "subs/s",
    "idle CPU % (C conns)",
    "API calls/s",
    "API CPU µs/call",
    "Chorus commit",
  ],
  of("public").map((l) => [
    String(l.target),
    n(l.deliveries_per_s),
    us1k(l.cpu_s_per_1k_deliveries),
    us1k(l.saturation_cpu_s_per_1k_deliveries),
    `${ms(l.lat_moderate_p50_ms)} / ${ms(l.lat_moderate_p99_ms)}`,
    n(l.lat_moderate_first_delivery_p50_ms, 2),
    `${ms(l.lat_saturation_p50_ms)} / ${ms(l.lat_saturation_p99_ms)}`,
    mb(l.rss_idle_bytes),
    mb(l.rss_with_bytes),
    n(l.bytes_per_connection),
    n(l.connections_per_s),
    n(l.subscriptions_per_s),
    typeof l.idle_cpu_utilisation === "number" ? n(l.idle_cpu_utilisation * 100, 2) : "–",
    n(l.api_calls_per_s),
    typeof l.api_cpu_ms_per_call === "number" ? n(l.api_cpu_ms_per_call * 1000, 1) : "–",
    String(l.target).startsWith("bare") ? "–" : String(l.chorus_commit ?? "–"),
  ]),
));

const cluster = of("public").filter((l) => l.target === "cluster");
if (cluster.length) {
  out.push(
    `\nCluster, per 1 000 deliveries on node B: node A ` +
      `${us1k(cluster[0].node_a_cpu_s_per_1k_deliveries)} ms CPU, Redis ` +
      `${us1k(cluster[0].redis_cpu_s_per_1k_deliveries)} ms CPU.`,
  );
}

if (of("batch").length) {
  out.push("\n### batch_events, 10 events per call\n");
  out.push(table(
    [
      "target",
      "deliveries/s (sat.)",
      "CPU ms / 1k deliveries (seq.)",
      "vs single events",
      "p50 / p99 ms, sat.",
    ],
    of("batch").map((l) => [
      String(l.target),
      n(l.deliveries_per_s),
      us1k(l.cpu_s_per_1k_deliveries),
      `${n(l.cpu_vs_single_events, 2)}×`,
      `${ms(l.lat_saturation_p50_ms)} / ${ms(l.lat_saturation_p99_ms)}`,
    ]),
  ));
}

if (of("presence").length) {
  out.push("\n### Presence channel\n");
  out.push(table(
    [
      "target",
      "users",
      "presence subs/s",
      "CPU ms / 1k deliveries (seq.)",
      "vs public",
      "p50 / p99 ms (seq.)",
    ],
    of("presence").map((l) => [
      String(l.target),
      n(l.presence_users),
      n(l.presence_subscriptions_per_s),
      us1k(l.cpu_s_per_1k_deliveries),
      `${n(l.cpu_vs_public, 2)}×`,
      `${ms(l.lat_sequential_p50_ms)} / ${ms(l.lat_sequential_p99_ms)}`,
    ]),
  ));
}

const leaks = lines.filter((l) => l.variant === "leak");
if (leaks.length) {
  out.push("\n### Leak check\n");
  out.push(table(
    [
      "target",
      "RSS after each round (MiB, after GC)",
      "growth B/conn/round",
      "limit",
      "API state clean",
      "conn/s per round",
      "no growth",
    ],
    leaks.map((l) => [
      String(l.target),
      (l.rss_after_round_bytes as number[]).map((v) => mb(v)).join(", "),
      n(l.growth_bytes_per_connection_per_round, 1),
      n(l.growth_threshold_bytes_per_connection_per_round, 1),
      String(l.state_clean ?? "–"),
      (l.connections_per_s_by_round as number[]).map((v) => n(v)).join(", "),
      l.no_growth ? "yes" : "**no**",
    ]),
  ));
}

const detailed = lines.filter((l) =>
  typeof l.variant === "string" && l.phases && (repeats === 1 || l.repeat === 1)
);
if (detailed.length) {
  out.push(`\n### Phase details${repeats > 1 ? " (repeat 1)" : ""}\n`);
  const rows: string[][] = [];
  for (const l of detailed) {
    for (const [phase, p] of Object.entries(l.phases as Record<string, Line>)) {
      if (phase === "api") continue;
      rows.push([
        `${l.target} ${l.variant} ${phase}`,
        n(p.deliveries_per_s),
        us1k(p.cpu_s_per_1k_deliveries),
        n(p.server_cpu_utilisation, 2),
        n(p.loadgen_cpu_utilisation, 2),
        n(p.machine_busy_cores, 2),
        n(p.irq_cores, 2),
        n(p.foreign_cores, 2),
        String(p.attempts),
        `${ms(p.p50_ms)} / ${ms(p.p99_ms)}`,
        n(p.lost),
      ]);
    }
  }
  out.push(table(
    [
      "target variant phase",
      "deliveries/s",
      "CPU ms/1k",
      "server cores",
      "load gen. cores",
      "machine busy",
      "irq",
      "foreign",
      "runs",
      "p50 / p99 ms",
      "lost",
    ],
    rows,
  ));
}

if (summary) {
  out.push("\n### Ratios\n");
  const perRepeat = (summary.ratios_per_repeat ?? {}) as Record<string, number[]>;
  out.push(table(
    repeats > 1 ? ["ratio", "median", "per repeat"] : ["ratio", "value"],
    Object.entries(summary.ratios as Record<string, number>).map(([k, v]) =>
      repeats > 1 ? [k, n(v, 3), (perRepeat[k] ?? []).map((x) => n(x, 3)).join(", ")] : [k, n(v, 3)]
    ),
  ));
  out.push("\n### Targets\n");
  out.push(table(
    ["target", "value", "limit", "met"],
    (summary.checks as Line[]).map((c) => [
      String(c.check),
      `${n(c.value, 3)}${c.unit === "x" ? "×" : ` ${c.unit}`}${
        Array.isArray(c.runs) ? ` (runs: ${c.runs.map((x) => n(x, 3)).join(", ")})` : ""
      }`,
      n(c.limit, 2),
      c.met ? "yes" : "**no**",
    ]),
  ));
}

if (summary?.note) out.push(`\n_${summary.note}_`);

console.log(out.join("\n"));
