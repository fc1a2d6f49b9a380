#!/usr/bin/env node
/**
 * Runs the whole test suite: every `tests/**\/*_test.ts` under Deno, Bun and Node 24 (the
 * binaries of node_modules/.bin), plus the checks of CHECKS (lint, type check), each check
 * counting as one test. Counts come from each runtime's JUnit report. Ends with exactly one
 * plain line `N passed, N failed` (`, N skipped` when any were skipped) and exits 1 when
 * anything failed or no test ran.
 *
 * Plain ESM JavaScript so that the system Node (v20+) can start it on a fresh machine; it
 * installs the dev dependencies first (`npm ci`) when they are missing or stale.
 *
 * Usage: node scripts/run_tests.mjs [options] [filter...]   (see --help)
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { leafTests } from "./_junit.mjs";
import { installReason } from "./_deps.mjs";
import { runGroup } from "./_process.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const BIN = path.join(ROOT, "node_modules", ".bin");
const RESULTS_DIR = path.join(ROOT, ".tmp", "test-results", String(process.pid));
const RUNTIMES = ["deno", "bun", "node"];
const DEFAULT_TIMEOUT_S = 15 * 60;
/** Per-test timeout for Bun (`--timeout`) and Node (`--test-timeout`); Deno has none. */
const PER_TEST_TIMEOUT_MS = 60_000;
/**
 * Node runs each test file in its own subprocess. One at a time: the machine has 2 shared
 * cores, Deno and Bun also run files one after another, and the end-to-end suites start
 * several server processes each and depend on pings and deadlines firing on time; two files in
 * parallel would compete for the same 2 cores and turn those into flaky timeouts. (Node's own
 * default on 2 cores is availableParallelism() - 1 = 1 too; stating it keeps runs identical on
 * bigger machines.) Override with WSGRID_NODE_CONCURRENCY.
 */
const NODE_CONCURRENCY = process.env.WSGRID_NODE_CONCURRENCY ?? "1";

/**
 * Checks that count as one test each: passed when the command exits 0 within the timeout.
 * `cmd` is a binary of node_modules/.bin or a command on PATH; `args` is an array or a function
 * returning one (called when the check starts). They run from the repository root in this
 * order, before the runtimes, or after them with `after: true`. Add entries here (e.g. the npm
 * build and the packed-tarball tests).
 */
const CHECKS = [
  { name: "lint", cmd: "deno", args: ["task", "lint"] },
  { name: "deno lint", cmd: "deno", args: ["lint", "mod.ts", "src"] },
  { name: "client bundle is current", cmd: "deno", args: ["run", "-A", "scripts/build_client.ts", "--check"] },
  {
    name: "type check",
    cmd: "deno",
    args: () => [
      "check",
      ...["mod.ts", "src", "scripts"].filter((p) => fs.existsSync(path.join(ROOT, p))),
      // examples/browser/ is a page's script, resolved by the browser against the server.
      ...fs.readdirSync(path.join(ROOT, "examples")).filter((n) => n.endsWith(".ts")).map((n) => path.join("examples", n)),
      // tests/type_errors/ holds code that must fail to type-check (tests/type_check_test.ts).
      ...fs.readdirSync(path.join(ROOT, "tests"))
        .filter((name) => name !== "type_errors")
        .map((name) => path.join("tests", name)),
    ],
  },
  {
    // Every entry point of deno.json `exports`: JSDoc on public symbols, no private type refs,
    // explicit types (what JSR's score and `deno publish` check).
    name: "doc lint",
    cmd: "deno",
    // --quiet drops the "Failed resolving types" warnings about @types/node; errors still print.
    args: () => ["doc", "--lint", "--quiet", ...denoExports()],
  },
  // Slow types, publish.include and the exports map, as JSR would check them; runs offline (the
  // npm dependencies resolve from node_modules; nothing is uploaded).
  { name: "publish dry run", cmd: "deno", args: ["publish", "--dry-run", "--allow-dirty", "--quiet"] },
  // The suites of scripts/test_npm_build.mjs (grid, stream, typed, admin, locks) run against the
  // built npm package (`npm/`, rebuilt when stale) instead of the sources; one check per runtime.
  {
    name: "npm build: tests on node",
    cmd: "node",
    args: ["scripts/test_npm_build.mjs", "--runtime", "node"],
    after: true,
  },
  {
    name: "npm build: tests on bun",
    cmd: "node",
    args: ["scripts/test_npm_build.mjs", "--runtime", "bun"],
    after: true,
  },
  // The built package (npm/, left by the checks above) as npm would publish it: exports, files
  // and package.json fields (publint), and types that resolve for ESM consumers under node16 and
  // bundler resolution (attw; the package is ESM only, so CJS-only resolutions are not goals).
  { name: "npm package: publint", cmd: "publint", args: ["--strict", "npm"], after: true },
  {
    name: "npm package: are the types wrong",
    cmd: "attw",
    args: ["--pack", "npm", "--profile", "esm-only", "--format", "table-flipped"],
    after: true,
  },
];

/** The source files of deno.json `exports`. */
function denoExports() {
  const exportsMap = JSON.parse(fs.readFileSync(path.join(ROOT, "deno.json"), "utf8")).exports ?? {};
  return Object.values(typeof exportsMap === "string" ? { ".": exportsMap } : exportsMap);
}

const CHECK_NAMES = CHECKS.map((c) => c.name).join(", ");
const USAGE = `Usage: node scripts/run_tests.mjs [options] [filter...]

Runs every tests/**/*_test.ts under Deno, Bun and Node, then prints "N passed, N failed".

Options:
  --runtime deno|bun|node   run only this runtime (repeatable or comma-separated;
                            env WSGRID_TEST_RUNTIMES, e.g. "deno,node")
  --dir DIR                 look for *_test.ts under DIR instead of tests/
  --checks / --no-checks    run or skip the checks (${CHECK_NAMES});
                            by default they run unless filters or --dir are given
  --timeout SECONDS         wall-clock limit per runtime run and per check
                            (env WSGRID_TEST_TIMEOUT, default ${DEFAULT_TIMEOUT_S})
  --no-install              do not check node_modules / run npm ci first
  filter                    a test file, a directory, or a substring of a test file's path

Env: WSGRID_NODE_CONCURRENCY (node --test-concurrency, default 1).
JUnit reports are kept in .tmp/test-results/<pid>/.`;

// ---------------------------------------------------------------------------------------------
// Command line

function parseArgs(argv) {
  const opts = {
    runtimes: [],
    dir: null,
    checks: null,
    timeoutS: Number(process.env.WSGRID_TEST_TIMEOUT ?? DEFAULT_TIMEOUT_S),
    install: true,
    filters: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf("=");
    const flag = arg.startsWith("--") && eq > 0 ? arg.slice(0, eq) : arg;
    const value = () => {
      if (arg.startsWith("--") && eq > 0) return arg.slice(eq + 1);
      if (i + 1 >= argv.length) usageError(`Missing value for ${flag}`);
      return argv[++i];
    };
    switch (flag) {
      case "-h":
      case "--help":
        console.log(USAGE);
        process.exit(0);
        break;
      case "--runtime":
        opts.runtimes.push(...splitList(value()));
        break;
      case "--dir":
        opts.dir = path.resolve(value());
        break;
      case "--checks":
        opts.checks = true;
        break;
      case "--no-checks":
        opts.checks = false;
        break;
      case "--timeout":
        opts.timeoutS = Number(value());
        break;
      case "--no-install":
        opts.install = false;
        break;
      case "--":
        opts.filters.push(...argv.slice(i + 1));
        i = argv.length;
        break;
      default:
        if (arg.startsWith("-")) usageError(`Unknown option ${arg}`);
        opts.filters.push(arg);
    }
  }
  if (opts.runtimes.length === 0) opts.runtimes = splitList(process.env.WSGRID_TEST_RUNTIMES ?? "");
  if (opts.runtimes.length === 0) opts.runtimes = [...RUNTIMES];
  for (const r of opts.runtimes) {
    if (!RUNTIMES.includes(r)) {
      usageError(`Unknown runtime "${r}" (expected ${RUNTIMES.join(", ")})`);
    }
  }
  opts.runtimes = RUNTIMES.filter((r) => opts.runtimes.includes(r));
  if (!(opts.timeoutS > 0)) {
    usageError("--timeout / WSGRID_TEST_TIMEOUT must be a positive number of seconds");
  }
  if (opts.checks === null) opts.checks = opts.filters.length === 0 && opts.dir === null;
  return opts;
}

function splitList(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}

function usageError(message) {
  console.error(`run_tests: ${message}\n\n${USAGE}`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Dependencies

// ---------------------------------------------------------------------------------------------
// Processes

function childEnv() {
  const env = { ...process.env, DENO_NO_UPDATE_CHECK: "1" };
  // Output goes through a pipe (to keep its tail): keep colours on a terminal, and none in logs
  // (Deno colours even when its output is not a terminal).
  if (env.NO_COLOR === undefined && env.FORCE_COLOR === undefined) {
    if (process.stdout.isTTY) env.FORCE_COLOR = "1";
    else env.NO_COLOR = "1";
  }
  return env;
}

/** Runs a binary of node_modules/.bin (or a command on PATH) from the root. */
function run(cmd, args, timeoutS) {
  const local = path.join(BIN, cmd);
  const exe = fs.existsSync(local) ? local : cmd;
  return runGroup(exe, args, { cwd: ROOT, env: childEnv(), timeoutS });
}

// ---------------------------------------------------------------------------------------------
// Test files

function findTests(dir) {
  const found = [];
  const walk = (d) => {
    let entries;
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      if (e.name.startsWith(".") || e.name === "node_modules") continue;
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && e.name.endsWith("_test.ts")) found.push(p);
    }
  };
  walk(dir);
  return found;
}

function selectTests(all, filters) {
  if (filters.length === 0) return all;
  const selected = new Set();
  for (const filter of filters) {
    const abs = path.resolve(filter);
    let matched;
    if (fs.existsSync(abs) && fs.statSync(abs).isDirectory()) {
      matched = all.filter((f) => f.startsWith(abs + path.sep));
      if (matched.length === 0) matched = findTests(abs);
    } else if (fs.existsSync(abs)) {
      matched = [abs];
    } else {
      matched = all.filter((f) => f.includes(filter));
    }
    if (matched.length === 0) usageError(`No test file matches "${filter}"`);
    for (const f of matched) selected.add(f);
  }
  return [...selected];
}

/** A test file path as a runtime argument: relative to the root when inside it. */
function fileArg(file) {
  const rel = path.relative(ROOT, file);
  return rel.startsWith("..") || path.isAbsolute(rel) ? file : `./${rel}`;
}

// ---------------------------------------------------------------------------------------------
// Runs

const RUNTIME_COMMANDS = {
  // Type errors are reported once, by the "type check" check, instead of aborting the Deno run.
  deno: (files, junit) => ({
    cmd: "deno",
    args: ["test", "-A", "--no-check", `--junit-path=${junit}`, ...files.map(fileArg)],
  }),
  bun: (files, junit) => ({
    cmd: "bun",
    args: [
      "test",
      "--timeout",
      String(PER_TEST_TIMEOUT_MS),
      "--reporter=junit",
      `--reporter-outfile=${junit}`,
      ...files.map(fileArg),
    ],
  }),
  node: (files, junit) => ({
    cmd: "node",
    args: [
      "--test",
      `--test-concurrency=${NODE_CONCURRENCY}`,
      `--test-timeout=${PER_TEST_TIMEOUT_MS}`,
      "--test-reporter=spec",
      "--test-reporter-destination=stdout",
      "--test-reporter=junit",
      `--test-reporter-destination=${junit}`,
      ...files.map(fileArg),
    ],
  }),
};

function banner(text) {
  console.log(`\n${"=".repeat(8)} ${text} ${"=".repeat(Math.max(4, 72 - text.length))}`);
}

async function runRuntime(runtime, files, timeoutS) {
  const junit = path.join(RESULTS_DIR, `${runtime}.xml`);
  fs.rmSync(junit, { force: true });
  const { cmd, args } = RUNTIME_COMMANDS[runtime](files, junit);
  banner(`${runtime}: ${files.length} test file(s)`);
  const res = await run(cmd, args, timeoutS);
  const report = fs.existsSync(junit) ? fs.readFileSync(junit, "utf8") : "";
  const leaves = leafTests(report, runtime);
  const failedCases = leaves.filter((c) => c.failed);
  const skipped = leaves.filter((c) => !c.failed && c.skipped).length;
  /** Failures the report does not show, each with the number of failed tests it counts for. */
  const problems = [];
  const problem = (text, count = 1) => problems.push({ text, count });
  if (res.timedOut) problem(`timed out after ${timeoutS}s (process tree killed)`);
  // Bun reports errors outside tests (in hooks, at load time, unhandled) only in its summary.
  const bunErrors = runtime === "bun"
    ? Number(/^\s*(\d+) errors?\s*$/m.exec(stripAnsi(res.tail))?.[1] ?? 0)
    : 0;
  if (bunErrors > 0) {
    problem(`${bunErrors} error(s) outside tests (see the output above)`, bunErrors);
  }
  if (!res.timedOut && bunErrors === 0 && res.code !== 0 && failedCases.length === 0) {
    problem(
      report
        ? `exited with code ${res.code} but its report has no failing test ` +
          "(a hook, a load error or an unhandled error; see the output above)"
        : `exited with code ${res.code} without writing a report (see the output above)`,
    );
  }
  if (!res.timedOut && leaves.length === 0 && problems.length === 0) problem("reported no tests");
  if (res.leftovers) problem("left processes running after it exited (they were killed)");
  return {
    name: runtime,
    passed: leaves.length - failedCases.length - skipped,
    failed: failedCases.length + problems.reduce((n, p) => n + p.count, 0),
    skipped,
    ran: leaves.length,
    failures: [
      ...failedCases.map((c) =>
        c.file && c.title !== c.file ? `${c.title}  (${displayPath(c.file)})` : c.title
      ),
      ...problems.map((p) => p.text),
    ],
    ms: res.ms,
  };
}

async function runCheck(check, timeoutS) {
  const args = typeof check.args === "function" ? check.args() : check.args;
  banner(`check: ${check.name}`);
  const res = await run(check.cmd, args, timeoutS);
  const ok = res.code === 0 && !res.timedOut;
  if (res.leftovers) {
    console.error(`run_tests: ${check.name} left processes behind; they were killed`);
  }
  const why = res.timedOut ? `timed out after ${timeoutS}s` : `exited with code ${res.code}`;
  return {
    name: check.name,
    check: true,
    passed: ok ? 1 : 0,
    failed: ok ? 0 : 1,
    skipped: 0,
    ran: 0,
    failures: ok ? [] : [`${check.cmd} ${args.join(" ")}: ${why}`],
    ms: res.ms,
  };
}

function displayPath(file) {
  const abs = path.resolve(ROOT, file);
  const rel = path.relative(ROOT, abs);
  return rel.startsWith("..") ? abs : rel;
}

function stripAnsi(s) {
  // deno-lint-ignore no-control-regex
  return s.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "");
}

function seconds(ms) {
  return `${(ms / 1000).toFixed(1)}s`;
}

function printSummary(results, notes, totalMs) {
  banner("summary");
  for (const note of notes) console.log(note);
  const width = Math.max(...results.map((r) => r.name.length));
  for (const r of results) {
    const counts = r.check
      ? r.failed ? "failed" : "passed"
      : `${r.passed} passed, ${r.failed} failed${r.skipped ? `, ${r.skipped} skipped` : ""}`;
    console.log(`${r.name.padEnd(width)}  ${counts}  (${seconds(r.ms)})`);
    const shown = r.failures.slice(0, 25);
    for (const f of shown) console.log(`${" ".repeat(width)}    ✗ ${f}`);
    if (r.failures.length > shown.length) {
      console.log(`${" ".repeat(width)}    … and ${r.failures.length - shown.length} more`);
    }
  }
  console.log(`total time ${seconds(totalMs)}`);
}

async function main() {
  const started = performance.now();
  const opts = parseArgs(process.argv.slice(2));
  const notes = [];

  if (opts.install) {
    const reason = installReason();
    if (reason) {
      const hasLock = fs.existsSync(path.join(ROOT, "package-lock.json"));
      const cmd = hasLock ? "ci" : "install";
      banner(`npm ${cmd} (${reason})`);
      const t0 = performance.now();
      const res = spawnSync("npm", [cmd], { cwd: ROOT, stdio: "inherit" });
      const note = `installed dependencies with npm ${cmd} (${reason}) in ${
        seconds(performance.now() - t0)
      }`;
      if (res.status !== 0 || installReason()) {
        console.error(
          `run_tests: npm ${cmd} failed (${res.error?.message ?? `exit code ${res.status}`})`,
        );
        console.log("0 passed, 1 failed");
        process.exit(1);
      }
      notes.push(note);
    }
  }

  const testDir = opts.dir ?? path.join(ROOT, "tests");
  const files = selectTests(findTests(testDir), opts.filters);
  fs.mkdirSync(RESULTS_DIR, { recursive: true });

  const results = [];
  const checks = opts.checks ? CHECKS : [];
  for (const check of checks.filter((c) => !c.after)) {
    results.push(await runCheck(check, opts.timeoutS));
  }
  if (files.length === 0) {
    notes.push(`no *_test.ts files under ${path.relative(ROOT, testDir) || "."}`);
  } else {
    for (const runtime of opts.runtimes) {
      results.push(await runRuntime(runtime, files, opts.timeoutS));
    }
  }
  for (const check of checks.filter((c) => c.after)) {
    results.push(await runCheck(check, opts.timeoutS));
  }

  printSummary(results, notes, performance.now() - started);
  const sum = (key) => results.reduce((n, r) => n + r[key], 0);
  const passed = sum("passed");
  const failed = sum("failed");
  const skipped = sum("skipped");
  const ranTests = sum("ran") > 0;
  if (!ranTests) console.log("run_tests: no test ran");
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
  process.exitCode = failed > 0 || !ranTests ? 1 : 0;
}

await main();
