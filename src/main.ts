/** What both entry files do: read the config, start the node, stop it on a signal. */
import process from "node:process";
import { ConfigError, type Env, loadConfig } from "./config.ts";
import { createLogger } from "./log.ts";
import type { RuntimeAdapter } from "./runtime.ts";
import { startServer } from "./server.ts";

export async function run(adapter: RuntimeAdapter, env: Env): Promise<void> {
  let config;
  try {
    config = loadConfig(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`chorus: invalid configuration\n${error.message}`);
    process.exit(78); // EX_CONFIG
  }
  const log = createLogger(config.logLevel);
  const server = await startServer(config, adapter, log);
  let stopping = false;
  const shutdown = (signal: string) => {
    // A second signal means "now".
    if (stopping) process.exit(1);
    stopping = true;
    log.info("stopping", { signal });
    server.drain().then(() => process.exit(0), (error) => {
      log.error("drain failed", { error: String(error) });
      process.exit(1);
    });
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}
