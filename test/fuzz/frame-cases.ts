// Seeded generators (fast-check) of hostile client frames, as templates: what depends on the
// socket (its id, hence every valid auth) is filled in by `materialize` when the frame is sent.
import fc from "fast-check";

export type AuthSpec =
  | { k: "valid" | "none" | "otherKey" | "otherSocket" | "upper" | "noColon" }
  | { k: "raw"; v: unknown };
/** own: a channel of this worker only; ce: the worker's client-event channels the peer watches. */
export type ChanSpec =
  | { own: string; n: number }
  | { ce: "private-" | "presence-" }
  | { user: "self" | "other" }
  | { raw: unknown };
export type DataSpec = { k: "member"; id: unknown; info?: unknown } | { k: "raw"; v: unknown };

export type Tpl =
  | { t: "raw"; text: string }
  | { t: "binary"; bytes: number[] }
  | { t: "json"; value: unknown }
  | { t: "sub"; ch: ChanSpec; auth: AuthSpec; cd?: DataSpec; str: boolean }
  | { t: "unsub"; ch: ChanSpec; str: boolean }
  | { t: "signin"; ud: DataSpec; auth: AuthSpec; str: boolean }
  | { t: "client"; name: string; ch: ChanSpec | null; data?: unknown; strData: boolean }
  | { t: "ping"; data?: unknown }
  | {
    t: "sized";
    offset: number;
    width: 1 | 2 | 3 | 4;
    kind: "ping" | "client" | "binary";
    follow: boolean;
  }
  | { t: "nested"; depth: number; open: "[" | '{"a":'; where: "client" | "ping" | "sub" }
  | { t: "burst"; items: Tpl[] };

export interface FrameCase {
  cat: string;
  tpl: Tpl;
}

const SPECIAL = ["\u0000", "\ud800", "\udfff", "\ud83d", "\ufeff", "\u2028", "€", "😀", '"', "\\"];
const weird = fc.string({
  unit: fc.oneof(fc.constantFrom(...SPECIAL), fc.string({ unit: "binary", maxLength: 1 })),
  maxLength: 40,
});
const NAME_CHARS = "-abcXYZ019_=@,.;";
const nameChars = (min: number, max: number) =>
  fc.string({ unit: fc.constantFrom(...NAME_CHARS), minLength: min, maxLength: max });
const PREFIXES = [
  "",
  "private-",
  "private-encrypted-",
  "presence-",
  "cache-",
  "private-cache-",
  "private-encrypted-cache-",
  "presence-cache-",
];
const notString = fc.oneof(
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer()),
  fc.object(),
);
const json = fc.jsonValue({ maxDepth: 3 });

const own: fc.Arbitrary<ChanSpec> = fc.record({ own: fc.constantFrom(...PREFIXES), n: fc.nat(5) });
const badName = fc.oneof(
  nameChars(190, 210).map((s) => `fzx${s}`), // around the 200-character limit
  weird.map((s) => `fzw-${s}`),
  fc.constantFrom(
    "",
    "#server-to-user-",
    "#foo",
    "presence-a b",
    "x/y",
    "private-\u0000",
    "a\ud800",
  ),
);
const chan: fc.Arbitrary<ChanSpec> = fc.oneof(
  { weight: 6, arbitrary: own },
  {
    weight: 2,
    arbitrary: fc.record({ ce: fc.constantFrom("private-" as const, "presence-" as const) }),
  },
  { weight: 1, arbitrary: fc.record({ user: fc.constantFrom("self" as const, "other" as const) }) },
  { weight: 2, arbitrary: badName.map((raw) => ({ raw })) },
  { weight: 1, arbitrary: notString.map((raw) => ({ raw })) },
);
const auth: fc.Arbitrary<AuthSpec> = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ k: "valid" as const }) },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      ...(["none", "otherKey", "otherSocket", "upper", "noColon"] as const).map((k) => ({ k })),
    ),
  },
  {
    weight: 2,
    arbitrary: fc.oneof(weird, notString, fc.constant("")).map((v) => ({ k: "raw" as const, v })),
  },
);
const userId = fc.oneof(fc.constantFrom("u1", "u2", 7, 1.5, "", null, true, { id: 1 }), weird);
const member: fc.Arbitrary<DataSpec> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      k: fc.constant("member" as const),
      id: userId,
      info: fc.option(json, { nil: undefined }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant("member" as const),
      id: fc.constant("big"),
      info: fc.string({ minLength: 2030, maxLength: 2060 }),
    }),
  },
  { weight: 2, arbitrary: fc.oneof(weird, json, notString).map((v) => ({ k: "raw" as const, v })) },
);
const userData: fc.Arbitrary<DataSpec> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      k: fc.constant("member" as const),
      id: userId,
      info: fc.option(json, { nil: undefined }),
    }),
  },
  { weight: 2, arbitrary: fc.oneof(weird, json, notString).map((v) => ({ k: "raw" as const, v })) },
);

const sub = fc.record({
  t: fc.constant("sub" as const),
  ch: chan,
  auth,
  cd: fc.option(member, { nil: undefined }),
  str: fc.boolean(),
});
const unsub = fc.record({ t: fc.constant("unsub" as const), ch: chan, str: fc.boolean() });
const client = fc.record({
  t: fc.constant("client" as const),
  name: fc.oneof(fc.constant("client-e"), weird.map((s) => `client-${s}`)),
  ch: fc.option(chan, { nil: null }),
  data: fc.option(fc.oneof(json, weird), { nil: undefined }),
  strData: fc.boolean(),
});
const signin = fc.record({
  t: fc.constant("signin" as const),
  ud: userData,
  auth,
  str: fc.boolean(),
});
const ping = fc.record({
  t: fc.constant("ping" as const),
  data: fc.option(json, { nil: undefined }),
});

const invalidJson = fc.oneof(
  weird,
  fc.json().chain((text) =>
    fc.nat(text.length).map((cut) => text.slice(0, cut) + (cut % 2 ? "}" : ""))
  ),
  fc.constantFrom(
    "",
    "{",
    "[]",
    "null",
    "42",
    '"pusher:ping"',
    "{'event':'x'}",
    '{"event":"pusher:ping",}',
  ),
).map((text): Tpl => ({ t: "raw", text }));
const envelopeKeys = fc.constantFrom("event", "channel", "data", "user_id");
const wrongTypes = fc.record({
  event: fc.oneof(
    fc.constantFrom(
      "pusher:ping",
      "pusher:subscribe",
      "client-x",
      "pusher:unsubscribe",
      "pusher:signin",
    ),
    weird,
  ),
  key: envelopeKeys,
  value: fc.oneof(notString, weird),
  data: fc.oneof(
    json,
    fc.constant({ channel: 5 }),
    fc.constant({ channel: "c", auth: 1 }),
    fc.constant('{"channel":'),
    fc.constant({ auth: "k:x", user_data: {} }),
  ),
}).map(({ event, key, value, data }): Tpl => ({ t: "json", value: { event, data, [key]: value } }));
const unknownEvents = fc.oneof(
  fc.constantFrom(
    "pusher:connection_established",
    "pusher_internal:subscription_succeeded",
    "pusher:error",
    "pusher:nope",
    "",
    "client",
    "Client-x",
    "pusher_internal:x",
  ),
  weird,
).map((event): Tpl => ({ t: "json", value: { event, data: {} } }));
const binary = fc.uint8Array({ maxLength: 300 }).map((b): Tpl => ({ t: "binary", bytes: [...b] }));
const sized = fc.record({
  t: fc.constant("sized" as const),
  offset: fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constantFrom(-1000, 1000, 20_000)),
  width: fc.constantFrom(1 as const, 2 as const, 3 as const, 4 as const),
  kind: fc.constantFrom("ping" as const, "client" as const, "binary" as const),
  /** Keep sending (a ping) right after it, before the server's close can arrive. */
  follow: fc.boolean(),
});
const nested = fc.record({
  t: fc.constant("nested" as const),
  depth: fc.oneof(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 1000, max: 5200 })),
  open: fc.constantFrom("[" as const, '{"a":' as const),
  where: fc.constantFrom("client" as const, "ping" as const, "sub" as const),
});
const hugeStrings = fc.record({
  t: fc.constant("client" as const),
  name: fc.constant("client-huge"),
  ch: fc.constant<ChanSpec>({ ce: "private-" }),
  data: fc.string({
    unit: fc.constantFrom("a", "é", "€", "😀", "\u0000"),
    minLength: 1000,
    maxLength: 6000,
  }),
  strData: fc.boolean(),
});
const simple: fc.Arbitrary<Tpl> = fc.oneof(
  invalidJson,
  sub,
  unsub,
  client,
  ping,
  signin,
  unknownEvents,
);
const rapid = fc.array(
  fc.oneof(
    fc.record({
      t: fc.constant("sub" as const),
      ch: fc.oneof(own, fc.constant<ChanSpec>({ ce: "private-" })),
      auth: fc.constant<AuthSpec>({ k: "valid" }),
      cd: fc.constant<DataSpec>({ k: "member", id: "r" }),
      str: fc.boolean(),
    }),
    fc.record({ t: fc.constant("unsub" as const), ch: own, str: fc.boolean() }),
  ),
  { minLength: 20, maxLength: 200 },
);

export function frameCases(seed: number, count: number, burstMax: number): FrameCase[] {
  const arb: fc.Arbitrary<FrameCase> = fc.oneof(
    { weight: 10, arbitrary: invalidJson.map((tpl) => ({ cat: "invalid-json", tpl })) },
    { weight: 10, arbitrary: wrongTypes.map((tpl) => ({ cat: "wrong-types", tpl })) },
    { weight: 4, arbitrary: unknownEvents.map((tpl) => ({ cat: "unknown-event", tpl })) },
    { weight: 14, arbitrary: sub.map((tpl) => ({ cat: "subscribe-auth", tpl })) },
    { weight: 4, arbitrary: unsub.map((tpl) => ({ cat: "unsubscribe", tpl })) },
    { weight: 12, arbitrary: client.map((tpl) => ({ cat: "client-event", tpl })) },
    { weight: 6, arbitrary: signin.map((tpl) => ({ cat: "signin", tpl })) },
    { weight: 2, arbitrary: ping.map((tpl) => ({ cat: "ping", tpl })) },
    { weight: 4, arbitrary: binary.map((tpl) => ({ cat: "binary", tpl })) },
    { weight: 3, arbitrary: sized.map((tpl) => ({ cat: "size-limit", tpl })) },
    { weight: 3, arbitrary: nested.map((tpl) => ({ cat: "deep-nesting", tpl })) },
    { weight: 3, arbitrary: hugeStrings.map((tpl) => ({ cat: "huge-string", tpl })) },
    {
      weight: 1,
      arbitrary: fc.array(simple, { minLength: 50, maxLength: burstMax }).map((items) => ({
        cat: "burst",
        tpl: { t: "burst" as const, items },
      })),
    },
    {
      weight: 1,
      arbitrary: rapid.map((items) => ({
        cat: "rapid-subscribe",
        tpl: { t: "burst" as const, items },
      })),
    },
  );
  return fc.sample(arb, { seed, numRuns: count });
}
