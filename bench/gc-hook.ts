/**
 * Runs a server entry file with one addition: SIGUSR2 forces a full garbage collection. The
 * benchmark sends it before each RSS sample so that the figures count live memory, not garbage
 * the collector has not reached yet. Nothing else about the server changes.
 *
 *   bun bench/gc-hook.ts src/bun.ts
 *   deno run --v8-flags=--expose-gc --allow-... bench/gc-hook.ts src/deno.ts
 */
import process from "node:process";
import { pathToFileURL } from "node:url";

const runtime = globalThis as {
  Bun?: { gc(force: boolean): void };
  Deno?: { addSignalListener(signal: "SIGUSR2", handler: () => void): void };
  gc?: () => void;
};
const entry = process.argv.at(-1);
if (!entry || entry === import.meta.filename) throw new Error("usage: gc-hook.ts <entry file>");

if (runtime.Bun) {
  const bun = runtime.Bun;
  process.on("SIGUSR2", () => bun.gc(true));
} else if (runtime.Deno) {
  runtime.Deno.addSignalListener("SIGUSR2", () => runtime.gc?.());
}

await import(pathToFileURL(entry).href);
