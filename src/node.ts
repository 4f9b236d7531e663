/**
 * One Chorus node: its apps, local connections and channels, the cluster it belongs to, and the
 * local end of fan-out.
 */
import { randomInt } from "node:crypto";
import type { Context } from "hono";
import { admit } from "./admission.ts";
import { isUserControlChannel, watchersChannel } from "./channels/index.ts";
import { isPresence } from "./channels/index.ts";
import { ChannelRegistry } from "./channels/index.ts";
import type { AppConfig, Config } from "./config.ts";
import {
  Connection,
  type LocalSession,
  RefusedSession,
  type SessionPorts,
} from "./session/index.ts";
import type {
  Cluster,
  ClusterChange,
  ClusterParts,
  KeptPosition,
  NodeSnapshot,
} from "./cluster/index.ts";
import type { WebhookQueue } from "./webhooks/index.ts";
import { errorMessage, type Logger } from "./log.ts";
import { ErrorCode } from "./protocol/index.ts";
import {
  memberAddedFrame,
  memberRemovedFrame,
  subscriptionCountFrame,
  watchlistEventsFrame,
} from "./protocol/index.ts";
import { WebhookDispatcher } from "./webhooks/index.ts";
import type { DescriptorWatch } from "./fds.ts";
import { KeyedRateLimiter } from "./limits.ts";
import { BusWatch, reconnectSpread } from "./reconnect.ts";
import type { GaugeReadings, Metrics } from "./metrics.ts";
import type { FanOut, RuntimeAdapter, SocketSession } from "./runtime.ts";

const LIVENESS_SWEEP_MS = 1_000;
/** How often the node checks that its cluster bus works (`CHORUS_BUS_GRACE_MS` resolution). */
const BUS_WATCH_MS = 250;
/** How long a drain waits for clients to answer the last close frames. */
const CLOSE_HANDSHAKE_GRACE_MS = 2_000;

export class ChorusNode {
  /** Open connections of this node by socket id. */
  readonly connections = new Map<string, LocalSession>();
  /** Open descriptors near the process's limit: new sockets are refused (src/fds.ts). */
  descriptors: DescriptorWatch | undefined;
  /** Sockets whose admission (quota check) is in flight. */
  readonly opening = new Set<string>();
  readonly registry = new ChannelRegistry<LocalSession>();
  readonly appsByKey: ReadonlyMap<string, AppConfig>;
  readonly appsById: ReadonlyMap<string, AppConfig>;
  readonly metrics: Metrics;
  readonly webhooks: WebhookDispatcher;
  /** Set when the node drains before shutdown: not ready, no new sockets. */
  draining = false;
  /** Connections' leave-everything work after close, awaited before the cluster stops. */
  readonly cleanups = new Set<Promise<unknown>>();
  /** New sockets per client address, when limited. */
  readonly ipConnections: KeyedRateLimiter | undefined;
  /** HTTP API requests per app, for apps with `api_rate_limit`. */
  readonly apiRequests = new Map<string, KeyedRateLimiter>();
  /** Socket ids are `{node number}.{sequence}`: unique across the cluster. */
  readonly #socketPrefix = randomInt(1, 2 ** 31 - 1);
  #socketSequence = 0;
  #sweep: ReturnType<typeof setInterval> | undefined;
  #busWatch: ReturnType<typeof setInterval> | undefined;
  /** Channels whose subscription count changed here and is not announced yet: app id -> names. */
  readonly #countsChanged = new Map<string, Set<string>>();

  readonly cluster: Cluster;
  readonly #webhookQueue: WebhookQueue;
  /** What every session works through, built once (src/session/ports.ts). */
  readonly #sessionPorts: SessionPorts;

  constructor(
    readonly config: Config,
    readonly adapter: RuntimeAdapter,
    parts: ClusterParts & { metrics: Metrics },
    readonly log: Logger,
  ) {
    this.appsByKey = new Map(config.apps.map((app) => [app.key, app]));
    this.appsById = new Map(config.apps.map((app) => [app.id, app]));
    this.cluster = parts.cluster;
    this.metrics = parts.metrics;
    this.#webhookQueue = parts.webhookQueue;
    this.webhooks = new WebhookDispatcher(parts.webhookQueue, config.webhooks, log, this.metrics);
    if (config.ipConnectionRate) this.ipConnections = new KeyedRateLimiter(config.ipConnectionRate);
    for (const app of config.apps) {
      if (app.api_rate_limit) {
        this.apiRequests.set(app.id, new KeyedRateLimiter(app.api_rate_limit));
      }
    }
    this.#sessionPorts = {
      state: this.cluster.state,
      history: this.cluster.history,
      sessions: this.cluster.sessions,
      bus: this.cluster.bus,
      membership: this.registry,
      announcements: {
        announce: (change, except) => this.announce(change, except),
        countChanged: (app, channel) => this.countChanged(app, channel),
        webhooks: this.webhooks,
      },
      clock: { now: () => this.now() },
      metrics: this.metrics,
      log,
      node: this,
    };
  }

  /** Ready to accept: not draining and the cluster bus is connected. */
  get ready(): boolean {
    return !this.draining && this.cluster.bus.ready;
  }

  /**
   * Closes every socket with 4200 (clients reconnect at once, elsewhere), spread evenly over
   * `windowMs` so they do not stampede the other nodes. Resolves when all are closed.
   */
  async drain(windowMs: number): Promise<void> {
    this.draining = true;
    const connections = [...this.connections.values()];
    // Stopping the listener would cut close handshakes still in flight (a runtime may answer
    // them with 1001).
    const handshakes = Promise.all(connections.map((connection) => connection.socketClosed()));
    // Resumable sessions confirm what they got first (src/session/connection.ts `terminate`).
    await reconnectSpread(connections, windowMs, "Server is shutting down; reconnect", true);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const giveUp = new Promise((resolve) => timer = setTimeout(resolve, CLOSE_HANDSHAKE_GRACE_MS));
    await Promise.race([handshakes, giveUp]);
    clearTimeout(timer);
  }

  /** The bus missed events of a channel: its local subscribers must reconnect to catch up. */
  eventsMissed(appId: string, channelName: string): void {
    const channel = this.registry.get(appId, channelName);
    if (!channel) return;
    this.metrics.busLosses++;
    for (const connection of [...channel.subscribers]) {
      connection.terminate(ErrorCode.GenericReconnect, "Missed events on this node; reconnect");
    }
  }

  now(): number {
    return Date.now();
  }

  nextSocketId(): string {
    return `${this.#socketPrefix}.${++this.#socketSequence}`;
  }

  async start(): Promise<void> {
    await this.cluster.start({
      deliver: this.deliverLocal,
      snapshot: () => this.snapshot(),
      announce: (change) => this.announce(change),
      eventsMissed: (appId, channel) => this.eventsMissed(appId, channel),
    });
    const watch = new BusWatch({
      bus: this.cluster.bus,
      graceMs: this.config.cluster.busGraceMs,
      spreadMs: this.config.cluster.busReconnectSpreadMs,
      now: () => this.now(),
      sessions: () => [...this.connections.values()],
      log: this.log,
      metrics: this.metrics,
    });
    this.#busWatch = setInterval(() => watch.check(), BUS_WATCH_MS);
    this.webhooks.start();
    this.#sweep = setInterval(() => {
      const now = this.now();
      for (const connection of this.connections.values()) connection.checkLiveness(now);
      this.#announceCounts();
      this.ipConnections?.prune(now);
      for (const limiter of this.apiRequests.values()) limiter.prune(now);
    }, LIVENESS_SWEEP_MS);
  }

  async stop(): Promise<void> {
    clearInterval(this.#sweep);
    clearInterval(this.#busWatch);
    await Promise.allSettled([...this.cleanups]);
    await this.cluster.leave();
    await this.#announceCounts(); // the last changes, which the stopped sweep would have sent
    await this.webhooks.stop(); // queues what is gathering while the shared queue is reachable
    await this.cluster.disconnect();
  }

  /**
   * Tells sockets (on every node) and the app's webhooks about a change decided by the cluster
   * state: a user's first / last connection, a channel's first / last subscriber.
   */
  async announce(change: ClusterChange, exceptSocketId?: string): Promise<void> {
    const app = this.appsById.get(change.appId);
    if (!app) return;
    const { bus } = this.cluster;
    switch (change.kind) {
      case "member_added":
      case "member_removed": {
        const { channel, userId } = change;
        const frame = change.kind === "member_added"
          ? memberAddedFrame(channel, userId, change.userInfo)
          : memberRemovedFrame(channel, userId);
        this.webhooks.emit(app, { name: change.kind, channel, user_id: userId });
        await bus.relay(app.id, channel, frame, exceptSocketId);
        return;
      }
      case "user_online":
      case "user_offline": {
        const name = change.kind === "user_online" ? "online" : "offline";
        const frame = watchlistEventsFrame([{ name, user_ids: [change.userId] }]);
        await bus.relay(app.id, watchersChannel(change.userId), frame);
        return;
      }
      case "channel_occupied":
      case "channel_vacated":
        this.webhooks.emit(app, { name: change.kind, channel: change.channel });
        return;
      case "subscription_count_changed":
        if (!isPresence(change.channel)) this.countChanged(app, change.channel);
        return;
    }
  }

  /** Notes a subscription count change; announced by the once-a-second sweep (coalesced). */
  countChanged(app: AppConfig, channel: string): void {
    if (!app.subscription_count && !this.webhooks.wants(app, "subscription_count")) return;
    let channels = this.#countsChanged.get(app.id);
    if (!channels) this.#countsChanged.set(app.id, channels = new Set());
    channels.add(channel);
  }

  #announceCounts(): Promise<unknown> {
    const claims: Promise<void>[] = [];
    for (const [appId, channels] of this.#countsChanged) {
      const app = this.appsById.get(appId)!;
      for (const channel of channels) {
        claims.push(
          this.cluster.state.claimCountAnnouncement(appId, channel).then((claim) => {
            if (claim.kind === "wait") return; // another announcement went out: retry next sweep
            channels.delete(channel);
            if (claim.kind !== "announce") return;
            const count = claim.count;
            this.webhooks.emit(app, {
              name: "subscription_count",
              channel,
              subscription_count: count,
            });
            if (app.subscription_count && count > 0) {
              this.cluster.bus.relay(appId, channel, subscriptionCountFrame(channel, count));
            }
          }).catch((error) =>
            this.log.warn("subscription count announcement failed", { error: errorMessage(error) })
          ),
        );
      }
    }
    return Promise.all(claims);
  }

  /**
   * A publish left a socket's send buffer over budget: close such sockets with 4100 now, while
   * the error and close frames still fit behind what is queued (the sweep would be a second late).
   */
  #checkSlowConsumers(subscribers: ReadonlySet<LocalSession>): void {
    const budget = this.config.socketBufferLimit;
    for (const connection of subscribers) {
      if (connection.socket.bufferedAmount() > budget) connection.terminateSlowConsumer();
    }
  }

  /** Gauges for /metrics. */
  async gauges(): Promise<GaugeReadings> {
    const connectionsByApp = new Map<string, number>();
    let subscriptions = 0;
    for (const connection of this.connections.values()) {
      const appId = connection.app.id;
      connectionsByApp.set(appId, (connectionsByApp.get(appId) ?? 0) + 1);
      subscriptions += connection.subscriptions.size;
    }
    let channels = 0;
    for (const app of this.config.apps) {
      for (const channel of this.registry.channels(app.id)) {
        if (!channel.name.startsWith("#") || channel.name.startsWith("#server-to-user-")) {
          channels++;
        }
      }
    }
    return {
      region: this.cluster.region,
      connectionsByApp,
      subscriptions,
      channels,
      busConnected: this.cluster.bus.ready,
      draining: this.draining,
      webhookDeadLetters: await this.#webhookQueue.deadLetterCount().catch(() => -1),
    };
  }

  /** This node's share of the cluster state, from its own connections. */
  snapshot(): NodeSnapshot {
    const snapshot: NodeSnapshot = {
      connections: [],
      subscriptions: [],
      presence: [],
      users: [],
      alive: [...this.connections.keys(), ...this.opening],
    };
    for (const connection of this.connections.values()) {
      const appId = connection.app.id;
      const socketId = connection.socketId;
      snapshot.connections.push({ appId, socketId });
      if (connection.user) snapshot.users.push({ appId, socketId, userId: connection.user.id });
      for (const [channel, subscription] of connection.subscriptions) {
        snapshot.subscriptions.push({ appId, channel, socketId });
        if (subscription.userId !== undefined) {
          snapshot.presence.push({
            appId,
            channel,
            socketId,
            userId: subscription.userId,
            userInfo: subscription.userInfo,
          });
        }
      }
    }
    return snapshot;
  }

  /** Builds the session for a socket that asks to open at `/app/{key}`. */
  accept(c: Context): SocketSession {
    const admitted = admit({
      appKey: c.req.param("key") ?? "",
      protocol: c.req.query("protocol"),
      origin: c.req.header("origin"),
    }, this.appsByKey);
    if ("refusal" in admitted) return new RefusedSession(this.#sessionPorts, admitted.refusal);
    return new Connection(this.#sessionPorts, admitted.app, c.req.param("session"));
  }

  /** Fan-out goes through the server that holds the sockets (never a metrics listener). */
  publishThrough(fanOut: FanOut): void {
    this.registry.fanOut = fanOut;
  }

  /** Hands one encoded frame to every local subscriber of a channel except one socket. */
  readonly deliverLocal = (
    appId: string,
    channelName: string,
    frame: string,
    exceptSocketId: string | undefined,
    position?: KeptPosition,
  ): void => {
    const channel = this.registry.get(appId, channelName);
    if (!channel) return;
    if (position !== undefined) {
      channel.position = position;
      channel.keptDeliveries++;
    }
    if (isUserControlChannel(channelName)) {
      for (const connection of [...channel.subscribers]) {
        connection.terminate(ErrorCode.Unauthorized, "Connection terminated by the server");
      }
      return;
    }
    const except = exceptSocketId === undefined ? undefined : this.connections.get(exceptSocketId);
    if (this.registry.fanOut?.publish(channel.topic, frame, except?.socket)) {
      // Backpressure is common under load, so scan the channel's sockets only once per budget's
      // worth of bytes sent into it: no socket's buffer can have grown by more in between.
      channel.bytesSinceSlowConsumerCheck += frame.length;
      if (channel.bytesSinceSlowConsumerCheck >= this.config.socketBufferLimit) {
        channel.bytesSinceSlowConsumerCheck = 0;
        this.#checkSlowConsumers(channel.subscribers);
      }
    }
    if (channel.replaying) {
      for (const [session, held] of channel.replaying) {
        if (session !== except) held.push({ frame, position });
      }
    }
    const recipients = channel.subscribers.size -
      (except && channel.subscribers.has(except) ? 1 : 0);
    this.metrics.messagesOut += recipients;
    this.metrics.bytesOut += recipients * frame.length;
  };
}
