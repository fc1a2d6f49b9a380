/**
 * Tracing across three processes: a Deno node A, a Bun node B and a Node node C
 * (tests/e2e/_otel_node.ts), each with the OpenTelemetry SDK and an in-memory exporter.
 * A calls `hop` on B, whose handler calls `leaf` on C with `{ parent: ctx }`; the spans
 * collected from the three processes (JSON over stdout) form one trace: A's client span,
 * B's server span under it, B's client span under that, C's server span under that.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface, type Interface } from "node:readline";
import { bin, freePorts, ROOT } from "./_subprocess.ts";
import type { SpanJson } from "./_otel_node.ts";

const PROGRAM = "tests/e2e/_otel_node.ts";
const READY_MS = 30_000;
const REPLY_MS = 15_000;
const TEST = { timeout: 120_000 };
const SPAN_KIND_SERVER = 1;
const SPAN_KIND_CLIENT = 2;
const STATUS_UNSET = 0;

type Runtime = "deno" | "bun" | "node";

/** A node process and its reply lines, one per command, in order. */
class OtelNode {
  readonly proc: ChildProcess;
  private readonly lines: Interface;
  private readonly waiting: ((line: string) => void)[] = [];
  private readonly queued: string[] = [];
  readonly output: string[] = [];
  readonly runtime: Runtime;
  readonly url: string;

  constructor(runtime: Runtime, url: string, hosts: string[]) {
    this.runtime = runtime;
    this.url = url;
    const config = JSON.stringify({ local: url, hosts, secret: "otel e2e secret" });
    const args = runtime === "deno" ? ["run", "-A", PROGRAM, config] : runtime === "bun" ? ["run", PROGRAM, config] : [PROGRAM, config];
    this.proc = spawn(bin(runtime), args, { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"] });
    this.proc.stderr!.on("data", (d: Uint8Array) => this.output.push(String(d)));
    this.lines = createInterface({ input: this.proc.stdout! });
    this.lines.on("line", (line) => {
      this.output.push(line);
      const w = this.waiting.shift();
      if (w !== undefined) w(line);
      else this.queued.push(line);
    });
  }

  /** The next line, within `ms`. */
  next(ms: number, what: string): Promise<string> {
    const q = this.queued.shift();
    if (q !== undefined) return Promise.resolve(q);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`${this.runtime} node: no ${what} within ${ms} ms; output:\n${this.output.slice(-20).join("\n")}`));
      }, ms);
      this.waiting.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
    });
  }

  async ready(): Promise<void> {
    assert.equal(JSON.parse(await this.next(READY_MS, "READY")), "READY");
  }

  async command<T>(cmd: Record<string, unknown>): Promise<T> {
    this.proc.stdin!.write(JSON.stringify(cmd) + "\n");
    const reply = JSON.parse(await this.next(REPLY_MS, `reply to ${cmd.cmd}`)) as { ok: boolean; value?: T; error?: string };
    if (!reply.ok) throw new Error(`${this.runtime} node: ${cmd.cmd} failed: ${reply.error}`);
    return reply.value as T;
  }

  /** Asks the node to close, then waits for it to exit (killing it after the bound). */
  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.proc.once("exit", () => resolve()));
    try {
      await this.command({ cmd: "close" });
      this.proc.stdin!.end();
    } catch {
      // Already gone.
    }
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  }
}

describe("OpenTelemetry across three processes (Deno → Bun → Node)", () => {
  const nodes: OtelNode[] = [];

  before(async () => {
    const ports = await freePorts(3);
    const hosts = ports.map((p) => `ws://127.0.0.1:${p}`);
    const runtimes: Runtime[] = ["deno", "bun", "node"];
    for (let i = 0; i < 3; i++) nodes.push(new OtelNode(runtimes[i], hosts[i], hosts));
    await Promise.all(nodes.map((n) => n.ready()));
  });

  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  });

  it("a call A → B whose handler calls C yields one trace with parented client and server spans on all three", TEST, async () => {
    const [a, b, c] = nodes;
    const got = await a.command<string>({ cmd: "call", to: b.url, via: c.url });
    assert.equal(got, `${b.url} > ${c.url}`);
    const [sa, sb, sc] = await Promise.all(nodes.map((n) => n.command<SpanJson[]>({ cmd: "spans" })));
    const only = (spans: SpanJson[], kind: number, name: string, where: string) => {
      const found = spans.filter((s) => s.kind === kind && s.name === name);
      assert.equal(found.length, 1, `${where}: spans ${JSON.stringify(spans)}`);
      return found[0];
    };
    const aClient = only(sa, SPAN_KIND_CLIENT, "hop", "A (deno) client span");
    const bServer = only(sb, SPAN_KIND_SERVER, "hop", "B (bun) server span");
    const bClient = only(sb, SPAN_KIND_CLIENT, "leaf", "B (bun) client span");
    const cServer = only(sc, SPAN_KIND_SERVER, "leaf", "C (node) server span");
    const trace = aClient.traceId;
    for (const s of [bServer, bClient, cServer]) assert.equal(s.traceId, trace, `span ${s.name} is in another trace`);
    assert.equal(aClient.parentSpanId, null, "A's client span is the root");
    assert.equal(bServer.parentSpanId, aClient.spanId, "B's server span is a child of A's client span");
    assert.equal(bClient.parentSpanId, bServer.spanId, "B's nested client span is a child of its server span");
    assert.equal(cServer.parentSpanId, bClient.spanId, "C's server span is a child of B's client span");
    for (const s of [aClient, bServer, bClient, cServer]) {
      assert.equal(s.attributes["rpc.system"], "wsgrid");
      assert.equal(s.attributes["rpc.method"], s.name);
      assert.equal(s.status, STATUS_UNSET);
    }
    assert.equal(aClient.attributes["server.address"], "127.0.0.1");
    assert.equal(aClient.attributes["server.port"], Number(new URL(b.url).port));
    assert.equal(bClient.attributes["server.port"], Number(new URL(c.url).port));
    assert.equal(bServer.attributes["wsgrid.remote"], a.url);
  });
});
