/**
 * The session of one socket (the `SocketSession` of src/runtime.ts): a state machine over narrow
 * ports (src/session/ports.ts) that the node builds once.
 */
export { Connection } from "./connection.ts";
export { RefusedSession } from "./refused.ts";
export { type Authorization, authorize, type AuthorizeRequest } from "./authorize.ts";
export { MAX_QUEUED_BYTES } from "./frame-queue.ts";
export type {
  AnnouncementsPort,
  BusPort,
  Clock,
  LocalSession,
  MembershipPort,
  NodePort,
  SessionMetrics,
  SessionPorts,
  StatePort,
  Subscription,
} from "./ports.ts";
