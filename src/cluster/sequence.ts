/**
 * What one node knows of one channel's event numbers (the PUBLISH script in
 * src/cluster/bus-scripts.ts numbers them), to tell events it missed from events it never had
 * to receive: its own publishes made while its subscriber was away were delivered locally
 * already, so their numbers are not gaps. Every number comes with its Redis's epoch: a new epoch
 * means Redis restarted empty and numbers from 1 again.
 */

/** Own numbers kept per channel while unseen, at most (beyond, a gap counts as missed: safe). */
const MAX_OWN_UNSEEN = 1_000;
/** Own events kept that came back before the script's answer (normally one round trip's worth). */
const MAX_OWN_EARLY = 64;

export class ChannelSequence {
  /** Last number seen (any origin, ours too); undefined until known. */
  last: number | undefined = undefined;
  /** The epoch `last` belongs to. */
  epoch: string | undefined = undefined;
  /** Numbers of our own publishes the subscriber has not passed yet, ascending. */
  #ownUnseen: number[] | undefined;
  /** Our own events that arrived before the script answered their number. */
  #ownEarly: number[] | undefined;

  /** Our publish got number `seq` (the script's answer). */
  published(epoch: string, seq: number): void {
    this.#enter(epoch);
    if (this.#ownEarly !== undefined && remove(this.#ownEarly, seq)) return;
    const own = this.#ownUnseen ??= [];
    if (own.push(seq) > MAX_OWN_UNSEEN) own.shift();
  }

  /** The event numbered `seq` arrived (`own`: we published it): how many before it were missed. */
  arrived(epoch: string, seq: number, own: boolean): number {
    this.#enter(epoch);
    if (own && !(this.#ownUnseen !== undefined && remove(this.#ownUnseen, seq))) {
      const early = this.#ownEarly ??= [];
      if (early.push(seq) > MAX_OWN_EARLY) early.shift();
    }
    return this.#moveTo(seq, 1);
  }

  /**
   * Redis's counter, read when every event it counts that could reach us has arrived: how many
   * were missed.
   */
  counted(epoch: string, seq: number): number {
    this.#enter(epoch);
    return this.#moveTo(seq, 0);
  }

  /**
   * Numbers of another epoch: Redis restarted empty, so everything it numbered since is counted
   * from its start, and our own numbers of the old epoch mean nothing there.
   */
  #enter(epoch: string): void {
    if (epoch === this.epoch) return;
    if (this.epoch !== undefined && this.last !== undefined) this.last = 0;
    this.epoch = epoch;
    this.#ownUnseen = undefined;
    this.#ownEarly = undefined;
  }

  /**
   * A jump means events were published that never reached us; a fall (0: no counter) means the
   * counter was lost (it expired, or an epoch was missed), and every event numbered since then
   * that did not arrive was missed, less our own.
   */
  #moveTo(seq: number, arrived: 0 | 1): number {
    const last = this.last;
    this.last = seq;
    const from = last !== undefined && seq >= last ? last : 0;
    const own = this.#passOwn(from, seq, arrived);
    if (last === undefined) return 0;
    return (seq >= last ? seq - last - arrived : seq - arrived) - own;
  }

  /**
   * Forgets our numbers up to `seq`, counting those after `from` (and before `seq` when `seq`
   * itself just arrived).
   */
  #passOwn(from: number, seq: number, arrived: 0 | 1): number {
    const own = this.#ownUnseen;
    if (own === undefined) return 0;
    let count = 0;
    while (own.length > 0 && own[0] <= seq) {
      const n = own.shift()!;
      if (n > from && n <= seq - arrived) count++;
    }
    return count;
  }
}

function remove(numbers: number[], n: number): boolean {
  const i = numbers.indexOf(n);
  if (i < 0) return false;
  numbers.splice(i, 1);
  return true;
}
