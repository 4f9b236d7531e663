/**
 * A resumable session's side of one socket (docs/recovery.md): the socket opened at
 * `/session/{id}/app/{key}` for an app with recovery. It claims the session, knows where each of
 * its recovery channels was confirmed, confirms what it delivers with `pusher:ping` (a pong
 * proves every frame sent before the ping arrived: TCP keeps order) and saves the record.
 */
import type { KeptPosition, SessionRecord } from "../cluster/types.ts";
import { errorMessage } from "../log.ts";
import type { LocalChannel } from "../channels/index.ts";
import type { LocalSession, SessionPorts } from "./ports.ts";

/** Socket ids a record remembers (events that excluded them are not replayed). */
const SOCKETS_KEPT = 4;
/** Pings whose pongs may be outstanding at once. */
const MAX_UNCONFIRMED = 3;

interface Started {
  channel: LocalChannel<LocalSession>;
  /** The last kept event sent before the socket went live, and the channel's kept deliveries then. */
  at: KeptPosition;
  deliveries: number;
}

export class Resume {
  /** The record the session had (positions to resume from); emptied as channels resume. */
  #previous: SessionRecord | undefined;
  /** Another open socket holds the session: this one neither resumes nor saves. */
  #held = false;
  readonly #started = new Map<string, Started>();
  /** Positions confirmed by the client, per channel. */
  readonly #confirmed: Record<string, KeptPosition> = {};
  /** Positions as of each outstanding ping, oldest first. */
  readonly #unconfirmed: Record<string, KeptPosition>[] = [];
  #sockets: string[] = [];
  /** Set while a drain waits for the last pongs (`confirmAll`). */
  #onConfirmed: (() => void) | undefined;
  #releasing: Promise<void> | undefined;

  constructor(
    readonly ports: SessionPorts,
    readonly appId: string,
    readonly sessionId: string,
    readonly socketId: string,
    readonly ttlMs: number,
  ) {}

  /** Takes the session (at open, before any frame is handled). */
  async claim(): Promise<void> {
    const claimed = await this.ports.sessions.claim(
      this.appId,
      this.sessionId,
      this.socketId,
      this.ttlMs,
    );
    if (claimed === "held") {
      this.#held = true;
      return;
    }
    this.#previous = claimed;
    this.#sockets = [...(claimed?.sockets ?? []), this.socketId].slice(-SOCKETS_KEPT);
    for (const [name, at] of Object.entries(claimed?.channels ?? {})) this.#confirmed[name] = at;
  }

  get active(): boolean {
    return !this.#held;
  }

  /** Where `channel` resumes from (the position its client confirmed), if it does. */
  resumeFrom(channel: string): KeptPosition | undefined {
    return this.#held ? undefined : this.#previous?.channels[channel];
  }

  /** Socket ids of this session: events that excluded them are not this session's. */
  isOwnSocket(socketId: string): boolean {
    return this.#sockets.includes(socketId);
  }

  /**
   * The channel's delivery to this socket goes on live, `sent` being the last kept event it was
   * sent (replayed or held). `startedAt`: it did not resume, and its history starts there (what
   * it resumed from stays confirmed until a pong otherwise).
   */
  started(
    name: string,
    channel: LocalChannel<LocalSession>,
    sent: KeptPosition,
    startedAt: KeptPosition | undefined,
  ): void {
    this.#started.set(name, { channel, at: sent, deliveries: channel.keptDeliveries });
    if (startedAt) this.#confirmed[name] = startedAt;
    if (this.#previous) delete this.#previous.channels[name];
  }

  /** The client unsubscribed: the session no longer follows the channel. */
  stopped(name: string): void {
    this.#started.delete(name);
    delete this.#confirmed[name];
  }

  /** Something was delivered since the last ping (or confirmation): time for a ping. */
  get unconfirmed(): boolean {
    // While a drain waits (`confirmAll`) the channels are held back: nothing new was sent.
    if (this.#held || this.#onConfirmed || this.#unconfirmed.length >= MAX_UNCONFIRMED) {
      return false;
    }
    const latest = this.#unconfirmed.at(-1) ?? this.#confirmed;
    for (const [name] of this.#started) {
      if (!same(latest[name], this.#delivered(name))) return true;
    }
    return false;
  }

  /** Pings are out whose pongs would confirm more. */
  get awaitingPongs(): boolean {
    return !this.#held && this.#unconfirmed.length > 0;
  }

  /** Recovery channels this socket follows (to hold back before a drain closes it). */
  channels(): LocalChannel<LocalSession>[] {
    return [...this.#started.values()].map((started) => started.channel);
  }

  /** A ping goes out now: what its pong will confirm. */
  pinged(): void {
    // Held back for a drain: nothing was sent since the last ping.
    const latest = this.#onConfirmed && (this.#unconfirmed.at(-1) ?? this.#confirmed);
    const positions: Record<string, KeptPosition> = {};
    for (const [name] of this.#started) {
      positions[name] = latest ? latest[name] : this.#delivered(name)!;
    }
    this.#unconfirmed.push(positions);
  }

  /** A pong came: the oldest outstanding ping's positions reached the client. */
  ponged(): void {
    const positions = this.#unconfirmed.shift();
    if (!positions) return;
    Object.assign(this.#confirmed, positions);
    if (this.#unconfirmed.length === 0 && this.#onConfirmed) return this.#onConfirmed();
    this.#save(false);
  }

  /**
   * Before a drain closes the socket: `done` once every ping so far is answered (the last one is
   * sent now), or after `giveUpMs`. The socket's recovery channels hold back their events for it
   * meanwhile, so what it confirms is all it was sent: its next socket replays the rest.
   */
  confirmAll(giveUpMs: number, done: () => void): void {
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      this.#onConfirmed = undefined;
      done();
    };
    const timer = setTimeout(finish, giveUpMs);
    this.#onConfirmed = finish;
  }

  /** Saves what was confirmed and lets go of the session (once: at close, or before it). */
  released(): Promise<void> {
    if (this.#releasing) return this.#releasing;
    return this.#releasing = this.#save(true);
  }

  #delivered(name: string): KeptPosition | undefined {
    const started = this.#started.get(name);
    if (!started) return undefined;
    const { channel } = started;
    return channel.keptDeliveries > started.deliveries && channel.position
      ? channel.position
      : started.at;
  }

  #save(release: boolean): Promise<void> {
    if (this.#held) return Promise.resolve();
    const record: SessionRecord = { channels: { ...this.#confirmed }, sockets: this.#sockets };
    const { sessions, log } = this.ports;
    return sessions.save(this.appId, this.sessionId, this.socketId, record, this.ttlMs, release)
      .catch((error) =>
        log.warn("session not saved", { session: this.sessionId, error: errorMessage(error) })
      );
  }
}

function same(a: KeptPosition | undefined, b: KeptPosition | undefined): boolean {
  return a?.serial === b?.serial && a?.epoch === b?.epoch;
}
