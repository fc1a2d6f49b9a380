#!/usr/bin/env node
/**
 * Runs a set of test suites against the built npm package (`npm/`) instead of the sources, on
 * Node 24 or Bun: the check "npm build: tests on <runtime>" of scripts/run_tests.mjs.
 *
 * 1. Builds `npm/` with scripts/build_npm.ts unless a build newer than every input is there
 *    (the same freshness rule as tests/e2e/npm_package_test.ts).
 * 2. Copies the chosen test files into a temporary directory, rewriting their imports:
 *    `../mod.ts` -> `wsgrid`, each other deno.json export (`../src/adapters/serve.ts`,
 *    `../src/client.ts`, `../src/locks/mod.ts`, ...) -> `wsgrid/<subpath>`, resolved through
 *    `node_modules/wsgrid` (a symlink to `npm/`) and so through the package's `exports` map;
 *    internal modules a test reaches into (`../src/protocol/frame.ts`) -> the compiled
 *    `npm/esm/src/protocol/frame.js`. Any `../` import left over fails the run.
 * 3. Runs them there with `node --test` or `bun test` (one file at a time, like run_tests.mjs)
 *    and exits with the runner's exit code.
 *
 * Plain ESM JavaScript, like run_tests.mjs; the runtimes are those of node_modules/.bin.
 *
 * Usage: node scripts/test_npm_build.mjs --runtime node|bun [--no-build] [--keep] [suite...]
 *   suite   a test file name under tests/ without `_test.ts` (default: SUITES below)
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const BIN = path.join(ROOT, "node_modules", ".bin");
const NPM_DIR = path.join(ROOT, "npm");
const TESTS_DIR = path.join(ROOT, "tests");
/** The suites run against the package: the public API end to end on every entry point they use. */
const SUITES = ["grid", "stream", "typed", "admin", "locks", "lifecycle"];
/** The inputs of scripts/build_npm.ts: a build older than any of them is rebuilt. */
const BUILD_INPUTS = ["mod.ts", "src", "deno.json", "package.json", "scripts/build_npm.ts", "README.md", "LICENSE"];
const PER_TEST_TIMEOUT_MS = 60_000;
const BUILD_TIMEOUT_MS = 180_000;
const RUN_TIMEOUT_MS = 10 * 60_000;

function usage(message) {
  if (message) console.error(`test_npm_build: ${message}`);
  console.error("Usage: node scripts/test_npm_build.mjs --runtime node|bun [--no-build] [--keep] [suite...]");
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { runtime: null, build: true, keep: false, suites: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--runtime") opts.runtime = argv[++i];
    else if (arg.startsWith("--runtime=")) opts.runtime = arg.slice("--runtime=".length);
    else if (arg === "--no-build") opts.build = false;
    else if (arg === "--keep") opts.keep = true;
    else if (arg === "-h" || arg === "--help") usage();
    else if (arg.startsWith("-")) usage(`unknown option ${arg}`);
    else opts.suites.push(arg.replace(/_test\.ts$/, ""));
  }
  if (opts.runtime !== "node" && opts.runtime !== "bun") usage("--runtime must be node or bun");
  if (opts.suites.length === 0) opts.suites = [...SUITES];
  return opts;
}

function newestMtime(p) {
  if (!fs.existsSync(p)) return 0;
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(0, ...fs.readdirSync(p).map((name) => newestMtime(path.join(p, name))));
}

function buildIsFresh() {
  const built = path.join(NPM_DIR, "package.json");
  if (!fs.existsSync(built)) return false;
  return fs.statSync(built).mtimeMs > Math.max(...BUILD_INPUTS.map((p) => newestMtime(path.join(ROOT, p))));
}

function seconds(ms) {
  return `${(ms / 1000).toFixed(1)}s`;
}

function env() {
  return { ...process.env, DENO_NO_UPDATE_CHECK: "1" };
}

/** deno.json exports as a map from the source path relative to the root to the package specifier. */
function publicSpecifiers() {
  const exportsMap = JSON.parse(fs.readFileSync(path.join(ROOT, "deno.json"), "utf8")).exports;
  const built = JSON.parse(fs.readFileSync(path.join(NPM_DIR, "package.json"), "utf8"));
  const map = new Map();
  for (const [key, source] of Object.entries(typeof exportsMap === "string" ? { ".": exportsMap } : exportsMap)) {
    if (!(key in built.exports)) continue; // skipped by the build (source missing)
    map.set(path.normalize(source), key === "." ? built.name : `${built.name}/${key.slice(2)}`);
  }
  return map;
}

/**
 * Rewrites the relative imports of one test file (source text) for the temp directory; returns
 * the new text and the relative test-local files it imports (copied alongside).
 */
function rewriteImports(file, text, publicMap, outDir) {
  const local = [];
  const problems = [];
  const fromDir = path.dirname(file);
  const rewritten = text.replace(
    /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(["'])(\.{1,2}\/[^"']+)\2/g,
    (whole, lead, quote, spec) => {
      const abs = path.resolve(fromDir, spec);
      const rel = path.relative(ROOT, abs);
      if (abs.startsWith(TESTS_DIR + path.sep)) {
        local.push(abs); // a helper next to the tests: copied, keeps its relative specifier
        return whole;
      }
      const pub = publicMap.get(path.normalize(rel));
      if (pub) return `${lead}${quote}${pub}${quote}`;
      if (/^(src\/|mod\.ts$)/.test(rel) && rel.endsWith(".ts")) {
        const compiled = path.join(NPM_DIR, "esm", rel.replace(/\.ts$/, ".js"));
        if (!fs.existsSync(compiled)) {
          problems.push(`${spec}: ${path.relative(ROOT, compiled)} is not in the build`);
          return whole;
        }
        let target = path.relative(outDir, compiled).split(path.sep).join("/");
        if (!target.startsWith(".")) target = `./${target}`;
        return `${lead}${quote}${target}${quote}`;
      }
      problems.push(`${spec}: outside tests/ and not a source of the package`);
      return whole;
    },
  );
  return { text: rewritten, local, problems };
}

function prepare(suites, outDir) {
  const publicMap = publicSpecifiers();
  fs.mkdirSync(path.join(outDir, "node_modules"), { recursive: true });
  fs.symlinkSync(NPM_DIR, path.join(outDir, "node_modules", built().name), "dir");
  fs.writeFileSync(
    path.join(outDir, "package.json"),
    JSON.stringify({ name: "wsgrid-npm-build-tests", private: true, type: "module" }, null, 2) + "\n",
  );
  const queue = suites.map((s) => {
    const file = path.join(TESTS_DIR, `${s}_test.ts`);
    if (!fs.existsSync(file)) usage(`no test file ${path.relative(ROOT, file)}`);
    return file;
  });
  const done = new Set();
  const problems = [];
  while (queue.length > 0) {
    const file = queue.shift();
    if (done.has(file)) continue;
    done.add(file);
    const target = path.join(outDir, path.relative(TESTS_DIR, file));
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const res = rewriteImports(file, fs.readFileSync(file, "utf8"), publicMap, path.dirname(target));
    problems.push(...res.problems.map((p) => `${path.relative(ROOT, file)}: ${p}`));
    queue.push(...res.local);
    fs.writeFileSync(target, res.text);
  }
  if (problems.length > 0) {
    throw new Error(`Cannot run the tests against npm/: unresolved imports\n  ${problems.join("\n  ")}`);
  }
  return suites.map((s) => `./${s}_test.ts`);
}

function built() {
  return JSON.parse(fs.readFileSync(path.join(NPM_DIR, "package.json"), "utf8"));
}

function runnerCommand(runtime, files) {
  if (runtime === "node") {
    return [
      path.join(BIN, "node"),
      ["--test", "--test-concurrency=1", `--test-timeout=${PER_TEST_TIMEOUT_MS}`, "--test-reporter=spec", ...files],
    ];
  }
  return [path.join(BIN, "bun"), ["test", "--timeout", String(PER_TEST_TIMEOUT_MS), ...files]];
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const t0 = performance.now();
  if (buildIsFresh()) {
    console.log("test_npm_build: npm/ is up to date");
  } else if (!opts.build) {
    console.error("test_npm_build: npm/ is missing or older than its sources (run without --no-build)");
    process.exit(1);
  } else {
    const res = spawnSync(path.join(BIN, "deno"), ["run", "-A", "scripts/build_npm.ts"], {
      cwd: ROOT,
      env: env(),
      stdio: "inherit",
      timeout: BUILD_TIMEOUT_MS,
    });
    if (res.status !== 0) {
      console.error(`test_npm_build: the build failed (${res.error?.message ?? `exit code ${res.status}`})`);
      process.exit(1);
    }
  }
  const t1 = performance.now();

  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), `wsgrid-npm-tests-${opts.runtime}-`));
  let code = 1;
  try {
    const files = prepare(opts.suites, outDir);
    const [cmd, args] = runnerCommand(opts.runtime, files);
    console.log(`test_npm_build: ${opts.runtime}: ${files.length} suite(s) against npm/ (imports from "wsgrid") in ${outDir}`);
    const res = spawnSync(cmd, args, { cwd: outDir, env: env(), stdio: "inherit", timeout: RUN_TIMEOUT_MS });
    code = res.status ?? 1;
    if (res.error) console.error(`test_npm_build: ${res.error.message}`);
    const t2 = performance.now();
    console.log(
      `test_npm_build: ${opts.runtime} ${code === 0 ? "passed" : `failed (exit code ${code})`}: ` +
        `${opts.suites.join(", ")} (build ${seconds(t1 - t0)}, tests ${seconds(t2 - t1)})`,
    );
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
  } finally {
    if (opts.keep) console.log(`test_npm_build: kept ${outDir}`);
    else fs.rmSync(outDir, { recursive: true, force: true });
  }
  process.exit(code);
}

main();
