/**
 * The driver's output: progress on stderr, result lines on stdout and in the results file, and
 * the exit for a bad command line.
 */
import { appendFileSync } from "node:fs";
import process from "node:process";

/** One JSON line of the results (a target and variant, the machine, the summary). */
export type Line = Record<string, unknown>;

export function log(message: string): void {
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`);
}

/** A usage error: message and exit 2. */
export function fail(message: string): never {
  console.error(`bench: ${message}`);
  process.exit(2);
}

// One results file per process (a run or a --summarize), set before the first line.
let resultsFile = "";

export function setResultsFile(file: string): void {
  resultsFile = file;
}

export function getResultsFile(): string {
  return resultsFile;
}

/** Prints a result line and appends it to the results file. */
export function emit(line: Line): void {
  const text = JSON.stringify(line);
  console.log(text);
  appendFileSync(resultsFile, text + "\n");
}
