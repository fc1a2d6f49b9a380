/**
 * "No promise left behind" (issue 14): random, seeded sequences of requests, streams, cancels,
 * aborts, disconnects and kills across two nodes (tests/e2e/_no_promise_left.ts, run as a child
 * process of this runtime, with node B as its own child). Every promise handed out settles,
 * neither side keeps a call in flight or served, and both processes exit by themselves after
 * close().
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
import { join } from "node:path";
import { ROOT } from "./_cluster.ts";
import { detectRuntime } from "../../src/adapters/serve.ts";

const runtime = detectRuntime();
const BIN = join(ROOT, "node_modules", ".bin");
const DRIVER = "tests/e2e/_no_promise_left.ts";
/** Fixed seeds, so a failure replays; each seed is one process with its own sequences. */
const SEEDS = [14, 1_414];
const RUNS = 12;
const EXIT_MS = 150_000;

function command(): { cmd: string; args: string[] } {
  if (runtime === "deno") return { cmd: join(BIN, "deno"), args: ["run", "-A", DRIVER] };
  if (runtime === "bun") return { cmd: join(BIN, "bun"), args: ["run", DRIVER] };
  return { cmd: join(BIN, "node"), args: [DRIVER] };
}

function runDriver(seed: number): Promise<{ code: number | null; output: string }> {
  const { cmd, args } = command();
  const child = spawn(cmd, [...args, String(seed), String(RUNS)], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
  });
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      output += `\n(killed: did not exit within ${EXIT_MS} ms)`;
    }, EXIT_MS);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe("no promise left behind", () => {
  for (const seed of SEEDS) {
    it(`seed ${seed}: every promise settles, nothing stays in flight, both processes exit after close()`, async () => {
      const { code, output } = await runDriver(seed);
      const line = output.split("\n").find((l) => l.startsWith("RESULT "));
      assert.ok(line !== undefined, `no RESULT line; output:\n${output.slice(-4000)}`);
      const result = JSON.parse(line.slice("RESULT ".length));
      assert.equal(result.failure, null, `property failed: ${result.failure}`);
      assert.equal(result.bExit, 0, "node B did not exit by itself after close()");
      assert.ok(result.promises > 0, "no promise was handed out");
      assert.equal(code, 0, `the driver did not exit cleanly by itself; output:\n${output.slice(-4000)}`);
    });
  }
});
