/**
 * Subscribe authorization: one authorizer per channel kind (protocol.md §3, §4), behind
 * `authorize`.
 * Cache channels (`cache-`, `private-cache-`, `private-encrypted-cache-`, `presence-cache-`)
 * authorize as their kind; what makes them cache channels happens after the subscribe
 * (src/session/subscribe.ts; protocol.md §6).
 */
import { Buffer } from "node:buffer";
import { verifySocketAuth } from "../auth.ts";
import type { ChannelKind } from "../channels/index.ts";
import { userOfChannel } from "../channels/index.ts";
import { type Member, parseChannelData, type SignedInUser } from "../channels/index.ts";
import type { AppConfig } from "../config.ts";
import { subscriptionErrorFrame } from "../protocol/index.ts";
import type { SubscribeRequest } from "../protocol/index.ts";

export interface AuthorizeRequest {
  app: AppConfig;
  socketId: string;
  /** The socket's signed-in user, if any. */
  user: SignedInUser | undefined;
  /** A valid channel name of kind `kind`. */
  name: string;
  kind: ChannelKind;
  request: SubscribeRequest;
}

/** The presence member it joins as (none for other kinds), or the subscription_error frame. */
export type Authorization = Partial<Member> | { error: string };

type Authorizer = (request: AuthorizeRequest) => Authorization;

/** Allowed, as no presence member (shared: subscribes are the hot path). */
const ALLOWED: Authorization = Object.freeze({});

function refuse(
  name: string,
  type: "AuthError" | "InvalidRequest" | "LimitReached",
  why: string,
  status: 400 | 401 | 403,
): { error: string } {
  return { error: subscriptionErrorFrame(name, type, why, status) };
}

const publicChannel: Authorizer = () => ALLOWED;

const userChannel: Authorizer = ({ user, name }) =>
  user !== undefined && user.id === userOfChannel(name)
    ? ALLOWED
    : refuse(name, "AuthError", "Connection is not signed in as this user", 403);

/** Private and encrypted channels: a signature over `socket_id:channel`. */
const signedChannel: Authorizer = ({ app, socketId, name, request }) => {
  if (!request.auth) return refuse(name, "AuthError", "Missing auth", 401);
  return verifySocketAuth(request.auth, app, `${socketId}:${name}`)
    ? ALLOWED
    : refuse(name, "AuthError", "Invalid signature", 401);
};

const presenceChannel: Authorizer = ({ app, socketId, user, name, request }) => {
  const channelData = request.channel_data;
  if (channelData === undefined && !user) {
    return refuse(name, "InvalidRequest", "Presence channels need channel_data", 400);
  }
  if (!request.auth) return refuse(name, "AuthError", "Missing auth", 401);
  // A signed-in socket may omit channel_data: its user_data says who it is.
  const signed = channelData === undefined
    ? `${socketId}:${name}`
    : `${socketId}:${name}:${channelData}`;
  if (!verifySocketAuth(request.auth, app, signed)) {
    return refuse(name, "AuthError", "Invalid signature", 401);
  }
  const member = channelData === undefined
    ? { userId: user!.id, userInfo: user!.userInfo }
    : parseChannelData(channelData);
  if (typeof member === "string") return refuse(name, "InvalidRequest", member, 400);
  const size = Buffer.byteLength(JSON.stringify(member.userInfo) ?? "");
  if (size > app.max_presence_member_size) {
    return refuse(
      name,
      "LimitReached",
      `user_info is ${size} bytes, over the limit of ${app.max_presence_member_size}`,
      403,
    );
  }
  return member;
};

const AUTHORIZERS: Record<ChannelKind, Authorizer> = {
  public: publicChannel,
  user: userChannel,
  private: signedChannel,
  encrypted: signedChannel,
  presence: presenceChannel,
};

/** Checks a subscribe request's auth; answers the presence member it joins as. */
export function authorize(request: AuthorizeRequest): Authorization {
  return AUTHORIZERS[request.kind](request);
}
