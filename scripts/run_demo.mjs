#!/usr/bin/env node
/**
 * `npm run demo`: installs the dev dependencies when needed (as scripts/run_tests.mjs does),
 * then runs the demo orchestrator scripts/demo/main.ts on Node 24 (node_modules/.bin/node)
 * with the arguments given (`npm run demo -- --duration 20 --kill-one`), and exits with its
 * exit code.
 *
 * Plain ESM JavaScript so that the system Node (v20+) can start it on a fresh clone.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { BIN, ensureDeps, ROOT } from "./_deps.mjs";

const deps = ensureDeps("run_demo");
if (deps.error !== null) {
  console.error(`run_demo: ${deps.error}`);
  process.exit(1);
}

const child = spawn(path.join(BIN, "node"), [path.join(ROOT, "scripts", "demo", "main.ts"), ...process.argv.slice(2)], {
  cwd: ROOT,
  stdio: "inherit",
});
// Ctrl-C reaches the orchestrator too (same process group): it stops the nodes and prints the
// summary; this wrapper only waits for it.
const ignore = () => {};
process.on("SIGINT", ignore);
process.on("SIGTERM", () => child.kill("SIGTERM"));
child.on("error", (e) => {
  console.error(`run_demo: cannot start ${path.join(BIN, "node")}: ${e.message}`);
  process.exit(1);
});
child.on("exit", (code, signal) => {
  process.exit(code ?? (signal === "SIGINT" ? 130 : 1));
});
