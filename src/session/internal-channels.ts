/**
 * The node-internal channels a session is in (watchers, user control: src/channels/internal.ts),
 * reference-counted: a socket present as a user in two channels and signed in as that user is in
 * its user-control channel once.
 */
import type { LocalChannel } from "../channels/index.ts";
import type { Maybe } from "../cluster/types.ts";
import type { LocalSession, SessionPorts } from "./ports.ts";

export class InternalChannels {
  #joined: Map<string, { channel: LocalChannel<LocalSession>; refs: number }> | undefined;

  constructor(
    readonly ports: Pick<SessionPorts, "membership" | "bus">,
    readonly appId: string,
    readonly session: LocalSession,
  ) {}

  /** Joins a node-internal channel; a promise when its events will arrive only later. */
  join(name: string): Maybe<void> {
    this.#joined ??= new Map();
    const joined = this.#joined.get(name);
    if (joined) {
      joined.refs++;
      return;
    }
    const { channel } = this.ports.membership.add(this.appId, name, this.session);
    this.#joined.set(name, { channel, refs: 1 });
    return this.ports.bus.listen(this.appId, name);
  }

  leave(name: string): void {
    const joined = this.#joined?.get(name);
    if (!joined || --joined.refs > 0) return;
    this.#joined!.delete(name);
    if (this.ports.membership.remove(joined.channel, this.session).last) {
      this.ports.bus.unlisten(this.appId, name);
    }
  }
}
