/**
 * The narrow ports a session works through, instead of the whole node. The node builds them once
 * (src/node.ts) and hands them to every session it accepts; tests hand in fakes.
 */
import type { ReadonlySubscriptions } from "./subscriptions.ts";
import type { Config } from "../config.ts";
import type { AppConfig } from "../config.ts";
import type { Held, LocalChannel } from "../channels/index.ts";
import type { SignedInUser } from "../channels/index.ts";
import type { ChannelKind } from "../channels/index.ts";
import type { Bus, ClusterChange, History, Sessions, State } from "../cluster/types.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { SocketHandle, Subscriber } from "../runtime.ts";
import type { WebhookDispatcher } from "../webhooks/index.ts";

/**
 * A socket's hold on one channel: the local channel itself, or, for a presence channel, a record
 * with the member the socket joined as.
 */
export interface Subscription {
  readonly channel: LocalChannel<LocalSession>;
  readonly kind: ChannelKind | undefined;
  /** Presence user id this socket joined as, with its user_info. */
  readonly userId?: string;
  readonly userInfo?: unknown;
}

/** What the node sees of one of its sessions (fan-out, sweep, drain, snapshot, gauges). */
export interface LocalSession extends Subscriber {
  readonly socket: SocketHandle;
  readonly socketId: string;
  readonly app: AppConfig;
  readonly subscriptions: ReadonlySubscriptions<Subscription>;
  readonly user: SignedInUser | undefined;
  readonly isOpen: boolean;
  /** Resolves when the runtime reports the socket closed (the close handshake is over). */
  socketClosed(): Promise<void>;
  /** Called by the liveness sweep once a second: pings, pong timeouts, slow consumers. */
  checkLiveness(now: number): void;
  terminateSlowConsumer(): void;
  /** Server-side close (terminate, drain): error frame, then close with the same code. */
  /** `confirmFirst` (a drain): a resumable session confirms what it got before it closes. */
  terminate(code: number, message: string, confirmFirst?: boolean): void;
}

/** Presence and counts: the cluster state, whole (every call a session makes is a state rule). */
export type StatePort = State;

/** Cluster fan-out: interest in channels and relaying client / member events. */
export type BusPort = Pick<Bus, "listen" | "unlisten" | "relay">;

/** Local channel membership (src/channels/registry.ts); its fan-out topic follows it. */
export interface MembershipPort {
  /** Adds a subscriber to a local channel. */
  add(
    appId: string,
    name: string,
    session: LocalSession,
    resuming?: boolean,
  ): { channel: LocalChannel<LocalSession> };
  /** A resumed subscriber joins the channel's topic; what was delivered meanwhile. */
  resumed(channel: LocalChannel<LocalSession>, session: LocalSession): Held[];
  /** Stops sending the channel's events to a subscriber about to close (a drain). */
  hold(channel: LocalChannel<LocalSession>, session: LocalSession): void;
  /** The local channel, while it has subscribers. */
  get(appId: string, name: string): LocalChannel<LocalSession> | undefined;
  /** Removes a subscriber; `last` when the channel has no subscriber left on this node. */
  remove(channel: LocalChannel<LocalSession>, session: LocalSession): { last: boolean };
}

/** Changes other sockets and webhooks hear about. */
export interface AnnouncementsPort {
  /** Tells sockets (on every node) and webhooks about a change decided by the cluster state. */
  announce(change: ClusterChange, exceptSocketId?: string): Promise<void>;
  /** Notes a subscription count change; announced by the node's sweep (coalesced). */
  countChanged(app: AppConfig, channel: string): void;
  webhooks: Pick<WebhookDispatcher, "emit" | "wants">;
}

export interface Clock {
  /** Milliseconds, as `Date.now()`. */
  now(): number;
}

/** The counters a session bumps. */
export type SessionMetrics = Pick<
  Metrics,
  | "connectionsOpened"
  | "connectionsClosed"
  | "connectionsRefused"
  | "rateLimited"
  | "messagesIn"
  | "messagesOut"
  | "bytesOut"
>;

/** The node-level bits: socket ids, who is open or opening, and cleanups awaited at stop. */
export interface NodePort {
  /** Socket ids are unique across the cluster. */
  nextSocketId(): string;
  /** Open sessions by socket id. */
  readonly connections: Map<string, LocalSession>;
  /** Sockets whose admission (quota check) is in flight. */
  readonly opening: Set<string>;
  /** Sessions' leave-everything work after close, awaited before the cluster stops. */
  readonly cleanups: Set<Promise<unknown>>;
  readonly config: Pick<Config, "socketBufferLimit">;
}

export interface SessionPorts {
  state: StatePort;
  /** Recovery channels' kept events and resumable sessions (docs/recovery.md). */
  history: History;
  sessions: Sessions;
  bus: BusPort;
  membership: MembershipPort;
  announcements: AnnouncementsPort;
  clock: Clock;
  metrics: SessionMetrics;
  log: Logger;
  node: NodePort;
}
