/** Channel kinds by name prefix (protocol.md §3). */
export type ChannelKind = "public" | "private" | "encrypted" | "presence" | "user";

export interface ChannelType {
  kind: ChannelKind;
  /** Cache channels keep their last HTTP-triggered event. */
  cache: boolean;
}

const USER_PREFIX = "#server-to-user-";
const NAME = /^[-a-zA-Z0-9_=@,.;]+$/;
export const MAX_CHANNEL_NAME_LENGTH = 200;

/** The kind of a channel, or undefined when the name is not a valid channel name. */
export function channelType(name: string): ChannelType | undefined {
  if (name.length === 0 || name.length > MAX_CHANNEL_NAME_LENGTH) return undefined;
  if (name.startsWith("#")) {
    if (!name.startsWith(USER_PREFIX) || name.length === USER_PREFIX.length) return undefined;
    return NAME.test(name.slice(1)) ? { kind: "user", cache: false } : undefined;
  }
  if (!NAME.test(name)) return undefined;
  if (name.startsWith("private-encrypted-")) {
    return { kind: "encrypted", cache: name.startsWith("private-encrypted-cache-") };
  }
  if (name.startsWith("private-")) {
    return { kind: "private", cache: name.startsWith("private-cache-") };
  }
  if (name.startsWith("presence-")) {
    return { kind: "presence", cache: name.startsWith("presence-cache-") };
  }
  return { kind: "public", cache: name.startsWith("cache-") };
}

/** The user id a `#server-to-user-{id}` channel belongs to. */
export function userOfChannel(name: string): string | undefined {
  return name.startsWith(USER_PREFIX) ? name.slice(USER_PREFIX.length) : undefined;
}

export function isPresence(name: string): boolean {
  return name.startsWith("presence-");
}
