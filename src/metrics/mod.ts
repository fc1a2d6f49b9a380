/**
 * Prometheus metrics of a wsgrid node: {@link renderMetrics} turns `grid.stats()`
 * into the Prometheus text format, and {@link metricsHandler} serves it on
 * `/metrics` next to the grid endpoint on any runtime.
 *
 * @example
 * ```ts
 * import { metricsHandler } from "wsgrid/metrics";
 * import { bunHandlers } from "wsgrid/bun";
 * const metrics = metricsHandler(grid);
 * const h = bunHandlers(grid);
 * Bun.serve({ port: 9000, fetch: (req, srv) => h.fetch(req, srv) ?? metrics(req) ?? new Response("Not found", { status: 404 }), websocket: h.websocket });
 * ```
 *
 * @module
 */
export * from "./prometheus.ts";
export * from "./serve_metrics.ts";
