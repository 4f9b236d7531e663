import type { KeepPolicy, KeptPosition, Roster } from "../channels/index.ts";

/**
 * A result now (the local driver) or later (Redis). The hot paths (connect, subscribe) finish
 * synchronously when they get one now; everything else simply awaits it.
 */
export type Maybe<T> = T | Promise<T>;

/** The shared state or bus cannot answer now (Redis down or hung): the HTTP API answers 503. */
export class ClusterUnavailable extends Error {
  override name = "ClusterUnavailable";
}

/**
 * What nodes share. `Bus` moves event frames between nodes; `State` holds everything that spans
 * nodes (connection and subscription counts, presence members). The local implementation serves
 * a single process; the redis one a cluster. Both are used through these interfaces only.
 */

// Defined beside the channels that use them (channels sit below the cluster layer).
export type { KeepPolicy, KeptPosition };

/**
 * Delivers a frame to this node's local subscribers of a channel; a kept event comes with its
 * position, and every node gets a channel's kept events in serial order.
 */
export type LocalDelivery = (
  appId: string,
  channel: string,
  frame: string,
  exceptSocketId: string | undefined,
  position?: KeptPosition,
) => void;

/** One event kept in a channel's history, as its subscribers got it. */
export interface KeptEvent {
  /** Its place in the channel's history: 1, 2, 3... within one epoch, in delivery order. */
  serial: number;
  frame: string;
  /** The socket it was not sent to (socket_id on trigger, the sender of a client event). */
  exceptSocketId?: string;
}

/** What a channel's history holds after a serial (`History.read`). */
export interface HistoryPage {
  /**
   * Names one unbroken history of the channel; a new one starts when the history was lost
   * (Redis restarted empty, or nothing was published for the ttl). "" when there is none.
   */
  epoch: string;
  /** The last serial given in this epoch (0: none). */
  serial: number;
  /** The kept events after the serial asked for, in order. */
  events: KeptEvent[];
  /** Every event of this epoch after the serial asked for is in `events`: none was dropped. */
  complete: boolean;
}

/**
 * Recovery channels' histories (written by `Bus.publish` and `Bus.relay` given a `KeepPolicy`,
 * atomically with the publish). The same rules for both drivers: test/history-contract.test.ts.
 */
export interface History {
  read(appId: string, channel: string, since: number, keep: KeepPolicy): Promise<HistoryPage>;
}

/**
 * What a resumable session (a socket at `/session/{id}/app/{key}`, docs/recovery.md) was
 * subscribed to, and up to where each of its recovery channels was delivered and confirmed.
 */
export interface SessionRecord {
  /** Recovery channel -> the position its client confirmed. */
  channels: Record<string, KeptPosition>;
  /** The session's latest socket ids, newest last: events that excluded them are not replayed. */
  sockets: string[];
}

/**
 * Resumable sessions, cluster-wide, kept `ttlMs` after their last save. One open socket holds a
 * session at a time; the same rules for both drivers: test/session-contract.test.ts.
 */
export interface Sessions {
  /**
   * The socket takes the session and gets its record (undefined: a new session), or "held" when
   * another open socket holds it: that one keeps it, and this socket is not resumed.
   */
  claim(
    appId: string,
    sessionId: string,
    socketId: string,
    ttlMs: number,
  ): Promise<SessionRecord | undefined | "held">;
  /** Saves the record if the socket holds the session; `release`: and lets go of it. */
  save(
    appId: string,
    sessionId: string,
    socketId: string,
    record: SessionRecord,
    ttlMs: number,
    release: boolean,
  ): Promise<void>;
}

export interface Bus {
  /**
   * Delivers `frame` to every subscriber of the channel on every node, except the socket
   * `exceptSocketId`. Resolves once delivery is guaranteed; rejects when it cannot be (the HTTP
   * API then answers 503), in which case nothing was delivered. With `keep`, the event is also
   * kept in the channel's history.
   */
  publish(
    appId: string,
    channel: string,
    frame: string,
    exceptSocketId?: string,
    keep?: KeepPolicy,
  ): Promise<void>;
  /**
   * Delivers to local subscribers now and to other nodes as soon as it can (client events,
   * member events). Never rejects (a failure is logged); resolves once other nodes were tried.
   */
  relay(
    appId: string,
    channel: string,
    frame: string,
    exceptSocketId?: string,
    keep?: KeepPolicy,
  ): Promise<void>;
  /**
   * This node has a first local subscriber to the channel: start receiving its events.
   * Resolves once events published from now on will arrive.
   */
  listen(appId: string, channel: string): Maybe<void>;
  /** This node lost its last local subscriber to the channel. */
  unlisten(appId: string, channel: string): void;
  /** True while events can be guaranteed to reach the cluster. */
  readonly ready: boolean;
  /** Drops and re-opens the receiving connection: a silent one may be dead without knowing. */
  reconnect(): void;
}

export interface ChannelCounts {
  /** Sockets subscribed, cluster-wide. */
  subscriptionCount: number;
  /** Distinct presence users, cluster-wide; only for presence channels. */
  userCount?: number;
}

export type JoinResult =
  | { ok: true; first: boolean; roster: Roster }
  | { ok: false; reason: "full" };

/** The last HTTP-triggered event of a cache channel. */
export interface CachedEvent {
  event: string;
  data: string;
}

/** Whether a node may announce a channel's subscription count now (cluster-wide coalescing). */
export type CountClaim =
  | { kind: "announce"; count: number }
  /** Someone announced within the last second: try again later. */
  | { kind: "wait" }
  /** The count is what was last announced. */
  | { kind: "unchanged" };

/** One socket of an app (socket ids are unique cluster-wide). */
export interface SocketRef {
  appId: string;
  socketId: string;
}

/** One socket in one channel. */
export interface SubscriptionRef extends SocketRef {
  channel: string;
}

/** One socket present in a presence channel as a user. */
export interface MemberRef extends SubscriptionRef {
  userId: string;
}

/** One socket signed in as a user. */
export interface SignInRef extends SocketRef {
  userId: string;
}

export interface State {
  /** Counts a new connection; false (and nothing counted) when the app is at `max`. */
  addConnection(socket: SocketRef & { max: number | null }): Maybe<boolean>;
  removeConnection(socket: SocketRef): Promise<void>;
  connectionCount(appId: string): Promise<number>;

  /** `occupied` when this is the channel's first subscriber anywhere. */
  addSubscription(subscription: SubscriptionRef): Maybe<{ occupied: boolean }>;
  /** `vacated` when this was the channel's last subscriber anywhere. */
  removeSubscription(subscription: SubscriptionRef): Promise<{ vacated: boolean }>;

  /**
   * Adds a socket as `userId` to a presence channel. `first` is true when this is the user's
   * first connection in the channel anywhere; refused when the channel already holds
   * `maxMembers` other users. `roster` is the channel's member list after the join; the
   * driver keeps updating it in place, so take what is needed from it before the next await.
   */
  joinPresence(
    member: MemberRef & { userInfo: unknown; maxMembers: number },
  ): Promise<JoinResult>;
  /** Removes a socket from a presence channel; `last` when the user has no socket left in it. */
  leavePresence(member: MemberRef): Promise<{ last: boolean }>;
  presenceMembers(appId: string, channel: string): Promise<Roster>;
  /** This node holds no member of the channel any more: drop what it keeps of its member list. */
  releasePresence(appId: string, channel: string): void;

  /** Records a signed-in socket; `first` when it is the user's first anywhere (goes online). */
  signIn(user: SignInRef): Promise<{ first: boolean }>;
  /** `last` when the user has no signed-in socket left anywhere (goes offline). */
  signOut(user: SignInRef): Promise<{ last: boolean }>;
  /** Which of these users have a signed-in socket somewhere. */
  onlineUsers(appId: string, userIds: readonly string[]): Promise<string[]>;

  setCache(
    entry: { appId: string; channel: string; event: CachedEvent; ttlSeconds: number },
  ): Promise<void>;
  /** The cached event with its remaining TTL in seconds, if any. */
  getCache(appId: string, channel: string): Promise<(CachedEvent & { ttl: number }) | undefined>;

  /** Claims the right to announce a channel's subscription count (at most once a second). */
  claimCountAnnouncement(appId: string, channel: string): Promise<CountClaim>;

  /** Occupied channels (at least one subscriber), optionally filtered by name prefix. */
  channels(appId: string, prefix?: string): Promise<Map<string, ChannelCounts>>;
  channel(appId: string, channel: string): Promise<ChannelCounts>;
}

/** This node's own share of the cluster state, re-registered after Redis comes back. */
export interface NodeSnapshot {
  connections: { appId: string; socketId: string }[];
  subscriptions: { appId: string; channel: string; socketId: string }[];
  presence: {
    appId: string;
    channel: string;
    socketId: string;
    userId: string;
    userInfo: unknown;
  }[];
  /** Signed-in sockets. */
  users: { appId: string; socketId: string; userId: string }[];
  /**
   * Every socket this node still has, also those whose open or subscribe is in flight: state
   * entries of other sockets of this node are stale and removed when the share is written again.
   */
  alive: string[];
}

/** Something other nodes' sockets and the app's webhooks must hear about. */
export type ClusterChange =
  | { kind: "member_added"; appId: string; channel: string; userId: string; userInfo: unknown }
  | { kind: "member_removed"; appId: string; channel: string; userId: string }
  | { kind: "user_online" | "user_offline"; appId: string; userId: string }
  | { kind: "channel_occupied" | "channel_vacated"; appId: string; channel: string }
  /** Sockets left the channel without a socket of this node noticing (a dead node swept). */
  | { kind: "subscription_count_changed"; appId: string; channel: string };

/** What the cluster layer needs from the node it serves. */
export interface ClusterHost {
  deliver: LocalDelivery;
  snapshot(): NodeSnapshot;
  /** Changes the cluster found by itself (a dead node swept, a stalled node back). */
  announce(change: ClusterChange): Promise<void>;
  /**
   * Events of this channel were published while this node could not receive them (its
   * subscription dropped): its local subscribers must be told to reconnect.
   */
  eventsMissed(appId: string, channel: string): void;
}

export interface Cluster {
  readonly nodeId: string;
  readonly region: string;
  readonly bus: Bus;
  readonly state: State;
  readonly history: History;
  readonly sessions: Sessions;
  start(host: ClusterHost): Promise<void>;
  /** Removes this node's share of the state and announces what that changes. */
  leave(): Promise<void>;
  /** Closes the connections to the shared state (after `leave` and the last webhooks). */
  disconnect(): Promise<void>;
}
