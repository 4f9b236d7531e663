// README's configuration tables against the one schema that owns the defaults
// (src/config/schema.ts): every env var Chorus reads is documented, and every default README
// states is the schema's. Defaults README describes in words ("`redis` if `REDIS_URL` ...") are
// derived at start-up and skipped.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as v from "valibot";
import { ENV_KEYS } from "../src/config/env.ts";
import { AppSchema, ConfigSchema } from "../src/config/schema.ts";

const README = readFileSync(new URL("../README.md", import.meta.url), "utf8");
const FILE_DEFAULTS = v.parse(ConfigSchema, {}) as Record<string, unknown>;
// With `recovery` present (it has no default of its own), so its keys' defaults show.
const APP_DEFAULTS = v.parse(AppSchema, {
  id: "a",
  key: "k",
  secret: "s",
  recovery: { channels: ["*"] },
}) as Record<
  string,
  unknown
>;

/** The rows of the Markdown table that follows `heading`, as trimmed cells. */
function tableAfter(heading: string): string[][] {
  const start = README.indexOf(heading);
  assert.ok(start >= 0, `README has "${heading}"`);
  const rows: string[][] = [];
  let inTable = false;
  for (const line of README.slice(start).split("\n").slice(1)) {
    if (line.startsWith("|")) {
      inTable = true;
      const cells = line.split("|").slice(1, -1).map((cell) => cell.trim());
      if (!cells.every((cell) => /^-+$/.test(cell))) rows.push(cells);
    } else if (inTable) break;
  }
  return rows.slice(1); // the header row
}

const ticked = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]);

/** README's text for a default: "(none)" / "none" / `value`. */
function stated(cell: string): string | undefined {
  const text = cell.trim();
  if (text === "(none)" || text === "none" || text === "`null`") return undefined;
  const [value] = ticked(text);
  return value;
}

/** A schema default as README writes it; null and "" are "none". */
function shown(value: unknown): string | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function isDerived(cell: string): boolean {
  return / if |as the env vars|required|^all$/.test(cell) ||
    ENV_KEYS.some(({ name }) => cell === `\`${name}\``);
}

describe("README's configuration tables match the schema", { timeout: 10000 }, () => {
  const envRows = tableAfter("### Environment variables");

  it("documents every env var Chorus reads", () => {
    const documented = new Set(envRows.flatMap((row) => ticked(row[0])));
    const missing = ENV_KEYS.map(({ name }) => name).filter((name) => !documented.has(name));
    assert.deepEqual(missing, []);
  });

  it("states the schema's default for each env var", () => {
    const wrong: string[] = [];
    for (const [names, defaultCell] of envRows) {
      if (isDerived(defaultCell)) continue;
      for (const name of ticked(names)) {
        const key = ENV_KEYS.find((k) => k.name === name);
        if (!key) continue; // app credentials: no default
        const value = key.path.reduce<unknown>(
          (at, part) => (at as Record<string, unknown>)?.[part],
          FILE_DEFAULTS,
        );
        if (stated(defaultCell) !== shown(value)) {
          wrong.push(`${name}: README ${defaultCell}, schema ${shown(value)}`);
        }
      }
    }
    assert.deepEqual(wrong, []);
  });

  it("states the schema's default for each config file key", () => {
    const wrong: string[] = [];
    for (const [keysCell, defaultsCell] of tableAfter("Every top-level key is optional")) {
      const keys = ticked(keysCell.replace(/\([^)]*\)/g, ""));
      const defaults = defaultsCell.split(/,\s*/);
      if (defaults.length !== keys.length) continue; // one description for several keys
      keys.forEach((name, i) => {
        // Keys inside lists of lists (webhooks) have no default of their own here.
        if (isDerived(defaults[i]) || name.split("[]").length > 2) return;
        const [scope, field] = name.startsWith("apps[].")
          ? [APP_DEFAULTS, name.slice("apps[].".length)]
          : name.startsWith("cluster.")
          ? [FILE_DEFAULTS.cluster as Record<string, unknown>, name.slice("cluster.".length)]
          : [FILE_DEFAULTS, name];
        const value = field.split(".").reduce<unknown>(
          (at, part) => (at as Record<string, unknown>)?.[part],
          scope,
        );
        if (stated(defaults[i]) !== shown(value)) {
          wrong.push(`${name}: README ${defaults[i]}, schema ${shown(value)}`);
        }
      });
    }
    assert.deepEqual(wrong, []);
  });
});
