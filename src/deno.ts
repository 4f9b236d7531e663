/** Entry point on Deno: `deno task start`. */
import { createDenoAdapter } from "../adapters/deno.ts";
import { run } from "./main.ts";

await run(createDenoAdapter(), Deno.env.toObject());
