/**
 * How the scale mode spreads clients over channels, shared by the driver (expected subscribers
 * per channel) and the load generator (which client joins which channel as which user).
 *
 * Clients go to the nodes in turn (client `index` to node `index % nodes`), so they are taken in
 * blocks of `stride` (the number of nodes): the clients of a block sit on different nodes, and a
 * block joins one channel as a whole, so every channel spans every node. Every `every`-th block
 * joins; joined block j joins channel `prefix + (j % channels)`. On a presence channel the
 * channel's members are numbered in join order and member m is user `m % users` (a channel has
 * up to `users` distinct users, several sockets each, like a user with several tabs).
 */
export interface Spread {
  prefix: string;
  channels: number;
  stride: number;
  every: number;
  /** Distinct users per presence channel; absent for public channels. */
  users?: number;
}

/** The channel client `index` joins and its user number, or undefined when it joins none. */
export function spreadSlot(
  index: number,
  spread: Spread,
): { channel: string; user: number } | undefined {
  const block = Math.floor(index / spread.stride);
  if (block % spread.every !== 0) return undefined;
  const joined = block / spread.every;
  const member = Math.floor(joined / spread.channels) * spread.stride + (index % spread.stride);
  return {
    channel: `${spread.prefix}${joined % spread.channels}`,
    user: member % (spread.users ?? 1),
  };
}

/** Subscribers per channel when clients [0, clients) all joined as `spread` says. */
export function spreadCounts(clients: number, spread: Spread): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < spread.channels; i++) counts.set(`${spread.prefix}${i}`, 0);
  for (let i = 0; i < clients; i++) {
    const slot = spreadSlot(i, spread);
    if (slot) counts.set(slot.channel, counts.get(slot.channel)! + 1);
  }
  return counts;
}
