/**
 * A socket refused when it opened (unknown or disabled app, bad protocol, origin): it gets the
 * pusher:error and the close with the same code, and nothing else (docs/protocol.md §1). Kept
 * apart from Connection so an admitted session always has its app.
 */
import type { Refusal } from "../admission.ts";
import { errorFrame } from "../protocol/index.ts";
import type { SocketHandle, SocketSession } from "../runtime.ts";
import type { SessionPorts } from "./ports.ts";

export class RefusedSession implements SocketSession {
  constructor(readonly ports: Pick<SessionPorts, "log" | "metrics">, readonly refusal: Refusal) {}

  onOpen(socket: SocketHandle): void {
    const { code, message } = this.refusal;
    this.ports.log.info("connection refused", { code, reason: message });
    this.ports.metrics.connectionsRefused.inc({ code: String(code) });
    const frame = errorFrame(code, message);
    socket.send(frame);
    this.ports.metrics.messagesOut++;
    this.ports.metrics.bytesOut += frame.length;
    socket.close(code, message);
  }

  onMessage(): void {}

  onClose(): void {}
}
