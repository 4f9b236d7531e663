// Polls `${argv[2]}/up` every 50 ms and prints "status ms" per poll. It runs in its own process
// so that the latency it sees is the server's, not the fuzzer's busy event loop.
import process from "node:process";

const url = `${process.argv[2]}/up`;
for (;;) {
  const started = performance.now();
  const status = await fetch(url).then(async (r) => {
    await r.body?.cancel();
    return String(r.status);
  }, () => "error");
  console.log(`${status} ${Math.round(performance.now() - started)}`);
  await new Promise((resolve) => setTimeout(resolve, 50));
}
