/** The single-process cluster: in-memory state, and a bus that delivers straight to this node. */
import { isPresence } from "../channels/index.ts";
import { Roster } from "../channels/index.ts";
import { MemoryHistory } from "./history.ts";
import { MemorySessions } from "./sessions.ts";
import type {
  Bus,
  CachedEvent,
  ChannelCounts,
  Cluster,
  ClusterHost,
  CountClaim,
  JoinResult,
  KeepPolicy,
  LocalDelivery,
  MemberRef,
  SignInRef,
  SocketRef,
  State,
  SubscriptionRef,
} from "./types.ts";

/** Subscription counts are announced at most this often per channel. */
export const COUNT_ANNOUNCE_INTERVAL_MS = 1_000;

interface PresenceChannel {
  /** user id -> its socket ids */
  sockets: Map<string, Set<string>>;
  roster: Roster;
}

interface AppState {
  connections: Set<string>;
  /** channel -> subscribed socket ids */
  subscriptions: Map<string, Set<string>>;
  presence: Map<string, PresenceChannel>;
  /** signed-in user id -> socket ids */
  users: Map<string, Set<string>>;
  cache: Map<string, CachedEvent & { expiresAt: number }>;
  /**
   * channel -> last announced subscription count (undefined once 0 was announced: nothing to
   * repeat) and when, which holds the next announcement back for a second.
   */
  announced: Map<string, { count: number | undefined; at: number }>;
  claimsSincePrune: number;
}

export class LocalState implements State {
  readonly #apps = new Map<string, AppState>();

  constructor(readonly now: () => number = Date.now) {}

  #app(appId: string): AppState {
    let app = this.#apps.get(appId);
    if (!app) {
      app = {
        connections: new Set(),
        subscriptions: new Map(),
        presence: new Map(),
        users: new Map(),
        cache: new Map(),
        announced: new Map(),
        claimsSincePrune: 0,
      };
      this.#apps.set(appId, app);
    }
    return app;
  }

  signIn({ appId, userId, socketId }: SignInRef): Promise<{ first: boolean }> {
    const { users } = this.#app(appId);
    let sockets = users.get(userId);
    if (!sockets) users.set(userId, sockets = new Set());
    const first = sockets.size === 0;
    sockets.add(socketId);
    return Promise.resolve({ first });
  }

  signOut({ appId, userId, socketId }: SignInRef): Promise<{ last: boolean }> {
    const { users } = this.#app(appId);
    const sockets = users.get(userId);
    if (!sockets?.delete(socketId) || sockets.size > 0) return Promise.resolve({ last: false });
    users.delete(userId);
    return Promise.resolve({ last: true });
  }

  onlineUsers(appId: string, userIds: readonly string[]): Promise<string[]> {
    const { users } = this.#app(appId);
    return Promise.resolve(userIds.filter((id) => users.has(id)));
  }

  setCache({ appId, channel, event, ttlSeconds }: {
    appId: string;
    channel: string;
    event: CachedEvent;
    ttlSeconds: number;
  }): Promise<void> {
    this.#app(appId).cache.set(channel, { ...event, expiresAt: this.now() + ttlSeconds * 1000 });
    return Promise.resolve();
  }

  getCache(appId: string, channel: string): Promise<(CachedEvent & { ttl: number }) | undefined> {
    const { cache } = this.#app(appId);
    const entry = cache.get(channel);
    if (!entry) return Promise.resolve(undefined);
    const left = entry.expiresAt - this.now();
    if (left <= 0) {
      cache.delete(channel);
      return Promise.resolve(undefined);
    }
    return Promise.resolve({ event: entry.event, data: entry.data, ttl: Math.ceil(left / 1000) });
  }

  /** The rule of COUNT_CLAIM in src/cluster/redis-scripts.ts; test/cluster-contract.test.ts. */
  claimCountAnnouncement(appId: string, channel: string): Promise<CountClaim> {
    const app = this.#app(appId);
    const count = app.subscriptions.get(channel)?.size ?? 0;
    const now = this.now();
    this.#forgetOldZeros(app, now);
    const last = app.announced.get(channel);
    if (last?.count === count || (last?.count === undefined && count === 0)) {
      return Promise.resolve({ kind: "unchanged" });
    }
    if (last && now - last.at < COUNT_ANNOUNCE_INTERVAL_MS) {
      return Promise.resolve({ kind: "wait" });
    }
    app.announced.set(channel, { count: count === 0 ? undefined : count, at: now });
    return Promise.resolve({ kind: "announce", count });
  }

  /** Channels announced as empty only hold the next announcement back for a second. */
  #forgetOldZeros(app: AppState, now: number): void {
    // Once per as many claims as there are entries: amortised O(1) per claim.
    if (++app.claimsSincePrune < Math.max(1_000, app.announced.size)) return;
    app.claimsSincePrune = 0;
    for (const [channel, last] of app.announced) {
      if (last.count === undefined && now - last.at >= COUNT_ANNOUNCE_INTERVAL_MS) {
        app.announced.delete(channel);
      }
    }
  }

  addConnection({ appId, socketId, max }: SocketRef & { max: number | null }): boolean {
    const { connections } = this.#app(appId);
    if (max !== null && !connections.has(socketId) && connections.size >= max) return false;
    connections.add(socketId);
    return true;
  }

  removeConnection({ appId, socketId }: SocketRef): Promise<void> {
    this.#app(appId).connections.delete(socketId);
    return Promise.resolve();
  }

  connectionCount(appId: string): Promise<number> {
    return Promise.resolve(this.#app(appId).connections.size);
  }

  addSubscription({ appId, channel, socketId }: SubscriptionRef): { occupied: boolean } {
    const { subscriptions } = this.#app(appId);
    let sockets = subscriptions.get(channel);
    if (!sockets) subscriptions.set(channel, sockets = new Set());
    const before = sockets.size;
    sockets.add(socketId);
    return { occupied: before === 0 && sockets.size === 1 };
  }

  removeSubscription({ appId, channel, socketId }: SubscriptionRef): Promise<{ vacated: boolean }> {
    const { subscriptions } = this.#app(appId);
    const sockets = subscriptions.get(channel);
    if (!sockets?.delete(socketId) || sockets.size > 0) return Promise.resolve({ vacated: false });
    subscriptions.delete(channel);
    return Promise.resolve({ vacated: true });
  }

  joinPresence({ appId, channel, socketId, userId, userInfo, maxMembers }: MemberRef & {
    userInfo: unknown;
    maxMembers: number;
  }): Promise<JoinResult> {
    const { presence } = this.#app(appId);
    let members = presence.get(channel);
    if (!members) {
      presence.set(channel, members = { sockets: new Map(), roster: new Roster(channel) });
    }
    let sockets = members.sockets.get(userId);
    const first = sockets === undefined;
    if (!sockets) {
      if (members.sockets.size >= maxMembers) {
        if (members.sockets.size === 0) presence.delete(channel);
        return Promise.resolve({ ok: false, reason: "full" });
      }
      members.sockets.set(userId, sockets = new Set());
      members.roster.set(userId, JSON.stringify(userInfo));
    }
    sockets.add(socketId);
    return Promise.resolve({ ok: true, first, roster: members.roster });
  }

  leavePresence({ appId, channel, socketId, userId }: MemberRef): Promise<{ last: boolean }> {
    const { presence } = this.#app(appId);
    const members = presence.get(channel);
    const sockets = members?.sockets.get(userId);
    if (!members || !sockets?.delete(socketId)) return Promise.resolve({ last: false });
    if (sockets.size > 0) return Promise.resolve({ last: false });
    members.sockets.delete(userId);
    members.roster.delete(userId);
    if (members.sockets.size === 0) presence.delete(channel);
    return Promise.resolve({ last: true });
  }

  presenceMembers(appId: string, channel: string): Promise<Roster> {
    return Promise.resolve(
      this.#app(appId).presence.get(channel)?.roster ?? new Roster(channel),
    );
  }

  releasePresence(): void {}

  channels(appId: string, prefix = ""): Promise<Map<string, ChannelCounts>> {
    const result = new Map<string, ChannelCounts>();
    for (const name of this.#app(appId).subscriptions.keys()) {
      if (name.startsWith(prefix)) result.set(name, this.#counts(appId, name));
    }
    return Promise.resolve(result);
  }

  channel(appId: string, channel: string): Promise<ChannelCounts> {
    return Promise.resolve(this.#counts(appId, channel));
  }

  #counts(appId: string, channel: string): ChannelCounts {
    const app = this.#app(appId);
    const subscriptionCount = app.subscriptions.get(channel)?.size ?? 0;
    if (!isPresence(channel)) return { subscriptionCount };
    return { subscriptionCount, userCount: app.presence.get(channel)?.sockets.size ?? 0 };
  }
}

class LocalBus implements Bus {
  readonly ready = true;
  deliver: LocalDelivery = () => {};

  constructor(readonly history: MemoryHistory) {}

  publish(
    appId: string,
    channel: string,
    frame: string,
    exceptSocketId?: string,
    keep?: KeepPolicy,
  ): Promise<void> {
    const position = keep && this.history.append(appId, channel, frame, exceptSocketId, keep);
    this.deliver(appId, channel, frame, exceptSocketId, position);
    return Promise.resolve();
  }

  relay(
    appId: string,
    channel: string,
    frame: string,
    exceptSocketId?: string,
    keep?: KeepPolicy,
  ): Promise<void> {
    return this.publish(appId, channel, frame, exceptSocketId, keep);
  }

  listen(): void {}

  unlisten(): void {}

  /** Nothing to reconnect: delivery is a function call. */
  reconnect(): void {}
}

export class LocalCluster implements Cluster {
  readonly history = new MemoryHistory();
  readonly sessions = new MemorySessions();
  readonly bus = new LocalBus(this.history);
  readonly state = new LocalState();

  constructor(readonly nodeId: string, readonly region: string) {}

  start(host: ClusterHost): Promise<void> {
    this.bus.deliver = host.deliver;
    return Promise.resolve();
  }

  /** Nothing to hand over: this process's state ends with it. */
  leave(): Promise<void> {
    return Promise.resolve();
  }

  disconnect(): Promise<void> {
    return Promise.resolve();
  }
}
