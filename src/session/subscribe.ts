/**
 * Subscribe, unsubscribe and leave (protocol.md §3, §4, §6): local membership, cluster state,
 * announcements.
 */
import { userControlChannel } from "../channels/internal.ts";
import { channelType } from "../channels/kinds.ts";
import {
  cacheMissFrame,
  channelEventFrame,
  subscriptionErrorFrame,
  subscriptionSucceededFrame,
} from "../protocol/encode.ts";
import type { SubscribeRequest } from "../protocol/frames.ts";
import { authorize } from "./authorize.ts";
import type { SessionContext } from "./context.ts";
import type { Subscription } from "./ports.ts";

export async function subscribe(ctx: SessionContext, request: SubscribeRequest): Promise<void> {
  const { app, socketId } = ctx;
  const { state, bus, membership, announcements } = ctx.ports;
  const name = request.channel;
  const type = channelType(name);
  if (!type) {
    ctx.send(subscriptionErrorFrame(name, "InvalidRequest", `Invalid channel name "${name}"`, 400));
    return;
  }
  const existing = ctx.subscriptions.get(name);
  if (existing) {
    ctx.send(
      existing.kind === "presence"
        ? (await state.presenceMembers(app.id, name)).frame()
        : subscriptionSucceededFrame(name),
    );
    return;
  }
  const member = authorize({ app, socketId, user: ctx.user, name, kind: type.kind, request });
  if ("error" in member) {
    ctx.send(member.error);
    return;
  }
  // The member list as of the join: later joins must not show up in this socket's list.
  let succeeded: string | undefined;
  let first = false;
  if (type.kind === "presence") {
    const joined = await state.joinPresence({
      appId: app.id,
      channel: name,
      socketId,
      userId: member.userId!,
      userInfo: member.userInfo,
      maxMembers: app.max_presence_members,
    });
    if (!joined.ok) {
      ctx.send(subscriptionErrorFrame(
        name,
        "LimitReached",
        `Presence channel is full (${app.max_presence_members} members)`,
        403,
      ));
      return;
    }
    succeeded = joined.roster.frame();
    first = joined.first;
  }
  if (ctx.isClosed()) {
    // The socket went away while we waited: undo the join.
    if (succeeded !== undefined) {
      await state.leavePresence({ appId: app.id, channel: name, socketId, userId: member.userId! });
    }
    return;
  }
  const joins: Promise<void>[] = [];
  if (member.userId !== undefined) joins.push(ctx.internal.join(userControlChannel(member.userId)));
  const added = membership.add(app.id, name, ctx.self);
  ctx.subscriptions.set(name, {
    channel: added.channel,
    kind: type.kind,
    userId: member.userId,
    userInfo: member.userInfo,
  });
  // Events published once the client holds subscription_succeeded must reach it.
  const [{ occupied }] = await Promise.all([
    state.addSubscription({ appId: app.id, channel: name, socketId }),
    bus.listen(app.id, name),
    ...joins,
  ]);
  if (occupied) announcements.announce({ kind: "channel_occupied", appId: app.id, channel: name });
  if (type.kind !== "presence") announcements.countChanged(app, name);
  if (ctx.isClosed()) return;
  ctx.send(succeeded ?? subscriptionSucceededFrame(name));
  if (type.cache) await sendCached(ctx, name);
  if (first) {
    await announcements.announce({
      kind: "member_added",
      appId: app.id,
      channel: name,
      userId: member.userId!,
      userInfo: member.userInfo,
    }, socketId);
  }
}

/** A cache channel's last event right after subscription_succeeded, or a cache miss. */
async function sendCached(ctx: SessionContext, name: string): Promise<void> {
  const cached = await ctx.ports.state.getCache(ctx.app.id, name);
  if (cached) {
    ctx.send(channelEventFrame(cached.event, name, cached.data));
    return;
  }
  ctx.send(cacheMissFrame(name));
  ctx.ports.announcements.webhooks.emit(ctx.app, { name: "cache_miss", channel: name });
}

export async function unsubscribe(ctx: SessionContext, name: string): Promise<void> {
  const subscription = ctx.subscriptions.get(name);
  if (!subscription) return;
  ctx.subscriptions.delete(name);
  await leave(ctx, name, subscription);
}

/** Leaves one channel: locally, in the cluster state, and announces what that changes. */
export async function leave(
  ctx: SessionContext,
  name: string,
  subscription: Subscription,
): Promise<void> {
  const { app, socketId } = ctx;
  const { state, bus, membership, announcements } = ctx.ports;
  if (membership.remove(subscription.channel, ctx.self).last) {
    bus.unlisten(app.id, name);
    if (subscription.kind === "presence") state.releasePresence(app.id, name);
  }
  const { userId } = subscription;
  if (userId !== undefined) {
    ctx.internal.leave(userControlChannel(userId));
    const { last } = await state.leavePresence({ appId: app.id, channel: name, socketId, userId });
    if (last) {
      await announcements.announce({
        kind: "member_removed",
        appId: app.id,
        channel: name,
        userId,
      });
    }
  }
  const { vacated } = await state.removeSubscription({ appId: app.id, channel: name, socketId });
  // Only now: a count announcement reading the state before the removal would miss it.
  if (userId === undefined) announcements.countChanged(app, name);
  if (vacated) {
    await announcements.announce({ kind: "channel_vacated", appId: app.id, channel: name });
  }
}
