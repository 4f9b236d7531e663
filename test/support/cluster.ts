// Small assertions shared by the cluster suites: counting frames, signing a raw socket in,
// reading watchlist events, and polling a value until it equals what a rule demands.
import assert from "node:assert/strict";
import { type AppCreds, signinAuth } from "./sign.ts";
import { until } from "./wait.ts";
import { dataOf, type Frame, type RawSocket } from "./ws.ts";

/** The `event` frames on `channel` a raw socket has received so far. */
export function got(s: RawSocket, event: string, channel: string): Frame[] {
  return s.log.filter((f) => f.event === event && f.channel === channel);
}

/** pusher:signin with a valid signature; asserts signin_success. */
export async function signin(
  s: RawSocket,
  app: AppCreds,
  user: Record<string, unknown>,
): Promise<void> {
  const userData = JSON.stringify(user);
  s.send({
    event: "pusher:signin",
    data: { auth: signinAuth(app, s.socketId!, userData), user_data: userData },
  });
  const f = await s.next(
    (f) => f.event === "pusher:signin_success" || f.event === "pusher:error",
    "signin result",
  );
  assert.equal(f.event, "pusher:signin_success", JSON.stringify(f));
}

type WatchlistData = { events?: { name: string; user_ids: string[] }[] };

function watchlistEntries(f: Frame): string[] {
  return ((dataOf(f) as WatchlistData).events ?? []).flatMap((e) =>
    e.user_ids.map((id) => `${e.name}:${id}`)
  );
}

/** watchlist_events received so far, flattened to "online:x" / "offline:x". */
export function watchlist(s: RawSocket): string[] {
  return s.log.filter((f) => f.event === "pusher_internal:watchlist_events").flatMap(
    watchlistEntries,
  );
}

/** Waits for a watchlist_events frame that contains `entry` ("online:x" / "offline:x"). */
export function waitWatchlist(s: RawSocket, entry: string, timeout = 5000): Promise<Frame> {
  return s.next(
    (f) => f.event === "pusher_internal:watchlist_events" && watchlistEntries(f).includes(entry),
    `watchlist ${entry}`,
    timeout,
  );
}

/**
 * Polls `read()` until it deep-equals `expected`, for state with no event to await (HTTP counts
 * after a socket closed). Fails with the last value read.
 */
export async function eventually(
  read: () => Promise<unknown>,
  expected: unknown,
  what: string,
  timeout = 5000,
): Promise<void> {
  let last: unknown;
  try {
    await until(
      async () => {
        last = await read();
        try {
          assert.deepEqual(last, expected);
          return true;
        } catch {
          return false;
        }
      },
      what,
      { timeout, interval: 50 },
    );
  } catch {
    assert.deepEqual(last, expected, `${what} (after ${timeout} ms)`);
  }
}
