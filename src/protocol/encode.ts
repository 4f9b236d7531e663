/**
 * Server → client frames. Each frame is built once as a string and handed to every recipient.
 * Pusher events carry `data` as a JSON-encoded string (protocol.md §2).
 */
const PING = '{"event":"pusher:ping","data":"{}"}';
const PONG = '{"event":"pusher:pong","data":"{}"}';

export const pingFrame = (): string => PING;
export const pongFrame = (): string => PONG;

export function errorFrame(code: number | null, message: string): string {
  return JSON.stringify({ event: "pusher:error", data: { code, message } });
}

export function connectionEstablishedFrame(socketId: string, activityTimeout: number): string {
  return JSON.stringify({
    event: "pusher:connection_established",
    data: JSON.stringify({ socket_id: socketId, activity_timeout: activityTimeout }),
  });
}

/**
 * A channel event. HTTP-triggered events pass `data` as the string to send; client events pass
 * it exactly as the sender sent it (object or string).
 */
export function channelEventFrame(
  event: string,
  channel: string,
  data: unknown,
  userId?: string,
): string {
  return JSON.stringify(
    userId === undefined ? { event, channel, data } : {
      event,
      channel,
      data,
      user_id: userId,
    },
  );
}

export function subscriptionSucceededFrame(channel: string): string {
  return JSON.stringify({
    event: "pusher_internal:subscription_succeeded",
    channel,
    data: "{}",
  });
}

/**
 * A presence channel's subscription_succeeded from its member list already encoded and escaped
 * for the `data` string (src/channels/roster.ts keeps it): `data` is
 * `{"presence":{"ids":[...],"hash":{...},"count":N}}` as a JSON string.
 */
export function presenceSucceededFrame(
  channel: string,
  escapedIds: string,
  escapedHash: string,
  count: number,
): string {
  // Joined, not a template: one flat string, sent as is to every subscriber of the list.
  return [
    '{"event":"pusher_internal:subscription_succeeded","channel":',
    JSON.stringify(channel),
    ',"data":"{\\"presence\\":{\\"ids\\":[',
    escapedIds,
    '],\\"hash\\":{',
    escapedHash,
    '},\\"count\\":',
    String(count),
    '}}"}',
  ].join("");
}

export function subscriptionErrorFrame(
  channel: string,
  type: "AuthError" | "InvalidRequest" | "LimitReached",
  error: string,
  status: 400 | 401 | 403,
): string {
  return JSON.stringify({
    event: "pusher:subscription_error",
    channel,
    data: { type, error, status },
  });
}

export function memberAddedFrame(channel: string, userId: string, userInfo: unknown): string {
  return JSON.stringify({
    event: "pusher_internal:member_added",
    channel,
    data: JSON.stringify({ user_id: userId, user_info: userInfo }),
  });
}

export function memberRemovedFrame(channel: string, userId: string): string {
  return JSON.stringify({
    event: "pusher_internal:member_removed",
    channel,
    data: JSON.stringify({ user_id: userId }),
  });
}

export function signinSuccessFrame(userData: string): string {
  return JSON.stringify({
    event: "pusher:signin_success",
    data: JSON.stringify({ user_data: userData }),
  });
}

export function watchlistEventsFrame(
  events: { name: "online" | "offline"; user_ids: string[] }[],
): string {
  return JSON.stringify({
    event: "pusher_internal:watchlist_events",
    data: JSON.stringify({ events }),
  });
}

export function cacheMissFrame(channel: string): string {
  return JSON.stringify({ event: "pusher:cache_miss", channel });
}

export function subscriptionCountFrame(channel: string, count: number): string {
  return JSON.stringify({
    event: "pusher_internal:subscription_count",
    channel,
    data: JSON.stringify({ subscription_count: count }),
  });
}
