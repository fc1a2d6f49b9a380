/**
 * `wsgrid/otel` in one process over real WebSockets, with the OpenTelemetry SDK and an
 * in-memory exporter: span kinds, names, RPC attributes, parentage through metadata and
 * `parent`, error status from the error code, a stream as one span with message events, a
 * Client's outgoing spans, and a core that never imports the OpenTelemetry API.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { Manager, RemoteError, UnauthorizedError } from "../mod.ts";
import { Client } from "../src/client.ts";
import { type GridServer, serve } from "../src/adapters/serve.ts";
import { openTelemetry } from "../src/otel/mod.ts";
import { freeUrls } from "./_net.ts";

const SECRET = "otel test secret";
const TOKEN = "otel test token";
const TEST = { timeout: 60_000 };
const EMPTY = new Uint8Array(0);
const ROOT = fileURLToPath(new URL("..", import.meta.url));

interface Node {
  url: string;
  grid: Manager;
  server: GridServer;
  exporter: InMemorySpanExporter;
}

async function startNode(url: string, hosts: string[]): Promise<Node> {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const grid = new Manager({ local: url, hosts, secret: SECRET, backoff: { base: 20, cap: 200 }, admin: { tokens: [TOKEN] } });
  grid.use(openTelemetry({ tracerProvider: provider }));
  const server = await serve(grid, { port: Number(new URL(url).port), hostname: "127.0.0.1" });
  return { url, grid, server, exporter };
}

/** Waits until `exporter` holds a span matching `pred` (spans end asynchronously on the other side). */
async function spanWhere(exporter: InMemorySpanExporter, pred: (s: ReadableSpan) => boolean, what: string): Promise<ReadableSpan> {
  const until = Date.now() + 5_000;
  for (;;) {
    const s = exporter.getFinishedSpans().find(pred);
    if (s !== undefined) return s;
    if (Date.now() > until) throw new Error(`No ${what} span in ${JSON.stringify(exporter.getFinishedSpans().map((x) => x.name))}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("wsgrid/otel", () => {
  let a: Node;
  let b: Node;

  before(async () => {
    const hosts = await freeUrls(2);
    [a, b] = await Promise.all(hosts.map((h) => startNode(h, hosts)));
    b.grid.handle("echo", (req) => req, { readOnly: true });
    b.grid.handle("fail", () => {
      throw Object.assign(new Error("no such bucket"), { code: "ENOENT" });
    });
    b.grid.handle("guarded", () => EMPTY);
    b.grid.use({ incoming: (call, next) => call.handler === "guarded" ? Promise.reject(new UnauthorizedError("no")) : next() });
    b.grid.handle("nested", (_req, ctx) => b.grid.connection(a.url).request("leaf", EMPTY, { parent: ctx }));
    a.grid.handle("leaf", (_req, ctx) => new TextEncoder().encode(ctx.metadata.traceparent));
    b.grid.handleStream("tail", async (call) => {
      const w = call.responses.getWriter();
      for await (const r of call.requests!) await w.write(r);
      await w.close();
    });
    await a.grid.connection(b.url).waitForConnect({ timeout: 10_000 });
  });

  after(async () => {
    for (const n of [a, b]) {
      await n?.grid.close();
      await n?.server.close();
    }
  });

  it("a request has a client span and a server span under it, with the RPC attributes", TEST, async () => {
    await a.grid.connection(b.url).request("echo", EMPTY);
    const client = await spanWhere(a.exporter, (s) => s.name === "echo" && s.kind === SpanKind.CLIENT, "client");
    const server = await spanWhere(b.exporter, (s) => s.name === "echo" && s.kind === SpanKind.SERVER, "server");
    assert.equal(server.spanContext().traceId, client.spanContext().traceId);
    assert.equal(server.parentSpanContext?.spanId, client.spanContext().spanId);
    assert.equal(client.attributes["rpc.system"], "wsgrid");
    assert.equal(client.attributes["rpc.method"], "echo");
    assert.equal(client.attributes["server.address"], "127.0.0.1");
    assert.equal(client.attributes["server.port"], Number(new URL(b.url).port));
    assert.equal(server.attributes["wsgrid.remote"], a.url);
    assert.equal(client.status.code, SpanStatusCode.UNSET);
  });

  it("a failed or refused call sets status ERROR and error.type from the error code", TEST, async () => {
    const conn = a.grid.connection(b.url);
    await assert.rejects(conn.request("fail", EMPTY), RemoteError);
    await assert.rejects(conn.request("guarded", EMPTY), UnauthorizedError);
    const fail = await spanWhere(a.exporter, (s) => s.name === "fail", "fail client");
    assert.equal(fail.status.code, SpanStatusCode.ERROR);
    assert.equal(fail.attributes["error.type"], "remote");
    const served = await spanWhere(b.exporter, (s) => s.name === "fail", "fail server");
    assert.equal(served.attributes["error.type"], "Error");
    const refused = await spanWhere(a.exporter, (s) => s.name === "guarded", "guarded client");
    assert.equal(refused.attributes["error.type"], "unauthorized");
  });

  it("a nested call with { parent: ctx } is a child of the handler's server span, and carries it in traceparent", TEST, async () => {
    const got = new TextDecoder().decode(await a.grid.connection(b.url).request("nested", EMPTY));
    const outer = await spanWhere(b.exporter, (s) => s.name === "nested" && s.kind === SpanKind.SERVER, "nested server");
    const inner = await spanWhere(b.exporter, (s) => s.name === "leaf" && s.kind === SpanKind.CLIENT, "leaf client");
    const leaf = await spanWhere(a.exporter, (s) => s.name === "leaf" && s.kind === SpanKind.SERVER, "leaf server");
    assert.equal(inner.parentSpanContext?.spanId, outer.spanContext().spanId);
    assert.equal(leaf.parentSpanContext?.spanId, inner.spanContext().spanId);
    assert.equal(got, `00-${inner.spanContext().traceId}-${leaf.spanContext().spanId}-01`, "the handler sees its own server span");
  });

  it("a stream is one span per side with a message event per message", TEST, async () => {
    const st = await a.grid.connection(b.url).newStream("tail", EMPTY);
    const w = st.requests!.getWriter();
    for (let i = 0; i < 3; i++) await w.write(Uint8Array.of(i));
    await w.close();
    let n = 0;
    for await (const _ of st.responses) n++;
    assert.equal(n, 3);
    const client = await spanWhere(a.exporter, (s) => s.name === "tail" && s.kind === SpanKind.CLIENT, "stream client");
    const server = await spanWhere(b.exporter, (s) => s.name === "tail" && s.kind === SpanKind.SERVER, "stream server");
    const types = (s: ReadableSpan) => s.events.filter((e) => e.name === "message").map((e) => e.attributes?.["rpc.message.type"]);
    assert.deepEqual(types(client).filter((t) => t === "SENT").length, 3);
    assert.deepEqual(types(client).filter((t) => t === "RECEIVED").length, 3);
    assert.deepEqual(types(server).filter((t) => t === "RECEIVED").length, 3);
    assert.equal(server.parentSpanContext?.spanId, client.spanContext().spanId);
    assert.equal(client.attributes["wsgrid.call.kind"], "stream");
  });

  it("a Client with the outgoing interceptor opens client spans that the node's server spans continue", TEST, async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    await using client = new Client(`${b.url}/grid/v1`, { token: TOKEN, outgoing: [openTelemetry({ tracerProvider: provider }).outgoing!] });
    await client.request("echo", EMPTY, { waitForConnect: true });
    const span = await spanWhere(exporter, (s) => s.name === "echo", "client echo");
    const server = await spanWhere(b.exporter, (s) => s.name === "echo" && s.attributes["wsgrid.remote"] === "admin", "admin echo");
    assert.equal(server.parentSpanContext?.spanId, span.spanContext().spanId);
  });

  it("the core never imports @opentelemetry (only src/otel/ does)", () => {
    const files: string[] = [join(ROOT, "mod.ts")];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const p = join(dir, name);
        if (statSync(p).isDirectory()) {
          if (name !== "otel") walk(p);
        } else if (name.endsWith(".ts")) files.push(p);
      }
    };
    walk(join(ROOT, "src"));
    assert.ok(files.length > 40);
    for (const f of files) {
      assert.ok(!/from\s+["']@opentelemetry\//.test(readFileSync(f, "utf8")), `${f} imports @opentelemetry`);
    }
  });
});
