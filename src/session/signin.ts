/** User sign-in (protocol.md §8): the user's control channel, watchlists, online / offline. */
import { verifySocketAuth } from "../auth.ts";
import { userControlChannel, watchersChannel } from "../channels/index.ts";
import { parseUserData, type SignedInUser } from "../channels/index.ts";
import { ErrorCode } from "../protocol/index.ts";
import { signinSuccessFrame, watchlistEventsFrame } from "../protocol/index.ts";
import type { SigninRequest } from "../protocol/index.ts";
import type { SessionContext } from "./context.ts";

export async function signin(ctx: SessionContext, request: SigninRequest): Promise<void> {
  const { app, socketId } = ctx;
  if (ctx.user) {
    ctx.sendError(ErrorCode.Unauthorized, "Connection is already signed in");
    return;
  }
  const signed = `${socketId}::user::${request.user_data}`;
  if (!verifySocketAuth(request.auth, app, signed)) {
    ctx.sendError(ErrorCode.Unauthorized, "Invalid signature for user_data");
    return;
  }
  const user = parseUserData(request.user_data);
  if (typeof user === "string") {
    ctx.sendError(ErrorCode.Unauthorized, user);
    return;
  }
  ctx.user = user;
  const { state, announcements } = ctx.ports;
  const [{ first }] = await Promise.all([
    state.signIn({ appId: app.id, userId: user.id, socketId }),
    ctx.internal.join(userControlChannel(user.id)),
    ...user.watchlist.map((id) => ctx.internal.join(watchersChannel(id))),
  ]);
  if (ctx.isClosed()) return;
  ctx.send(signinSuccessFrame(user.userData));
  if (user.watchlist.length > 0) {
    const online = await state.onlineUsers(app.id, user.watchlist);
    if (online.length > 0) {
      ctx.send(watchlistEventsFrame([{ name: "online", user_ids: online }]));
    }
  }
  if (first) await announcements.announce({ kind: "user_online", appId: app.id, userId: user.id });
}

/** Leaves the user's internal channels and the signed-in set; announces offline if last. */
export async function signout(ctx: SessionContext, user: SignedInUser): Promise<void> {
  const { app, socketId } = ctx;
  ctx.internal.leave(userControlChannel(user.id));
  for (const id of user.watchlist) ctx.internal.leave(watchersChannel(id));
  const { last } = await ctx.ports.state.signOut({ appId: app.id, userId: user.id, socketId });
  if (last) {
    await ctx.ports.announcements.announce({
      kind: "user_offline",
      appId: app.id,
      userId: user.id,
    });
  }
}
