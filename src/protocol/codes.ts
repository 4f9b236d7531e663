/** Pusher error and close codes Chorus sends (protocol.md §1, §2, §5, §7). */
export const ErrorCode = {
  /** Unknown app key. */
  AppNotFound: 4001,
  AppDisabled: 4003,
  OverConnectionQuota: 4004,
  InvalidVersionFormat: 4006,
  UnsupportedProtocol: 4007,
  /** Origin refused, client event not allowed on this channel, bad sign-in, terminated. */
  Unauthorized: 4009,
  /** Slow consumer: over the per-socket send buffer budget. */
  OverCapacity: 4100,
  /** Malformed frame (connection kept), also used as close code when draining. */
  GenericReconnect: 4200,
  PongTimeout: 4201,
  /** Client events disabled or rate limited. */
  ClientEventRejected: 4301,
} as const;

/** WebSocket close code for a frame over the size limit. */
export const CLOSE_MESSAGE_TOO_BIG = 1009;
