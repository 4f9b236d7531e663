/**
 * Telling sockets to reconnect elsewhere (4200): spread over a window so other nodes are not
 * stampeded (drain, src/node.ts), and the bus watchdog that does it when this node can no longer
 * receive the cluster's events (README, "When Redis fails").
 */
import type { Bus } from "./cluster/index.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { ErrorCode } from "./protocol/index.ts";
import type { LocalSession } from "./session/index.ts";

/** Sends 4200 to `sessions` in up to 100 slices spread over `windowMs`. */
export async function reconnectSpread(
  sessions: LocalSession[],
  windowMs: number,
  reason: string,
  confirmFirst = false,
): Promise<void> {
  const slices = Math.max(1, Math.min(sessions.length, 100));
  const perSlice = Math.ceil(sessions.length / slices);
  for (let slice = 0; slice < slices; slice++) {
    const batch = sessions.slice(slice * perSlice, (slice + 1) * perSlice);
    for (const session of batch) {
      session.terminate(ErrorCode.GenericReconnect, reason, confirmFirst);
    }
    if (slice < slices - 1) {
      await new Promise((resolve) => setTimeout(resolve, windowMs / slices));
    }
  }
}

export interface BusWatchOptions {
  bus: Bus;
  /** How long the bus may be lost before the sockets are told to leave. */
  graceMs: number;
  spreadMs: number;
  now(): number;
  sessions(): LocalSession[];
  log: Logger;
  metrics: Metrics;
}

/**
 * No deaf nodes: once the bus has been lost for longer than the grace, a socket here would miss
 * events, so every socket is told to reconnect (to a node that can receive), and the receiving
 * connection is rebuilt in case it is silently dead. New sockets are refused meanwhile (the
 * node is not ready while the bus is not).
 */
export class BusWatch {
  /** When the bus was lost (0: it is fine), and whether the sockets were told to leave. */
  #lostAt = 0;
  #deaf = false;

  constructor(readonly options: BusWatchOptions) {}

  /** Called a few times a second. */
  check(): void {
    const { bus, log, now } = this.options;
    if (bus.ready) {
      if (this.#deaf) log.info("cluster bus back: accepting sockets again");
      this.#lostAt = 0;
      this.#deaf = false;
      return;
    }
    const at = now();
    if (this.#lostAt === 0) this.#lostAt = at;
    if (this.#deaf || at - this.#lostAt < this.options.graceMs) return;
    this.#deaf = true;
    const sessions = this.options.sessions();
    log.warn("cluster bus lost: telling sockets to reconnect elsewhere", {
      lost_ms: at - this.#lostAt,
      connections: sessions.length,
    });
    this.options.metrics.busLosses++;
    bus.reconnect();
    reconnectSpread(sessions, this.options.spreadMs, "This node lost the cluster bus; reconnect");
  }
}
