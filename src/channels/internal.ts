/**
 * Node-internal channels: they live in the local registry and on the cluster bus like Pusher
 * channels, so routing and interest work the same, but clients can never name them (channel
 * names may only start with `#` as `#server-to-user-`) and they never appear in the HTTP API.
 */

/** Sockets watching a user: receive its online / offline watchlist events. */
export function watchersChannel(userId: string): string {
  return `#watchers-${userId}`;
}

const USER_CONTROL_PREFIX = "#user-control-";

/** Sockets signed in or present as a user: a frame here terminates them. */
export function userControlChannel(userId: string): string {
  return `${USER_CONTROL_PREFIX}${userId}`;
}

export function isUserControlChannel(name: string): boolean {
  return name.startsWith(USER_CONTROL_PREFIX);
}
