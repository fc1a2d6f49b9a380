/**
 * Per-handler counters: calls, errors (in all and by code), in-flight and latency
 * (quantiles and Prometheus-style buckets).
 *
 * @module
 */
import type { HandlerStats } from "../types.ts";
import { Histogram } from "./histogram.ts";

interface Entry {
  calls: number;
  errors: number;
  errorsByCode: Map<string, number>;
  inFlight: number;
  hist: Histogram;
}

/** Collects handler statistics for `grid.stats()`. */
export class HandlerStatsTable {
  private readonly table = new Map<string, Entry>();

  private entry(name: string): Entry {
    let e = this.table.get(name);
    if (e === undefined) {
      e = { calls: 0, errors: 0, errorsByCode: new Map(), inFlight: 0, hist: new Histogram() };
      this.table.set(name, e);
    }
    return e;
  }

  /** A call to `name` started. */
  begin(name: string): void {
    const e = this.entry(name);
    e.calls++;
    e.inFlight++;
  }

  /**
   * A call to `name` that started at `startMs` (performance.now) ended; `code` is
   * the error code it failed with (counted under "unknown" when not given).
   */
  end(name: string, startMs: number, ok: boolean, code?: string): void {
    const e = this.entry(name);
    e.inFlight--;
    if (!ok) {
      e.errors++;
      const c = code ?? "unknown";
      e.errorsByCode.set(c, (e.errorsByCode.get(c) ?? 0) + 1);
    }
    e.hist.record(performance.now() - startMs);
  }

  /** Plain-JSON snapshot. */
  snapshot(): Record<string, HandlerStats> {
    const out: Record<string, HandlerStats> = {};
    for (const [name, e] of this.table) {
      out[name] = {
        calls: e.calls,
        errors: e.errors,
        errorsByCode: Object.fromEntries(e.errorsByCode),
        inFlight: e.inFlight,
        latencyMs: { p50: e.hist.quantile(0.5), p99: e.hist.quantile(0.99) },
        latencyBuckets: e.hist.buckets(),
      };
    }
    return out;
  }
}
