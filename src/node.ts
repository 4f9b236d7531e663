/**
 * One Chorus node: its apps, local connections and channels, the cluster it belongs to, and the
 * local end of fan-out.
 */
import { randomInt } from "node:crypto";
import type { Context } from "hono";
import { admit } from "./admission.ts";
import { isUserControlChannel } from "./channels/internal.ts";
import { ChannelRegistry } from "./channels/registry.ts";
import type { AppConfig, Config } from "./config.ts";
import { Connection } from "./connection.ts";
import type { Cluster, NodeSnapshot } from "./cluster/types.ts";
import { errorMessage, type Logger } from "./log.ts";
import { ErrorCode } from "./protocol/codes.ts";
import { subscriptionCountFrame } from "./protocol/encode.ts";
import type { RuntimeAdapter } from "./runtime.ts";

const LIVENESS_SWEEP_MS = 1_000;

export class ChorusNode {
  /** Open connections of this node by socket id. */
  readonly connections = new Map<string, Connection>();
  readonly registry = new ChannelRegistry<Connection>();
  readonly appsByKey: ReadonlyMap<string, AppConfig>;
  readonly appsById: ReadonlyMap<string, AppConfig>;
  /** Socket ids are `{node number}.{sequence}`: unique across the cluster. */
  readonly #socketPrefix = randomInt(1, 2 ** 31 - 1);
  #socketSequence = 0;
  #sweep: ReturnType<typeof setInterval> | undefined;
  /** Channels whose subscription count changed here and is not announced yet: app id -> names. */
  readonly #countsChanged = new Map<string, Set<string>>();

  constructor(
    readonly config: Config,
    readonly adapter: RuntimeAdapter,
    readonly cluster: Cluster,
    readonly log: Logger,
  ) {
    this.appsByKey = new Map(config.apps.map((app) => [app.key, app]));
    this.appsById = new Map(config.apps.map((app) => [app.id, app]));
  }

  now(): number {
    return Date.now();
  }

  nextSocketId(): string {
    return `${this.#socketPrefix}.${++this.#socketSequence}`;
  }

  async start(): Promise<void> {
    await this.cluster.start({ deliver: this.deliverLocal, snapshot: () => this.snapshot() });
    this.#sweep = setInterval(() => {
      const now = this.now();
      for (const connection of this.connections.values()) connection.checkLiveness(now);
      this.#announceCounts();
    }, LIVENESS_SWEEP_MS);
  }

  async stop(): Promise<void> {
    clearInterval(this.#sweep);
    await this.cluster.stop();
  }

  /** Notes a subscription count change; announced by the once-a-second sweep (coalesced). */
  countChanged(app: AppConfig, channel: string): void {
    if (!app.subscription_count) return;
    let channels = this.#countsChanged.get(app.id);
    if (!channels) this.#countsChanged.set(app.id, channels = new Set());
    channels.add(channel);
  }

  #announceCounts(): void {
    for (const [appId, channels] of this.#countsChanged) {
      for (const channel of channels) {
        this.cluster.state.claimCountAnnouncement(appId, channel).then((claim) => {
          if (claim.kind === "wait") return; // another announcement went out: retry next sweep
          channels.delete(channel);
          if (claim.kind === "announce" && claim.count > 0) {
            this.cluster.bus.relay(appId, channel, subscriptionCountFrame(channel, claim.count));
          }
        }).catch((error) =>
          this.log.warn("subscription count announcement failed", { error: errorMessage(error) })
        );
      }
    }
  }

  /** This node's share of the cluster state, from its own connections. */
  snapshot(): NodeSnapshot {
    const snapshot: NodeSnapshot = { connections: [], subscriptions: [], presence: [], users: [] };
    for (const connection of this.connections.values()) {
      const appId = connection.app!.id;
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
  accept(c: Context): Connection {
    const { app, refusal } = admit({
      appKey: c.req.param("key") ?? "",
      protocol: c.req.query("protocol"),
      origin: c.req.header("origin"),
    }, this.appsByKey);
    return new Connection(this, app, refusal);
  }

  /** Hands one encoded frame to every local subscriber of a channel except one socket. */
  readonly deliverLocal = (
    appId: string,
    channelName: string,
    frame: string,
    exceptSocketId: string | undefined,
  ): void => {
    const channel = this.registry.get(appId, channelName);
    if (!channel) return;
    if (isUserControlChannel(channelName)) {
      for (const connection of [...channel.subscribers]) {
        connection.terminate(ErrorCode.Unauthorized, "Connection terminated by the server");
      }
      return;
    }
    const except = exceptSocketId === undefined ? undefined : this.connections.get(exceptSocketId);
    this.adapter.publish(channel.topic, frame, channel.subscribers, except);
  };
}
