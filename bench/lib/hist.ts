/**
 * Latency histogram: logarithmic buckets 1 % wide over microseconds, so percentiles are within
 * about 0.5 % and histograms from several load-generator processes merge by adding counts.
 */
const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
/** 1.01^2000 µs is about 440 s: anything slower lands in the last bucket. */
export const BUCKETS = 2_000;

export class Histogram {
  readonly counts = new Float64Array(BUCKETS);
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;

  /** Records one latency in milliseconds. */
  record(ms: number): void {
    const us = ms * 1000;
    this.counts[bucketOf(us)]++;
    this.count++;
    this.sum += ms;
    if (ms < this.min) this.min = ms;
    if (ms > this.max) this.max = ms;
  }

  /** Sparse form for IPC: [bucket, count, bucket, count, ...]. */
  toSparse(): SparseHistogram {
    const pairs: number[] = [];
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i] > 0) pairs.push(i, this.counts[i]);
    return { pairs, count: this.count, sum: this.sum, min: this.min, max: this.max };
  }

  add(other: SparseHistogram): void {
    for (let i = 0; i + 1 < other.pairs.length; i += 2) {
      this.counts[other.pairs[i]] += other.pairs[i + 1];
    }
    this.count += other.count;
    this.sum += other.sum;
    if (other.count > 0) {
      this.min = Math.min(this.min, other.min);
      this.max = Math.max(this.max, other.max);
    }
  }

  /** The value (ms) below which `p` (0..1) of the samples fall. */
  percentile(p: number): number | null {
    if (this.count === 0) return null;
    const rank = Math.max(1, Math.ceil(p * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.min(this.max, Math.max(this.min, valueOf(i) / 1000));
    }
    return this.max;
  }

  mean(): number | null {
    return this.count === 0 ? null : this.sum / this.count;
  }
}

export interface SparseHistogram {
  pairs: number[];
  count: number;
  sum: number;
  min: number;
  max: number;
}

function bucketOf(us: number): number {
  if (!(us > 1)) return 0;
  const bucket = Math.floor(Math.log(us) / LOG_GROWTH) + 1;
  return bucket < BUCKETS ? bucket : BUCKETS - 1;
}

/** Geometric middle of a bucket, in µs. */
function valueOf(bucket: number): number {
  if (bucket === 0) return 0.5;
  return GROWTH ** (bucket - 1) * Math.sqrt(GROWTH);
}
