/**
 * Built-in read-only handlers of every Manager: `grid.stats` returns the
 * node's GridStats; `grid.watch` streams them every `intervalMs`.
 *
 * @module
 */
import { defineSingle, defineStream, type SingleDefinition, type StreamDefinition } from "./handlers/define.ts";
import { DEFAULT_LIMITS } from "./protocol/limits.ts";
import type { CallContext, GridStats, HandleOptions, StreamCall } from "./types.ts";

/** What the built-ins need from their Manager (declared here, so this module does not import it). */
export interface BuiltinsHost {
  /** The node's statistics. */
  stats(): GridStats;
  /** Registers a typed single-request handler. */
  handle<Req, Resp>(
    def: SingleDefinition<Req, Resp>,
    fn: (req: Req, ctx: CallContext) => Resp | Promise<Resp>,
    options?: HandleOptions,
  ): void;
  /** Registers a typed stream handler. */
  handleStream<P, Req, Resp>(
    def: StreamDefinition<P, Req, Resp>,
    fn: (call: StreamCall<P, Req, Resp>) => void | Promise<void> | AsyncIterable<Resp>,
    options?: HandleOptions,
  ): void;
}

/** `grid.stats`: this node's statistics. */
export const GridStatsHandler: SingleDefinition<undefined | null, GridStats> = defineSingle("grid.stats");
/** `grid.watch`: statistics every `intervalMs` (at least `DEFAULT_LIMITS.minWatchIntervalMs`, 250 ms). */
export const GridWatchHandler: StreamDefinition<{ intervalMs?: number } | undefined | null, never, GridStats> =
  defineStream("grid.watch", { inCapacity: 0, outCapacity: 4 });

/** Registers the built-in handlers on `grid`. */
export function registerBuiltins(grid: BuiltinsHost): void {
  grid.handle(GridStatsHandler, () => grid.stats(), { readOnly: true });
  grid.handleStream(GridWatchHandler, async (call) => {
    const every = Math.max(DEFAULT_LIMITS.minWatchIntervalMs, Math.min(60_000, Number(call.payload?.intervalMs ?? 1000) || 1000));
    const w = call.responses.getWriter();
    while (!call.signal.aborted) {
      await w.write(grid.stats());
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, every);
        function done() {
          clearTimeout(t);
          call.signal.removeEventListener("abort", done);
          resolve();
        }
        call.signal.addEventListener("abort", done, { once: true });
      });
    }
  }, { readOnly: true });
}
