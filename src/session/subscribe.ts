/**
 * Subscribe, unsubscribe and leave (protocol.md §3, §4, §6): local membership, cluster state,
 * announcements.
 */
import { keepPolicy, userControlChannel } from "../channels/index.ts";
import { type ChannelType, channelType } from "../channels/index.ts";
import type { Member } from "../channels/index.ts";
import { cacheMissFrame, channelEventFrame, subscriptionErrorFrame } from "../protocol/index.ts";
import type { SubscribeRequest } from "../protocol/index.ts";
import { authorize } from "./authorize.ts";
import type { SessionContext } from "./context.ts";
import type { Step } from "./frame-queue.ts";
import { resumeChannel, sendHeld } from "./resume-channel.ts";
import type { Subscription } from "./ports.ts";

/** Handles pusher:subscribe; synchronous when the cluster drivers answer at once (local). */
export function subscribe(ctx: SessionContext, request: SubscribeRequest): Step {
  const name = request.channel;
  const type = channelType(name);
  if (!type) {
    ctx.send(subscriptionErrorFrame(name, "InvalidRequest", `Invalid channel name "${name}"`, 400));
    return;
  }
  const existing = ctx.subscriptions.get(name);
  if (existing) {
    if (existing.kind === "presence") return resendMembers(ctx, name);
    ctx.send(existing.channel.succeededFrame);
    return;
  }
  const { app, socketId } = ctx;
  const member = authorize({ app, socketId, user: ctx.user, name, kind: type.kind, request });
  if ("error" in member) {
    ctx.send(member.error);
    return;
  }
  const joining: Joining = { name, type, member, succeeded: undefined, first: false };
  return type.kind === "presence" ? joinPresence(ctx, joining) : attach(ctx, joining);
}

interface Joining {
  name: string;
  type: ChannelType;
  member: Partial<Member>;
  /**
   * The subscription_succeeded to send (set by the time the join is confirmed): a presence
   * channel's as of the join (later joins must not show), else the channel's shared frame.
   */
  succeeded: string | undefined;
  /** The user's first socket in the presence channel. */
  first: boolean;
  /** In the local channel already, its deliveries held until subscription_succeeded is sent. */
  held?: boolean;
}

async function resendMembers(ctx: SessionContext, name: string): Promise<void> {
  ctx.send((await ctx.ports.state.presenceMembers(ctx.app.id, name)).frame());
}

async function joinPresence(ctx: SessionContext, joining: Joining): Promise<void> {
  const { app, socketId } = ctx;
  const { name, member } = joining;
  // Member events published after our join must reach this node. When it is not listening yet
  // (no local subscriber), it starts before the join: one published between the join and a
  // later SUBSCRIBE would be lost, and the member list we send would stay short of it.
  const listening = ctx.ports.bus.listen(app.id, name);
  if (listening instanceof Promise) await listening;
  // And this socket holds what the channel delivers from now until it has sent the member list:
  // a member event that reaches this node before the join's answer is not lost either.
  const held = ctx.ports.membership.add(app.id, name, ctx.self, true).channel;
  joining.held = true;
  const joined = await ctx.ports.state.joinPresence({
    appId: app.id,
    channel: name,
    socketId,
    userId: member.userId!,
    userInfo: member.userInfo,
    maxMembers: app.max_presence_members,
  });
  if (!joined.ok) {
    ctx.ports.membership.remove(held, ctx.self);
    stopListeningUnlessSubscribed(ctx, name);
    ctx.send(subscriptionErrorFrame(
      name,
      "LimitReached",
      `Presence channel is full (${app.max_presence_members} members)`,
      403,
    ));
    return;
  }
  joining.succeeded = joined.roster.frame();
  joining.first = joined.first;
  if (ctx.isClosed()) {
    // The socket went away while we waited: undo the join.
    ctx.ports.membership.remove(held, ctx.self);
    stopListeningUnlessSubscribed(ctx, name);
    await ctx.ports.state.leavePresence({
      appId: app.id,
      channel: name,
      socketId,
      userId: member.userId!,
    });
    return;
  }
  await attach(ctx, joining);
}

function stopListeningUnlessSubscribed(ctx: SessionContext, name: string): void {
  const { app } = ctx;
  const { bus, membership } = ctx.ports;
  if (!membership.get(app.id, name)) bus.unlisten(app.id, name);
}

/** Joins the local channel and the cluster's record of it, then confirms to the client. */
function attach(ctx: SessionContext, joining: Joining): Step {
  const { app, socketId } = ctx;
  const { state, bus, membership } = ctx.ports;
  const { name, type, member } = joining;
  const control = member.userId === undefined
    ? undefined
    : ctx.internal.join(userControlChannel(member.userId));
  const resume = ctx.resume?.active ? ctx.resume : undefined;
  const keep = resume && keepPolicy(app, name);
  const added = membership.add(app.id, name, ctx.self, keep !== undefined || joining.held);
  joining.succeeded ??= added.channel.succeededFrame;
  ctx.subscriptions.set(
    name,
    member.userId === undefined ? added.channel : {
      channel: added.channel,
      kind: type.kind,
      userId: member.userId,
      userInfo: member.userInfo,
    },
  );
  // Events published once the client holds subscription_succeeded must reach it.
  const recorded = state.addSubscription({ appId: app.id, channel: name, socketId });
  const listening = bus.listen(app.id, name);
  // After subscription_succeeded: what was held for the socket (a resume, a presence join).
  const release = keep !== undefined
    ? () => resumeChannel(ctx, resume!, name, added.channel, keep)
    : joining.held
    ? () => void sendHeld(ctx, added.channel)
    : undefined;
  const finish = (occupied: boolean) =>
    release ? andThen(confirm(ctx, joining, occupied), release) : confirm(ctx, joining, occupied);
  if (listening instanceof Promise || control instanceof Promise) {
    return Promise.all([recorded, listening, control]).then(([{ occupied }]) => finish(occupied));
  }
  // The common case in a cluster: the node listens already, one record to wait for.
  if (recorded instanceof Promise) return recorded.then(({ occupied }) => finish(occupied));
  return finish(recorded.occupied);
}

/** Runs `next` after `step`, at once when the step finished synchronously. */
function andThen(step: Step, next: () => Step): Step {
  return step instanceof Promise ? step.then(next) : next();
}

function confirm(ctx: SessionContext, joining: Joining, occupied: boolean): Step {
  const { app } = ctx;
  const { announcements } = ctx.ports;
  const { name, type } = joining;
  if (occupied) announcements.announce({ kind: "channel_occupied", appId: app.id, channel: name });
  if (type.kind !== "presence") announcements.countChanged(app, name);
  if (ctx.isClosed()) return;
  ctx.send(joining.succeeded!);
  if (type.cache || joining.first) return afterConfirm(ctx, joining);
}

/** What follows subscription_succeeded: a cache channel's last event, a presence member_added. */
async function afterConfirm(ctx: SessionContext, joining: Joining): Promise<void> {
  const { name, type, member } = joining;
  if (type.cache) await sendCached(ctx, name);
  if (joining.first) {
    await ctx.ports.announcements.announce({
      kind: "member_added",
      appId: ctx.app.id,
      channel: name,
      userId: member.userId!,
      userInfo: member.userInfo,
    }, ctx.socketId);
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
  ctx.resume?.stopped(name);
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
