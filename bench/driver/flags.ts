/**
 * Reading a command line against a table of flags (`node:util` parseArgs), with the messages of
 * the bench's entries (bench/run.ts, bench/scale.ts): the flags as given, and their numbers and
 * lists checked so that a bad value names the flag as it was typed.
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { fail } from "./log.ts";

/** Every flag as parseArgs knows it; numbers and lists are strings, checked by `Flags`. */
export type FlagTable = Record<string, { type: "string" | "boolean"; short?: string }>;

/** A flag as given: `raw` is its spelling (`-c` or `--clients`), for messages. */
interface Given {
  raw: string;
  value: string;
}

/** The flags of a command line, and their values checked. */
export class Flags<F extends string> {
  readonly #given: Map<F, Given>;

  /**
   * Reads `argv`, checked in order (`--help` prints `help` there and exits); the last of a
   * repeated flag wins. parseArgs runs non-strict so that the messages are ours and the same on
   * Bun and Deno; its tokens read `--flag=value`, `--flag value` and `-c 5` alike and keep the
   * spelling.
   */
  constructor(argv: string[], table: FlagTable & Record<F, unknown>, help: string) {
    const { tokens } = parseArgs({
      args: argv,
      options: table,
      strict: false,
      allowPositionals: true,
      tokens: true,
    });
    const isFlag = (name: string): name is F => Object.hasOwn(table, name);
    this.#given = new Map();
    for (const token of tokens) {
      if (token.kind === "positional") fail(`unknown flag "${token.value}" (see --help)`);
      if (token.kind === "option-terminator") fail(`unknown flag "--" (see --help)`);
      if (!isFlag(token.name)) fail(`unknown flag "${token.rawName}" (see --help)`);
      const { type } = table[token.name];
      if (type === "string" && token.value === undefined) fail(`${token.rawName} needs a value`);
      if (type === "boolean" && token.value !== undefined) fail(`${token.rawName} takes no value`);
      if (token.name === "help") {
        console.log(help);
        process.exit(0);
      }
      this.#given.set(token.name, { raw: token.rawName, value: token.value ?? "" });
    }
  }

  has(flag: F): boolean {
    return this.#given.has(flag);
  }

  /** The flag's value as given, or undefined. */
  get(flag: F): Given | undefined {
    return this.#given.get(flag);
  }

  /** The flag's number, or `fallback` when it was not given. */
  number(flag: F, min: number, fallback: number): number {
    const given = this.#given.get(flag);
    if (given === undefined) return fallback;
    const n = Number(given.value);
    if (!Number.isFinite(n) || n < min) {
      fail(`${given.raw}: expected a number >= ${min}, got "${given.value}"`);
    }
    return n;
  }

  integer(flag: F, min: number, fallback: number): number {
    return Math.floor(this.number(flag, min, fallback));
  }

  /** The flag's comma-separated names, each one of `known`; undefined when not given. */
  names(flag: F, known: readonly string[], what: string): string[] | undefined {
    const list = this.#given.get(flag)?.value.split(",").map((s) => s.trim()).filter(Boolean);
    for (const name of list ?? []) if (!known.includes(name)) fail(`unknown ${what} "${name}"`);
    return list;
  }
}
