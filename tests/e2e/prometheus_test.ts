/**
 * A real Prometheus (Debian's `prometheus` package) scrapes the `/metrics` of a
 * 3-node grid served with this runtime's embedding helper, every 500 ms on
 * loopback; the test then asks Prometheus's HTTP API for the request count and
 * the latency histogram of a handler that was called. Prometheus asks for
 * OpenMetrics, so a second job scrapes `/metrics-text`, served without the
 * request's Accept header, to have Prometheus read the text format 0.0.4 too.
 * Skipped with a message when `prometheus` is not on PATH (`apt-get install prometheus`).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import process from "node:process";
import { Manager } from "../../mod.ts";
import { detectRuntime } from "../../src/adapters/serve.ts";
import { metricsHandler } from "../../src/metrics/mod.ts";
import { freePorts } from "../_net.ts";
import { serveWithApp } from "../_serve_app.ts";

const runtime = detectRuntime();
const SLOW_MS = 40;
const CALLS = 6;
/** Upper bound of each wait on Prometheus: start-up, and the first scrapes of every target. */
const WAIT_MS = 20_000;

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const p = join(dir, name);
    if (dir !== "" && existsSync(p)) return p;
  }
  return undefined;
}

const PROMETHEUS = onPath("prometheus");
const skip = PROMETHEUS === undefined
  ? "prometheus is not on PATH (Debian: apt-get install prometheus)"
  : false;
if (skip) console.log(`# skipping the Prometheus scrape test: ${skip}`);

interface QueryResult {
  metric: Record<string, string>;
  value: [number, string];
}

describe(`Prometheus scraping a 3-node grid on ${runtime}`, () => {
  const grids: Manager[] = [];
  const stops: (() => Promise<void>)[] = [];
  let prom: ChildProcess | undefined;
  let promLog = "";
  let dir = "";
  let api = "";
  let targets: string[] = [];

  async function query(q: string): Promise<QueryResult[]> {
    const res = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(q)}`);
    const body = await res.json() as { status: string; data?: { resultType: string; result: QueryResult[] }; error?: string };
    if (body.status !== "success") throw new Error(`Query ${q} failed: ${body.error}`);
    return body.data!.result;
  }

  /** Polls `q` until `ok` holds for its result, at most WAIT_MS. */
  async function until(q: string, ok: (r: QueryResult[]) => boolean): Promise<QueryResult[]> {
    const end = Date.now() + WAIT_MS;
    let last: QueryResult[] = [];
    while (Date.now() < end) {
      try {
        last = await query(q);
        if (ok(last)) return last;
      } catch {
        // Not ready yet.
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`Prometheus did not answer ${q} as expected within ${WAIT_MS} ms; last: ${JSON.stringify(last)}\n${promLog}`);
  }

  before(async () => {
    if (skip) return;
    const ports = await freePorts(4);
    const gridPorts = ports.slice(0, 3);
    const hosts = gridPorts.map((p) => `ws://127.0.0.1:${p}`);
    targets = gridPorts.map((p) => `127.0.0.1:${p}`);
    for (let i = 0; i < 3; i++) {
      const g = new Manager({ local: hosts[i], hosts, secret: "s", pingInterval: 300, backoff: { base: 20, cap: 200 } });
      grids.push(g);
      g.handle("slow", async (req) => {
        await new Promise((r) => setTimeout(r, SLOW_MS));
        return req;
      });
      const metrics = metricsHandler(g);
      const text = metricsHandler(g, { path: "/metrics-text" });
      const app = (req: Request) => metrics(req) ?? text(new Request(req.url, { method: req.method }));
      stops.push(await serveWithApp(g, app, gridPorts[i]));
    }
    // Node 0 calls "slow" on nodes 1 and 2.
    const wait = { waitForConnect: true, timeout: 10_000 };
    for (let i = 0; i < CALLS; i++) {
      await Promise.all([1, 2].map((n) => grids[0].connection(hosts[n]).request("slow", new Uint8Array([i]), wait)));
    }
    dir = mkdtempSync(join(tmpdir(), "wsgrid-prom-"));
    const config = [
      "global:",
      "  scrape_interval: 500ms",
      "  scrape_timeout: 400ms",
      "scrape_configs:",
      "  - job_name: wsgrid",
      "    static_configs:",
      `      - targets: [${targets.map((t) => `"${t}"`).join(", ")}]`,
      "  - job_name: wsgrid-text",
      "    metrics_path: /metrics-text",
      "    static_configs:",
      `      - targets: [${targets.map((t) => `"${t}"`).join(", ")}]`,
      "",
    ].join("\n");
    writeFileSync(join(dir, "prometheus.yml"), config);
    api = `http://127.0.0.1:${ports[3]}`;
    prom = spawn(PROMETHEUS!, [
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${ports[3]}`,
      "--log.level=warn",
    ], { stdio: ["ignore", "pipe", "pipe"] });
    const keep = (b: Uint8Array) => {
      promLog = (promLog + new TextDecoder().decode(b)).slice(-4000);
    };
    prom.stdout!.on("data", keep);
    prom.stderr!.on("data", keep);
  });

  after(async () => {
    if (prom !== undefined && prom.exitCode === null) {
      const exited = new Promise<void>((r) => prom!.once("exit", () => r()));
      prom.kill("SIGTERM");
      const timer = setTimeout(() => prom!.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }
    for (const g of grids) await g.close();
    for (const stop of stops) await stop();
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  it("finds every node up and the request count of the called handler", { skip, timeout: 60_000 }, async () => {
    const up = await until("up", (r) => r.length === 6 && r.every((s) => s.value[1] === "1"));
    assert.deepEqual(up.map((s) => `${s.metric.job} ${s.metric.instance}`).sort(), [
      ...targets.map((t) => `wsgrid ${t}`),
      ...targets.map((t) => `wsgrid-text ${t}`),
    ].sort());
    // Metadata names the families as each format does: OpenMetrics drops the sample suffix.
    const metadata = async (metric: string) => {
      const res = await fetch(`${api}/api/v1/metadata?metric=${metric}`);
      return ((await res.json()) as { data: Record<string, { type: string }[]> }).data[metric]?.map((m) => m.type);
    };
    const end = Date.now() + WAIT_MS;
    while (Date.now() < end && ((await metadata("wsgrid_node")) === undefined || (await metadata("wsgrid_node_info")) === undefined)) {
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.deepEqual(await metadata("wsgrid_node"), ["info"], "the wsgrid job was scraped as OpenMetrics");
    assert.deepEqual(await metadata("wsgrid_node_info"), ["gauge"], "the wsgrid-text job was scraped as text 0.0.4");
    for (const job of ["wsgrid", "wsgrid-text"]) {
      const calls = await until(`wsgrid_handler_calls_total{handler="slow",job="${job}"}`, (r) => r.length === 2);
      assert.deepEqual(calls.map((s) => s.metric.instance).sort(), targets.slice(1).sort());
      for (const s of calls) assert.equal(Number(s.value[1]), CALLS, `calls on ${s.metric.instance} (${job})`);
      const conns = await query(`wsgrid_connection_up{instance="${targets[0]}",job="${job}"}`);
      assert.equal(conns.length, 2, `node 0 reports its two connections (${job})`);
      for (const s of conns) assert.equal(s.value[1], "1");
    }
  });

  it("reads the handler's latency as a histogram: count, buckets and a quantile", { skip, timeout: 60_000 }, async () => {
    for (const job of ["wsgrid", "wsgrid-text"]) {
      const sel = `handler="slow",job="${job}"`;
      const count = await until(`wsgrid_handler_duration_seconds_count{${sel}}`, (r) => r.length === 2);
      for (const s of count) assert.equal(Number(s.value[1]), CALLS);
      const buckets = await query(`wsgrid_handler_duration_seconds_bucket{${sel},instance="${targets[1]}"}`);
      const byLe = new Map(buckets.map((s) => [s.metric.le, Number(s.value[1])]));
      assert.equal(byLe.get("+Inf"), CALLS, `${job}: ${JSON.stringify([...byLe])}`);
      const at25 = [...byLe].find(([le]) => Number(le) === 0.025);
      assert.equal(at25?.[1], 0, `no ${SLOW_MS} ms call under 25 ms (${job})`);
      // histogram_quantile works only on series Prometheus parsed as buckets with an `le` label.
      const q = await query(`histogram_quantile(0.5, sum by (le) (wsgrid_handler_duration_seconds_bucket{${sel}}))`);
      assert.equal(q.length, 1);
      const p50 = Number(q[0].value[1]);
      // Prometheus interpolates within the bucket holding the rank: every call took over 25 ms.
      assert.ok(p50 > 0.025 && p50 <= 10, `p50 ${p50} s lies above the 25 ms bucket, as the ${SLOW_MS} ms calls do (${job})`);
    }
  });
});
