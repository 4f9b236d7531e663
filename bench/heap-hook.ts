/**
 * bench/gc-hook.ts plus one line per SIGUSR2 on stderr: the JS heap after the forced GC, to tell
 * memory the server's objects hold from memory the runtime's allocator keeps (RSS minus heap).
 *
 *   deno run -A --v8-flags=--expose-gc bench/heap-hook.ts src/deno.ts
 */
import process from "node:process";

process.on("SIGUSR2", () => {
  // After gc-hook's own listener (registered first by its import below) has collected.
  setTimeout(() => {
    const { rss, heapUsed, heapTotal, external, arrayBuffers } = process.memoryUsage();
    const mb = (bytes: number) => Math.round(bytes / 2 ** 20);
    console.error(JSON.stringify({
      msg: "bench heap",
      rss_mb: mb(rss),
      heap_used_mb: mb(heapUsed),
      heap_total_mb: mb(heapTotal),
      external_mb: mb(external),
      array_buffers_mb: mb(arrayBuffers),
    }));
  }, 200);
});

await import("./gc-hook.ts");
