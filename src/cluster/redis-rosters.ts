/**
 * This node's copies of presence member lists held in Redis, so that a join answers its member
 * list without Redis sending the whole list each time. Redis keeps a version per list
 * (`{app}:pver:{channel}`, changed by every change of the list, unique across Redis restarts:
 * src/cluster/redis-prelude.ts `roster_changed`). A join sends the version of our copy; the script
 * answers the list only when Redis's version before the join differs, and otherwise we apply
 * the join ourselves. Any doubt drops the copy, and the next join gets the list again.
 */
import { Roster } from "../channels/index.ts";

/** Sent when we hold no copy: never a version Redis hands out. */
const NO_COPY = "-";

interface Copy {
  version: string;
  roster: Roster;
}

/** What a presence script answered about the list: its versions, and the list when sent. */
export interface RosterReply {
  before: string;
  after: string;
  /** user id, info JSON, user id, info JSON... (only when the script sent the list). */
  list?: readonly unknown[];
}

export class RosterMirror {
  readonly #copies = new Map<string, Copy>();

  #key(appId: string, channel: string): string {
    return `${appId}\n${channel}`;
  }

  /** The version to send with a join. */
  versionOf(appId: string, channel: string): string {
    return this.#copies.get(this.#key(appId, channel))?.version ?? NO_COPY;
  }

  /**
   * Applies a join's answer; undefined when the script sent no list and our copy no longer
   * matches (an earlier answer moved it): the caller then reads the list itself.
   */
  joined(
    appId: string,
    channel: string,
    reply: RosterReply,
    member: { userId: string; infoJson: string },
  ): Roster | undefined {
    const key = this.#key(appId, channel);
    if (reply.list) {
      const roster = new Roster(channel, pairs(reply.list));
      this.#copies.set(key, { version: reply.after, roster });
      return roster;
    }
    const copy = this.#copies.get(key);
    if (!copy || copy.version !== reply.before) {
      this.#copies.delete(key);
      return undefined;
    }
    if (reply.before !== reply.after) copy.roster.set(member.userId, member.infoJson);
    copy.version = reply.after;
    return copy.roster;
  }

  /** Applies a leave's answer: a changed version means the user left the list. */
  left(appId: string, channel: string, reply: RosterReply, userId: string): void {
    const key = this.#key(appId, channel);
    const copy = this.#copies.get(key);
    if (!copy) return;
    if (copy.version !== reply.before) {
      this.#copies.delete(key);
      return;
    }
    if (reply.before !== reply.after) copy.roster.delete(userId);
    copy.version = reply.after;
  }

  /** A list read whole (HGETALL): kept only as a fresh roster, not as a versioned copy. */
  static fromList(channel: string, list: readonly unknown[]): Roster {
    return new Roster(channel, pairs(list));
  }

  release(appId: string, channel: string): void {
    this.#copies.delete(this.#key(appId, channel));
  }
}

function* pairs(flat: readonly unknown[]): Generator<[string, string]> {
  for (let i = 0; i + 1 < flat.length; i += 2) yield [String(flat[i]), String(flat[i + 1])];
}
