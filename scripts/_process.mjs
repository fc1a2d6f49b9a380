/**
 * Child processes for scripts/run_tests.mjs: each command runs in its own process group so a
 * timeout or an interrupt can end its whole tree, and processes it leaves behind are found and
 * ended too.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

/** Time between SIGTERM and SIGKILL when a run times out. */
const KILL_GRACE_MS = 5_000;
/** Time after the command exits before looking for processes it left in its group. */
const SETTLE_MS = 300;
/** Time to wait for the output pipes to close once the group is gone. */
const DRAIN_MS = 5_000;
/** Bytes of output kept for the caller to inspect. */
const TAIL_CHARS = 65_536;

const active = new Set();

function onSignal(signal) {
  for (const pid of active) killGroup(pid, "SIGKILL");
  console.error(`\nrun_tests: interrupted by ${signal}`);
  process.exit(130);
}
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether a live (not zombie) process is in group `pgid`. Reads /proc where there is one, since
 * kill(-pgid, 0) also succeeds for zombies that an init process has not reaped yet.
 */
function groupAlive(pgid) {
  let pids;
  try {
    pids = fs.readdirSync("/proc").filter((name) => /^\d+$/.test(name));
  } catch {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  }
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(pgrp) === pgid && state !== "Z" && state !== "X") return true;
    } catch {
      // The process ended while we looked.
    }
  }
  return false;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * @typedef {object} RunResult
 * @property {number} code exit code (128 + n when killed by a signal, 127 when it did not start)
 * @property {boolean} timedOut whether the wall-clock limit ended it
 * @property {boolean} leftovers whether processes it started outlived it (they were killed)
 * @property {string} tail the last 64 KiB of its output, stdout and stderr interleaved
 * @property {number} ms wall-clock duration
 */

/**
 * Runs `cmd args` from `cwd` in a new process group, passing its output through to ours.
 *
 * @param {string} cmd
 * @param {string[]} args
 * @param {{ cwd: string, env: NodeJS.ProcessEnv, timeoutS: number }} options
 * @returns {Promise<RunResult>}
 */
export async function runGroup(cmd, args, { cwd, env, timeoutS }) {
  const started = performance.now();
  let tail = "";
  const keep = (text) => {
    tail = (tail + text).slice(-TAIL_CHARS);
  };
  const child = spawn(cmd, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  const closed = new Promise((resolve) => child.on("close", resolve));
  const exited = new Promise((resolve) => {
    child.on("exit", (code, signal) => resolve(code ?? 128 + (signal ? 15 : 0)));
    child.on("error", (error) => {
      keep(`${error.message}\n`);
      resolve(127);
    });
  });
  if (child.pid === undefined) {
    const code = await exited;
    console.error(`run_tests: cannot start ${cmd}: ${tail.trim()}`);
    return { code, timedOut: false, leftovers: false, tail, ms: performance.now() - started };
  }
  const pid = child.pid;
  active.add(pid);
  child.stdout.on("data", (chunk) => {
    process.stdout.write(chunk);
    keep(chunk.toString("utf8"));
  });
  child.stderr.on("data", (chunk) => {
    process.stderr.write(chunk);
    keep(chunk.toString("utf8"));
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    console.error(
      `\nrun_tests: ${path.basename(cmd)} ${args[0] ?? ""} exceeded ${timeoutS}s; ` +
        "killing its process tree",
    );
    killGroup(pid, "SIGTERM");
    setTimeout(() => killGroup(pid, "SIGKILL"), KILL_GRACE_MS).unref();
  }, timeoutS * 1000);

  const code = await exited;
  clearTimeout(timer);
  // Servers or workers a test forgot to stop are still in the group (and would keep the output
  // pipes open); give exiting ones a moment, then end the rest.
  await sleep(SETTLE_MS);
  const leftovers = groupAlive(pid) && !timedOut;
  killGroup(pid, "SIGKILL");
  // A process that moved to its own group but inherited our pipes could hold them open forever.
  let drainTimer;
  await Promise.race([closed, new Promise((resolve) => drainTimer = setTimeout(resolve, DRAIN_MS))]);
  clearTimeout(drainTimer);
  child.stdout.destroy();
  child.stderr.destroy();
  active.delete(pid);
  return { code, timedOut, leftovers, tail, ms: performance.now() - started };
}
