/**
 * A recovery channel subscribed by a resumable session (docs/recovery.md): after
 * subscription_succeeded, the kept events after the position its client confirmed (when that
 * history is whole), then what was delivered meanwhile, then live. The socket joins the channel's
 * fan-out topic only at the end (src/channels/registry.ts `resumed`), in the same turn as the
 * held frames go out, so nothing comes twice or out of order.
 */
import type { LocalChannel } from "../channels/index.ts";
import type { KeepPolicy, KeptPosition } from "../cluster/types.ts";
import type { SessionContext } from "./context.ts";
import type { LocalSession } from "./ports.ts";
import type { Resume } from "./resume.ts";

/** `since` that asks only where a history stands. */
const NOW = Number.MAX_SAFE_INTEGER;

export async function resumeChannel(
  ctx: SessionContext,
  resume: Resume,
  name: string,
  channel: LocalChannel<LocalSession>,
  keep: KeepPolicy,
): Promise<void> {
  const { history } = ctx.ports;
  const from = resume.resumeFrom(name);
  const page = await history.read(ctx.app.id, name, from?.serial ?? NOW, keep);
  // Closed or unsubscribed meanwhile: leaving dropped what was held.
  if (ctx.isClosed() || ctx.subscriptions.get(name)?.channel !== channel) return;
  // A start in no history ("" at 0) continues in whichever history began after it.
  const sameHistory = from !== undefined &&
    (page.epoch === from.epoch || (from.epoch === "" && from.serial === 0));
  const replayed = sameHistory && page.complete;
  if (replayed) {
    for (const kept of page.events) {
      if (kept.exceptSocketId === undefined || !resume.isOwnSocket(kept.exceptSocketId)) {
        ctx.send(kept.frame);
      }
    }
  }
  const read = { epoch: page.epoch, serial: page.serial };
  const sent = sendHeld(ctx, channel, read) ?? read;
  resume.started(name, channel, sent, replayed ? undefined : read);
}

/**
 * The socket joins the channel's topic, and first gets what the channel delivered while it was
 * held (a presence join, a resume), but for kept events up to `skipThrough` (sent already).
 * Answers the position of the last kept event it sent.
 */
export function sendHeld(
  ctx: SessionContext,
  channel: LocalChannel<LocalSession>,
  skipThrough?: KeptPosition,
): KeptPosition | undefined {
  const held = ctx.ports.membership.resumed(channel, ctx.self);
  if (ctx.isClosed()) return undefined;
  let sent: KeptPosition | undefined;
  for (const { frame, position } of held) {
    if (
      position && skipThrough && position.epoch === skipThrough.epoch &&
      position.serial <= skipThrough.serial
    ) continue;
    ctx.send(frame);
    if (position) sent = position;
  }
  return sent;
}
