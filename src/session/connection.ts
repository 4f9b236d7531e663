/**
 * One socket's life as a small state machine (opening -> open -> closed): open checks and
 * admission, frames in order (src/session/frame-queue.ts) to their handlers, and one way to close
 * that releases everything once. The work of each frame lives beside it: subscribe.ts,
 * signin.ts, client-events.ts, liveness.ts.
 */
import type { AppConfig } from "../config.ts";
import type { SignedInUser } from "../channels/index.ts";
import { CLOSE_MESSAGE_TOO_BIG, ErrorCode } from "../protocol/index.ts";
import { connectionEstablishedFrame, errorFrame, pingFrame, pongFrame } from "../protocol/index.ts";
import { type ClientFrame, parseClientFrame } from "../protocol/index.ts";
import type { SocketHandle, SocketSession } from "../runtime.ts";
import { errorMessage } from "../log.ts";
import { ClientEvents } from "./client-events.ts";
import type { SessionContext } from "./context.ts";
import { InternalChannels } from "./internal-channels.ts";
import { FrameQueue, type FrameQueueHooks, OVERSIZED, type Step, tooBig } from "./frame-queue.ts";
import { type LivenessState, livenessVerdict, seen } from "./liveness.ts";
import type { SessionPorts, Subscription } from "./ports.ts";
import { Resume } from "./resume.ts";
import { Subscriptions } from "./subscriptions.ts";
import { signin, signout } from "./signin.ts";
import { leave, subscribe, unsubscribe } from "./subscribe.ts";

/** How long a drain waits for a resumable session to confirm before closing it. */
export const CONFIRM_BEFORE_CLOSE_MS = 1_000;

/**
 * The session is also the context its parts work in (src/session/context.ts) and holds its own
 * liveness readings: one object per socket, not three.
 */
export class Connection implements SocketSession, SessionContext, FrameQueueHooks, LivenessState {
  socket!: SocketHandle;
  readonly socketId: string;
  /** Set once `pusher:signin` succeeded. */
  user: SignedInUser | undefined;
  readonly subscriptions = new Subscriptions<Subscription>();
  #state: "opening" | "open" | "closed" = "opening";
  /** Set when the runtime reports the socket closed (the close handshake is over). */
  #socketGone = false;
  #onSocketGone: (() => void) | undefined;
  #counted = false;
  /** Liveness readings (src/session/liveness.ts): last inbound frame, outstanding ping. */
  lastSeen: number;
  pingSentAt = 0;
  /** Made by the first asynchronous step: a socket whose steps all finish at once needs none. */
  #frames: FrameQueue | undefined;
  #clientEvents: ClientEvents | undefined;
  /** Made once the socket joins a node-internal channel. */
  #internal: InternalChannels | undefined;

  /** Set for a socket of a resumable session on an app with recovery (docs/recovery.md). */
  readonly resume: Resume | undefined;

  /** `sessionId`: the socket opened at `/session/{id}/app/{key}`. */
  constructor(readonly ports: SessionPorts, readonly app: AppConfig, sessionId?: string) {
    this.socketId = ports.node.nextSocketId();
    this.lastSeen = ports.clock.now();
    const ttlS = app.recovery?.ttl_s;
    this.resume = sessionId === undefined || ttlS === undefined
      ? undefined
      : new Resume(ports, app.id, sessionId, this.socketId, ttlS * 1000);
  }

  get self(): this {
    return this;
  }

  get internal(): InternalChannels {
    return this.#internal ??= new InternalChannels(this.ports, this.app.id, this);
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
  isClosed(): boolean {
    return this.#state === "closed";
  }

  onOpen(socket: SocketHandle): void {
    this.socket = socket;
    this.ports.node.opening.add(this.socketId);
    this.#run(this.#admit(this.app));
  }

  /** Counts the socket against the app's quota; synchronous when the state answers at once. */
  #admit(app: AppConfig): Step {
    const admitted = this.ports.state.addConnection({
      appId: app.id,
      socketId: this.socketId,
      max: app.max_connections,
    });
    if (admitted instanceof Promise) return admitted.then((ok) => this.#admitted(app, ok));
    return this.#admitted(app, admitted);
  }

  #admitted(app: AppConfig, admitted: boolean): Step {
    const { state, node, log, metrics } = this.ports;
    node.opening.delete(this.socketId);
    if (this.isClosed()) {
      if (admitted) return state.removeConnection({ appId: app.id, socketId: this.socketId });
      return;
    }
    if (!admitted) {
      log.info("connection refused", { app: app.id, code: 4004, reason: "quota" });
      metrics.connectionsRefused.inc({ code: "4004" });
      this.#closeWithError(ErrorCode.OverConnectionQuota, "Application is over connection quota");
      return;
    }
    this.#counted = true;
    this.#state = "open";
    metrics.connectionsOpened.inc({ app: app.id });
    node.connections.set(this.socketId, this);
    this.send(connectionEstablishedFrame(this.socketId, app.activity_timeout));
    // Before any frame is handled: a subscribe must know where its channel resumes.
    return this.resume?.claim();
  }

  onMessage(data: unknown): void {
    if (this.isClosed()) return;
    this.ports.metrics.messagesIn++;
    seen(this, this.ports.clock.now());
    if (this.#frames) this.#frames.push(data);
    else this.#run(this.onFrame(data));
  }

  #run(step: Step): void {
    if (step) (this.#frames ??= new FrameQueue(this)).run(step);
  }

  /**
   * A step failed, typically because the cluster state did not answer in time: what this socket
   * holds may not be recorded, so it is told to reconnect (and its leave is written later).
   */
  onStepFailed(error: unknown): void {
    this.ports.log.warn("connection step failed: telling the socket to reconnect", {
      socket_id: this.socketId,
      error: errorMessage(error),
    });
    this.#closeWithError(ErrorCode.GenericReconnect, "Cluster state unavailable; reconnect");
  }

  isTooBig(data: unknown): boolean {
    return tooBig(data, this.app.max_message_size);
  }

  onQueueOverflow(): void {
    this.#closeWithError(ErrorCode.OverCapacity, "Too many frames in flight");
  }

  /** The frame queue hands over the next frame. */
  onFrame(data: unknown): Step {
    if (data === OVERSIZED || tooBig(data, this.app.max_message_size)) {
      this.#close(CLOSE_MESSAGE_TOO_BIG, "Message too big");
      return;
    }
    if (typeof data !== "string") {
      this.sendError(ErrorCode.GenericReconnect, "Binary frames are not supported");
      return;
    }
    const parsed = parseClientFrame(data);
    if (!parsed.ok) {
      this.sendError(ErrorCode.GenericReconnect, parsed.error);
      return;
    }
    const { log } = this.ports;
    if (log.enabled("debug")) log.debug("frame in", { socket_id: this.socketId, frame: data });
    return this.#dispatch(parsed.frame);
  }

  #dispatch(frame: ClientFrame): Step {
    switch (frame.kind) {
      case "ping":
        this.send(pongFrame());
        return;
      case "pong":
        this.resume?.ponged();
        return;
      case "subscribe":
        return subscribe(this, frame.data);
      case "unsubscribe":
        return unsubscribe(this, frame.channel);
      case "signin":
        return signin(this, frame.data);
      case "client-event":
        this.#clientEvents ??= new ClientEvents(this);
        this.#clientEvents.handle(frame.event, frame.channel, frame.data);
        return;
    }
  }

  /** Called by the liveness sweep once a second: pings, pong timeouts, slow consumers. */
  checkLiveness(now: number): void {
    if (this.#state !== "open") return;
    const buffered = this.socket.bufferedAmount();
    const limit = this.ports.node.config.socketBufferLimit;
    switch (livenessVerdict(this, now, this.app, buffered, limit)) {
      case "slow_consumer":
        this.terminateSlowConsumer();
        return;
      case "ping":
        this.#ping();
        return;
      case "pong_timeout":
        this.#closeWithError(ErrorCode.PongTimeout, "Pong reply not received in time");
        return;
    }
    // A resumable session confirms what it was sent about once a second while events flow.
    if (this.resume?.unconfirmed && this.pingSentAt === 0) {
      this.pingSentAt = now;
      this.#ping();
    }
  }

  #ping(): void {
    this.resume?.pinged();
    this.send(pingFrame());
  }

  terminateSlowConsumer(): void {
    this.#closeWithError(ErrorCode.OverCapacity, "Client is too slow to receive its messages");
  }

  /**
   * Server-side close (terminate, drain): error frame, then close with the same code.
   * `confirmFirst` (a drain): a resumable session first confirms what it was sent (at most
   * CONFIRM_BEFORE_CLOSE_MS), so that its next socket, on any node, misses nothing and repeats
   * nothing.
   */
  terminate(code: number, message: string, confirmFirst = false): void {
    const resume = this.resume;
    if (!confirmFirst || !resume?.active || this.#state !== "open") {
      return this.#closeWithError(code, message);
    }
    for (const channel of resume.channels()) this.ports.membership.hold(channel, this);
    // Let go of the session before the close: the client reconnects at once, maybe elsewhere.
    const close = () => resume.released().then(() => this.#closeWithError(code, message));
    const ping = resume.unconfirmed;
    if (!ping && !resume.awaitingPongs) {
      close();
      return;
    }
    if (ping) {
      this.pingSentAt = this.ports.clock.now();
      this.#ping();
    }
    resume.confirmAll(CONFIRM_BEFORE_CLOSE_MS, close);
  }

  send(frame: string): void {
    this.socket.send(frame);
    const { metrics } = this.ports;
    metrics.messagesOut++;
    metrics.bytesOut += frame.length;
  }

  sendError(code: number, message: string): void {
    this.send(errorFrame(code, message));
  }

  #closeWithError(code: number, message: string): void {
    if (this.isClosed()) return;
    this.send(errorFrame(code, message));
    this.#close(code, message);
  }

  #close(code: number, reason: string): void {
    if (this.isClosed()) return;
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
    const { node, metrics, state, log } = this.ports;
    node.opening.delete(this.socketId);
    if (this.isClosed() && !this.#counted) return;
    this.#state = "closed";
    node.connections.delete(this.socketId);
    const app = this.app;
    if (!this.#counted) return;
    metrics.connectionsClosed.inc({ app: app.id, code: String(code) });
    this.#counted = false;
    const subscriptions = [...this.subscriptions];
    this.subscriptions.clear();
    const user = this.user;
    const cleanup = Promise.all([
      this.resume?.released(),
      ...subscriptions.map(([name, sub]) => leave(this, name, sub)),
      user ? signout(this, user) : undefined,
    ])
      .then(() => state.removeConnection({ appId: app.id, socketId: this.socketId }))
      .catch((error) =>
        // The cluster writes what failed when Redis answers again (src/cluster/redis.ts).
        log.warn("leave not written yet", {
          socket_id: this.socketId,
          error: errorMessage(error),
        })
      )
      .finally(() => node.cleanups.delete(cleanup));
    node.cleanups.add(cleanup);
  }
}
