/**
 * What the session's parts (subscribe, sign-in, client events) see of the session they serve;
 * the Connection (src/session/connection.ts) is its own context.
 */
import type { AppConfig } from "../config.ts";
import type { SignedInUser } from "../channels/index.ts";
import type { InternalChannels } from "./internal-channels.ts";
import type { Resume } from "./resume.ts";
import type { LocalSession, SessionPorts, Subscription } from "./ports.ts";
import type { Subscriptions } from "./subscriptions.ts";

export interface SessionContext {
  readonly socketId: string;
  readonly app: AppConfig;
  readonly ports: SessionPorts;
  /** The session itself, as local channels hold it. */
  readonly self: LocalSession;
  readonly subscriptions: Subscriptions<Subscription>;
  /** Set once `pusher:signin` succeeded. */
  user: SignedInUser | undefined;
  readonly internal: InternalChannels;
  /** Set for a socket of a resumable session (src/session/resume.ts). */
  readonly resume: Resume | undefined;
  /** A method rather than a field: the state changes across awaits. */
  isClosed(): boolean;
  send(frame: string): void;
  sendError(code: number, message: string): void;
}
