// Compares the frames a socket got with what the oracle expects, in order: event, channel, the
// data's shape (pusher:error data an object with a numeric code, subscription_error's status and
// type, presence data with this member), and nothing unexpected.
import type { Frame } from "../support/ws.ts";
import type { Expect } from "./frame-oracle.ts";
import { canonical, isRecord, tryParse } from "./spec.ts";

const IGNORED = new Set([
  "pusher_internal:watchlist_events",
  "pusher_internal:member_added",
  "pusher_internal:member_removed",
]);

/** Frames a fuzz socket may get at any time (other users coming and going). */
export function ignorable(frame: Frame): boolean {
  return IGNORED.has(frame.event);
}

/** Checks the replies to a run of frames; answers what differs, or undefined. */
export function matchFrames(
  expected: Expect[],
  got: Frame[],
  closed: number | undefined,
): string | undefined {
  let i = 0;
  const at = () => (i < got.length ? JSON.stringify(got[i]).slice(0, 300) : "nothing");
  for (const e of expected) {
    if (e.t === "none" || e.t === "relay") continue;
    if (e.t === "close") {
      return closed === e.code
        ? (i < got.length ? `frames before close: ${at()}` : undefined)
        : `expected close ${e.code}, got ${closed ?? "no close"} and ${at()}`;
    }
    const f = got[i++];
    if (!f) return `expected ${describe(e)}, got nothing${closed ? ` (closed ${closed})` : ""}`;
    const why = matchOne(e, f);
    if (why) return `expected ${describe(e)}, got ${JSON.stringify(f).slice(0, 300)}: ${why}`;
    if (e.t === "sub_ok" && e.cache !== "no") {
      const miss = got[i]?.event === "pusher:cache_miss" && got[i].channel === e.channel;
      if (miss) i++;
      else if (e.cache === "yes") return `expected pusher:cache_miss on ${e.channel}, got ${at()}`;
    }
  }
  if (i < got.length) return `unexpected frame ${at()}`;
  if (closed !== undefined) return `unexpected close ${closed}`;
  return undefined;
}

function describe(e: Expect): string {
  return JSON.stringify(e).slice(0, 200);
}

const TYPES: Record<number, string[]> = {
  400: ["InvalidRequest"],
  401: ["AuthError"],
  403: ["AuthError", "LimitReached"],
};

function matchOne(e: Expect, f: Frame): string | undefined {
  switch (e.t) {
    case "pong":
      return f.event === "pusher:pong" && f.data === "{}" ? undefined : "not a pong";
    case "error": {
      if (f.event !== "pusher:error" || !isRecord(f.data)) {
        return "not a pusher:error with object data";
      }
      if (typeof f.data.message !== "string") return "message is not a string";
      return e.codes.includes(f.data.code as number) ? undefined : "wrong code";
    }
    case "sub_error": {
      if (f.event !== "pusher:subscription_error" || f.channel !== e.channel) {
        return "not this channel's subscription_error";
      }
      if (!isRecord(f.data) || typeof f.data.error !== "string") {
        return "data is not {type, error, status}";
      }
      const status = f.data.status as number;
      if (!e.statuses.includes(status)) return "wrong status";
      return TYPES[status].includes(f.data.type as string)
        ? undefined
        : "wrong type for the status";
    }
    case "sub_ok": {
      if (f.event !== "pusher_internal:subscription_succeeded" || f.channel !== e.channel) {
        return "not this channel's subscription_succeeded";
      }
      if (typeof f.data !== "string") return "data is not a JSON string";
      const data = tryParse(f.data)?.value;
      if (!e.me) return f.data === "{}" ? undefined : "data is not {}";
      const p = isRecord(data) && isRecord(data.presence) ? data.presence : undefined;
      const ids = p?.ids;
      if (!p || !Array.isArray(ids) || !isRecord(p.hash) || p.count !== ids.length) {
        return "not {presence:{ids,hash,count}}";
      }
      if (!ids.includes(e.me.id) || new Set(ids).size !== ids.length) {
        return "ids lack this member or repeat one";
      }
      return canonical(p.hash[e.me.id]) === canonical(e.me.info)
        ? undefined
        : "hash has another user_info";
    }
    case "signin_ok": {
      const data = typeof f.data === "string" ? tryParse(f.data)?.value : undefined;
      return f.event === "pusher:signin_success" && isRecord(data) && data.user_data === e.userData
        ? undefined
        : "not signin_success with the user_data";
    }
    default:
      return "unexpected expectation";
  }
}
