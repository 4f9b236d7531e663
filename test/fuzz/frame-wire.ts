// Turns a frame template into the frame on the wire for one socket: its id goes into every auth
// string (valid or broken as the template says), the worker's number into its channel names.
import type { AuthSpec, ChanSpec, DataSpec, Tpl } from "./frame-cases.ts";
import type { Model } from "./frame-oracle.ts";
import { authFor, type FuzzApp, MAIN } from "./spec.ts";

export const OTHER_SOCKET = "1.1";

function authString(spec: AuthSpec, app: FuzzApp, model: Model, signed: string): unknown {
  switch (spec.k) {
    case "valid":
      return authFor(app, signed);
    case "none":
      return undefined;
    case "otherKey":
      return authFor(
        { key: MAIN.key === app.key ? "other" : MAIN.key, secret: app.secret },
        signed,
      );
    case "otherSocket":
      return authFor(app, signed.replace(model.sid, OTHER_SOCKET));
    case "upper":
      return `${app.key}:${authFor(app, signed).slice(app.key.length + 1).toUpperCase()}`;
    case "noColon":
      return authFor(app, signed).replace(":", "");
    case "raw":
      return spec.v;
  }
}

export function channelName(spec: ChanSpec, model: Model): unknown {
  if ("own" in spec) return `${spec.own}fz${model.worker}-${spec.n}`;
  if ("ce" in spec) return `${spec.ce}fzce-${model.worker}`;
  if ("user" in spec) {
    return `#server-to-user-${
      spec.user === "self" ? (model.user?.id ?? `fz${model.worker}`) : "someone"
    }`;
  }
  return spec.raw;
}

/** Any JSON value as text for a string to sign (String() throws on some objects). */
const text = (v: unknown): string => (typeof v === "string" ? v : JSON.stringify(v) ?? "undefined");

function dataString(spec: DataSpec): unknown {
  if (spec.k === "raw") return spec.v;
  return JSON.stringify(
    spec.info === undefined
      ? { user_id: spec.id, id: spec.id }
      : { user_id: spec.id, id: spec.id, user_info: spec.info },
  );
}

/** One frame on the wire; `burst` templates are expanded by the runner, item by item. */
export type Wire = { text: string } | { bytes: Uint8Array<ArrayBuffer> };

export function materialize(tpl: Exclude<Tpl, { t: "burst" }>, model: Model): Wire {
  const app = model.app;
  const enc = (data: Record<string, unknown>, str: boolean) => (str ? JSON.stringify(data) : data);
  switch (tpl.t) {
    case "raw":
      return { text: tpl.text };
    case "binary":
      return { bytes: Uint8Array.from(tpl.bytes) };
    case "json":
      return { text: JSON.stringify(tpl.value) };
    case "ping":
      return { text: JSON.stringify({ event: "pusher:ping", data: tpl.data }) };
    case "sub": {
      const channel = channelName(tpl.ch, model);
      const cd = tpl.cd && dataString(tpl.cd);
      const signed = cd === undefined
        ? `${model.sid}:${text(channel)}`
        : `${model.sid}:${text(channel)}:${text(cd)}`;
      const data = { channel, auth: authString(tpl.auth, app, model, signed), channel_data: cd };
      return { text: JSON.stringify({ event: "pusher:subscribe", data: enc(data, tpl.str) }) };
    }
    case "unsub":
      return {
        text: JSON.stringify({
          event: "pusher:unsubscribe",
          data: enc({ channel: channelName(tpl.ch, model) }, tpl.str),
        }),
      };
    case "signin": {
      const ud = dataString(tpl.ud);
      const data = {
        user_data: ud,
        auth: authString(tpl.auth, app, model, `${model.sid}::user::${text(ud)}`),
      };
      return { text: JSON.stringify({ event: "pusher:signin", data: enc(data, tpl.str) }) };
    }
    case "client": {
      const data = tpl.strData && tpl.data !== undefined ? JSON.stringify(tpl.data) : tpl.data;
      const channel = tpl.ch ? channelName(tpl.ch, model) : undefined;
      return { text: JSON.stringify({ event: tpl.name, channel, data }) };
    }
    case "sized":
      return sizedFrame(model, app.maxMessageSize + tpl.offset, tpl.width, tpl.kind);
    case "nested": {
      const close = tpl.open === "[" ? "]" : "}";
      const deep = tpl.open.repeat(tpl.depth) + (tpl.open === "[" ? "" : "1") +
        close.repeat(tpl.depth);
      if (tpl.where === "ping") return { text: `{"event":"pusher:ping","data":${deep}}` };
      if (tpl.where === "sub") {
        return {
          text: `{"event":"pusher:subscribe","data":{"channel":"fz${model.worker}-0","x":${deep}}}`,
        };
      }
      return {
        text: `{"event":"client-deep","channel":"private-fzce-${model.worker}","data":${deep}}`,
      };
    }
  }
}

const WIDE = { 1: "a", 2: "é", 3: "€", 4: "😀" } as const;

/** A frame of exactly `size` UTF-8 bytes (padding with wide characters, then ASCII). */
function sizedFrame(model: Model, size: number, width: 1 | 2 | 3 | 4, kind: string): Wire {
  if (kind === "binary") return { bytes: new Uint8Array(Math.max(0, size)).fill(0x7b) };
  const head = kind === "ping"
    ? '{"event":"pusher:ping","data":"'
    : `{"event":"client-sized","channel":"private-fzce-${model.worker}","data":"`;
  const room = Math.max(0, size - head.length - 2);
  const wide = Math.floor(room / width);
  return { text: head + WIDE[width].repeat(wide) + "a".repeat(room - wide * width) + '"}' };
}
