/**
 * Serves `/metrics` for Prometheus as a web-standard request handler that fits
 * next to the grid endpoint on every runtime (`denoHandler`, `bunHandlers`, a
 * Node app converting to `Request`), the way the admin page does.
 *
 * @module
 */
import type { GridStats } from "../types.ts";
import { OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE, renderMetrics } from "./prometheus.ts";

/** The slice of a Manager the handler needs: its statistics and its grid path. */
export interface MetricsGrid {
  /** The grid endpoint's path, which the metrics path must differ from. */
  readonly path: string;
  /** A snapshot of the node's statistics, taken on every scrape. */
  stats(): GridStats;
}

/** Options of {@link metricsHandler}. */
export interface MetricsHandlerOptions {
  /**
   * Where the metrics are served.
   * @default "/metrics"
   */
  path?: string;
}

/** A web-standard handler: a Response for the metrics path, `undefined` for every other request. */
export type MetricsHandler = (req: Request) => Response | undefined;

/** Whether an Accept header asks for OpenMetrics (Prometheus scrapers offer it first). */
function wantsOpenMetrics(accept: string | null): boolean {
  if (accept === null) return false;
  return accept.split(",").some((part) => {
    const [type, ...params] = part.split(";").map((p) => p.trim().toLowerCase());
    return type === "application/openmetrics-text" && !params.some((p) => /^q=0(\.0*)?$/.test(p));
  });
}

/**
 * Returns a handler that answers `GET` (and `HEAD`) on `path` with the node's
 * statistics, rendered fresh on each scrape: in OpenMetrics when the request's
 * `Accept` offers `application/openmetrics-text` (as Prometheus does), else in
 * the Prometheus text format; and `undefined` for every other path, so
 * `?? app(req)` passes those on. The
 * metrics name the grid's hosts and handlers but hold no secret; put the path
 * behind your proxy's access rules if those names are private.
 *
 * @param grid the Manager whose statistics are served
 * @param options the path to serve them on
 * @returns a handler answering `path` and `undefined` for anything else
 * @throws {TypeError} if `path` does not start with "/" or equals the grid path
 *
 * @example
 * ```ts
 * import { metricsHandler } from "wsgrid/metrics";
 * import { denoHandler } from "wsgrid/deno";
 * const metrics = metricsHandler(grid);
 * const gridEndpoint = denoHandler(grid);
 * Deno.serve({ port: 9000 }, (req) => gridEndpoint(req) ?? metrics(req) ?? new Response("Not found", { status: 404 }));
 * // scrape http://127.0.0.1:9000/metrics
 * ```
 */
export function metricsHandler(grid: MetricsGrid, options: MetricsHandlerOptions = {}): MetricsHandler {
  const path = options.path ?? "/metrics";
  if (!path.startsWith("/")) throw new TypeError(`Cannot serve metrics: path "${path}" must start with "/"`);
  if (path === grid.path) throw new TypeError(`Cannot serve metrics: path "${path}" is the grid endpoint's path`);
  return (req: Request): Response | undefined => {
    if (new URL(req.url).pathname !== path) return undefined;
    if (req.method !== "GET" && req.method !== "HEAD") {
      return new Response("Method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
    }
    const openMetrics = wantsOpenMetrics(req.headers.get("accept"));
    const body = req.method === "HEAD" ? null : renderMetrics(grid.stats(), { format: openMetrics ? "openmetrics" : "prometheus" });
    const type = openMetrics ? OPENMETRICS_CONTENT_TYPE : PROMETHEUS_CONTENT_TYPE;
    return new Response(body, { headers: { "content-type": type, "cache-control": "no-store", vary: "accept" } });
  };
}
