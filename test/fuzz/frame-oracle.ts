// The frame oracle: given what a socket is (its model) and one frame as sent, the replies
// docs/protocol.md §2-§5, §8 require, in order. It updates the model as the spec says the frame
// does, so a worker's model follows its socket frame by frame.
import {
  authValid,
  canonical,
  channelKind,
  type FuzzApp,
  isRecord,
  type Kind,
  tryParse,
  utf8Length,
  wireText,
} from "./spec.ts";
import type { Wire } from "./frame-wire.ts";

export interface Sub {
  kind: Kind;
  userId?: string;
  info?: unknown;
}

export interface Model {
  worker: number;
  app: FuzzApp;
  sid: string;
  user?: { id: string; info: unknown };
  subs: Map<string, Sub>;
}

export interface Relay {
  channel: string;
  event: string;
  /** canonical() of the data, "undefined" when the sender sent none. */
  data: string;
  userId?: string;
}

export type Expect =
  | { t: "error"; codes: number[] }
  | {
    t: "sub_ok";
    channel: string;
    me?: { id: string; info: unknown };
    cache: "yes" | "maybe" | "no";
  }
  | { t: "sub_error"; channel: string; statuses: number[] }
  | { t: "pong" }
  | { t: "signin_ok"; userData: string }
  | { t: "close"; code: number }
  | { t: "relay"; relay: Relay }
  | { t: "none" };

/** A spec answer, and a known (reported, not yet fixed) server deviation also seen as "known". */
export interface Verdict {
  expect: Expect;
  known?: { label: string; expect: Expect };
}

const err = (...codes: number[]): Verdict => ({ expect: { t: "error", codes } });
const subError = (channel: string, ...statuses: number[]): Verdict => ({
  expect: { t: "sub_error", channel, statuses },
});
const none: Verdict = { expect: { t: "none" } };

export function expectFrame(model: Model, wire: Wire): Verdict {
  const max = model.app.maxMessageSize;
  if ("bytes" in wire) {
    if (wire.bytes.length > max) {
      // §2: a frame over max_message_size closes with 1009, binary or not. (Binary frames got
      // 4200 below the runtime's own limit until src/session/frame-queue.ts checked their size too.)
      return { expect: { t: "close", code: 1009 } };
    }
    return err(4200);
  }
  const text = wireText(wire.text);
  if (utf8Length(text) > max) return { expect: { t: "close", code: 1009 } };
  const parsed = tryParse(text);
  if (!parsed || !isRecord(parsed.value)) return err(4200);
  const frame = parsed.value;
  if (typeof frame.event !== "string") return err(4200);
  for (const key of ["channel", "user_id"]) {
    if (key in frame && typeof frame[key] !== "string") return err(4200);
  }
  const { event } = frame;
  switch (event) {
    case "pusher:ping":
      return { expect: { t: "pong" } };
    case "pusher:pong":
      return none;
    case "pusher:subscribe":
    case "pusher:unsubscribe":
    case "pusher:signin": {
      const data = decodeData(frame.data);
      if (!data) return err(4200);
      const fields = event === "pusher:signin"
        ? { auth: true, user_data: true }
        : event === "pusher:unsubscribe"
        ? { channel: true }
        : { channel: true, auth: false, channel_data: false };
      for (const [key, required] of Object.entries(fields)) {
        if (key in data ? typeof data[key] !== "string" : required) return err(4200);
      }
      if (event === "pusher:unsubscribe") {
        model.subs.delete(data.channel as string);
        return none;
      }
      if (event === "pusher:signin") {
        return signin(model, data.auth as string, data.user_data as string);
      }
      return subscribe(
        model,
        data.channel as string,
        data.auth as string | undefined,
        data.channel_data as string | undefined,
      );
    }
  }
  if (event.startsWith("client-")) {
    return clientEvent(model, event, frame.channel as string | undefined, frame.data);
  }
  return err(4200);
}

/** §2: client data is an object, or a JSON string of one. */
function decodeData(data: unknown): Record<string, unknown> | undefined {
  const value = typeof data === "string" ? tryParse(data)?.value : data;
  return isRecord(value) ? value : undefined;
}

function subscribe(
  model: Model,
  name: string,
  auth: string | undefined,
  cd: string | undefined,
): Verdict {
  const type = channelKind(name);
  if (!type) return subError(name, 400);
  const existing = model.subs.get(name);
  if (existing) {
    const me = existing.userId === undefined
      ? undefined
      : { id: existing.userId, info: existing.info };
    return { expect: { t: "sub_ok", channel: name, me, cache: type.cache ? "maybe" : "no" } };
  }
  const cache = type.cache ? "yes" : "no";
  const { sid, app } = model;
  switch (type.kind) {
    case "public":
      break;
    case "user":
      if (model.user?.id !== name.slice("#server-to-user-".length)) return subError(name, 403);
      break;
    case "private":
    case "encrypted":
      if (!auth || !authValid(auth, app, `${sid}:${name}`)) return subError(name, 401);
      break;
    case "presence": {
      if (cd === undefined && !model.user) return subError(name, ...(auth ? [400] : [400, 401]));
      const signed = cd === undefined ? `${sid}:${name}` : `${sid}:${name}:${cd}`;
      const member = cd === undefined ? model.user! : parseMember(cd, "user_id");
      const statuses = [];
      if (!auth || !authValid(auth, app, signed)) statuses.push(401);
      if (!member) statuses.push(400);
      if (statuses.length > 0) return subError(name, ...statuses); // the spec orders neither
      if (utf8Length(JSON.stringify(member!.info)) > app.maxMemberSize) return subError(name, 403);
      model.subs.set(name, { kind: "presence", userId: member!.id, info: member!.info });
      return { expect: { t: "sub_ok", channel: name, me: member, cache } };
    }
  }
  model.subs.set(name, { kind: type.kind });
  return { expect: { t: "sub_ok", channel: name, cache } };
}

/** §4 channel_data / §8 user_data: a JSON object whose id is a non-empty string (or, §4, a number). */
function parseMember(
  raw: string,
  idKey: "user_id" | "id",
): { id: string; info: unknown } | undefined {
  const value = tryParse(raw)?.value;
  if (!isRecord(value)) return undefined;
  const id = value[idKey];
  const info = value.user_info ?? null;
  if (idKey === "user_id" && typeof id === "number" && Number.isFinite(id)) {
    return { id: String(id), info };
  }
  return typeof id === "string" && id !== "" ? { id, info } : undefined;
}

function signin(model: Model, auth: string, userData: string): Verdict {
  if (model.user) return err(4009);
  if (!authValid(auth, model.app, `${model.sid}::user::${userData}`)) return err(4009);
  const user = parseMember(userData, "id");
  const watchlist = (tryParse(userData)?.value as Record<string, unknown> | undefined)?.watchlist ??
    [];
  const listOk = Array.isArray(watchlist) && watchlist.length <= 100 &&
    watchlist.every((id) => typeof id === "string");
  if (!user || !listOk) return err(4009);
  model.user = user;
  return { expect: { t: "signin_ok", userData } };
}

function clientEvent(
  model: Model,
  event: string,
  channel: string | undefined,
  data: unknown,
): Verdict {
  if (!model.app.clientEvents) return err(4301);
  // §5 says 4009 for a client event on no channel it may use; §2 says 4200 for a missing field.
  if (channel === undefined) return err(4009, 4200);
  const sub = model.subs.get(channel);
  if (!sub || (sub.kind !== "private" && sub.kind !== "presence")) return err(4009);
  const userId = sub.kind === "presence" ? sub.userId : undefined;
  return { expect: { t: "relay", relay: { channel, event, data: canonical(data), userId } } };
}
