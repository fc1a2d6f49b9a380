/**
 * Helpers of the end-to-end suites that run other programs: a bounded `run()` that captures
 * output, the paths of the repository's runtimes, and free loopback ports.
 *
 * @module
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { freePorts } from "../_net.ts";

export { freePorts };

/** The repository root. */
export const ROOT: string = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The runner executing this test file. */
export const runner: "deno" | "bun" | "node" = "Deno" in globalThis
  ? "deno"
  : "Bun" in globalThis
  ? "bun"
  : "node";

/** A binary of node_modules/.bin (the repository's Deno, Bun, Node 24, tsc). */
export function bin(name: string): string {
  return join(ROOT, "node_modules", ".bin", name);
}

/** `npm` as found on PATH (the runtimes come from npm, so npm is always there). */
export const NPM = "npm";

/** How a run ended. */
export interface RunResult {
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  /** The signal that ended it, if any. */
  signal: string | null;
  /** Whether `timeoutMs` passed and the process was killed. */
  timedOut: boolean;
  stdout: string;
  stderr: string;
  /** Wall-clock duration, ms. */
  ms: number;
}

/** Options of {@link run}. */
export interface RunOptions {
  cwd?: string;
  /** Added to this process's environment. */
  env?: Record<string, string>;
  /** Kill the process (SIGKILL) when it runs longer. */
  timeoutMs: number;
}

/**
 * Runs `cmd args` to completion, capturing stdout and stderr; never rejects for a non-zero
 * exit or a timeout (see the result), only when the command cannot be started.
 */
export function run(cmd: string, args: string[], opts: RunOptions): Promise<RunResult> {
  const started = performance.now();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout?.setEncoding("utf8").on("data", (s: string) => stdout += s);
    child.stderr?.setEncoding("utf8").on("data", (s: string) => stderr += s);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, opts.timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, timedOut, stdout, stderr, ms: performance.now() - started });
    });
  });
}

/** A multi-line description of a run, for assertion messages. */
export function describeRun(what: string, res: RunResult): string {
  const how = res.timedOut ? "timed out (killed)" : `exited with code ${res.code}${res.signal ? ` (${res.signal})` : ""}`;
  return `${what} ${how} after ${Math.round(res.ms)} ms\n--- stdout ---\n${res.stdout}\n--- stderr ---\n${res.stderr}`;
}

/** Whether every runtime binary the suites need is installed. */
export function runtimesInstalled(): boolean {
  return ["deno", "bun", "node"].every((name) => existsSync(bin(name)));
}

/**
 * A port `p` such that `p` and `p + 1` were both free a moment ago on 127.0.0.1, for programs
 * that take one port and use the next one too.
 */
export async function freePortPair(): Promise<number> {
  return (await freePorts(1, true))[0];
}
