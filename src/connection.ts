/**
 * One socket's life: open checks, subscribe / unsubscribe, client events, liveness, close.
 * Frames that arrive while an asynchronous step (quota check, presence join) is in flight are
 * queued so that each connection's frames are handled strictly in order.
 */
import { Buffer } from "node:buffer";
import type { Refusal } from "./admission.ts";
import type { AppConfig } from "./config.ts";
import { verifySocketAuth } from "./auth.ts";
import { userControlChannel, watchersChannel } from "./channels/internal.ts";
import { type ChannelKind, channelType, userOfChannel } from "./channels/kinds.ts";
import {
  type Member,
  parseChannelData,
  parseUserData,
  type SignedInUser,
} from "./channels/members.ts";
import type { LocalChannel } from "./channels/registry.ts";
import { CLOSE_MESSAGE_TOO_BIG, ErrorCode } from "./protocol/codes.ts";
import {
  cacheMissFrame,
  channelEventFrame,
  connectionEstablishedFrame,
  errorFrame,
  pingFrame,
  pongFrame,
  signinSuccessFrame,
  subscriptionErrorFrame,
  subscriptionSucceededFrame,
  watchlistEventsFrame,
} from "./protocol/encode.ts";
import {
  type ClientFrame,
  parseClientFrame,
  type SigninRequest,
  type SubscribeRequest,
} from "./protocol/frames.ts";
import type { SocketHandle, SocketSession, Subscriber } from "./runtime.ts";
import type { ChorusNode } from "./node.ts";
import { errorMessage } from "./log.ts";
import { TokenBucket } from "./limits.ts";

/**
 * Bytes of frames a connection may queue behind a slow asynchronous step before it is cut off.
 * A bound on memory, not on a count: pusher-js resubscribes every channel at once on reconnect.
 */
const MAX_QUEUED_BYTES = 4 * 1024 * 1024;

interface Subscription {
  channel: LocalChannel<Connection>;
  kind: ChannelKind;
  /** Presence user id this socket joined as, with its user_info. */
  userId?: string;
  userInfo?: unknown;
}

type Step = Promise<void> | undefined;

export class Connection implements SocketSession, Subscriber {
  socket!: SocketHandle;
  readonly socketId: string;
  readonly subscriptions = new Map<string, Subscription>();
  /** Set once `pusher:signin` succeeded. */
  user: SignedInUser | undefined;
  /** Node-internal channels this socket is in (watchers, user control), reference-counted. */
  #internal: Map<string, { channel: LocalChannel<Connection>; refs: number }> | undefined;
  /** Clock reading (ms) of the last inbound frame. */
  lastSeen: number;
  /** Clock reading (ms) when the server pinged; 0 when no ping is outstanding. */
  pingSentAt = 0;
  #state: "opening" | "open" | "closed" = "opening";
  /** Set when the runtime reports the socket closed (the close handshake is over). */
  #socketGone = false;
  #onSocketGone: (() => void) | undefined;
  #counted = false;
  /** Frames waiting for the step in flight (null: none in flight), and their size. */
  #queue: unknown[] | null = null;
  #queueHead = 0;
  #queuedBytes = 0;
  /** Created on the first client event: most sockets never send one. */
  #clientEvents: TokenBucket | undefined;

  constructor(
    readonly node: ChorusNode,
    readonly app: AppConfig | undefined,
    readonly refusal: Refusal | undefined,
  ) {
    this.socketId = node.nextSocketId();
    this.lastSeen = node.now();
  }

  /** Resolves when the runtime reports the socket closed (the close handshake is over). */
  socketClosed(): Promise<void> {
    if (this.#socketGone) return Promise.resolve();
    return new Promise((resolve) => this.#onSocketGone = resolve);
  }

  get isOpen(): boolean {
    return this.#state === "open";
  }

  /** A method rather than a comparison: the state changes across awaits. */
  #isClosed(): boolean {
    return this.#state === "closed";
  }

  onOpen(socket: SocketHandle): void {
    this.socket = socket;
    if (this.refusal || !this.app) {
      const { code, message } = this.refusal ?? { code: ErrorCode.AppNotFound, message: "" };
      this.#state = "closed";
      this.node.log.info("connection refused", { code, reason: message });
      this.node.metrics.connectionsRefused.inc({ code: String(code) });
      this.#send(errorFrame(code, message));
      socket.close(code, message);
      return;
    }
    this.node.opening.add(this.socketId);
    this.#run(this.#admit(this.app));
  }

  async #admit(app: AppConfig): Promise<void> {
    const admitted = await this.node.cluster.state.addConnection({
      appId: app.id,
      socketId: this.socketId,
      max: app.max_connections,
    });
    this.node.opening.delete(this.socketId);
    if (this.#isClosed()) {
      if (admitted) {
        await this.node.cluster.state.removeConnection({ appId: app.id, socketId: this.socketId });
      }
      return;
    }
    if (!admitted) {
      this.node.log.info("connection refused", { app: app.id, code: 4004, reason: "quota" });
      this.node.metrics.connectionsRefused.inc({ code: "4004" });
      this.#closeWithError(ErrorCode.OverConnectionQuota, "Application is over connection quota");
      return;
    }
    this.#counted = true;
    this.#state = "open";
    this.node.metrics.connectionsOpened.inc({ app: app.id });
    this.node.connections.set(this.socketId, this);
    this.#send(connectionEstablishedFrame(this.socketId, app.activity_timeout));
  }

  onMessage(data: unknown): void {
    if (this.#isClosed()) return;
    this.node.metrics.messagesIn++;
    this.lastSeen = this.node.now();
    this.pingSentAt = 0;
    if (this.#queue) {
      // An oversized frame is not kept while it waits its turn: a marker closes with 1009 then.
      if (this.#tooBig(data)) data = OVERSIZED;
      this.#queuedBytes += frameSize(data);
      if (this.#queuedBytes > MAX_QUEUED_BYTES) {
        this.#closeWithError(ErrorCode.OverCapacity, "Too many frames in flight");
        return;
      }
      this.#queue.push(data);
      return;
    }
    this.#run(this.#handle(data));
  }

  /** Runs a step; an asynchronous one holds later frames back until it settles. */
  #run(step: Step): void {
    if (!step) return;
    this.#queue ??= [];
    step.catch((error) => this.#fail(error)).finally(() => this.#drain());
  }

  #drain(): void {
    const queue = this.#queue;
    this.#queue = null;
    while (queue && this.#queueHead < queue.length && !this.#isClosed()) {
      const data = queue[this.#queueHead];
      queue[this.#queueHead++] = undefined;
      this.#queuedBytes -= frameSize(data);
      const step = this.#handle(data);
      if (step) {
        this.#queue = queue; // the rest waits for this step
        this.#run(step);
        return;
      }
    }
    this.#queueHead = 0;
    this.#queuedBytes = 0;
  }

  /**
   * A step failed, typically because the cluster state did not answer in time: what this socket
   * holds may not be recorded, so it is told to reconnect (and its leave is written later).
   */
  #fail(error: unknown): void {
    this.node.log.warn("connection step failed: telling the socket to reconnect", {
      socket_id: this.socketId,
      error: errorMessage(error),
    });
    this.#closeWithError(ErrorCode.GenericReconnect, "Cluster state unavailable; reconnect");
  }

  /**
   * Over `max_message_size`, text or binary. A runtime that cannot stop a frame while reading it
   * hands over whole frames of any size, so this is the limit there. A UTF-16 unit is at most 3 bytes:
   * the cheap bound first.
   */
  #tooBig(data: unknown): boolean {
    const max = this.app!.max_message_size;
    if (typeof data === "string") return data.length * 3 > max && Buffer.byteLength(data) > max;
    return frameSize(data) > max;
  }

  #handle(data: unknown): Step {
    const app = this.app!;
    if (data === OVERSIZED || this.#tooBig(data)) {
      this.#close(CLOSE_MESSAGE_TOO_BIG, "Message too big");
      return;
    }
    if (typeof data !== "string") {
      this.#sendError(ErrorCode.GenericReconnect, "Binary frames are not supported");
      return;
    }
    const parsed = parseClientFrame(data);
    if (!parsed.ok) {
      this.#sendError(ErrorCode.GenericReconnect, parsed.error);
      return;
    }
    if (this.node.log.enabled("debug")) {
      this.node.log.debug("frame in", { socket_id: this.socketId, frame: data });
    }
    return this.#dispatch(app, parsed.frame);
  }

  #dispatch(app: AppConfig, frame: ClientFrame): Step {
    switch (frame.kind) {
      case "ping":
        this.#send(pongFrame());
        return;
      case "pong":
        return;
      case "subscribe":
        return this.#subscribe(app, frame.data);
      case "unsubscribe":
        return this.#unsubscribe(app, frame.channel);
      case "signin":
        return this.#signin(app, frame.data);
      case "client-event":
        this.#clientEvent(app, frame.event, frame.channel, frame.data);
        return;
    }
  }

  async #subscribe(app: AppConfig, request: SubscribeRequest): Promise<void> {
    const name = request.channel;
    const type = channelType(name);
    if (!type) {
      this.#send(
        subscriptionErrorFrame(name, "InvalidRequest", `Invalid channel name "${name}"`, 400),
      );
      return;
    }
    const existing = this.subscriptions.get(name);
    if (existing) {
      const members = existing.kind === "presence"
        ? await this.node.cluster.state.presenceMembers(app.id, name)
        : undefined;
      this.#send(subscriptionSucceededFrame(name, members));
      return;
    }
    const member = this.#authorize(app, name, type.kind, request);
    if ("error" in member) {
      this.#send(member.error);
      return;
    }
    const { state, bus } = this.node.cluster;
    let members: Map<string, unknown> | undefined;
    let first = false;
    if (type.kind === "presence") {
      const joined = await state.joinPresence({
        appId: app.id,
        channel: name,
        socketId: this.socketId,
        userId: member.userId!,
        userInfo: member.userInfo,
        maxMembers: app.max_presence_members,
      });
      if (!joined.ok) {
        this.#send(subscriptionErrorFrame(
          name,
          "LimitReached",
          `Presence channel is full (${app.max_presence_members} members)`,
          403,
        ));
        return;
      }
      members = joined.members;
      first = joined.first;
    }
    if (this.#isClosed()) {
      // The socket went away while we waited: undo the join.
      if (members) {
        await state.leavePresence({
          appId: app.id,
          channel: name,
          socketId: this.socketId,
          userId: member.userId!,
        });
      }
      return;
    }
    const joins: Promise<void>[] = [];
    if (member.userId !== undefined) {
      joins.push(this.#joinInternal(app, userControlChannel(member.userId)));
    }
    const added = this.node.registry.add(app.id, name, this);
    this.subscriptions.set(name, {
      channel: added.channel,
      kind: type.kind,
      userId: member.userId,
      userInfo: member.userInfo,
    });
    // Events published once the client holds subscription_succeeded must reach it.
    const [{ occupied }] = await Promise.all([
      state.addSubscription({ appId: app.id, channel: name, socketId: this.socketId }),
      bus.listen(app.id, name),
      ...joins,
    ]);
    if (occupied) this.node.announce({ kind: "channel_occupied", appId: app.id, channel: name });
    if (type.kind !== "presence") this.node.countChanged(app, name);
    if (this.#isClosed()) return;
    this.#send(subscriptionSucceededFrame(name, members));
    if (type.cache) await this.#sendCached(app, name);
    if (first) {
      await this.node.announce({
        kind: "member_added",
        appId: app.id,
        channel: name,
        userId: member.userId!,
        userInfo: member.userInfo,
      }, this.socketId);
    }
  }

  async #sendCached(app: AppConfig, name: string): Promise<void> {
    const cached = await this.node.cluster.state.getCache(app.id, name);
    if (cached) {
      this.#send(channelEventFrame(cached.event, name, cached.data));
      return;
    }
    this.#send(cacheMissFrame(name));
    this.node.webhooks.emit(app, { name: "cache_miss", channel: name });
  }

  /** Checks a subscribe request's auth; answers the presence member it joins as. */
  #authorize(
    app: AppConfig,
    name: string,
    kind: ChannelKind,
    request: SubscribeRequest,
  ): Partial<Member> | { error: string } {
    const refuse = (
      type: "AuthError" | "InvalidRequest" | "LimitReached",
      why: string,
      status: 400 | 401 | 403,
    ) => ({ error: subscriptionErrorFrame(name, type, why, status) });

    switch (kind) {
      case "public":
        return {};
      case "user":
        return this.user !== undefined && this.user.id === userOfChannel(name)
          ? {}
          : refuse("AuthError", "Connection is not signed in as this user", 403);
      case "private":
      case "encrypted":
        if (!request.auth) return refuse("AuthError", "Missing auth", 401);
        return verifySocketAuth(request.auth, app, `${this.socketId}:${name}`)
          ? {}
          : refuse("AuthError", "Invalid signature", 401);
      case "presence": {
        const channelData = request.channel_data;
        if (channelData === undefined && !this.user) {
          return refuse("InvalidRequest", "Presence channels need channel_data", 400);
        }
        if (!request.auth) return refuse("AuthError", "Missing auth", 401);
        // A signed-in socket may omit channel_data: its user_data says who it is.
        const signed = channelData === undefined
          ? `${this.socketId}:${name}`
          : `${this.socketId}:${name}:${channelData}`;
        if (!verifySocketAuth(request.auth, app, signed)) {
          return refuse("AuthError", "Invalid signature", 401);
        }
        const member = channelData === undefined
          ? { userId: this.user!.id, userInfo: this.user!.userInfo }
          : parseChannelData(channelData);
        if (typeof member === "string") return refuse("InvalidRequest", member, 400);
        const size = Buffer.byteLength(JSON.stringify(member.userInfo) ?? "");
        if (size > app.max_presence_member_size) {
          return refuse(
            "LimitReached",
            `user_info is ${size} bytes, over the limit of ${app.max_presence_member_size}`,
            403,
          );
        }
        return member;
      }
    }
  }

  async #unsubscribe(app: AppConfig, name: string): Promise<void> {
    const subscription = this.subscriptions.get(name);
    if (!subscription) return;
    this.subscriptions.delete(name);
    await this.#leave(app, name, subscription);
  }

  async #leave(app: AppConfig, name: string, subscription: Subscription): Promise<void> {
    const { state, bus } = this.node.cluster;
    if (this.node.registry.remove(subscription.channel, this).last) bus.unlisten(app.id, name);
    const { userId } = subscription;
    if (userId !== undefined) {
      this.#leaveInternal(app, userControlChannel(userId));
      const { last } = await state.leavePresence({
        appId: app.id,
        channel: name,
        socketId: this.socketId,
        userId,
      });
      if (last) {
        await this.node.announce({ kind: "member_removed", appId: app.id, channel: name, userId });
      }
    }
    const { vacated } = await state.removeSubscription({
      appId: app.id,
      channel: name,
      socketId: this.socketId,
    });
    // Only now: a count announcement reading the state before the removal would miss it.
    if (userId === undefined) this.node.countChanged(app, name);
    if (vacated) {
      await this.node.announce({ kind: "channel_vacated", appId: app.id, channel: name });
    }
  }

  async #signin(app: AppConfig, request: SigninRequest): Promise<void> {
    if (this.user) {
      this.#sendError(ErrorCode.Unauthorized, "Connection is already signed in");
      return;
    }
    const signed = `${this.socketId}::user::${request.user_data}`;
    if (!verifySocketAuth(request.auth, app, signed)) {
      this.#sendError(ErrorCode.Unauthorized, "Invalid signature for user_data");
      return;
    }
    const user = parseUserData(request.user_data);
    if (typeof user === "string") {
      this.#sendError(ErrorCode.Unauthorized, user);
      return;
    }
    this.user = user;
    const { state } = this.node.cluster;
    const [{ first }] = await Promise.all([
      state.signIn({ appId: app.id, userId: user.id, socketId: this.socketId }),
      this.#joinInternal(app, userControlChannel(user.id)),
      ...user.watchlist.map((id) => this.#joinInternal(app, watchersChannel(id))),
    ]);
    if (this.#isClosed()) return;
    this.#send(signinSuccessFrame(user.userData));
    if (user.watchlist.length > 0) {
      const online = await state.onlineUsers(app.id, user.watchlist);
      if (online.length > 0) {
        this.#send(watchlistEventsFrame([{ name: "online", user_ids: online }]));
      }
    }
    if (first) await this.node.announce({ kind: "user_online", appId: app.id, userId: user.id });
  }

  async #signout(app: AppConfig, user: SignedInUser): Promise<void> {
    this.#leaveInternal(app, userControlChannel(user.id));
    for (const id of user.watchlist) this.#leaveInternal(app, watchersChannel(id));
    const { last } = await this.node.cluster.state.signOut({
      appId: app.id,
      userId: user.id,
      socketId: this.socketId,
    });
    if (last) await this.node.announce({ kind: "user_offline", appId: app.id, userId: user.id });
  }

  /** Joins a node-internal channel; resolves once its events will arrive. */
  #joinInternal(app: AppConfig, name: string): Promise<void> {
    this.#internal ??= new Map();
    const joined = this.#internal.get(name);
    if (joined) {
      joined.refs++;
      return Promise.resolve();
    }
    const { channel } = this.node.registry.add(app.id, name, this);
    this.#internal.set(name, { channel, refs: 1 });
    return this.node.cluster.bus.listen(app.id, name);
  }

  #leaveInternal(app: AppConfig, name: string): void {
    const joined = this.#internal?.get(name);
    if (!joined || --joined.refs > 0) return;
    this.#internal!.delete(name);
    if (this.node.registry.remove(joined.channel, this).last) {
      this.node.cluster.bus.unlisten(app.id, name);
    }
  }

  #clientEvent(app: AppConfig, event: string, channel: string | undefined, data: unknown): void {
    if (!app.client_events.enabled) {
      this.#sendError(ErrorCode.ClientEventRejected, "Client events are disabled for this app");
      return;
    }
    if (channel === undefined) {
      this.#sendError(ErrorCode.GenericReconnect, "Client event without a `channel`");
      return;
    }
    const subscription = this.subscriptions.get(channel);
    if (!subscription) {
      this.#sendError(ErrorCode.Unauthorized, `Not subscribed to channel ${channel}`);
      return;
    }
    if (subscription.kind !== "private" && subscription.kind !== "presence") {
      this.#sendError(
        ErrorCode.Unauthorized,
        "Client events are only allowed on private and presence channels",
      );
      return;
    }
    const rate = app.client_events.rate_limit;
    this.#clientEvents ??= new TokenBucket(rate, rate, this.node.now());
    if (!this.#clientEvents.take(this.node.now())) {
      this.node.metrics.rateLimited.inc({ kind: "client_event" });
      this.#sendError(ErrorCode.ClientEventRejected, "Client event rate limit exceeded");
      return;
    }
    const frame = channelEventFrame(event, channel, data, subscription.userId);
    this.node.cluster.bus.relay(app.id, channel, frame, this.socketId);
    if (this.node.webhooks.wants(app, "client_event")) {
      this.node.webhooks.emit(app, {
        name: "client_event",
        channel,
        event,
        data: typeof data === "string" ? data : JSON.stringify(data),
        socket_id: this.socketId,
        ...(subscription.userId === undefined ? {} : { user_id: subscription.userId }),
      });
    }
  }

  /** Called by the liveness sweep once a second: pings, pong timeouts, slow consumers. */
  checkLiveness(now: number): void {
    if (this.#state !== "open") return;
    const app = this.app!;
    if (this.socket.bufferedAmount() > this.node.config.socketBufferLimit) {
      this.terminateSlowConsumer();
      return;
    }
    if (this.pingSentAt === 0) {
      if (now - this.lastSeen >= app.activity_timeout * 1000) {
        this.pingSentAt = now;
        this.#send(pingFrame());
      }
    } else if (now - this.pingSentAt >= app.pong_timeout * 1000) {
      this.#closeWithError(ErrorCode.PongTimeout, "Pong reply not received in time");
    }
  }

  terminateSlowConsumer(): void {
    this.#closeWithError(ErrorCode.OverCapacity, "Client is too slow to receive its messages");
  }

  /** Server-side close (terminate, drain): error frame, then close with the same code. */
  terminate(code: number, message: string): void {
    this.#closeWithError(code, message);
  }

  #send(frame: string): void {
    this.socket.send(frame);
    const { metrics } = this.node;
    metrics.messagesOut++;
    metrics.bytesOut += frame.length;
  }

  #sendError(code: number, message: string): void {
    this.#send(errorFrame(code, message));
  }

  #closeWithError(code: number, message: string): void {
    if (this.#isClosed()) return;
    this.#send(errorFrame(code, message));
    this.#close(code, message);
  }

  #close(code: number, reason: string): void {
    if (this.#isClosed()) return;
    this.socket.close(code, reason);
    this.#release(code);
  }

  /** The runtime reports the socket closed (either side started it). */
  onClose(code: number): void {
    this.#release(code);
    this.#socketGone = true;
    this.#onSocketGone?.();
  }

  /** Leaves every channel and frees the quota slot, once. */
  #release(code: number): void {
    this.node.opening.delete(this.socketId);
    if (this.#isClosed() && !this.#counted) return;
    this.#state = "closed";
    this.node.connections.delete(this.socketId);
    const app = this.app;
    if (!app || !this.#counted) return;
    this.node.metrics.connectionsClosed.inc({ app: app.id, code: String(code) });
    this.#counted = false;
    const subscriptions = [...this.subscriptions];
    this.subscriptions.clear();
    const user = this.user;
    const cleanup = Promise.all([
      ...subscriptions.map(([name, sub]) => this.#leave(app, name, sub)),
      user ? this.#signout(app, user) : undefined,
    ])
      .then(() =>
        this.node.cluster.state.removeConnection({ appId: app.id, socketId: this.socketId })
      )
      .catch((error) =>
        // The cluster writes what failed when Redis answers again (src/cluster/redis.ts).
        this.node.log.warn("leave not written yet", {
          socket_id: this.socketId,
          error: errorMessage(error),
        })
      )
      .finally(() => this.node.cleanups.delete(cleanup));
    this.node.cleanups.add(cleanup);
  }
}

/** Stands in the frame queue for a frame over max_message_size, which is not kept. */
const OVERSIZED = Symbol("oversized frame");

/** What a queued frame holds in memory, about: UTF-16 units of text, bytes of binary. */
function frameSize(data: unknown): number {
  if (data === OVERSIZED) return 0;
  if (typeof data === "string") return data.length;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength;
  return 1_024;
}
