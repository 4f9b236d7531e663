/** What every phase gets: the options, the running target, its clients and the HTTP trigger. */
import type { Options } from "./cli.ts";
import type { ClientPool } from "./pool.ts";
import type { Running } from "./targets.ts";
import type { Trigger } from "./trigger.ts";

export interface Context {
  options: Options;
  running: Running;
  pool: ClientPool;
  trigger: Trigger;
}
