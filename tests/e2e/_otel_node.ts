/**
 * One traced grid node for tests/e2e/otel_test.ts, runnable as
 * `deno run -A tests/e2e/_otel_node.ts CONFIG`, `bun run …` or `node …` (CONFIG is JSON:
 * `{ local, hosts, secret }`). It registers the OpenTelemetry SDK with an in-memory exporter,
 * installs `openTelemetry()` on its Manager, serves on the port of `local` and prints `READY`.
 * Then it reads one JSON command per line on stdin and answers with one JSON line on stdout:
 *
 * - `{ cmd: "call", to, via? }`: requests `hop` on `to` (passing `via`), answers `{ ok, value }`;
 * - `{ cmd: "spans" }`: the finished spans, as plain JSON;
 * - `{ cmd: "close" }`: closes the grid and the server, then exits by itself.
 *
 * Handlers: `hop` (payload: the URL of the next node, or empty) calls `leaf` on the next node
 * with `{ parent: ctx }` and answers what it got; `leaf` answers this node's name.
 *
 * @module
 */
import process from "node:process";
import { createInterface } from "node:readline";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { Manager } from "../../mod.ts";
import { serve } from "../../src/adapters/serve.ts";
import { openTelemetry } from "../../src/otel/mod.ts";

/** A finished span as the test reads it. */
export interface SpanJson {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  attributes: Record<string, unknown>;
  status: number;
  events: string[];
}

const config = JSON.parse(process.argv[2] ?? "{}") as { local: string; hosts: string[]; secret: string };
const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const grid = new Manager({ local: config.local, hosts: config.hosts, secret: config.secret, backoff: { base: 20, cap: 200 } });
grid.use(openTelemetry({ tracerProvider: provider }));
const enc = new TextEncoder();
const dec = new TextDecoder();

grid.handle("leaf", () => enc.encode(config.local));
grid.handle("hop", async (req, ctx) => {
  const next = dec.decode(req);
  if (next === "") return enc.encode(config.local);
  const got = await grid.connection(next).request("leaf", new Uint8Array(0), { parent: ctx, waitForConnect: true });
  return enc.encode(`${config.local} > ${dec.decode(got)}`);
});

const server = await serve(grid, { port: Number(new URL(config.local).port), hostname: "127.0.0.1" });
const print = (v: unknown) => process.stdout.write(JSON.stringify(v) + "\n");
print("READY");

const lines = createInterface({ input: process.stdin });
lines.on("line", async (line) => {
  const cmd = JSON.parse(line) as { cmd: string; to?: string; via?: string };
  try {
    if (cmd.cmd === "call") {
      const got = await grid.connection(cmd.to!).request("hop", enc.encode(cmd.via ?? ""), { waitForConnect: true, timeout: 10_000 });
      print({ ok: true, value: dec.decode(got) });
    } else if (cmd.cmd === "spans") {
      print({
        ok: true,
        value: exporter.getFinishedSpans().map((s): SpanJson => ({
          name: s.name,
          kind: s.kind,
          traceId: s.spanContext().traceId,
          spanId: s.spanContext().spanId,
          parentSpanId: s.parentSpanContext?.spanId ?? null,
          attributes: { ...s.attributes },
          status: s.status.code,
          events: s.events.map((e) => e.name),
        })),
      });
    } else if (cmd.cmd === "close") {
      await grid.close();
      await server.close();
      lines.close();
      print({ ok: true, value: null });
    }
  } catch (e) {
    print({ ok: false, error: String(e) });
  }
});
lines.on("close", () => {
  void grid.close().then(() => server.close());
});
