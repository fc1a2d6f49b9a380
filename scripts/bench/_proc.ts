/**
 * Child-process plumbing for the benchmark harness: spawning a script under a
 * given runtime, waiting for its `READY <port>` line or its JSON result, free
 * loopback ports, and killing every child when the harness exits or times out.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { cpus } from "node:os";
import process from "node:process";

/** A runtime the benchmark runs scripts under. */
export interface Runtime {
  name: string;
  /** Absolute path of the runtime binary. */
  bin: string;
  /** Arguments that run `script` (before the script's own arguments), with runtime flags `extra`. */
  runArgs(script: string, extra?: string[]): string[];
}

/** What to start: a script path (relative to the repo root) and its arguments. */
export interface ProcSpec {
  script: string;
  args: string[];
}

const children = new Set<ChildProcess>();
let hooked = false;

/** Kills every child still running (SIGKILL; benchmark children hold no state). */
export function killAll(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  }
  children.clear();
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", killAll);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => {
      killAll();
      process.exit(130);
    });
  }
}

/** A started child with its output collected. */
export interface Child {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/**
 * Starts `spec` under `rt` in `cwd`, pinned to CPU `cpu` with `taskset` when
 * given, with extra runtime flags (`--cpu-prof`, say); the child is killed
 * when the harness exits.
 */
export function start(rt: Runtime, spec: ProcSpec, cwd: string, cpu?: number, runtimeFlags?: string[]): Child {
  hookExit();
  const argv = [rt.bin, ...rt.runArgs(spec.script, runtimeFlags), ...spec.args];
  if (cpu !== undefined) argv.unshift("taskset", "-c", String(cpu));
  const proc = spawn(argv[0], argv.slice(1), {
    cwd,
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  children.add(proc);
  let out = "";
  let err = "";
  proc.stdout?.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  proc.stderr?.setEncoding("utf8").on("data", (d: string) => {
    err = (err + d).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => {
    proc.on("error", (e) => {
      err += `\nspawn error: ${e.message}`;
      children.delete(proc);
      resolve(-1);
    });
    proc.on("exit", (code) => {
      children.delete(proc);
      resolve(code);
    });
  });
  return { proc, stdout: () => out, stderr: () => err, exited };
}

/** Stops a child: closes its stdin (servers exit on that), then SIGKILL after `graceMs`. */
export async function stop(child: Child, graceMs = 1500): Promise<void> {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return;
  child.proc.stdin?.end();
  const timer = setTimeout(() => child.proc.kill("SIGKILL"), graceMs);
  await child.exited;
  clearTimeout(timer);
}

/** Waits for the child's `READY <port>` line; rejects on exit or after `timeoutMs`. */
export function waitReady(child: Child, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      const m = /^READY (\d+)$/m.exec(child.stdout());
      if (m) {
        done();
        resolve(Number(m[1]));
        return true;
      }
      return false;
    };
    const onData = (): void => void check();
    const timer = setTimeout(() => {
      done();
      reject(new Error(`Cannot start server: no READY line after ${timeoutMs} ms. ${tail(child)}`));
    }, timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      child.proc.stdout?.off("data", onData);
    };
    child.proc.stdout?.on("data", onData);
    void child.exited.then((code) => {
      if (check()) return;
      done();
      reject(new Error(`Cannot start server: exited with code ${code}. ${tail(child)}`));
    });
    check();
  });
}

/** Waits for the child to exit (killing it after `timeoutMs`) and parses its last JSON line. */
export async function waitJson<T>(child: Child, timeoutMs: number): Promise<T> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.proc.kill("SIGKILL");
  }, timeoutMs);
  const code = await child.exited;
  clearTimeout(timer);
  if (timedOut) throw new Error(`Cannot get result: client killed after ${timeoutMs} ms. ${tail(child)}`);
  const line = child.stdout().trim().split("\n").filter((l) => l.startsWith("{")).at(-1);
  if (code !== 0 || !line) {
    throw new Error(`Cannot get result: client exited with code ${code}. ${tail(child)}`);
  }
  return JSON.parse(line) as T;
}

function tail(child: Child): string {
  const t = child.stderr().trim().split("\n").slice(-6).join(" | ");
  return t ? `stderr: ${t}` : "no stderr";
}

/** Reserves `count` distinct free ports on 127.0.0.1 (bound on port 0, then released). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () =>
      new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
        const s = createServer();
        s.once("error", reject);
        s.listen(0, "127.0.0.1", () => resolve(s));
      })),
  );
  const ports = servers.map((s) => {
    const a = s.address();
    return typeof a === "object" && a ? a.port : 0;
  });
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** Runs `bin args` and returns its first stdout line (for `--version`), or "unknown". */
export async function firstLine(bin: string, args: string[]): Promise<string> {
  const proc = spawn(bin, args, { stdio: ["ignore", "pipe", "ignore"] });
  let out = "";
  proc.stdout.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
  const ok = await new Promise<boolean>((resolve) => {
    proc.on("error", () => resolve(false));
    proc.on("exit", (code) => resolve(code === 0));
  });
  clearTimeout(timer);
  return ok ? out.trim().split("\n")[0] : "unknown";
}

/** Fraction (0..1) of all CPUs busy during a `sampleMs` window. */
export async function cpuBusy(sampleMs: number): Promise<number> {
  const sum = (): { busy: number; total: number } => {
    let busy = 0;
    let total = 0;
    for (const { times: t } of cpus()) {
      busy += t.user + t.nice + t.sys + t.irq;
      total += t.user + t.nice + t.sys + t.irq + t.idle;
    }
    return { busy, total };
  };
  const a = sum();
  await new Promise((r) => setTimeout(r, sampleMs));
  const b = sum();
  return b.total > a.total ? (b.busy - a.busy) / (b.total - a.total) : 0;
}

/**
 * Waits (at most `maxWaitMs`) until the machine is quiet, i.e. other programs
 * keep less than `threshold` of the CPUs busy, so a run is not measured while
 * something else (a test suite, say) competes for the cores. Returns the last
 * busy fraction seen, which is recorded with the run.
 */
export async function waitQuiet(threshold: number, maxWaitMs: number): Promise<number> {
  const until = performance.now() + maxWaitMs;
  let busy = await cpuBusy(200);
  while (busy >= threshold && performance.now() < until) busy = await cpuBusy(500);
  return Math.round(busy * 100) / 100;
}
