#!/usr/bin/env node
/**
 * Long mode of the reliability suite, under the Node runner (node_modules/.bin/node):
 *
 * 1. tests/fuzz_test.ts with WSGRID_FUZZ_FRAMES=1000000; its result goes to
 *    .tmp/reliability/fuzz.node.json.
 * 2. tests/e2e/reliability_test.ts with WSGRID_LONG=1 (5-minute in-process soak, 2-minute
 *    cross-runtime soak, 100,000-stream churn), which renders docs/RELIABILITY.md at its end.
 * 3. tests/e2e/lock_history_test.ts with WSGRID_LONG=1: the lock history checker for 120 s
 *    (lock-node kills, holder pauses past the lease, a fenced register).
 *
 * Usage: node scripts/reliability.mjs [--soak-seconds N] [--xsoak-seconds N] [--frames N] [--no-fuzz]
 * Exits 1 when a step fails. Plain ESM JavaScript so that the system Node can start it.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const NODE = path.join(ROOT, "node_modules", ".bin", "node");
const RESULTS_DIR = path.join(ROOT, ".tmp", "reliability");
const USAGE = "Usage: node scripts/reliability.mjs [--soak-seconds N] [--xsoak-seconds N] [--frames N] [--no-fuzz]";

function parseArgs(argv) {
  const opts = { soakSeconds: null, xsoakSeconds: null, frames: 1_000_000, fuzz: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v <= 0) fail(`${a} needs a positive integer\n${USAGE}`);
      return v;
    };
    if (a === "--soak-seconds") opts.soakSeconds = value();
    else if (a === "--xsoak-seconds") opts.xsoakSeconds = value();
    else if (a === "--frames") opts.frames = value();
    else if (a === "--no-fuzz") opts.fuzz = false;
    else if (a === "-h" || a === "--help") {
      console.log(USAGE);
      process.exit(0);
    } else fail(`Unknown argument ${a}\n${USAGE}`);
  }
  return opts;
}

function fail(message) {
  console.error(`reliability: ${message}`);
  process.exit(2);
}

/** Runs `node args` from the root with `env` added; echoes and returns its output. */
function runNode(args, env) {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, args, {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (s) => {
      out += s;
      process.stdout.write(s);
    });
    child.stderr.setEncoding("utf8").on("data", (s) => process.stderr.write(s));
    child.once("error", reject);
    child.once("close", (code, signal) => resolve({ code, signal, out, ms: performance.now() - started }));
  });
}

async function main() {
  if (!fs.existsSync(NODE)) fail("node_modules/.bin/node is missing: run npm ci first");
  const opts = parseArgs(process.argv.slice(2));
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  let ok = true;

  if (opts.fuzz) {
    console.log(`== fuzz: ${opts.frames.toLocaleString("en-US")} frames (node)`);
    fs.rmSync(path.join(RESULTS_DIR, "fuzz.node.json"), { force: true });
    const res = await runNode(["--test", "--test-reporter=spec", "tests/fuzz_test.ts"], { WSGRID_FUZZ_FRAMES: String(opts.frames) });
    const m = /fuzz: seed (\d+) .*?, (\d+) frames, (\d+) handshake payloads/.exec(res.out);
    if (res.code !== 0 || m === null) {
      console.error(`reliability: the fuzz run failed (exit code ${res.code}${res.signal ? `, ${res.signal}` : ""})`);
      ok = false;
    } else {
      const result = {
        scenario: "fuzz",
        title: `Fuzzed frames: ${Number(m[2]).toLocaleString("en-US")}`,
        runner: "node",
        setup: `tests/fuzz_test.ts with WSGRID_FUZZ_FRAMES=${m[2]}, seed ${m[1]} (replay with WSGRID_FUZZ_SEED=${m[1]})`,
        mode: "long",
        at: new Date().toISOString(),
        durationMs: Math.round(res.ms),
        bound: "every input decodes or raises ProtocolError (no other exception, no unbounded allocation)",
        figures: [
          { name: "frames decoded or refused with ProtocolError", value: Number(m[2]), unit: "" },
          { name: "handshake payloads", value: Number(m[3]), unit: "" },
          { name: "inputs failing otherwise", value: 0, unit: "", bound: 0, op: "=" },
        ],
      };
      fs.writeFileSync(path.join(RESULTS_DIR, "fuzz.node.json"), JSON.stringify(result, null, 2) + "\n");
    }
  }

  console.log("== reliability suite, long mode (node)");
  const env = { WSGRID_LONG: "1" };
  if (opts.soakSeconds !== null) env.WSGRID_SOAK_SECONDS = String(opts.soakSeconds);
  if (opts.xsoakSeconds !== null) env.WSGRID_XSOAK_SECONDS = String(opts.xsoakSeconds);
  const res = await runNode(["--test", "--test-reporter=spec", "tests/e2e/reliability_test.ts"], env);
  if (res.code !== 0) {
    console.error(`reliability: the suite failed (exit code ${res.code}${res.signal ? `, ${res.signal}` : ""})`);
    ok = false;
  }
  console.log("== lock history checker, long mode (node)");
  const history = await runNode(["--test", "--test-reporter=spec", "tests/e2e/lock_history_test.ts"], { WSGRID_LONG: "1" });
  if (history.code !== 0) {
    console.error(`reliability: the lock history checker failed (exit code ${history.code}${history.signal ? `, ${history.signal}` : ""})`);
    ok = false;
  }
  console.log(ok ? "reliability: long mode passed; docs/RELIABILITY.md regenerated" : "reliability: long mode FAILED");
  process.exitCode = ok ? 0 : 1;
}

await main();
