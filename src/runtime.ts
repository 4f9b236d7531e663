/**
 * The surface a runtime adapter (adapters/bun.ts, adapters/deno.ts) gives the runtime-neutral core.
 */
import type { Context } from "hono";

/** One WebSocket as the core sees it. */
export interface SocketHandle {
  send(frame: string): void;
  /**
   * Starts the close handshake; if the peer has not answered within `CLOSE_DEADLINE_MS`, the
   * adapter tears the connection down, so a silent peer never holds its descriptor and buffers.
   */
  close(code: number, reason: string): void;
  /** Bytes queued for sending (slow-consumer detection). */
  bufferedAmount(): number;
}

/** What the core is told about one upgraded socket. */
export interface SocketSession {
  onOpen(socket: SocketHandle): void;
  /** A text frame arrives as a string; anything else is a binary frame. */
  onMessage(data: unknown): void;
  /** The socket is gone (either side closed it, or it was torn down). */
  onClose(code: number): void;
}

/** Anything fan-out can reach: it owns a socket. */
export interface Subscriber {
  readonly socket: SocketHandle;
}

/** How long a socket Chorus closes may take to answer the close handshake before teardown. */
export const CLOSE_DEADLINE_MS = 3_000;

/**
 * How long an HTTP connection may take to send a request's headers (or sit idle between
 * keep-alive requests) before it is dropped, where the runtime can (README, "Limits and
 * hardening").
 */
export const HEADER_TIMEOUT_MS = 10_000;

/** Why a connection could not be accepted (`chorus_accept_errors_total{reason}`). */
export type AcceptErrorReason = "fd_limit" | "accept";

/** Where a server listens. */
export interface ListenOptions {
  hostname: string;
  port: number;
}

export interface ServeOptions extends ListenOptions {
  /** Largest inbound frame, in bytes: where the runtime can, it closes with 1009 beyond. */
  maxFrameBytes: number;
  /** Send-buffer budget per socket; the core closes sockets over it with 4100. */
  socketBufferLimit: number;
  /** A connection failed to be accepted (the runtime's accept loop); the node logs and counts it. */
  onAcceptError(reason: AcceptErrorReason, error: unknown): void;
}

/** The HTTP app as a runtime serves it (a runtime may hand in its own second argument). */
export interface HttpApp {
  fetch(request: Request, env?: unknown): Response | Promise<Response>;
}

/** A listener that is running. */
export interface RunningServer {
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * The local end of fan-out: topics (one per local channel) the socket server keeps, natively
 * where the runtime has them, so that one publish hands one encoded frame to every member.
 */
export interface FanOut {
  join(topic: string, socket: SocketHandle): void;
  /** Also called for sockets that are already closed. */
  leave(topic: string, socket: SocketHandle): void;
  /**
   * Sends one encoded frame to every socket of the topic but `except`. True when some recipient
   * may now hold more than the send-buffer budget (`ServeOptions.socketBufferLimit`).
   */
  publish(topic: string, frame: string, except?: SocketHandle): boolean;
}

/**
 * The server that holds the sockets, so it is the one fan-out publishes into: publishing is a
 * method of the socket server itself, never of the adapter, so a second listener (metrics)
 * cannot take its place.
 */
export interface SocketServer extends RunningServer, FanOut {}

export interface RuntimeAdapter {
  readonly name: "bun" | "deno";
  /** A Hono handler that upgrades the request and drives the session `accept` returns. */
  websocket(accept: (c: Context) => SocketSession): (c: Context) => Response | Promise<Response>;
  /** Serves the app that upgrades sockets (`websocket`); its sockets are reached by `publish`. */
  serve(app: HttpApp, options: ServeOptions): Promise<SocketServer>;
  /** Serves a plain HTTP app (metrics): no sockets, so nothing to publish into. */
  serveHttp(app: HttpApp, options: ListenOptions): Promise<RunningServer>;
  /** The peer address of the request's connection. */
  clientAddress(c: Context): string;
}
