/**
 * One socket's life: open checks, subscribe / unsubscribe, client events, liveness, close.
 * Frames that arrive while an asynchronous step (quota check, presence join) is in flight are
 * queued so that each connection's frames are handled strictly in order.
 */
import { Buffer } from "node:buffer";
import type { AppConfig } from "./config.ts";
import { verifySocketAuth } from "./auth.ts";
import { type ChannelKind, channelType } from "./channels/kinds.ts";
import type { LocalChannel } from "./channels/registry.ts";
import { CLOSE_MESSAGE_TOO_BIG, ErrorCode } from "./protocol/codes.ts";
import {
  clientEventFrame,
  connectionEstablishedFrame,
  errorFrame,
  memberAddedFrame,
  memberRemovedFrame,
  pingFrame,
  pongFrame,
  subscriptionErrorFrame,
  subscriptionSucceededFrame,
} from "./protocol/encode.ts";
import { type ClientFrame, parseClientFrame, type SubscribeRequest } from "./protocol/frames.ts";
import type { SocketHandle, SocketSession, Subscriber } from "./runtime.ts";
import type { ChorusNode } from "./node.ts";
import { errorMessage } from "./log.ts";

/** Frames a connection may queue behind a slow asynchronous step before it is cut off. */
const MAX_QUEUED_FRAMES = 1_000;

interface Subscription {
  channel: LocalChannel<Connection>;
  kind: ChannelKind;
  /** Presence user id this socket joined as, with its user_info. */
  userId?: string;
  userInfo?: unknown;
}

/** A refusal decided before the socket opened; sent as pusher:error + close with the code. */
export interface Refusal {
  code: number;
  message: string;
}

type Step = Promise<void> | undefined;

export class Connection implements SocketSession, Subscriber {
  socket!: SocketHandle;
  readonly socketId: string;
  readonly subscriptions = new Map<string, Subscription>();
  /** Clock reading (ms) of the last inbound frame. */
  lastSeen: number;
  /** Clock reading (ms) when the server pinged; 0 when no ping is outstanding. */
  pingSentAt = 0;
  #state: "opening" | "open" | "closed" = "opening";
  #counted = false;
  #queue: unknown[] | null = null;
  #tokens: number;
  #tokensAt: number;

  constructor(
    readonly node: ChorusNode,
    readonly app: AppConfig | undefined,
    readonly refusal: Refusal | undefined,
  ) {
    this.socketId = node.nextSocketId();
    this.lastSeen = node.now();
    this.#tokens = app?.client_events.rate_limit ?? 0;
    this.#tokensAt = this.lastSeen;
  }

  get isOpen(): boolean {
    return this.#state === "open";
  }

  open(socket: SocketHandle): void {
    this.socket = socket;
    if (this.refusal || !this.app) {
      const { code, message } = this.refusal ?? { code: ErrorCode.AppNotFound, message: "" };
      this.#state = "closed";
      this.node.log.info("connection refused", { code, reason: message });
      socket.send(errorFrame(code, message));
      socket.close(code, message);
      return;
    }
    this.#run(this.#admit(this.app));
  }

  async #admit(app: AppConfig): Promise<void> {
    const admitted = await this.node.cluster.state.addConnection(
      app.id,
      this.socketId,
      app.max_connections,
    );
    if (this.#state === "closed") {
      if (admitted) await this.node.cluster.state.removeConnection(app.id, this.socketId);
      return;
    }
    if (!admitted) {
      this.node.log.info("connection refused", { app: app.id, code: 4004, reason: "quota" });
      this.#closeWithError(ErrorCode.OverConnectionQuota, "Application is over connection quota");
      return;
    }
    this.#counted = true;
    this.#state = "open";
    this.node.connections.set(this.socketId, this);
    this.socket.send(connectionEstablishedFrame(this.socketId, app.activity_timeout));
  }

  message(data: unknown): void {
    if (this.#state === "closed") return;
    this.lastSeen = this.node.now();
    this.pingSentAt = 0;
    if (this.#queue) {
      if (this.#queue.length >= MAX_QUEUED_FRAMES) {
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
    while (queue && queue.length > 0 && this.#state !== "closed") {
      const step = this.#handle(queue.shift());
      if (step) {
        this.#queue = queue;
        step.catch((error) => this.#fail(error)).finally(() => this.#drain());
        return;
      }
    }
  }

  #fail(error: unknown): void {
    this.node.log.error("connection step failed", {
      socket_id: this.socketId,
      error: errorMessage(error),
    });
  }

  #handle(data: unknown): Step {
    const app = this.app!;
    if (typeof data !== "string") {
      this.#sendError(ErrorCode.GenericReconnect, "Binary frames are not supported");
      return;
    }
    // Cheap upper bound first: a UTF-16 unit is at most 3 UTF-8 bytes.
    if (data.length * 3 > app.max_message_size && Buffer.byteLength(data) > app.max_message_size) {
      this.#close(CLOSE_MESSAGE_TOO_BIG, "Message too big");
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
        this.socket.send(pongFrame());
        return;
      case "pong":
        return;
      case "subscribe":
        return this.#subscribe(app, frame.data);
      case "unsubscribe":
        return this.#unsubscribe(app, frame.channel);
      case "signin":
        this.#sendError(ErrorCode.Unauthorized, "User sign-in is not supported yet");
        return;
      case "client-event":
        this.#clientEvent(app, frame.event, frame.channel, frame.data);
        return;
    }
  }

  async #subscribe(app: AppConfig, request: SubscribeRequest): Promise<void> {
    const name = request.channel;
    const type = channelType(name);
    if (!type) {
      this.socket.send(
        subscriptionErrorFrame(name, "InvalidRequest", `Invalid channel name "${name}"`, 400),
      );
      return;
    }
    const existing = this.subscriptions.get(name);
    if (existing) {
      const members = existing.kind === "presence"
        ? await this.node.cluster.state.presenceMembers(app.id, name)
        : undefined;
      this.socket.send(subscriptionSucceededFrame(name, members));
      return;
    }
    const member = this.#authorize(app, name, type.kind, request);
    if ("error" in member) {
      this.socket.send(member.error);
      return;
    }
    const { state, bus } = this.node.cluster;
    let members: Map<string, unknown> | undefined;
    let first = false;
    if (type.kind === "presence") {
      const joined = await state.joinPresence(
        app.id,
        name,
        this.socketId,
        member.userId!,
        member.userInfo,
        app.max_presence_members,
      );
      if (!joined.ok) {
        this.socket.send(subscriptionErrorFrame(
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
    if (this.#state === "closed") {
      // The socket went away while we waited: undo the join.
      if (members) await state.leavePresence(app.id, name, this.socketId, member.userId!);
      return;
    }
    const added = this.node.registry.add(app.id, name, this);
    if (added.first) bus.listen(app.id, name);
    this.subscriptions.set(name, {
      channel: added.channel,
      kind: type.kind,
      userId: member.userId,
    });
    await state.addSubscription(app.id, name, this.socketId);
    this.socket.send(subscriptionSucceededFrame(name, members));
    if (first) {
      await bus.publish(
        app.id,
        name,
        memberAddedFrame(name, member.userId!, member.userInfo),
        this.socketId,
      );
    }
  }

  /** Checks a subscribe request's auth; answers the presence member it joins as. */
  #authorize(
    app: AppConfig,
    name: string,
    kind: ChannelKind,
    request: SubscribeRequest,
  ): { userId?: string; userInfo?: unknown } | { error: string } {
    const refuse = (
      type: "AuthError" | "InvalidRequest" | "LimitReached",
      why: string,
      status: 400 | 401 | 403,
    ) => ({ error: subscriptionErrorFrame(name, type, why, status) });

    switch (kind) {
      case "public":
        return {};
      case "user":
        return refuse("AuthError", "Connection is not signed in as this user", 403);
      case "private":
      case "encrypted":
        if (!request.auth) return refuse("AuthError", "Missing auth", 401);
        return verifySocketAuth(request.auth, app, `${this.socketId}:${name}`)
          ? {}
          : refuse("AuthError", "Invalid signature", 401);
      case "presence": {
        if (request.channel_data === undefined) {
          return refuse("InvalidRequest", "Presence channels need channel_data", 400);
        }
        if (!request.auth) return refuse("AuthError", "Missing auth", 401);
        const signed = `${this.socketId}:${name}:${request.channel_data}`;
        if (!verifySocketAuth(request.auth, app, signed)) {
          return refuse("AuthError", "Invalid signature", 401);
        }
        const member = parseChannelData(request.channel_data);
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
    await state.removeSubscription(app.id, name, this.socketId);
    if (subscription.userId === undefined) return;
    const { last } = await state.leavePresence(app.id, name, this.socketId, subscription.userId);
    if (last) await bus.relay(app.id, name, memberRemovedFrame(name, subscription.userId));
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
    if (!this.#takeToken(app.client_events.rate_limit)) {
      this.#sendError(ErrorCode.ClientEventRejected, "Client event rate limit exceeded");
      return;
    }
    const frame = clientEventFrame(event, channel, data, subscription.userId);
    this.node.cluster.bus.relay(app.id, channel, frame, this.socketId);
  }

  /** Token bucket: `rate` tokens, refilled continuously at `rate` per second. */
  #takeToken(rate: number): boolean {
    const now = this.node.now();
    this.#tokens = Math.min(rate, this.#tokens + ((now - this.#tokensAt) * rate) / 1000);
    this.#tokensAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Called by the liveness sweep once a second. */
  checkLiveness(now: number): void {
    if (this.#state !== "open") return;
    const app = this.app!;
    if (this.pingSentAt === 0) {
      if (now - this.lastSeen >= app.activity_timeout * 1000) {
        this.pingSentAt = now;
        this.socket.send(pingFrame());
      }
    } else if (now - this.pingSentAt >= app.pong_timeout * 1000) {
      this.#closeWithError(ErrorCode.PongTimeout, "Pong reply not received in time");
    }
  }

  /** Server-side close (terminate, drain): error frame, then close with the same code. */
  terminate(code: number, message: string): void {
    this.#closeWithError(code, message);
  }

  #sendError(code: number, message: string): void {
    this.socket.send(errorFrame(code, message));
  }

  #closeWithError(code: number, message: string): void {
    if (this.#state === "closed") return;
    this.socket.send(errorFrame(code, message));
    this.#close(code, message);
  }

  #close(code: number, reason: string): void {
    if (this.#state === "closed") return;
    this.socket.close(code, reason);
    this.close(code);
  }

  /** The socket closed (either side): leave every channel and free the quota slot. */
  close(_code: number): void {
    if (this.#state === "closed" && !this.#counted) return;
    this.#state = "closed";
    this.node.connections.delete(this.socketId);
    const app = this.app;
    if (!app || !this.#counted) return;
    this.#counted = false;
    const subscriptions = [...this.subscriptions];
    this.subscriptions.clear();
    Promise.all(subscriptions.map(([name, sub]) => this.#leave(app, name, sub)))
      .then(() => this.node.cluster.state.removeConnection(app.id, this.socketId))
      .catch((error) => this.#fail(error));
  }
}

/** Parses presence `channel_data`; a string is the reason it is refused. */
function parseChannelData(raw: string): { userId: string; userInfo: unknown } | string {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return "channel_data is not valid JSON";
  }
  if (value === null || typeof value !== "object") return "channel_data must be a JSON object";
  const { user_id: userId, user_info: userInfo } = value as Record<string, unknown>;
  if (typeof userId === "number" && Number.isFinite(userId)) {
    return { userId: String(userId), userInfo: userInfo ?? null };
  }
  if (typeof userId === "string" && userId !== "") return { userId, userInfo: userInfo ?? null };
  return "channel_data needs a user_id (a non-empty string or a number)";
}
