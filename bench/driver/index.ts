/** The benchmark driver's public surface: what bench/run.ts puts together. */
export { type Invocation, type Options, parseOptions } from "./cli.ts";
export { enableHeapStats } from "./heap.ts";
export { checkLimits } from "./limits.ts";
export { emit, getResultsFile, type Line, log, setResultsFile } from "./log.ts";
export { machine } from "./machine.ts";
export type { TargetName } from "./names.ts";
export { OUT } from "./paths.ts";
export { runTarget } from "./run-target.ts";
export { medianLines, summarize, summarizeFile } from "./summary.ts";
export { now, round } from "./util.ts";
