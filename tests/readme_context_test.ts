/**
 * The README's sections on call metadata, nested calls, interceptors and OpenTelemetry are
 * programs: each `ts` block there is run as written, in a process of the runtime running this
 * file, with the package imports pointed at the sources and ports 9000/9001 replaced by free
 * ones; the test asserts the output the README says it prints.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bin, freePorts, ROOT, run, runner } from "./e2e/_subprocess.ts";

const TEST = { timeout: 90_000 };
const README = readFileSync(join(ROOT, "README.md"), "utf8");
const DIR = join(ROOT, ".tmp", "readme");

/** The `ts` blocks between two headings of the README. */
function blocks(from: string, to: string): string[] {
  const start = README.indexOf(from);
  const end = README.indexOf(to, start);
  assert.ok(start >= 0 && end > start, `README sections "${from}" … "${to}" not found`);
  return [...README.slice(start, end).matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
}

const IMPORTS: Record<string, string> = {
  '"wsgrid"': '"../../mod.ts"',
  '"wsgrid/serve"': '"../../src/adapters/serve.ts"',
  '"wsgrid/otel"': '"../../src/otel/mod.ts"',
};

/** Runs a README block with free ports; returns its stdout and the two ports. */
async function runBlock(name: string, code: string): Promise<{ out: string; urls: string[] }> {
  const ports = await freePorts(2);
  let src = code.replaceAll("9000", String(ports[0])).replaceAll("9001", String(ports[1]));
  for (const [from, to] of Object.entries(IMPORTS)) src = src.replaceAll(`from ${from}`, `from ${to}`);
  mkdirSync(DIR, { recursive: true });
  const file = join(DIR, `${name}.${runner}.ts`);
  writeFileSync(file, src);
  const args = runner === "deno" ? ["run", "-A", file] : runner === "bun" ? ["run", file] : ["--no-warnings", file];
  const res = await run(bin(runner), args, { cwd: ROOT, timeoutMs: 60_000 });
  assert.equal(res.code, 0, `${name} exited with ${res.code}:\n${res.stdout}\n${res.stderr}`);
  return { out: res.stdout, urls: ports.map((p) => `ws://127.0.0.1:${p}`) };
}

describe(`README call context and OpenTelemetry examples run as written (${runner})`, () => {
  const [metadata, parent, interceptors] = blocks("## Call context: metadata", "## OpenTelemetry");
  const [otel] = blocks("## OpenTelemetry", "## Prometheus metrics");

  it("metadata: the handler reads ctx.metadata", TEST, async () => {
    const { out, urls } = await runBlock("metadata", metadata);
    assert.equal(out.trim(), `user 42 from ${urls[0]}`);
  });

  it("parent: the caller's deadline reaches the nested call's handler", TEST, async () => {
    const { out } = await runBlock("parent", parent);
    assert.deepEqual(out.trim().split("\n").sort(), ["front failed: TimeoutError", "slow aborted: TimeoutError"]);
  });

  it("interceptors: an auth check refuses with unauthorized, onEnd observes the outcomes", TEST, async () => {
    const { out, urls } = await runBlock("interceptors", interceptors);
    assert.deepEqual(out.trim().split("\n"), [
      `served report for ${urls[0]}: ok`,
      "admin.reset: unauthorized",
      `served admin.reset for ${urls[0]}: ok`,
    ]);
  });

  it("OpenTelemetry: one trace of four spans, each under the one before", TEST, async () => {
    const { out } = await runBlock("otel", otel);
    assert.equal(out.trim(), "client hop > server hop > client leaf > server leaf (1 trace)");
  });
});
