/** Where the driver finds the repository, its own output and the two runtimes. */
import { existsSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** The repository root (this file is bench/driver/paths.ts). */
export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** Everything a run writes (git-ignored). */
export const OUT = join(ROOT, "bench", ".out");
const localBin = (name: string) => join(ROOT, "node_modules", ".bin", name);
export const BUN = existsSync(localBin("bun")) ? localBin("bun") : process.execPath;
export const DENO = existsSync(localBin("deno")) ? localBin("deno") : "deno";
/** Every server runs through bench/gc-hook.ts, so that SIGUSR2 forces a full GC. */
export const GC_HOOK = join(ROOT, "bench/gc-hook.ts");
