/** One target, start to stop: its servers and clients, the ramp-up, then each variant's line. */
import type { Options } from "./cli.ts";
import type { Context } from "./context.ts";
import { emit, type Line, log } from "./log.ts";
import { gitCommit } from "./machine.ts";
import { APP, type TargetName } from "./names.ts";
import { leakRounds } from "./phases/leak.ts";
import { ClientPool } from "./pool.ts";
import { connectClients } from "./setup.ts";
import { startTarget, stopTarget, variantsFor } from "./targets.ts";
import { Trigger } from "./trigger.ts";
import { type Base, batchVariant, presenceVariant, publicVariant } from "./variants.ts";

/** Runs every variant of `name` on fresh servers and clients; answers the lines it emitted. */
export async function runTarget(
  name: TargetName,
  options: Options,
  repeat: number,
): Promise<Line[]> {
  // The leak check is long and about the process, not about noise: first repeat only.
  const variants = variantsFor(name, options).filter((v) => v !== "leak" || repeat === 1);
  const C = options.clients;
  log(`${name}: starting (${C} clients, variants ${variants.join(",")}, repeat ${repeat})`);
  const running = await startTarget(name, options);
  const lines: Line[] = [];
  const pool = new ClientPool(C, options.procs, options.pin);
  const emitLine = (line: Line) => {
    emit(line);
    lines.push(line);
  };
  try {
    await pool.start();
    const trigger = new Trigger(
      `http://127.0.0.1:${running.http.port}`,
      options.payload,
      () => pool.poke(),
    );
    const ctx: Context = { options, running, pool, trigger };
    const url = `ws://127.0.0.1:${running.measured.port}/app/${APP.key}?protocol=7&client=bench`;
    const base: Base = {
      target: name,
      repeat,
      // The code under test can change between targets (a working tree): say which it was.
      chorus_commit: gitCommit(),
      runtime: name === "cluster" ? options.clusterRuntime : name.endsWith("deno") ? "deno" : "bun",
      clients: C,
    };
    const setup = await connectClients(ctx, url);
    const { line, single } = await publicVariant(ctx, base, setup);
    emitLine(line);
    if (variants.includes("batch")) emitLine(await batchVariant(ctx, base, setup.subs.ok, single));
    if (variants.includes("presence")) emitLine(await presenceVariant(ctx, base, single, setup));

    await pool.close();

    if (variants.includes("leak")) {
      log(`${name}: leak check, ${options.rounds} rounds of ${C} connect/disconnect`);
      const leak = await leakRounds(ctx, url, setup.rssIdle, setup.rssWith);
      emitLine({ ...base, variant: "leak", ...leak });
    }
  } finally {
    await pool.exit();
    await stopTarget(running, options);
  }
  return lines;
}
