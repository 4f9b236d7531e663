/** Entry point on Bun: `bun run src/bun.ts`. */
import { createBunAdapter } from "../adapters/bun.ts";
import { run } from "./main.ts";

await run(createBunAdapter(), Bun.env);
