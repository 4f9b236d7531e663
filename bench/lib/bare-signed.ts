/**
 * BENCH_BARE_API=signed for both bare baselines (bench/bare-bun.ts, bench/bare-deno.ts): the work
 * every Pusher server must do for a signed `POST .../events` (bench/RESULTS.md, "HTTP API: what a
 * signed call costs"). Runtime-neutral, so both import it.
 */
import { createHash, createHmac } from "node:crypto";

const UTF8 = new TextDecoder();

/**
 * The body read as bytes, their MD5 and one HMAC-SHA256 over method, path and query, the bytes
 * decoded and parsed; the signature is computed, not compared.
 */
export async function signedBody<T>(request: Request, path: string): Promise<T> {
  const bytes = await request.bytes();
  createHash("md5").update(bytes).digest("hex");
  const query = request.url.slice(request.url.indexOf("?") + 1);
  createHmac("sha256", "bench-secret").update(`POST\n${path}\n${query}`).digest("hex");
  return JSON.parse(UTF8.decode(bytes));
}
