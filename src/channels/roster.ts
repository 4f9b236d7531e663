/**
 * A presence channel's member list and its `subscription_succeeded` frame (docs/protocol.md §4),
 * kept encoded: a join of a new user appends its bytes to the encoded list instead of encoding
 * every member again, and a join that changes nothing reuses the last frame. Only a leave (or a
 * changed user_info) makes the next frame encode the list from scratch.
 */
import { presenceSucceededFrame } from "../protocol/index.ts";

/** JSON string escaping of `text` without the quotes; escaping pieces and joining them is the same. */
function escaped(text: string): string {
  const quoted = JSON.stringify(text);
  return quoted.slice(1, quoted.length - 1);
}

export class Roster {
  /** user id → user_info as JSON text. */
  readonly #members = new Map<string, string>();
  /**
   * `"id"` and `"id":info` per member, escaped for the frame's `data` string. Arrays joined per
   * frame, not strings appended: V8 would keep an appended string as a rope a thousand deep and
   * walk it again on every send.
   */
  #ids: string[] | undefined = [];
  #hash: string[] | undefined = [];
  #frame: string | undefined;

  constructor(readonly channel: string, entries: Iterable<readonly [string, string]> = []) {
    for (const [userId, infoJson] of entries) this.set(userId, infoJson);
  }

  get size(): number {
    return this.#members.size;
  }

  ids(): IterableIterator<string> {
    return this.#members.keys();
  }

  /** Adds a member, or replaces its user_info. */
  set(userId: string, infoJson: string): void {
    const known = this.#members.get(userId);
    if (known === infoJson) return;
    this.#members.set(userId, infoJson);
    this.#frame = undefined;
    if (known !== undefined || this.#ids === undefined || this.#hash === undefined) {
      this.#ids = this.#hash = undefined;
      return;
    }
    const id = JSON.stringify(userId);
    this.#ids.push(escaped(id));
    this.#hash.push(escaped(`${id}:${infoJson}`));
  }

  delete(userId: string): boolean {
    if (!this.#members.delete(userId)) return false;
    this.#frame = undefined;
    this.#ids = this.#hash = undefined;
    return true;
  }

  /** Members with their user_info parsed (for the HTTP API and tests, not the join path). */
  members(): Map<string, unknown> {
    const members = new Map<string, unknown>();
    for (const [userId, infoJson] of this.#members) members.set(userId, parseUserInfo(infoJson));
    return members;
  }

  /** `pusher_internal:subscription_succeeded` with this member list. */
  frame(): string {
    if (this.#frame !== undefined) return this.#frame;
    if (this.#ids === undefined || this.#hash === undefined) {
      const ids: string[] = [];
      const hash: string[] = [];
      for (const [userId, infoJson] of this.#members) {
        const id = JSON.stringify(userId);
        ids.push(escaped(id));
        hash.push(escaped(`${id}:${infoJson}`));
      }
      [this.#ids, this.#hash] = [ids, hash];
    }
    return this.#frame = presenceSucceededFrame(
      this.channel,
      this.#ids.join(","),
      this.#hash.join(","),
      this.size,
    );
  }
}

/** user_info as stored (JSON text); null when it does not parse. */
export function parseUserInfo(json: string): unknown {
  try {
    return JSON.parse(json);
  } catch {
    return null;
  }
}
