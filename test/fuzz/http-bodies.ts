// Generators of HTTP API bodies and the channel names in them: valid events, events with a field
// or two broken, batches, bodies that are not JSON or not UTF-8, bodies around the size limits.
import fc from "fast-check";
import { wireText } from "./spec.ts";

export const str = (a: fc.Arbitrary<unknown>) => a.map((v) => JSON.stringify(v));
/** Percent-encoding of what a URL can carry (a lone surrogate becomes U+FFFD). */
export const enc = (s: string) => encodeURIComponent(wireText(s));
const NAME_CHARS = "-abcXYZ019_=@,.;";
const nameChars = (min: number, max: number) =>
  fc.string({ unit: fc.constantFrom(...NAME_CHARS), minLength: min, maxLength: max });
const KINDS = ["", "private-", "presence-", "cache-", "private-cache-", "presence-cache-"];
/** Valid names, all starting with "h" after the kind: never a frame worker's or the canary's. */
export const goodChannel = fc.tuple(fc.constantFrom(...KINDS), nameChars(1, 20)).map(([k, s]) =>
  `${k}h${s}`
);
export const weird = fc.string({
  unit: fc.oneof(
    fc.constantFrom("\u0000", "\ud800", "€", "😀", "#", "/", "%", "?", " ", '"'),
    fc.string({ unit: "binary", maxLength: 1 }),
  ),
  maxLength: 30,
});
const badChannel = fc.oneof(
  nameChars(196, 205).map((s) => `h${s}`),
  weird.map((s) => `h-${s}`),
  fc.constantFrom(
    "",
    "#server-to-user-",
    "#server-to-user-h1",
    "#h",
    "private-encrypted-h1",
    "h:x",
  ),
);
export const anyChannel = fc.oneof({ weight: 3, arbitrary: goodChannel }, {
  weight: 2,
  arbitrary: badChannel,
});
const json = fc.jsonValue({ maxDepth: 2 });
export const notString = fc.oneof(
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.object({ maxDepth: 1 }),
);
const bigData = fc.tuple(fc.integer({ min: -3, max: 3 }), fc.constantFrom("a", "é", "€", "😀")).map(
  ([off, ch]) => {
    const bytes = 10_240 + off;
    const width = new TextEncoder().encode(ch).length;
    return ch.repeat(Math.floor(bytes / width)) + "a".repeat(bytes % width);
  },
);

export const eventBody = fc.record({
  name: fc.oneof(fc.constant("ev"), nameChars(1, 30)),
  data: fc.oneof(fc.constant('{"x":1}'), fc.string({ maxLength: 100 })),
  channels: fc.array(goodChannel, { minLength: 1, maxLength: 4 }),
}, { requiredKeys: ["name", "data", "channels"] });

type Edit = { key: string; value?: unknown; drop?: boolean };
const edit = (key: string, value: fc.Arbitrary<unknown>): fc.Arbitrary<Edit> =>
  value.map((v) => ({ key, value: v }));
const eventEdit: fc.Arbitrary<Edit> = fc.oneof(
  edit(
    "name",
    fc.oneof(
      notString,
      fc.constantFrom("", "pusher:x", "pusher_internal:y", "client-x"),
      nameChars(199, 202),
      weird,
    ),
  ),
  edit("data", fc.oneof(json, bigData, weird)),
  fc.constantFrom<Edit>({ key: "data", drop: true }, { key: "name", drop: true }, {
    key: "channels",
    drop: true,
  }),
  edit(
    "channels",
    fc.oneof(
      fc.array(goodChannel, { minLength: 99, maxLength: 102 }),
      fc.array(anyChannel, { minLength: 1, maxLength: 3 }),
      fc.constant([]),
      fc.constant(["private-encrypted-h1", "h2"]),
      fc.constant(["private-encrypted-h1"]),
      notString,
      fc.array(notString, { minLength: 1, maxLength: 2 }),
    ),
  ),
  edit("channel", fc.oneof(anyChannel, notString)),
  edit(
    "socket_id",
    fc.oneof(
      fc.constantFrom("123.456", "1.2", "abc", "1.", ".1", "1.2.3", " 1.2", "-1.2"),
      notString,
    ),
  ),
  edit(
    "info",
    fc.oneof(
      fc.constantFrom(
        "user_count",
        "subscription_count",
        "user_count,subscription_count",
        "cache",
        "bogus",
        "",
        ",,",
      ),
      notString,
    ),
  ),
  edit("extra", json),
);

function applyEdits(body: Record<string, unknown>, edits: Edit[]): Record<string, unknown> {
  const out = { ...body };
  for (const e of edits) {
    if (e.drop) delete out[e.key];
    else out[e.key] = e.value;
  }
  return out;
}

export const editedEvent = fc.tuple(eventBody, fc.array(eventEdit, { minLength: 0, maxLength: 2 }))
  .map((
    [b, e],
  ) => applyEdits(b, e));
const batchItem = fc.tuple(eventBody, fc.array(eventEdit, { maxLength: 1 })).map(([b, e]) => {
  const { channels, ...rest } = applyEdits(b, e);
  return Array.isArray(channels) && channels.length === 1 && e.length === 0
    ? { ...rest, channel: channels[0] }
    : { ...rest, channel: Array.isArray(channels) ? channels[0] : channels };
});
export const batchBody = fc.oneof(
  fc.array(batchItem, { minLength: 1, maxLength: 12 }).map((batch) => ({ batch })),
  fc.oneof(notString, fc.constant([])).map((batch) => ({ batch })),
  fc.constant({}),
);

export const invalidBody = fc.oneof(
  fc.oneof(
    weird,
    fc.json().map((j) => j.slice(0, -1)),
    str(notString),
    fc.constantFrom("", "{", "[]", "null", '{"name":"e"'),
  ).map((b) => b as string | number[]),
  fc.constantFrom<number[]>(
    [0xef, 0xbb, 0xbf, ...new TextEncoder().encode('{"name":"e","channel":"h1","data":"{}"}')],
    [0x7b, 0xff, 0xfe, 0x7d],
    [0xc3, 0x28],
  ),
);
/** Bodies of exactly this many bytes around max_request_size (131 072): a valid event padded with
 * an unknown field, or with data (then over max_event_size as well). */
export const hugeBody = fc.tuple(
  fc.constantFrom(131_071, 131_072, 131_073, 200_000, 1_100_000),
  fc.boolean(),
).map(([size, inData]) => {
  const head = inData
    ? '{"name":"e","channel":"h1","data":"'
    : '{"name":"e","channel":"h1","data":"{}","pad":"';
  return `${head}${"a".repeat(Math.max(0, size - head.length - 2))}"}`;
});
