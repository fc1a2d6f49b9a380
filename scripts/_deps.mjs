/**
 * Dev dependencies for the repository scripts (plain ESM for the system Node 20+): the same
 * check as scripts/run_tests.mjs — the runtimes of node_modules/.bin must exist and
 * node_modules must not be older than package-lock.json — and `npm ci` (or `npm install`
 * without a lock file) when it fails.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const BIN = path.join(ROOT, "node_modules", ".bin");
export const RUNTIMES = ["deno", "bun", "node"];

/** Why node_modules needs (re)installing, or null when it is up to date. */
export function installReason() {
  for (const name of RUNTIMES) {
    if (!fs.existsSync(path.join(BIN, name))) return `node_modules/.bin/${name} is missing`;
  }
  const lock = path.join(ROOT, "package-lock.json");
  const hidden = path.join(ROOT, "node_modules", ".package-lock.json");
  if (!fs.existsSync(lock)) return null;
  if (!fs.existsSync(hidden)) return "node_modules/.package-lock.json is missing";
  if (fs.statSync(lock).mtimeMs > fs.statSync(hidden).mtimeMs) {
    return "package-lock.json is newer than node_modules";
  }
  return null;
}

/**
 * Installs the dev dependencies when {@link installReason} says so.
 *
 * @param {string} who the script name, for messages
 * @returns {{ installed: boolean, reason: string | null, error: string | null }}
 */
export function ensureDeps(who) {
  const reason = installReason();
  if (reason === null) return { installed: false, reason: null, error: null };
  const cmd = fs.existsSync(path.join(ROOT, "package-lock.json")) ? "ci" : "install";
  console.log(`${who}: npm ${cmd} (${reason})`);
  const res = spawnSync("npm", [cmd], { cwd: ROOT, stdio: "inherit" });
  if (res.status !== 0 || installReason() !== null) {
    return { installed: false, reason, error: `npm ${cmd} failed (${res.error?.message ?? `exit code ${res.status}`})` };
  }
  return { installed: true, reason, error: null };
}
