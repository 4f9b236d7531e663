/** Time and rounding helpers. */

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
export const now = () => performance.now();
/** `n` with `digits` decimals; null for a missing or non-finite figure (JSON has no NaN). */
export const round = (n: number | null | undefined, digits = 3): number | null =>
  n === null || n === undefined || !Number.isFinite(n) ? null : Number(n.toFixed(digits));
