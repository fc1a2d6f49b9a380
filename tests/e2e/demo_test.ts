/**
 * The demo end to end: `node scripts/run_demo.mjs` as `npm run demo` runs it,
 * once plain and once with `--kill-one`; each must end with completed
 * operations, `invariant violations: 0` and exit code 0.
 *
 * It starts four processes on three runtimes and runs for seconds, so it runs
 * under the Node test runner only (the full suite runs every file under every
 * runtime: once is enough); the other runners skip it.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { detectRuntime } from "../../src/adapters/serve.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const runtime = detectRuntime();
const skip = runtime === "node" ? false : `the demo runs once per suite, under the node runner (this is ${runtime})`;

interface DemoRun {
  code: number | null;
  output: string;
}

/** Runs the demo with `args`; ends it (SIGINT, then SIGKILL) if it outlives `limitMs`. */
function runDemo(args: string[], limitMs: number): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, "scripts", "run_demo.mjs"), ...args], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Uint8Array) => output += chunk.toString());
    child.stderr.on("data", (chunk: Uint8Array) => output += chunk.toString());
    const timer = setTimeout(() => {
      output += "\n(test: the demo outlived its limit; interrupting it)\n";
      child.kill("SIGINT");
      setTimeout(() => child.kill("SIGKILL"), 10_000).unref();
    }, limitMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

function checkSummary(run: DemoRun): number {
  const ops = Number(/completed operations: (\d+)/.exec(run.output)?.[1] ?? NaN);
  const violations = Number(/invariant violations: (\d+)/.exec(run.output)?.[1] ?? NaN);
  assert.ok(ops > 0, `no completed operations in the summary:\n${run.output}`);
  assert.equal(violations, 0, `violations in the summary:\n${run.output}`);
  const tokens = /fencing tokens: +(\d+)\.\.(\d+) over (\d+) write holds, 0 not above/.exec(run.output);
  assert.ok(tokens, `a fencing-token range in the summary:\n${run.output}`);
  assert.ok(Number(tokens[2]) >= Number(tokens[1]) && Number(tokens[3]) > 0, tokens[0]);
  assert.equal(run.code, 0, `exit code ${run.code}:\n${run.output}`);
  return ops;
}

describe("demo: npm run demo", () => {
  it("runs 3 nodes for 8 s with completed operations and 0 violations", { skip, timeout: 120_000 }, async () => {
    const run = await runDemo(["--duration", "8"], 60_000);
    checkSummary(run);
    assert.match(run.output, /node1\(\w+\).*node2\(\w+\).*node3\(\w+\)/);
    assert.match(run.output, /ops\/s/);
  });

  it("counts violations and exits 1 with --no-quorum (the checker is not vacuous)", { skip, timeout: 120_000 }, async () => {
    const run = await runDemo(["--duration", "3", "--no-quorum"], 60_000);
    const violations = Number(/invariant violations: (\d+)/.exec(run.output)?.[1] ?? NaN);
    assert.ok(violations > 0, `expected violations without a quorum:\n${run.output}`);
    assert.equal(run.code, 1, `exit code ${run.code}:\n${run.output}`);
  });

  it("keeps locking through --kill-one and shows the node rejoin", { skip, timeout: 120_000 }, async () => {
    const run = await runDemo(["--duration", "12", "--kill-one"], 80_000);
    checkSummary(run);
    assert.match(run.output, /kill -9 node3/);
    assert.match(run.output, /rejoined after/);
  });
});
