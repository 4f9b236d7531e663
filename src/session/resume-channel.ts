/**
 * A recovery channel subscribed by a resumable session (docs/recovery.md): after
 * subscription_succeeded, the kept events after the position its client confirmed (when that
 * history is whole), then what was delivered meanwhile, then live. The socket joins the channel's
 * fan-out topic only at the end (src/channels/registry.ts `resumed`), in the same turn as the
 * held frames go out, so nothing comes twice or out of order.
 */
import type { LocalChannel } from "../channels/index.ts";
import type { KeepPolicy } from "../cluster/types.ts";
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
  const { history, membership } = ctx.ports;
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
  let sent = read;
  for (const { frame, position } of membership.resumed(channel, ctx.self)) {
    if (position && position.epoch === page.epoch && position.serial <= page.serial) continue;
    ctx.send(frame);
    if (position) sent = position;
  }
  resume.started(name, channel, sent, replayed ? undefined : read);
}
