/** Who a socket says it is: presence `channel_data` and sign-in `user_data` (protocol.md §4, §8). */

export const MAX_WATCHLIST = 100;

export interface Member {
  userId: string;
  userInfo: unknown;
}

export interface SignedInUser {
  id: string;
  /** user_data exactly as signed, echoed in signin_success. */
  userData: string;
  userInfo: unknown;
  watchlist: string[];
}

/** Parses presence `channel_data`; a string is the reason it is refused. */
export function parseChannelData(raw: string): Member | string {
  const value = parseObject(raw, "channel_data");
  if (typeof value === "string") return value;
  const { user_id: userId, user_info: userInfo } = value;
  if (typeof userId === "number" && Number.isFinite(userId)) {
    return { userId: String(userId), userInfo: userInfo ?? null };
  }
  if (typeof userId === "string" && userId !== "") return { userId, userInfo: userInfo ?? null };
  return "channel_data needs a user_id (a non-empty string or a number)";
}

/** Parses sign-in `user_data`; a string is the reason it is refused. */
export function parseUserData(raw: string): SignedInUser | string {
  const value = parseObject(raw, "user_data");
  if (typeof value === "string") return value;
  const { id, user_info: userInfo, watchlist = [] } = value;
  if (typeof id !== "string" || id === "") return "user_data needs an id (a non-empty string)";
  if (!Array.isArray(watchlist) || !watchlist.every((entry) => typeof entry === "string")) {
    return "user_data.watchlist must be an array of user id strings";
  }
  if (watchlist.length > MAX_WATCHLIST) {
    return `user_data.watchlist holds ${watchlist.length} ids, over the limit of ${MAX_WATCHLIST}`;
  }
  return { id, userData: raw, userInfo: userInfo ?? null, watchlist: [...new Set(watchlist)] };
}

function parseObject(raw: string, what: string): Record<string, unknown> | string {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return `${what} is not valid JSON`;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return `${what} must be a JSON object`;
  }
  return value as Record<string, unknown>;
}
