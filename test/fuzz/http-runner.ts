// Sends HTTP cases over a few concurrent lanes and checks each answer against the oracle: the
// status, a JSON `{"error": string}` body on every Chorus refusal, and the shape of a 200.
import { isBun } from "../support/server.ts";
import type { HttpTpl } from "./http-cases.ts";
import { expectHttp, type HttpRequest } from "./http-oracle.ts";
import { showInput, type Tally } from "./report.ts";
import { DISABLED, hmac, httpStringToSign, isRecord, MAIN, md5, SMALL, tryParse } from "./spec.ts";

export interface HttpRun {
  cases: HttpTpl[];
  origin: string;
  tally: Tally;
  lanes: number;
}

const APP_IDS = { main: MAIN, disabled: DISABLED, unknown: { ...MAIN, id: "9999" } };

/** The request as fetch will send it: path normalised, query signed (or broken) per `sign`. */
function build(tpl: HttpTpl, origin: string, now: number): { req: HttpRequest; headers: Headers } {
  const app = APP_IDS[tpl.app];
  const url = new URL(origin + tpl.path.replaceAll("{app}", app.id));
  for (const [k, v] of tpl.query) url.searchParams.append(k, v);
  const body = tpl.body === undefined
    ? new Uint8Array()
    : typeof tpl.body === "string"
    ? new TextEncoder().encode(tpl.body)
    : Uint8Array.from(tpl.body);
  const mode = tpl.sign;
  if (mode !== "none") {
    const p = url.searchParams;
    p.set("auth_key", mode === "wrongKey" ? "nope" : mode === "otherAppKey" ? SMALL.key : app.key);
    const ts = { expired: now - 1000, future: now + 1000, skewOk: now - 500 }[mode as string] ??
      now;
    p.set("auth_timestamp", mode === "badTimestamp" ? `${now}.5` : String(ts));
    if (mode !== "noVersion") p.set("auth_version", mode === "badVersion" ? "2.0" : "1.0");
    if (body.length > 0 && mode !== "noMd5") {
      p.set(
        "body_md5",
        mode === "badMd5" ? md5("x") : mode === "upperMd5" ? md5(body).toUpperCase() : md5(body),
      );
    }
    const sent = new URL(url.href); // what the server will decode
    let sig = hmac(
      mode === "wrongSecret" ? "wrong" : app.secret,
      httpStringToSign(tpl.method, sent.pathname, sent.searchParams),
    );
    if (mode === "badSig") sig = sig.slice(0, -1) + (sig.endsWith("0") ? "1" : "0");
    if (mode === "upperSig") sig = sig.toUpperCase();
    p.set("auth_signature", sig);
  }
  const headers = new Headers();
  if (tpl.body !== undefined) headers.set("content-type", tpl.contentType ?? "application/json");
  for (const [k, v] of tpl.headers) headers.append(k, v);
  const contentType = headers.get("content-type") ?? undefined;
  return {
    req: {
      method: tpl.method,
      url: new URL(url.href),
      body,
      contentType: tpl.body === undefined ? undefined : contentType,
      headerAbuse: tpl.headers.length > 0,
    },
    headers,
  };
}

async function send(tpl: HttpTpl, index: number, run: HttpRun): Promise<void> {
  const now = Math.floor(Date.now() / 1000);
  if (isBun && !["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"].includes(tpl.method)) {
    // Bun's fetch sends an unknown method as GET (and Bun.serve drops such requests unanswered).
    run.tally.add("http", tpl.cat, "not sendable by Bun's fetch", "pass");
    return;
  }
  let built;
  try {
    built = build(tpl, run.origin, now);
  } catch (error) {
    run.tally.add("http", tpl.cat, "not sendable by fetch", "pass");
    void error;
    return;
  }
  const { req, headers } = built;
  const times = tpl.replay ? 2 : 1;
  for (let n = 0; n < times; n++) {
    run.tally.requests++;
    const input =
      `${req.method} ${req.url.pathname}${req.url.search} body ${
        showInput(new TextDecoder().decode(req.body), 300)
      }` +
      (tpl.headers.length
        ? ` headers ${tpl.headers.length} (${
          tpl.headers.map(([k, v]) => `${k}: ${v.length} chars`).slice(0, 4).join(", ")
        })`
        : "") +
      (req.contentType ? ` content-type ${JSON.stringify(req.contentType)}` : "") +
      (n ? " (replayed)" : "");
    const fail = (why: string) => {
      run.tally.add("http", tpl.cat, "MISMATCH", "fail");
      run.tally.fail({ domain: "http", cat: tpl.cat, index, input, why });
    };
    let res: Response;
    try {
      res = await fetch(req.url.href, {
        method: req.method,
        headers,
        body: req.method === "GET" || req.method === "HEAD" ? undefined : req.body,
      });
    } catch (error) {
      // A runtime may drop a request with abusive headers, or fetch may refuse to send it.
      if (req.headerAbuse || req.method === "FOO") {
        run.tally.add("http", tpl.cat, "dropped or not sent", "pass");
      } else fail(`fetch failed: ${String(error)}`);
      continue;
    }
    const text = await res.text();
    const expected = expectHttp(req, now);
    const status = res.status;
    const outcome = `HTTP ${status}`;
    if (!expected.statuses.includes(status) && expected.known?.statuses.includes(status)) {
      run.tally.add("http", tpl.cat, expected.known.label, "known");
      run.tally.knownDeviation(
        expected.known.label,
        `FUZZ_SEED=${run.tally.seed} http case #${index}: ${input}`,
      );
      continue;
    }
    if (!expected.statuses.includes(status)) {
      if (expected.runtimeStatuses.includes(status)) {
        run.tally.add("http", tpl.cat, `${outcome} (runtime)`, "pass");
      } else {fail(
          `status ${status}, expected one of ${expected.statuses.join("/")}; body ${
            text.slice(0, 300)
          }`,
        );}
      continue;
    }
    if (req.method !== "HEAD") {
      const body = tryParse(text)?.value;
      if (status === 200) {
        const why = expected.shape?.(body);
        if (why) {
          fail(`200 with a wrong body (${why}): ${text.slice(0, 300)}`);
          continue;
        }
      } else if (!isRecord(body) || typeof body.error !== "string") {
        fail(`${status} without a JSON {"error": string} body: ${text.slice(0, 300)}`);
        continue;
      }
    }
    run.tally.add("http", tpl.cat, outcome, "pass");
  }
}

export async function runHttp(run: HttpRun): Promise<void> {
  await Promise.all(Array.from({ length: run.lanes }, async (_, lane) => {
    for (let i = lane; i < run.cases.length; i += run.lanes) await send(run.cases[i], i, run);
  }));
}
