/**
 * Renders a Manager's statistics in the Prometheus text exposition format
 * (version 0.0.4) or in OpenMetrics 1.0 text: per handler calls,
 * errors by code, in flight and a latency histogram; per connection state,
 * round-trip time, reconnects, bytes, messages and frames each way, and calls
 * in flight; rejected handshakes by reason. Names follow the Prometheus
 * conventions: `wsgrid_` prefix, base units (`_seconds`, `_bytes`), `_total`
 * on counters.
 *
 * @module
 */
import type { GridStats } from "../types.ts";

/** The content type of {@link renderMetrics}' output in the Prometheus text format. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** The content type of {@link renderMetrics}' output in the OpenMetrics format. */
export const OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/** Options of {@link renderMetrics}. */
export interface RenderMetricsOptions {
  /**
   * `"prometheus"`: the Prometheus text format 0.0.4. `"openmetrics"`: OpenMetrics 1.0
   * (counter families named without `_total`, `# UNIT` lines, a final `# EOF`).
   * @default "prometheus"
   */
  format?: "prometheus" | "openmetrics";
}

const STATES = ["connecting", "up", "down", "closed"] as const;

type Labels = Record<string, string>;

/** A label value with `\`, `"` and newlines escaped, as the text format requires. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** A sample value: Go float syntax for the special values, otherwise the shortest round-trip decimal. */
function num(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

/** Milliseconds as seconds, without the binary noise of the division (0.1 ms is "0.0001"). */
function seconds(ms: number): number {
  return Number((ms / 1000).toPrecision(12));
}

/** Accumulates metric families, each with its HELP and TYPE lines once. */
class Writer {
  private readonly lines: string[] = [];
  private readonly openMetrics: boolean;

  constructor(openMetrics: boolean) {
    this.openMetrics = openMetrics;
  }

  /** Starts a family; `name` is that of its samples (`_total` included for counters). */
  family(name: string, type: "counter" | "gauge" | "histogram" | "info", help: string): void {
    let text = help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
    if (!this.openMetrics) {
      // The Prometheus format has no info type: an info metric is a gauge of 1.
      this.lines.push(`# HELP ${name} ${text}`, `# TYPE ${name} ${type === "info" ? "gauge" : type}`);
      return;
    }
    // OpenMetrics names counter and info families without the suffix their samples carry.
    const family = type === "counter" ? name.replace(/_total$/, "") : type === "info" ? name.replace(/_info$/, "") : name;
    text = text.replace(/"/g, '\\"');
    this.lines.push(`# TYPE ${family} ${type}`, `# HELP ${family} ${text}`);
    const unit = family.match(/_(seconds|bytes)$/)?.[1];
    if (unit !== undefined) this.lines.push(`# UNIT ${family} ${unit}`);
  }

  sample(name: string, labels: Labels, value: number): void {
    const keys = Object.keys(labels);
    const ls = keys.length === 0 ? "" : `{${keys.map((k) => `${k}="${escapeLabelValue(labels[k])}"`).join(",")}}`;
    this.lines.push(`${name}${ls} ${num(value)}`);
  }

  text(): string {
    if (this.openMetrics) this.lines.push("# EOF");
    return this.lines.join("\n") + "\n";
  }
}

function sorted<T>(record: Record<string, T>): [string, T][] {
  return Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Renders statistics (what `grid.stats()` returns) as Prometheus or OpenMetrics
 * text. Every family is present with its HELP and TYPE lines even when it has no
 * samples yet.
 *
 * @param stats a snapshot from `grid.stats()`
 * @param options the format
 * @returns the exposition text, one sample per line, ending with a newline
 *
 * @example
 * ```ts
 * import { renderMetrics } from "wsgrid/metrics";
 * const text = renderMetrics(grid.stats());
 * // wsgrid_handler_calls_total{handler="echo"} 12
 * ```
 */
export function renderMetrics(stats: GridStats, options: RenderMetricsOptions = {}): string {
  const w = new Writer(options.format === "openmetrics");
  w.family("wsgrid_node_info", "info", "This node: its name on the grid and its instance id (always 1).");
  w.sample("wsgrid_node_info", { local: stats.local, instance_id: stats.instanceId }, 1);
  w.family("wsgrid_uptime_seconds", "gauge", "Time since the Manager was created.");
  w.sample("wsgrid_uptime_seconds", {}, seconds(stats.uptimeMs));
  w.family("wsgrid_admin_connections", "gauge", "Read-only (admin) clients connected now.");
  w.sample("wsgrid_admin_connections", {}, stats.admin.connections);

  const conns = sorted(stats.connections);
  w.family("wsgrid_connection_up", "gauge", "1 when the connection to the remote is up, else 0.");
  for (const [remote, c] of conns) w.sample("wsgrid_connection_up", { remote }, c.state === "up" ? 1 : 0);
  w.family("wsgrid_connection_state", "gauge", "1 for the state the connection to the remote is in, 0 for the others.");
  for (const [remote, c] of conns) {
    for (const state of STATES) w.sample("wsgrid_connection_state", { remote, state }, c.state === state ? 1 : 0);
  }
  w.family("wsgrid_connection_rtt_seconds", "gauge", "Round-trip time of the last ping (absent before the first pong).");
  for (const [remote, c] of conns) if (c.rttMs !== null) w.sample("wsgrid_connection_rtt_seconds", { remote }, seconds(c.rttMs));
  w.family("wsgrid_connection_reconnects_total", "counter", "Times the connection came up again after being lost.");
  for (const [remote, c] of conns) w.sample("wsgrid_connection_reconnects_total", { remote }, c.reconnects);
  const counters: [string, string, (c: GridStats["connections"][string]) => number][] = [
    ["wsgrid_connection_received_bytes_total", "WebSocket payload bytes received.", (c) => c.bytesIn],
    ["wsgrid_connection_sent_bytes_total", "WebSocket payload bytes sent.", (c) => c.bytesOut],
    ["wsgrid_connection_received_messages_total", "Grid messages received.", (c) => c.messagesIn],
    ["wsgrid_connection_sent_messages_total", "Grid messages sent.", (c) => c.messagesOut],
    ["wsgrid_connection_received_frames_total", "WebSocket frames received (each carries one or more messages).", (c) => c.framesIn],
    ["wsgrid_connection_sent_frames_total", "WebSocket frames sent (each carries one or more messages).", (c) => c.framesOut],
  ];
  for (const [name, help, get] of counters) {
    w.family(name, "counter", help);
    for (const [remote, c] of conns) w.sample(name, { remote }, get(c));
  }
  w.family("wsgrid_connection_calls_in_flight", "gauge", "Calls this node made to the remote that have not ended, by kind.");
  for (const [remote, c] of conns) {
    w.sample("wsgrid_connection_calls_in_flight", { remote, kind: "request" }, c.inFlight.requests);
    w.sample("wsgrid_connection_calls_in_flight", { remote, kind: "stream" }, c.inFlight.streams);
  }
  w.family("wsgrid_connection_calls_serving", "gauge", "Calls from the remote that this node's handlers are serving, by kind.");
  for (const [remote, c] of conns) {
    w.sample("wsgrid_connection_calls_serving", { remote, kind: "request" }, c.serving.requests);
    w.sample("wsgrid_connection_calls_serving", { remote, kind: "stream" }, c.serving.streams);
  }

  const handlers = sorted(stats.handlers);
  w.family("wsgrid_handler_calls_total", "counter", "Calls served by the handler.");
  for (const [handler, h] of handlers) w.sample("wsgrid_handler_calls_total", { handler }, h.calls);
  w.family("wsgrid_handler_errors_total", "counter", "Served calls that ended with an error, by error code.");
  for (const [handler, h] of handlers) {
    // Stats from before errorsByCode existed count every error as unknown.
    const byCode = h.errorsByCode ?? (h.errors > 0 ? { unknown: h.errors } : {});
    for (const [code, n] of sorted(byCode)) w.sample("wsgrid_handler_errors_total", { handler, code }, n);
  }
  w.family("wsgrid_handler_in_flight", "gauge", "Calls the handler is serving now.");
  for (const [handler, h] of handlers) w.sample("wsgrid_handler_in_flight", { handler }, h.inFlight);
  w.family("wsgrid_handler_duration_seconds", "histogram", "Time from a call's arrival to its end (response, error or cancel).");
  for (const [handler, h] of handlers) {
    const b = h.latencyBuckets;
    if (b === undefined) continue;
    for (let i = 0; i < b.boundsMs.length; i++) {
      w.sample("wsgrid_handler_duration_seconds_bucket", { handler, le: num(seconds(b.boundsMs[i])) }, b.counts[i]);
    }
    w.sample("wsgrid_handler_duration_seconds_bucket", { handler, le: "+Inf" }, b.count);
    w.sample("wsgrid_handler_duration_seconds_sum", { handler }, seconds(b.sumMs));
    w.sample("wsgrid_handler_duration_seconds_count", { handler }, b.count);
  }

  w.family("wsgrid_handshakes_rejected_total", "counter", "Handshakes refused or failed, by reason (docs/SECURITY.md).");
  for (const [reason, n] of sorted(stats.rejectedHandshakes)) w.sample("wsgrid_handshakes_rejected_total", { reason }, n);
  return w.text();
}
