/**
 * The frames the bare baselines (bench/bare-bun.ts, bench/bare-deno.ts) send: the very bytes
 * Chorus sends, and for presence what every Pusher server must send (the member list, a
 * `member_added` for each user new to a channel). Runtime-neutral, so both import it.
 */

export function eventFrame(name: string, channel: string, data: unknown): string {
  // Chorus sends `data` as the string it was given (an object is JSON-encoded first).
  return JSON.stringify({
    event: name,
    channel,
    data: typeof data === "string" ? data : JSON.stringify(data),
  });
}

/**
 * subscription_succeeded; for a presence channel with a member list of `presenceUsers` users
 * (bench/loadgen.ts signs `u{i}` with `{"n":i}`), encoded once per channel.
 */
export class SubscribeAnswers {
  readonly #presenceFrames = new Map<string, string>();
  /** Users seen per presence channel. */
  readonly #members = new Map<string, Set<string>>();

  constructor(readonly presenceUsers: number) {}

  subscribed(channel: string): string {
    if (!channel.startsWith("presence-")) {
      return JSON.stringify({
        event: "pusher_internal:subscription_succeeded",
        channel,
        data: "{}",
      });
    }
    let frame = this.#presenceFrames.get(channel);
    if (frame === undefined) {
      frame = JSON.stringify({
        event: "pusher_internal:subscription_succeeded",
        channel,
        data: this.#presenceData(),
      });
      this.#presenceFrames.set(channel, frame);
    }
    return frame;
  }

  /** The member_added for the channel's other sockets, when the joining user is new to it. */
  memberAdded(channel: string, channelData: string | undefined): string | undefined {
    if (!channel.startsWith("presence-") || channelData === undefined) return undefined;
    const member = JSON.parse(channelData) as { user_id: string | number; user_info?: unknown };
    const userId = String(member.user_id);
    let users = this.#members.get(channel);
    if (!users) this.#members.set(channel, users = new Set());
    if (users.has(userId)) return undefined;
    users.add(userId);
    const data = JSON.stringify({ user_id: userId, user_info: member.user_info });
    return JSON.stringify({ event: "pusher_internal:member_added", channel, data });
  }

  #presenceData(): string {
    const ids: string[] = [];
    const hash: Record<string, unknown> = {};
    for (let i = 0; i < this.presenceUsers; i++) {
      ids.push(`u${i}`);
      hash[`u${i}`] = { n: i };
    }
    return JSON.stringify({ presence: { ids, hash, count: this.presenceUsers } });
  }
}
