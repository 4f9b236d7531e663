/**
 * A socket's channels by name (its Subscription records: src/session/ports.ts). Most sockets
 * hold one: it is kept in two fields, and a Map (264 bytes with one entry on Bun, against 40 for
 * this object) exists only from the second on.
 */
export interface ReadonlySubscriptions<S> extends Iterable<[string, S]> {
  readonly size: number;
  get(name: string): S | undefined;
}

export class Subscriptions<S> implements ReadonlySubscriptions<S> {
  #firstName: string | undefined;
  #first: S | undefined;
  #rest: Map<string, S> | undefined;

  get size(): number {
    return (this.#first === undefined ? 0 : 1) + (this.#rest?.size ?? 0);
  }

  get(name: string): S | undefined {
    return name === this.#firstName ? this.#first : this.#rest?.get(name);
  }

  /** Adds a channel (the caller checked it is not held yet). */
  set(name: string, subscription: S): void {
    if (name === this.#firstName || this.#first === undefined) {
      this.#firstName = name;
      this.#first = subscription;
      return;
    }
    (this.#rest ??= new Map()).set(name, subscription);
  }

  delete(name: string): boolean {
    if (name === this.#firstName) {
      this.#firstName = this.#first = undefined;
      return true;
    }
    return this.#rest?.delete(name) ?? false;
  }

  clear(): void {
    this.#firstName = this.#first = undefined;
    this.#rest = undefined;
  }

  *[Symbol.iterator](): Iterator<[string, S]> {
    if (this.#first !== undefined) yield [this.#firstName!, this.#first];
    if (this.#rest) yield* this.#rest;
  }
}
