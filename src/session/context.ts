/** What the session's parts (subscribe, sign-in, client events) see of the session they serve. */
import type { AppConfig } from "../config.ts";
import type { SignedInUser } from "../channels/index.ts";
import { InternalChannels } from "./internal-channels.ts";
import type { LocalSession, SessionPorts, Subscription } from "./ports.ts";

export interface SessionContext {
  readonly socketId: string;
  readonly app: AppConfig;
  readonly ports: SessionPorts;
  /** The session itself, as local channels hold it. */
  readonly self: LocalSession;
  readonly subscriptions: Map<string, Subscription>;
  /** Set once `pusher:signin` succeeded. */
  user: SignedInUser | undefined;
  readonly internal: InternalChannels;
  /** A method rather than a field: the state changes across awaits. */
  isClosed(): boolean;
  send(frame: string): void;
  sendError(code: number, message: string): void;
}

/** The session a context serves. */
export interface ContextOwner extends LocalSession {
  readonly subscriptions: Map<string, Subscription>;
  isClosed(): boolean;
  send(frame: string): void;
  sendError(code: number, message: string): void;
}

/**
 * A session's context as one object with methods on its prototype: a socket holds no closures
 * for it, and the node-internal channels exist only once a socket joins one.
 */
export class OwnedContext implements SessionContext {
  user: SignedInUser | undefined;
  #internal: InternalChannels | undefined;

  constructor(
    readonly self: ContextOwner,
    readonly app: AppConfig,
    readonly ports: SessionPorts,
  ) {}

  get socketId(): string {
    return this.self.socketId;
  }

  get subscriptions(): Map<string, Subscription> {
    return this.self.subscriptions;
  }

  get internal(): InternalChannels {
    return this.#internal ??= new InternalChannels(this.ports, this.app.id, this.self);
  }

  isClosed(): boolean {
    return this.self.isClosed();
  }

  send(frame: string): void {
    this.self.send(frame);
  }

  sendError(code: number, message: string): void {
    this.self.sendError(code, message);
  }
}
