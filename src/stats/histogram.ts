/**
 * A fixed-size latency histogram with logarithmic buckets (about 9 % wide),
 * from 1 µs to about 1 hour. Recording is O(1) and allocation-free.
 *
 * @module
 */

const BUCKETS = 256;
const PER_OCTAVE = 8;
const MIN_MS = 0.001;

/** Latency histogram for p50/p99 of handler calls. */
export class Histogram {
  private readonly counts = new Uint32Array(BUCKETS);
  private total = 0;

  /** Records one sample in milliseconds. */
  record(ms: number): void {
    let i = ms <= MIN_MS ? 0 : Math.ceil(Math.log2(ms / MIN_MS) * PER_OCTAVE);
    if (i >= BUCKETS) i = BUCKETS - 1;
    this.counts[i]++;
    this.total++;
  }

  /** The q-quantile (0..1) in ms, rounded to 3 decimals; 0 when empty. */
  quantile(q: number): number {
    if (this.total === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.round(MIN_MS * 2 ** (i / PER_OCTAVE) * 1000) / 1000;
    }
    return Math.round(MIN_MS * 2 ** ((BUCKETS - 1) / PER_OCTAVE) * 1000) / 1000;
  }
}
