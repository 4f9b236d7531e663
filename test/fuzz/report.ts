// What a campaign saw: counts per domain, category and outcome, the failures (each with its seed
// and input, so `FUZZ_SEED=<seed>` replays it), known deviations, and the health numbers.

export type Verdict = "pass" | "fail" | "known";

export interface Failure {
  domain: string;
  cat: string;
  index: number;
  input: string;
  why: string;
  context?: string;
}

export class Tally {
  readonly counts = new Map<string, number>();
  readonly failures: Failure[] = [];
  readonly known = new Map<string, { count: number; example: string }>();
  frames = 0;
  requests = 0;
  readonly health: string[] = [];
  readonly problems: string[] = [];

  constructor(readonly seed: number) {}

  add(domain: string, cat: string, outcome: string, verdict: Verdict): void {
    const key = `${domain}\t${cat}\t${outcome}\t${verdict}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  fail(failure: Failure): void {
    if (this.failures.length < 200) this.failures.push(failure);
  }

  knownDeviation(label: string, example: string): void {
    const entry = this.known.get(label) ?? { count: 0, example };
    entry.count++;
    this.known.set(label, entry);
  }

  /** A global check failed (canary gap, /up down, leak, crash). */
  problem(what: string): void {
    this.problems.push(what);
  }

  get ok(): boolean {
    return this.failures.length === 0 && this.problems.length === 0;
  }

  summary(runtime: string, wallMs: number): string {
    const lines = [
      `fuzz summary (${runtime}) seed ${this.seed} (replay: FUZZ_SEED=${this.seed}), ` +
      `${this.frames} frames, ${this.requests} HTTP requests, ${(wallMs / 1000).toFixed(1)} s`,
      "domain  category              outcome                          verdict  count",
    ];
    for (const [key, count] of [...this.counts].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const [domain, cat, outcome, verdict] = key.split("\t");
      lines.push(
        `${domain.padEnd(7)} ${cat.padEnd(21)} ${outcome.padEnd(32)} ${verdict.padEnd(8)} ${count}`,
      );
    }
    for (const [label, { count, example }] of this.known) {
      lines.push(`known deviation ${label}: ${count}x, e.g. ${example}`);
    }
    lines.push(...this.health.map((h) => `health: ${h}`));
    lines.push(...this.problems.map((p) => `PROBLEM: ${p}`));
    for (const f of this.failures.slice(0, 20)) lines.push(describeFailure(this.seed, f));
    if (this.failures.length > 20) lines.push(`... and ${this.failures.length - 20} more failures`);
    return lines.join("\n");
  }
}

export function describeFailure(seed: number, f: Failure): string {
  return `FAIL FUZZ_SEED=${seed} ${f.domain}/${f.cat} case #${f.index}: ${f.why}\n  input: ${f.input}` +
    (f.context ? `\n  context: ${f.context}` : "");
}

/** A readable, bounded rendering of a frame or body. */
export function showInput(input: string | Uint8Array, limit = 600): string {
  if (typeof input !== "string") {
    const hex = [...input.slice(0, 48)].map((b) => b.toString(16).padStart(2, "0")).join("");
    return `binary ${input.length} bytes: ${hex}${input.length > 48 ? "..." : ""}`;
  }
  const shown = JSON.stringify(input.length > limit ? input.slice(0, limit) : input);
  return input.length > limit ? `${shown}... (${input.length} UTF-16 units)` : shown;
}
