/**
 * Per-handler counters: calls, errors, in-flight and latency quantiles.
 *
 * @module
 */
import type { HandlerStats } from "../types.ts";
import { Histogram } from "./histogram.ts";

interface Entry {
  calls: number;
  errors: number;
  inFlight: number;
  hist: Histogram;
}

/** Collects handler statistics for `grid.stats()`. */
export class HandlerStatsTable {
  private readonly table = new Map<string, Entry>();

  private entry(name: string): Entry {
    let e = this.table.get(name);
    if (e === undefined) {
      e = { calls: 0, errors: 0, inFlight: 0, hist: new Histogram() };
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

  /** A call to `name` that started at `startMs` (performance.now) ended. */
  end(name: string, startMs: number, ok: boolean): void {
    const e = this.entry(name);
    e.inFlight--;
    if (!ok) e.errors++;
    e.hist.record(performance.now() - startMs);
  }

  /** Plain-JSON snapshot. */
  snapshot(): Record<string, HandlerStats> {
    const out: Record<string, HandlerStats> = {};
    for (const [name, e] of this.table) {
      out[name] = {
        calls: e.calls,
        errors: e.errors,
        inFlight: e.inFlight,
        latencyMs: { p50: e.hist.quantile(0.5), p99: e.hist.quantile(0.99) },
      };
    }
    return out;
  }
}
