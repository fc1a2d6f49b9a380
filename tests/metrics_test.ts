/**
 * wsgrid/metrics: the Prometheus text rendered from grid.stats() (read back with a
 * parser: names, types, labels and their escaping, histogram buckets), counters of
 * real calls between two in-process nodes, and the /metrics handler served next to
 * the grid endpoint with this runtime's embedding helper.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { type GridStats, Manager } from "../mod.ts";
import { detectRuntime } from "../src/adapters/serve.ts";
import {
  escapeLabelValue,
  metricsHandler,
  OPENMETRICS_CONTENT_TYPE,
  PROMETHEUS_CONTENT_TYPE,
  renderMetrics,
} from "../src/metrics/mod.ts";
import { LATENCY_BOUNDS_MS } from "../src/stats/histogram.ts";
import { freePorts } from "./_net.ts";
import { familyOf, find, parseExposition } from "./_prom_text.ts";
import { serveWithApp } from "./_serve_app.ts";

const runtime = detectRuntime();
const HOSTILE = 'we"ird\\handler\nname';
const WAIT = { waitForConnect: true, timeout: 10_000 };

function stats(over: Partial<GridStats> = {}): GridStats {
  const bounds = [...LATENCY_BOUNDS_MS];
  return {
    local: "ws://127.0.0.1:9000",
    instanceId: "abc123",
    uptimeMs: 12_345,
    connections: {
      "ws://127.0.0.1:9001": {
        state: "up",
        rttMs: 0.25,
        reconnects: 2,
        bytesIn: 1000,
        bytesOut: 2000,
        messagesIn: 10,
        messagesOut: 20,
        framesIn: 5,
        framesOut: 8,
        inFlight: { requests: 1, streams: 0 },
        serving: { requests: 0, streams: 3 },
      },
      'ws://"odd"\\host:9002': {
        state: "down",
        rttMs: null,
        reconnects: 0,
        bytesIn: 0,
        bytesOut: 0,
        messagesIn: 0,
        messagesOut: 0,
        framesIn: 0,
        framesOut: 0,
        inFlight: { requests: 0, streams: 0 },
        serving: { requests: 0, streams: 0 },
      },
    },
    handlers: {
      [HOSTILE]: {
        calls: 7,
        errors: 3,
        errorsByCode: { remote: 2, timeout: 1 },
        inFlight: 1,
        latencyMs: { p50: 1, p99: 40 },
        latencyBuckets: { boundsMs: bounds, counts: bounds.map((b) => (b < 1 ? 0 : b < 50 ? 4 : 6)), count: 6, sumMs: 75.5 },
      },
    },
    admin: { connections: 1 },
    rejectedHandshakes: {},
    ...over,
  };
}

describe("renderMetrics", () => {
  it("writes HELP and TYPE once per family, wsgrid_ names, _total on counters and base units", () => {
    const e = parseExposition(renderMetrics(stats()));
    assert.ok(e.samples.length > 20);
    for (const [name, type] of e.type) {
      assert.match(name, /^wsgrid_[a-z_]+$/, name);
      assert.ok(e.help.get(name)!.length > 0, `HELP of ${name}`);
      if (type === "counter") assert.match(name, /_total$/, name);
      else assert.doesNotMatch(name, /_total$/, name);
      assert.doesNotMatch(name, /_(ms|milliseconds|kb)$/, name);
    }
    for (const s of e.samples) assert.ok(familyOf(e, s.name) !== undefined, `${s.name} has a TYPE line`);
    assert.equal(find(e, "wsgrid_node_info")[0].labels.instance_id, "abc123");
    assert.equal(find(e, "wsgrid_uptime_seconds")[0].value, 12.345);
    assert.equal(find(e, "wsgrid_admin_connections")[0].value, 1);
  });

  it("escapes label values so that names with quotes, backslashes and newlines read back intact", () => {
    assert.equal(escapeLabelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
    const text = renderMetrics(stats());
    assert.ok(!text.includes(HOSTILE), "raw newline never reaches the output");
    const e = parseExposition(text);
    assert.deepEqual(find(e, "wsgrid_handler_calls_total").map((s) => [s.labels.handler, s.value]), [[HOSTILE, 7]]);
    assert.deepEqual(
      find(e, "wsgrid_handler_errors_total", { handler: HOSTILE }).map((s) => [s.labels.code, s.value]),
      [["remote", 2], ["timeout", 1]],
    );
    const odd = 'ws://"odd"\\host:9002';
    assert.equal(find(e, "wsgrid_connection_up", { remote: odd })[0].value, 0);
    assert.deepEqual(
      find(e, "wsgrid_connection_state", { remote: odd }).map((s) => [s.labels.state, s.value]),
      [["connecting", 0], ["up", 0], ["down", 1], ["closed", 0]],
    );
  });

  it("renders connection counters, gauges and the round-trip time in seconds", () => {
    const e = parseExposition(renderMetrics(stats()));
    const r = { remote: "ws://127.0.0.1:9001" };
    assert.equal(find(e, "wsgrid_connection_up", r)[0].value, 1);
    assert.equal(find(e, "wsgrid_connection_rtt_seconds", r)[0].value, 0.00025);
    assert.equal(find(e, "wsgrid_connection_rtt_seconds").length, 1, "no sample for a connection without a pong");
    assert.equal(find(e, "wsgrid_connection_reconnects_total", r)[0].value, 2);
    assert.equal(find(e, "wsgrid_connection_received_bytes_total", r)[0].value, 1000);
    assert.equal(find(e, "wsgrid_connection_sent_bytes_total", r)[0].value, 2000);
    assert.equal(find(e, "wsgrid_connection_received_messages_total", r)[0].value, 10);
    assert.equal(find(e, "wsgrid_connection_sent_messages_total", r)[0].value, 20);
    assert.equal(find(e, "wsgrid_connection_received_frames_total", r)[0].value, 5);
    assert.equal(find(e, "wsgrid_connection_sent_frames_total", r)[0].value, 8);
    assert.equal(find(e, "wsgrid_connection_calls_in_flight", { ...r, kind: "request" })[0].value, 1);
    assert.equal(find(e, "wsgrid_connection_calls_serving", { ...r, kind: "stream" })[0].value, 3);
  });

  it("renders latency as a cumulative histogram in seconds with +Inf, _sum and _count", () => {
    const e = parseExposition(renderMetrics(stats()));
    const buckets = find(e, "wsgrid_handler_duration_seconds_bucket", { handler: HOSTILE });
    assert.deepEqual(buckets.map((s) => s.labels.le), [...LATENCY_BOUNDS_MS.map((b) => String(b / 1000)), "+Inf"]);
    assert.equal(buckets[0].labels.le, "0.0001");
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i].value >= buckets[i - 1].value, "cumulative");
    assert.equal(buckets.at(-1)!.value, 6);
    assert.equal(find(e, "wsgrid_handler_duration_seconds_count", { handler: HOSTILE })[0].value, 6);
    assert.equal(find(e, "wsgrid_handler_duration_seconds_sum", { handler: HOSTILE })[0].value, 0.0755);
  });

  it("renders OpenMetrics: counter and info families without their sample suffix, UNIT lines, # EOF", () => {
    const om = parseExposition(renderMetrics(stats(), { format: "openmetrics" }));
    const prom = parseExposition(renderMetrics(stats()));
    assert.equal(om.openMetrics, true);
    assert.equal(prom.openMetrics, false);
    assert.deepEqual(om.samples, prom.samples, "the same samples in both formats");
    assert.equal(om.type.get("wsgrid_handler_calls"), "counter");
    assert.equal(om.type.has("wsgrid_handler_calls_total"), false);
    assert.equal(om.type.get("wsgrid_node"), "info");
    assert.equal(prom.type.get("wsgrid_node_info"), "gauge");
    assert.equal(om.unit.get("wsgrid_handler_duration_seconds"), "seconds");
    assert.equal(om.unit.get("wsgrid_connection_sent_bytes"), "bytes");
    for (const [family, unit] of om.unit) assert.ok(family.endsWith(`_${unit}`), family);
    for (const s of om.samples) assert.ok(familyOf(om, s.name) !== undefined, `${s.name} has a TYPE line`);
    for (const [family, type] of om.type) {
      assert.equal(om.help.get(family), prom.help.get(type === "counter" ? `${family}_total` : type === "info" ? `${family}_info` : family));
    }
  });

  it("renders rejected handshakes by reason when the stats carry them, and the empty family otherwise", () => {
    const without = parseExposition(renderMetrics(stats()));
    assert.equal(without.type.get("wsgrid_handshakes_rejected_total"), "counter");
    assert.equal(find(without, "wsgrid_handshakes_rejected_total").length, 0);
    const withRejected = { ...stats(), rejectedHandshakes: { "bad-mac": 4, "busy": 1 } };
    const e = parseExposition(renderMetrics(withRejected));
    assert.deepEqual(
      find(e, "wsgrid_handshakes_rejected_total").map((s) => [s.labels.reason, s.value]),
      [["bad-mac", 4], ["busy", 1]],
    );
  });
});

describe(`metrics of a live grid on ${runtime}`, () => {
  it("counts calls, errors by code and latency of served handlers, and the connection's traffic", { timeout: 60_000 }, async () => {
    const ports = await freePorts(2);
    const hosts = ports.map((p) => `ws://127.0.0.1:${p}`);
    const grids = hosts.map((local) =>
      new Manager({ local, hosts, secret: "s", pingInterval: 300, backoff: { base: 20, cap: 200 } })
    );
    const stops: (() => Promise<void>)[] = [];
    try {
      for (let i = 0; i < 2; i++) stops.push(await serveWithApp(grids[i], metricsHandler(grids[i]), ports[i]));
      grids[1].handle("echo", (req) => req);
      grids[1].handle("fail", () => {
        throw new Error("no");
      });
      grids[1].handle("slow", async (req) => {
        await new Promise((r) => setTimeout(r, 30));
        return req;
      });
      const conn = grids[0].connection(hosts[1]);
      for (let i = 0; i < 5; i++) await conn.request("echo", new Uint8Array([i]), WAIT);
      await assert.rejects(conn.request("fail", new Uint8Array(), WAIT), { code: "remote" });
      await conn.request("slow", new Uint8Array(), WAIT);

      const res = await fetch(`http://127.0.0.1:${ports[1]}/metrics`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), PROMETHEUS_CONTENT_TYPE);
      const e = parseExposition(await res.text());
      assert.equal(find(e, "wsgrid_handler_calls_total", { handler: "echo" })[0].value, 5);
      assert.equal(find(e, "wsgrid_handler_errors_total", { handler: "echo" }).length, 0);
      assert.equal(find(e, "wsgrid_handler_errors_total", { handler: "fail", code: "remote" })[0].value, 1);
      assert.equal(find(e, "wsgrid_handler_in_flight", { handler: "echo" })[0].value, 0);
      const slow = find(e, "wsgrid_handler_duration_seconds_bucket", { handler: "slow" });
      assert.equal(slow.find((s) => s.labels.le === "0.025")!.value, 0, "a 30 ms call is not under 25 ms");
      assert.equal(slow.find((s) => s.labels.le === "+Inf")!.value, 1);
      assert.ok(find(e, "wsgrid_handler_duration_seconds_sum", { handler: "slow" })[0].value >= 0.03);
      const r = { remote: hosts[0] };
      assert.equal(find(e, "wsgrid_connection_up", r)[0].value, 1);
      assert.ok(find(e, "wsgrid_connection_received_bytes_total", r)[0].value > 0);
      assert.ok(find(e, "wsgrid_connection_sent_frames_total", r)[0].value >= 7);
      assert.equal((await fetch(`http://127.0.0.1:${ports[1]}/elsewhere`)).status, 404);
    } finally {
      for (const g of grids) await g.close();
      for (const stop of stops) await stop();
    }
  });
});

describe("metricsHandler", () => {
  const grid = { path: "/grid/v1", stats: () => stats() };
  const get = (path: string, method = "GET") =>
    metricsHandler(grid)(new Request(`http://127.0.0.1:9000${path}`, { method }));

  it("answers GET and HEAD on its path, 405 for other methods, and leaves other paths to the app", async () => {
    const r = get("/metrics")!;
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("content-type"), PROMETHEUS_CONTENT_TYPE);
    assert.equal(await r.text(), renderMetrics(stats()));
    const head = get("/metrics", "HEAD")!;
    assert.equal(head.status, 200);
    assert.equal(head.body, null);
    assert.equal(get("/metrics", "POST")!.status, 405);
    for (const p of ["/", "/grid/v1", "/metrics/x", "/metricsx"]) assert.equal(get(p), undefined, p);
    const custom = metricsHandler(grid, { path: "/internal/prom" });
    assert.equal(custom(new Request("http://127.0.0.1:9000/internal/prom"))!.status, 200);
  });

  it("answers in OpenMetrics when the Accept header offers it, as Prometheus does", async () => {
    const h = metricsHandler(grid);
    const accept = (a: string) => h(new Request("http://127.0.0.1:9000/metrics", { headers: { accept: a } }))!;
    const prometheusDefault =
      "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    const om = accept(prometheusDefault);
    assert.equal(om.headers.get("content-type"), OPENMETRICS_CONTENT_TYPE);
    assert.equal(await om.text(), renderMetrics(stats(), { format: "openmetrics" }));
    assert.equal(accept("text/plain;version=0.0.4").headers.get("content-type"), PROMETHEUS_CONTENT_TYPE);
    assert.equal(accept("application/openmetrics-text;q=0, text/plain").headers.get("content-type"), PROMETHEUS_CONTENT_TYPE);
  });

  it("refuses a path that is not absolute or is the grid endpoint's", () => {
    assert.throws(() => metricsHandler(grid, { path: "metrics" }), TypeError);
    assert.throws(() => metricsHandler(grid, { path: "/grid/v1" }), TypeError);
  });
});
