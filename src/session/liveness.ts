/**
 * Liveness (protocol.md §7): when to ping, when a missing pong closes, slow consumers. The two
 * readings live on the session itself (one object less per socket: src/session/connection.ts).
 */

/** What the sweep should do to a socket now. */
export type LivenessVerdict = "ping" | "pong_timeout" | "slow_consumer" | undefined;

export interface LivenessState {
  /** Clock reading (ms) of the last inbound frame. */
  lastSeen: number;
  /** Clock reading (ms) when the server pinged; 0 when no ping is outstanding. */
  pingSentAt: number;
}

/** A frame arrived: the socket is alive, and no ping is outstanding any more. */
export function seen(state: LivenessState, now: number): void {
  state.lastSeen = now;
  state.pingSentAt = 0;
}

/** Called by the sweep once a second; a send buffer over budget comes first. Notes a ping. */
export function livenessVerdict(
  state: LivenessState,
  now: number,
  timeouts: { activity_timeout: number; pong_timeout: number },
  buffered: number,
  bufferLimit: number,
): LivenessVerdict {
  if (buffered > bufferLimit) return "slow_consumer";
  if (state.pingSentAt === 0) {
    if (now - state.lastSeen >= timeouts.activity_timeout * 1000) {
      state.pingSentAt = now;
      return "ping";
    }
  } else if (now - state.pingSentAt >= timeouts.pong_timeout * 1000) {
    return "pong_timeout";
  }
  return undefined;
}
