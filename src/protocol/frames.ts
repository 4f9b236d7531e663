/**
 * Client → server frames (protocol.md §2): parsed and checked with valibot. A bad frame yields a
 * message naming the problem, which the connection sends back as `pusher:error` 4200.
 */
import * as v from "valibot";

const Envelope = v.object({
  event: v.string("`event` must be a string"),
  channel: v.optional(v.string("`channel` must be a string")),
  data: v.optional(v.unknown()),
  // Servers set it on presence client events; a client's own is ignored, but must be a string.
  user_id: v.optional(v.string("`user_id` must be a string")),
});

const SubscribeData = v.object({
  channel: v.string("`data.channel` must be a string"),
  auth: v.optional(v.string("`data.auth` must be a string")),
  channel_data: v.optional(v.string("`data.channel_data` must be a string")),
});

const UnsubscribeData = v.object({
  channel: v.string("`data.channel` must be a string"),
});

const SigninData = v.object({
  auth: v.string("`data.auth` must be a string"),
  user_data: v.string("`data.user_data` must be a string"),
});

export type SubscribeRequest = v.InferOutput<typeof SubscribeData>;
export type SigninRequest = v.InferOutput<typeof SigninData>;

export type ClientFrame =
  | { kind: "subscribe"; data: SubscribeRequest }
  | { kind: "unsubscribe"; channel: string }
  | { kind: "ping" }
  | { kind: "pong" }
  | { kind: "signin"; data: SigninRequest }
  | { kind: "client-event"; event: string; channel: string | undefined; data: unknown };

export type ParseResult = { ok: true; frame: ClientFrame } | { ok: false; error: string };

/** Parses one text frame. Never throws. */
export function parseClientFrame(text: string): ParseResult {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, error: "Invalid JSON" };
  }
  let envelope = validEnvelope(json);
  if (!envelope) {
    const checked = v.safeParse(Envelope, json);
    if (!checked.success) {
      const missing = json === null || typeof json !== "object" || !("event" in json);
      return {
        ok: false,
        error: missing ? "Frame must be a JSON object with an `event`" : checked.issues[0].message,
      };
    }
    envelope = checked.output;
  }
  const { event, channel, data } = envelope;
  switch (event) {
    case "pusher:ping":
      return { ok: true, frame: { kind: "ping" } };
    case "pusher:pong":
      return { ok: true, frame: { kind: "pong" } };
    case "pusher:subscribe": {
      const parsed = parseData(SubscribeData, data, event, validSubscribe);
      return parsed.ok ? { ok: true, frame: { kind: "subscribe", data: parsed.value } } : parsed;
    }
    case "pusher:unsubscribe": {
      const parsed = parseData(UnsubscribeData, data, event);
      return parsed.ok
        ? { ok: true, frame: { kind: "unsubscribe", channel: parsed.value.channel } }
        : parsed;
    }
    case "pusher:signin": {
      const parsed = parseData(SigninData, data, event);
      return parsed.ok ? { ok: true, frame: { kind: "signin", data: parsed.value } } : parsed;
    }
  }
  if (event.startsWith("client-")) {
    return { ok: true, frame: { kind: "client-event", event, channel, data } };
  }
  if (event.startsWith("pusher:") || event.startsWith("pusher_internal:")) {
    return { ok: false, error: `Unsupported event \`${event}\`` };
  }
  return {
    ok: false,
    error: `Event \`${event}\` is neither a pusher: event nor a client- event`,
  };
}

type Fields = Record<string, unknown>;

const optionalString = (value: unknown) => value === undefined || typeof value === "string";

/**
 * The envelope when it is plainly valid, checked without valibot (the per-frame cost of a
 * schema run is most of a subscribe's): a strict subset of what `Envelope` accepts, so anything
 * else goes through the schema, which owns every error message.
 */
function validEnvelope(json: unknown): v.InferOutput<typeof Envelope> | undefined {
  if (json === null || typeof json !== "object") return undefined;
  const { event, channel, user_id: userId } = json as Fields;
  if (typeof event !== "string" || !optionalString(channel) || !optionalString(userId)) {
    return undefined;
  }
  return json as v.InferOutput<typeof Envelope>;
}

/** The same for `data` of pusher:subscribe, the frame every socket sends. */
function validSubscribe(value: Fields): SubscribeRequest | undefined {
  return typeof value.channel === "string" && optionalString(value.auth) &&
      optionalString(value.channel_data)
    ? value as SubscribeRequest
    : undefined;
}

/** pusher-js sends `data` as an object; other clients send it JSON-encoded. Accept both. */
function parseData<T extends v.GenericSchema>(
  schema: T,
  data: unknown,
  event: string,
  /** A check without valibot for the common valid shape (a subset of what `schema` accepts). */
  plainlyValid?: (value: Fields) => v.InferOutput<T> | undefined,
): { ok: true; value: v.InferOutput<T> } | { ok: false; error: string } {
  let value = data;
  if (typeof value === "string") {
    try {
      value = JSON.parse(value);
    } catch {
      return { ok: false, error: `\`data\` of ${event} is not valid JSON` };
    }
  }
  if (value === null || typeof value !== "object") {
    return { ok: false, error: `\`data\` of ${event} must be an object` };
  }
  const valid = plainlyValid?.(value as Fields);
  if (valid) return { ok: true, value: valid };
  const result = v.safeParse(schema, value);
  return result.success
    ? { ok: true, value: result.output }
    : { ok: false, error: `${event}: ${result.issues[0].message}` };
}
