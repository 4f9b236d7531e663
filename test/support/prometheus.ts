// A strict reader of the Prometheus text exposition format (version 0.0.4): it throws on any line
// it cannot read, on samples whose family was never declared, and on the rules Chorus promises
// (counters named *_total, histogram buckets cumulative with +Inf equal to _count).

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: string;
  help: string | undefined;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

function parseValue(text: string, line: string): number {
  if (text === "+Inf" || text === "Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (text === "NaN") return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) {
    throw new Error(`bad sample value ${JSON.stringify(text)} in: ${line}`);
  }
  return Number(text);
}

/** Parses `{a="x",b="y"}` starting at `s[i] === "{"`; returns the labels and the index after `}`. */
function parseLabels(s: string, i: number, line: string): [Record<string, string>, number] {
  const labels: Record<string, string> = {};
  i++; // {
  for (;;) {
    while (s[i] === " ") i++;
    if (s[i] === "}") return [labels, i + 1];
    const eq = s.indexOf("=", i);
    if (eq < 0) throw new Error(`bad labels in: ${line}`);
    const name = s.slice(i, eq).trim();
    if (!LABEL_NAME.test(name)) throw new Error(`bad label name ${JSON.stringify(name)}: ${line}`);
    if (name in labels) throw new Error(`duplicate label ${name}: ${line}`);
    i = eq + 1;
    if (s[i] !== '"') throw new Error(`label value not quoted: ${line}`);
    i++;
    let value = "";
    for (;;) {
      const c = s[i];
      if (c === undefined) throw new Error(`unterminated label value: ${line}`);
      if (c === '"') break;
      if (c === "\\") {
        const n = s[i + 1];
        if (n === "n") value += "\n";
        else if (n === "\\" || n === '"') value += n;
        else throw new Error(`bad escape \\${n} in: ${line}`);
        i += 2;
        continue;
      }
      value += c;
      i++;
    }
    labels[name] = value;
    i++; // closing quote
    while (s[i] === " ") i++;
    if (s[i] === ",") {
      i++;
      continue;
    }
    if (s[i] === "}") return [labels, i + 1];
    throw new Error(`bad labels in: ${line}`);
  }
}

function parseSample(line: string): Sample {
  let i = 0;
  while (i < line.length && line[i] !== "{" && line[i] !== " ") i++;
  const name = line.slice(0, i);
  if (!NAME.test(name)) throw new Error(`bad metric name ${JSON.stringify(name)}: ${line}`);
  let labels: Record<string, string> = {};
  if (line[i] === "{") [labels, i] = parseLabels(line, i, line);
  const rest = line.slice(i).trim().split(/\s+/);
  if (line[i] !== " " || rest.length < 1 || rest.length > 2 || rest[0] === "") {
    throw new Error(`bad sample line: ${line}`);
  }
  if (rest.length === 2 && !/^-?\d+$/.test(rest[1])) throw new Error(`bad timestamp: ${line}`);
  return { name, labels, value: parseValue(rest[0], line) };
}

/** The family a sample name belongs to, given the declared families. */
function familyOf(name: string, families: Map<string, Family>): Family | undefined {
  const direct = families.get(name);
  if (direct && direct.type !== "histogram") return direct;
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!name.endsWith(suffix)) continue;
    const f = families.get(name.slice(0, -suffix.length));
    if (f?.type === "histogram") return f;
    if (f?.type === "summary" && suffix !== "_bucket") return f;
  }
  return direct?.type === "summary" ? direct : undefined;
}

function labelKey(labels: Record<string, string>, omit?: string): string {
  return JSON.stringify(
    Object.keys(labels).filter((k) => k !== omit).sort().map((k) => [k, labels[k]]),
  );
}

/** Parses and validates an exposition; throws an Error naming the first broken rule. */
export function parsePrometheus(text: string): Map<string, Family> {
  if (!text.endsWith("\n")) throw new Error("exposition does not end with a newline");
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  const finished = new Set<string>();
  let current: Family | undefined;
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    if (line.startsWith("#")) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s+(.*))?$/.exec(line);
      if (!m) continue; // a plain comment
      const [, kind, name, rest] = m;
      if (!NAME.test(name)) throw new Error(`bad metric name in: ${line}`);
      let f = families.get(name);
      if (f && f !== current) throw new Error(`family ${name} declared in two places`);
      if (!f) {
        if (current) finished.add(current.name);
        f = { name, type: "untyped", help: undefined, samples: [] };
        families.set(name, f);
        current = f;
      }
      if (kind === "HELP") {
        if (f.help !== undefined) throw new Error(`two HELP lines for ${name}`);
        f.help = rest ?? "";
      } else {
        if (f.samples.length > 0) throw new Error(`TYPE of ${name} after its samples`);
        if (f.type !== "untyped" || (rest ?? "") === "") {
          throw new Error(`bad or repeated TYPE line: ${line}`);
        }
        if (!TYPES.has(rest!.trim())) throw new Error(`unknown type in: ${line}`);
        f.type = rest!.trim();
      }
      continue;
    }
    const sample = parseSample(line);
    const f = familyOf(sample.name, families);
    if (!f) throw new Error(`sample of an undeclared family: ${line}`);
    if (f !== current || finished.has(f.name)) {
      throw new Error(`samples of ${f.name} are not grouped under its HELP/TYPE: ${line}`);
    }
    const key = `${sample.name}${labelKey(sample.labels)}`;
    if (seen.has(key)) throw new Error(`duplicate sample: ${line}`);
    seen.add(key);
    f.samples.push(sample);
  }

  for (const f of families.values()) {
    if (f.help === undefined) throw new Error(`family ${f.name} has no HELP line`);
    if (f.type === "untyped") throw new Error(`family ${f.name} has no TYPE line`);
    if (f.type === "counter") {
      if (!f.name.endsWith("_total")) throw new Error(`counter ${f.name} does not end in _total`);
      for (const s of f.samples) {
        if (!(s.value >= 0) || !Number.isFinite(s.value)) {
          throw new Error(`counter ${s.name} has value ${s.value}`);
        }
      }
    }
    if (f.type === "histogram") checkHistogram(f);
  }
  return families;
}

function checkHistogram(f: Family): void {
  const series = new Map<string, { buckets: [number, number][]; sum?: number; count?: number }>();
  const get = (labels: Record<string, string>) => {
    const key = labelKey(labels, "le");
    let s = series.get(key);
    if (!s) series.set(key, s = { buckets: [] });
    return s;
  };
  for (const s of f.samples) {
    if (s.name === `${f.name}_bucket`) {
      if (s.labels.le === undefined) throw new Error(`${s.name} without an le label`);
      get(s.labels).buckets.push([parseValue(s.labels.le, `le="${s.labels.le}"`), s.value]);
    } else if (s.name === `${f.name}_sum`) get(s.labels).sum = s.value;
    else if (s.name === `${f.name}_count`) get(s.labels).count = s.value;
    else throw new Error(`histogram ${f.name} has a plain sample ${s.name}`);
  }
  if (series.size === 0) throw new Error(`histogram ${f.name} has no samples`);
  for (const [key, s] of series) {
    const what = `${f.name}${key}`;
    if (s.count === undefined || s.sum === undefined) throw new Error(`${what} lacks _sum/_count`);
    const sorted = [...s.buckets].sort((a, b) => a[0] - b[0]);
    if (sorted.length === 0 || sorted[sorted.length - 1][0] !== Infinity) {
      throw new Error(`${what} has no le="+Inf" bucket`);
    }
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i][0] === sorted[i - 1][0]) throw new Error(`${what}: duplicate bucket`);
      if (sorted[i][1] < sorted[i - 1][1]) {
        throw new Error(
          `${what}: bucket le=${sorted[i][0]} (${sorted[i][1]}) below le=${sorted[i - 1][0]} (${
            sorted[i - 1][1]
          })`,
        );
      }
    }
    if (sorted[sorted.length - 1][1] !== s.count) {
      throw new Error(`${what}: +Inf bucket ${sorted[sorted.length - 1][1]} != _count ${s.count}`);
    }
  }
}

/** The value of the sample `name` whose labels include `labels` (exactly one must match). */
export function sampleValue(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const matches: Sample[] = [];
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name !== name) continue;
      if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) matches.push(s);
    }
  }
  if (matches.length > 1) {
    throw new Error(`${name}${JSON.stringify(labels)} matches ${matches.length} samples`);
  }
  return matches[0]?.value;
}
