/**
 * A fixed-size latency histogram with logarithmic buckets (about 9 % wide),
 * from 1 µs to about 1 hour, for quantiles; plus exact counts at a few fixed
 * bounds and the sum of all samples, for Prometheus histograms. Recording is
 * O(1) and allocation-free.
 *
 * @module
 */

const BUCKETS = 256;
const PER_OCTAVE = 8;
const MIN_MS = 0.001;

/**
 * Upper bounds (ms) of the exported latency buckets: 100 µs to 10 s, 1-2.5-5 steps.
 * Counted exactly rather than derived from the log buckets, whose edges do not
 * fall on these values.
 */
export const LATENCY_BOUNDS_MS: readonly number[] = [
  0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000,
];

/** Latency histogram for p50/p99 of handler calls and for Prometheus buckets. */
export class Histogram {
  private readonly counts = new Uint32Array(BUCKETS);
  /** Samples at or below each of LATENCY_BOUNDS_MS and above the one before (the last slot: above all). */
  private readonly bounded = new Float64Array(LATENCY_BOUNDS_MS.length + 1);
  private total = 0;
  private sum = 0;

  /** Records one sample in milliseconds. */
  record(ms: number): void {
    let i = ms <= MIN_MS ? 0 : Math.ceil(Math.log2(ms / MIN_MS) * PER_OCTAVE);
    if (i >= BUCKETS) i = BUCKETS - 1;
    this.counts[i]++;
    this.total++;
    this.sum += ms;
    let b = 0;
    while (b < LATENCY_BOUNDS_MS.length && ms > LATENCY_BOUNDS_MS[b]) b++;
    this.bounded[b]++;
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

  /** Cumulative counts at each of LATENCY_BOUNDS_MS, the total count and the sum in ms. */
  buckets(): { boundsMs: number[]; counts: number[]; count: number; sumMs: number } {
    const counts: number[] = [];
    let seen = 0;
    for (let b = 0; b < LATENCY_BOUNDS_MS.length; b++) {
      seen += this.bounded[b];
      counts.push(seen);
    }
    return { boundsMs: [...LATENCY_BOUNDS_MS], counts, count: this.total, sumMs: this.sum };
  }
}
