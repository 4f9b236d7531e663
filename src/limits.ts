/** Rate limits: a token bucket, and a set of them keyed by client address or app. */

/** Holds up to `burst` tokens, refilled continuously at `rate` per second. */
export class TokenBucket {
  #tokens: number;
  #at: number;

  constructor(readonly rate: number, readonly burst: number, now: number) {
    this.#tokens = burst;
    this.#at = now;
  }

  /** Takes one token; false when none is left. */
  take(now: number): boolean {
    this.#refill(now);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Milliseconds until a token is available. */
  waitMs(now: number): number {
    this.#refill(now);
    return this.#tokens >= 1 ? 0 : Math.ceil(((1 - this.#tokens) * 1000) / this.rate);
  }

  /** True when the bucket is full again, so forgetting it changes nothing. */
  isIdle(now: number): boolean {
    this.#refill(now);
    return this.#tokens >= this.burst;
  }

  #refill(now: number): void {
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#at) * this.rate) / 1000);
    this.#at = now;
  }
}

export class KeyedRateLimiter {
  readonly #buckets = new Map<string, TokenBucket>();

  constructor(readonly rate: number, readonly burst: number = rate) {}

  /** Takes a token for `key`; answers how long to wait (ms) when there is none, else 0. */
  take(key: string, now: number): number {
    let bucket = this.#buckets.get(key);
    if (!bucket) this.#buckets.set(key, bucket = new TokenBucket(this.rate, this.burst, now));
    return bucket.take(now) ? 0 : bucket.waitMs(now);
  }

  /** Forgets full buckets so the map does not grow with every address ever seen. */
  prune(now: number): void {
    for (const [key, bucket] of this.#buckets) {
      if (bucket.isIdle(now)) this.#buckets.delete(key);
    }
  }
}
