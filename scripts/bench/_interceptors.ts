/**
 * The interceptors a bench node installs (`--interceptors`), for the interceptor-cost suite:
 * `none` installs nothing (the fast path), `noop` an incoming and an outgoing interceptor that
 * only call `next()`, `otel` wsgrid/otel's pair on the OpenTelemetry SDK, its spans batched
 * (BatchSpanProcessor) into an exporter that drops them, so the cost is the tracing itself.
 *
 * @module
 */
import type { Manager } from "../../src/manager.ts";

/** The values of `--interceptors`. */
export const INTERCEPTOR_MODES = ["none", "noop", "otel"] as const;

/** Installs the interceptors of `mode` on `grid`. */
export async function installInterceptors(grid: Manager, mode: string): Promise<void> {
  if (mode === "none") return;
  if (mode === "noop") {
    grid.use({ incoming: (_call, next) => next(), outgoing: (_call, next) => next() });
    return;
  }
  if (mode !== "otel") throw new TypeError(`Cannot start: --interceptors must be ${INTERCEPTOR_MODES.join(", ")}, got "${mode}"`);
  const { BasicTracerProvider, BatchSpanProcessor } = await import("@opentelemetry/sdk-trace-base");
  const { openTelemetry } = await import("../../src/otel/mod.ts");
  const dropAll = {
    export: (_spans: unknown[], done: (r: { code: number }) => void) => done({ code: 0 }),
    shutdown: () => Promise.resolve(),
  };
  const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(dropAll)] });
  grid.use(openTelemetry({ tracerProvider: provider }));
}
