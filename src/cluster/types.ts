/**
 * What nodes share. `Bus` moves event frames between nodes; `State` holds everything that spans
 * nodes (connection and subscription counts, presence members). The local implementation serves
 * a single process; the redis one a cluster. Both are used through these interfaces only.
 */

/** Delivers a frame to this node's local subscribers of a channel. */
export type LocalDelivery = (
  appId: string,
  channel: string,
  frame: string,
  exceptSocketId: string | undefined,
) => void;

export interface Bus {
  /**
   * Delivers `frame` to every subscriber of the channel on every node, except the socket
   * `exceptSocketId`. Resolves once delivery is guaranteed; rejects when it cannot be.
   */
  publish(appId: string, channel: string, frame: string, exceptSocketId?: string): Promise<void>;
  /** This node has a first local subscriber to the channel: start receiving its events. */
  listen(appId: string, channel: string): void;
  /** This node lost its last local subscriber to the channel. */
  unlisten(appId: string, channel: string): void;
  /** True while events can be guaranteed to reach the cluster. */
  readonly ready: boolean;
}

export interface ChannelCounts {
  /** Sockets subscribed, cluster-wide. */
  subscriptionCount: number;
  /** Distinct presence users, cluster-wide; only for presence channels. */
  userCount?: number;
}

export type JoinResult =
  | { ok: true; first: boolean; members: Map<string, unknown> }
  | { ok: false; reason: "full" };

export interface State {
  /** Counts a new connection; false (and nothing counted) when the app is at `max`. */
  addConnection(appId: string, socketId: string, max: number | null): Promise<boolean>;
  removeConnection(appId: string, socketId: string): Promise<void>;
  connectionCount(appId: string): Promise<number>;

  addSubscription(appId: string, channel: string, socketId: string): Promise<void>;
  removeSubscription(appId: string, channel: string, socketId: string): Promise<void>;

  /**
   * Adds a socket as `userId` to a presence channel. `first` is true when this is the user's
   * first connection in the channel anywhere; refused when the channel already holds
   * `maxMembers` other users. `members` is the channel's member list after the join.
   */
  joinPresence(
    appId: string,
    channel: string,
    socketId: string,
    userId: string,
    userInfo: unknown,
    maxMembers: number,
  ): Promise<JoinResult>;
  /** Removes a socket from a presence channel; `last` when the user has no socket left in it. */
  leavePresence(
    appId: string,
    channel: string,
    socketId: string,
    userId: string,
  ): Promise<{ last: boolean }>;
  presenceMembers(appId: string, channel: string): Promise<Map<string, unknown>>;

  /** Occupied channels (at least one subscriber), optionally filtered by name prefix. */
  channels(appId: string, prefix?: string): Promise<Map<string, ChannelCounts>>;
  channel(appId: string, channel: string): Promise<ChannelCounts>;
}

export interface Cluster {
  readonly nodeId: string;
  readonly bus: Bus;
  readonly state: State;
  /** Hands incoming frames for local subscribers to the node. */
  start(deliver: LocalDelivery): Promise<void>;
  stop(): Promise<void>;
}
