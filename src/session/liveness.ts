/** Liveness (protocol.md §7): when to ping, when a missing pong closes, slow consumers. */

/** What the sweep should do to a socket now. */
export type LivenessVerdict = "ping" | "pong_timeout" | "slow_consumer" | undefined;

export class Liveness {
  /** Clock reading (ms) of the last inbound frame. */
  lastSeen: number;
  /** Clock reading (ms) when the server pinged; 0 when no ping is outstanding. */
  pingSentAt = 0;

  constructor(now: number) {
    this.lastSeen = now;
  }

  /** A frame arrived: the socket is alive, and no ping is outstanding any more. */
  seen(now: number): void {
    this.lastSeen = now;
    this.pingSentAt = 0;
  }

  /** Called by the sweep once a second; a send buffer over budget comes first. Notes a ping. */
  check(
    now: number,
    timeouts: { activity_timeout: number; pong_timeout: number },
    buffered: number,
    bufferLimit: number,
  ): LivenessVerdict {
    if (buffered > bufferLimit) return "slow_consumer";
    if (this.pingSentAt === 0) {
      if (now - this.lastSeen >= timeouts.activity_timeout * 1000) {
        this.pingSentAt = now;
        return "ping";
      }
    } else if (now - this.pingSentAt >= timeouts.pong_timeout * 1000) {
      return "pong_timeout";
    }
    return undefined;
  }
}
