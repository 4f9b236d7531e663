/**
 * Validation of `POST /events` and `/batch_events` bodies (protocol.md §9): pure functions that
 * answer either the events to publish or the HTTP error to return.
 */
import { Buffer } from "node:buffer";
import * as v from "valibot";
import { channelType } from "../channels/index.ts";
import type { AppConfig } from "../config.ts";
import { HttpError } from "./errors.ts";

export const MAX_CHANNELS_PER_EVENT = 100;
export const MAX_BATCH_SIZE = 10;
export const MAX_EVENT_NAME_LENGTH = 200;

const EventName = v.pipe(
  v.string("`name` must be a string"),
  v.minLength(1, "`name` must not be empty"),
  v.maxLength(MAX_EVENT_NAME_LENGTH, `\`name\` is longer than ${MAX_EVENT_NAME_LENGTH} characters`),
);
const SocketId = v.pipe(
  v.string("`socket_id` must be a string"),
  v.regex(/^\d+\.\d+$/, "`socket_id` must look like 123.456"),
);
const Info = v.string("`info` must be a string");

const EventBody = v.object({
  name: EventName,
  data: v.unknown(),
  channels: v.optional(v.pipe(
    v.array(v.string("`channels` must hold strings"), "`channels` must be an array"),
    v.minLength(1, "`channels` must not be empty"),
    v.maxLength(MAX_CHANNELS_PER_EVENT, `at most ${MAX_CHANNELS_PER_EVENT} channels per event`),
  )),
  channel: v.optional(v.string("`channel` must be a string")),
  socket_id: v.optional(SocketId),
  info: v.optional(Info),
}, "body must be a JSON object");

const BatchItem = v.object({
  name: EventName,
  data: v.unknown(),
  channel: v.string("every batch item needs a `channel` string"),
  socket_id: v.optional(SocketId),
  info: v.optional(Info),
}, "every batch item must be an object");

const BatchBody = v.object({
  batch: v.pipe(
    v.array(BatchItem, "`batch` must be an array"),
    v.minLength(1, "`batch` must not be empty"),
    v.maxLength(MAX_BATCH_SIZE, `at most ${MAX_BATCH_SIZE} events per batch`),
  ),
}, "body must be a JSON object");

export type InfoField = "user_count" | "subscription_count" | "cache";

/** One event ready to publish to one or more channels. */
export interface OutgoingEvent {
  name: string;
  channels: string[];
  /** Data as the string that goes out on the wire. */
  data: string;
  socketId?: string;
  info: Set<InfoField>;
  /** The cache channels among `channels` (they keep the event for later subscribers). */
  cacheChannels: string[];
}

export function parseJsonBody(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    throw new HttpError(400, "Body is not valid JSON");
  }
}

export function parseEventBody(body: unknown, app: AppConfig): OutgoingEvent {
  const parsed = v.safeParse(EventBody, body);
  if (!parsed.success) throw new HttpError(400, describe(parsed.issues));
  const { name, data, channels, channel, socket_id, info } = parsed.output;
  if (channels !== undefined && channel !== undefined) {
    throw new HttpError(400, "Give either `channels` or `channel`, not both");
  }
  const names = channels ?? (channel !== undefined ? [channel] : undefined);
  if (!names) throw new HttpError(400, "Missing `channels` (or `channel`)");
  return checkEvent(app, name, names, data, socket_id, info);
}

export function parseBatchBody(body: unknown, app: AppConfig): OutgoingEvent[] {
  const parsed = v.safeParse(BatchBody, body);
  if (!parsed.success) throw new HttpError(400, describe(parsed.issues));
  return parsed.output.batch.map((item) =>
    checkEvent(app, item.name, [item.channel], item.data, item.socket_id, item.info)
  );
}

function checkEvent(
  app: AppConfig,
  name: string,
  channels: string[],
  rawData: unknown,
  socketId: string | undefined,
  info: string | undefined,
): OutgoingEvent {
  if (name.startsWith("pusher:") || name.startsWith("pusher_internal:")) {
    throw new HttpError(400, `Event name "${name}" uses a reserved prefix`);
  }
  if (rawData === undefined) throw new HttpError(400, "Missing `data`");
  const cacheChannels: string[] = [];
  for (const channel of channels) {
    const type = channelType(channel);
    if (!type) throw new HttpError(400, `Invalid channel name "${channel}"`);
    if (type.kind === "encrypted" && channels.length > 1) {
      throw new HttpError(400, "An event for an encrypted channel must name only that channel");
    }
    if (type.cache) cacheChannels.push(channel);
  }
  const data = typeof rawData === "string" ? rawData : JSON.stringify(rawData);
  const size = Buffer.byteLength(data);
  if (size > app.max_event_size) {
    throw new HttpError(
      413,
      `Event data is ${size} bytes, over the limit of ${app.max_event_size}`,
    );
  }
  return {
    name,
    channels,
    data,
    socketId,
    info: parseInfo(info, ["user_count", "subscription_count"]),
    cacheChannels,
  };
}

/** Parses an `info` list such as "user_count,subscription_count". */
export function parseInfo(
  info: string | null | undefined,
  allowed: readonly InfoField[],
): Set<InfoField> {
  const fields = new Set<InfoField>();
  if (!info) return fields;
  for (const field of info.split(",")) {
    const trimmed = field.trim();
    if (trimmed === "") continue;
    if (!(allowed as readonly string[]).includes(trimmed)) {
      throw new HttpError(
        400,
        `Unknown info attribute "${trimmed}" (allowed: ${allowed.join(", ")})`,
      );
    }
    fields.add(trimmed as InfoField);
  }
  return fields;
}

function describe(issues: v.BaseIssue<unknown>[]): string {
  const issue = issues[0];
  const path = v.getDotPath(issue);
  return path && !issue.message.includes("`") ? `${path}: ${issue.message}` : issue.message;
}
