/** Client events (protocol.md §5): checks, a token bucket per socket, relay, webhook. */
import { keepPolicy } from "../channels/index.ts";
import { TokenBucket } from "../limits.ts";
import { ErrorCode } from "../protocol/index.ts";
import { channelEventFrame } from "../protocol/index.ts";
import type { SessionContext } from "./context.ts";

export class ClientEvents {
  /** Created on the first client event: most sockets never send one. */
  #bucket: TokenBucket | undefined;

  constructor(readonly ctx: SessionContext) {}

  handle(event: string, channel: string | undefined, data: unknown): void {
    const { ctx } = this;
    const { app } = ctx;
    if (!app.client_events.enabled) {
      ctx.sendError(ErrorCode.ClientEventRejected, "Client events are disabled for this app");
      return;
    }
    if (channel === undefined) {
      ctx.sendError(ErrorCode.GenericReconnect, "Client event without a `channel`");
      return;
    }
    const subscription = ctx.subscriptions.get(channel);
    if (!subscription) {
      ctx.sendError(ErrorCode.Unauthorized, `Not subscribed to channel ${channel}`);
      return;
    }
    if (subscription.kind !== "private" && subscription.kind !== "presence") {
      ctx.sendError(
        ErrorCode.Unauthorized,
        "Client events are only allowed on private and presence channels",
      );
      return;
    }
    const { clock, metrics, bus, announcements } = ctx.ports;
    const rate = app.client_events.rate_limit;
    this.#bucket ??= new TokenBucket(rate, rate, clock.now());
    if (!this.#bucket.take(clock.now())) {
      metrics.rateLimited.inc({ kind: "client_event" });
      ctx.sendError(ErrorCode.ClientEventRejected, "Client event rate limit exceeded");
      return;
    }
    const frame = channelEventFrame(event, channel, data, subscription.userId);
    bus.relay(app.id, channel, frame, ctx.socketId, keepPolicy(app, channel));
    if (announcements.webhooks.wants(app, "client_event")) {
      announcements.webhooks.emit(app, {
        name: "client_event",
        channel,
        event,
        data: typeof data === "string" ? data : JSON.stringify(data),
        socket_id: ctx.socketId,
        ...(subscription.userId === undefined ? {} : { user_id: subscription.userId }),
      });
    }
  }
}
