/**
 * The lock bench: wsgrid/locks on a 3-node grid (with lockArgsCodec and with MinIO's newline
 * text format plugged in instead) against Redis 7 (3 `redis-server`) with `redlock` and etcd
 * (`etcd-server`, one member) with the `etcd3` client's lock, same machine, same run, every
 * server started here. Cases: uncontended write locks at concurrency 64 (each worker its own
 * resource), contended write locks (64 workers on 4 resources), and tiny read locks on one
 * shared resource at concurrency 1 and 64 (wsgrid only: Redlock and etcd have none).
 * Throughput is acquire+release per second; latency is the acquire's, ms.
 *
 *   node scripts/bench/locks.ts [--seconds 3] [--rounds 3] [--warmup 1] [--systems binary,text,redlock,etcd]
 *                               [--cases 0,1,2,3] [--prof DIR] [--json .tmp/bench/locks.json]
 *
 * Every system is started first and stays up; each gets an unmeasured warm-up, then the cells
 * interleave (each case on every system in turn, `--rounds` times), so the shared machine's
 * load drifts over all of them alike; a row is its cell's median round by throughput. Same client process, same concurrency and worker loop for every system.
 * `--prof DIR` runs the lock nodes under `--cpu-prof` (run this script under `node --cpu-prof`
 * for the client's side; `node scripts/bench/cpuprofile.ts FILE` sums them). For wsgrid, stderr
 * also shows messages per frame out of and into the bench client (the grid's batching).
 *
 * Runs under Node 24 (node_modules/.bin/node), as do the lock nodes. A server that is not
 * installed is installed with apt-get when possible; otherwise its rows are skipped with the
 * reason printed.
 *
 * @module
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Manager } from "../../mod.ts";
import { serve } from "../../src/adapters/serve.ts";
import { DistributedLock, lockArgsCodec } from "../../src/locks/mod.ts";
import { textLockArgsCodec } from "./lockargs.ts";
import { freePorts } from "./_proc.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const NODE = path.join(ROOT, "node_modules", ".bin", "node");
const argv = process.argv.slice(2);
const SECONDS = Number(argv.includes("--seconds") ? argv[argv.indexOf("--seconds") + 1] : 3);
const JSON_OUT = argv.includes("--json") ? argv[argv.indexOf("--json") + 1] : path.join(ROOT, ".tmp", "bench", "locks.json");
/** `--systems binary,text,redlock,etcd` (all by default): which systems run. */
const SYSTEMS = argv.includes("--systems") ? argv[argv.indexOf("--systems") + 1].split(",") : ["binary", "text", "redlock", "etcd"];
/** `--rounds 3`: interleaved rounds of every cell; a row is the median round of its cell (by throughput). */
const ROUNDS = Math.max(1, Math.floor(Number(argv.includes("--rounds") ? argv[argv.indexOf("--rounds") + 1] : 3)));
/** `--warmup 1`: seconds of unmeasured uncontended and contended locking per system before the cells. */
const WARMUP_SECONDS = Number(argv.includes("--warmup") ? argv[argv.indexOf("--warmup") + 1] : Math.min(1, SECONDS / 2));
/** `--cases 0,1` (indexes into CASES, all by default): which cases run. */
const CASE_FILTER = argv.includes("--cases") ? argv[argv.indexOf("--cases") + 1].split(",").map(Number) : undefined;
/** `--prof DIR`: the lock nodes run under `--cpu-prof` and write their profiles there. */
const PROF_DIR = argv.includes("--prof") ? path.resolve(argv[argv.indexOf("--prof") + 1]) : undefined;

interface Case {
  name: string;
  concurrency: number;
  /** Resources the workers share; 0: each worker its own. */
  resources: number;
  read: boolean;
}

const CASES: Case[] = [
  { name: "write, uncontended, c=64", concurrency: 64, resources: 0, read: false },
  { name: "write, contended (64 on 4)", concurrency: 64, resources: 4, read: false },
  { name: "read, one resource, c=1", concurrency: 1, resources: 1, read: true },
  { name: "read, one resource, c=64", concurrency: 64, resources: 1, read: true },
];

/** One lock system under test: take and give back one lock. */
interface System {
  name: string;
  reads: boolean;
  acquire(worker: number, resource: string, read: boolean): Promise<() => Promise<void>>;
  /** The server processes (lock nodes, redis-server, etcd), whose CPU time the rows report. */
  servers: ChildProcess[];
  /** Frames and messages the bench client sent and received so far (wsgrid), for the batching note. */
  frames?(): { messagesOut: number; framesOut: number; messagesIn: number; framesIn: number };
  close(): Promise<void>;
}

/** What the lock bench reports (stdout's last line, and `--json`). */
export interface LocksBenchResult {
  at: string;
  seconds: number;
  /** Interleaved rounds per cell (absent: 1); each row is its cell's median round. */
  rounds?: number;
  rows: LockBenchRow[];
  skipped: string[];
  goals: string[];
}

/** One system on one case. */
export interface LockBenchRow {
  system: string;
  case: string;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /**
   * CPU time per acquire+release, µs: of the bench client (the load, the lock client, its
   * sockets) and of all the server processes together. Less sensitive to the shared machine's
   * load than ops/s (a descheduled process uses no CPU); `NaN` where /proc is missing.
   */
  clientCpuUsPerOp: number;
  serverCpuUsPerOp: number;
  /** Throughput of every round of the cell, in run order. */
  roundsOpsPerSec?: number[];
}

const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
});

function startProc(cmd: string, args: string[], readyLine: RegExp | null, what: string): Promise<ChildProcess> {
  const child = spawn(cmd, args, { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"] });
  children.add(child);
  if (readyLine === null) return Promise.resolve(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start in 20 s`)), 20_000);
    const onLine = (line: string) => {
      if (readyLine.test(line)) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    createInterface({ input: child.stdout! }).on("line", onLine);
    createInterface({ input: child.stderr! }).on("line", onLine);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}`));
    });
  });
}

function stopProc(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    child.once("exit", () => {
      clearTimeout(timer);
      children.delete(child);
      resolve();
    });
    child.stdin?.end();
    child.kill("SIGTERM");
  });
}

/** The binary, installed from Debian when missing and possible; else the reason it is not there. */
function ensure(binary: string, pkg: string): string | null {
  const found = () => spawnSync("sh", ["-c", `command -v ${binary}`], { encoding: "utf8" }).stdout.trim();
  if (found() !== "") return null;
  if (process.getuid?.() !== 0) return `${binary} is missing and apt-get needs root (apt-get install ${pkg})`;
  spawnSync("apt-get", ["update", "-qq"], { stdio: "ignore" });
  const r = spawnSync("apt-get", ["install", "-y", "-qq", pkg], { stdio: "ignore", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  return found() !== "" ? null : `${binary} is missing and apt-get install ${pkg} failed (exit ${r.status})`;
}

async function wsgrid(codecName: "binary" | "text"): Promise<System> {
  const ports = await freePorts(4);
  const urls = ports.map((p) => `ws://127.0.0.1:${p}`);
  const lockHosts = urls.slice(0, 3);
  const nodes = await Promise.all(lockHosts.map((local) =>
    startProc(NODE, [...(PROF_DIR === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${PROF_DIR}`]), "scripts/bench/lock_node.ts", JSON.stringify({ local, hosts: urls, lockHosts, codec: codecName })], /^READY$/, `lock node ${local}`)
  ));
  const grid = new Manager({ local: urls[3], hosts: urls, secret: "lock bench secret", backoff: { base: 20, cap: 200 } });
  const server = await serve(grid, { port: ports[3], hostname: "127.0.0.1" });
  for (const h of lockHosts) await grid.connection(h).waitForConnect({ timeout: 20_000 });
  const codec = codecName === "text" ? textLockArgsCodec : lockArgsCodec;
  // Let every node finish its token recovery.
  const probe = new DistributedLock(grid, { resources: ["probe"], hosts: lockHosts, codec });
  await probe.lock({ timeout: 20_000 });
  await probe.unlock();
  const mutexes = new Map<string, DistributedLock>();
  return {
    name: `wsgrid (${codecName === "text" ? "text format" : "lockArgsCodec"})`,
    reads: true,
    servers: nodes,
    async acquire(worker, resource, read) {
      const key = `${worker}/${resource}`;
      let m = mutexes.get(key);
      if (m === undefined) {
        m = new DistributedLock(grid, { resources: [resource], hosts: lockHosts, codec });
        mutexes.set(key, m);
      }
      const options = { timeout: 30_000, retryMin: 1, retryMax: 50 };
      await (read ? m.rlock(options) : m.lock(options));
      const held = m;
      return () => held.unlock();
    },
    frames() {
      const t = { messagesOut: 0, framesOut: 0, messagesIn: 0, framesIn: 0 };
      for (const h of lockHosts) {
        const st = grid.connection(h).stats();
        t.messagesOut += st.messagesOut;
        t.framesOut += st.framesOut;
        t.messagesIn += st.messagesIn;
        t.framesIn += st.framesIn;
      }
      return t;
    },
    async close() {
      await grid.close();
      await server.close();
      await Promise.all(nodes.map(stopProc));
    },
  };
}

async function redlock(): Promise<System | string> {
  const missing = ensure("redis-server", "redis-server");
  if (missing !== null) return missing;
  const { Redis } = await import("ioredis");
  const { default: Redlock } = await import("redlock");
  const ports = await freePorts(3);
  const procs = await Promise.all(ports.map((p) =>
    startProc("redis-server", ["--port", String(p), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], /Ready to accept connections/, `redis-server :${p}`)
  ));
  const clients = ports.map((p) => new Redis({ port: p, host: "127.0.0.1", lazyConnect: false }));
  const rl = new Redlock(clients, { retryCount: 10_000, retryDelay: 10, retryJitter: 10, automaticExtensionThreshold: 500 });
  return {
    name: "redlock (3 redis-server)",
    reads: false,
    servers: procs,
    async acquire(_worker, resource) {
      const lock = await rl.acquire([resource], 10_000);
      return async () => {
        await lock.release();
      };
    },
    async close() {
      await Promise.all(clients.map((c) => c.quit()));
      await Promise.all(procs.map(stopProc));
    },
  };
}

async function etcd(): Promise<System | string> {
  const missing = ensure("etcd", "etcd-server");
  if (missing !== null) return missing;
  const { Etcd3 } = await import("etcd3");
  const [client, peer] = await freePorts(2);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wsgrid-etcd-"));
  const proc = await startProc("etcd", [
    "--name", "bench", "--data-dir", dir,
    "--listen-client-urls", `http://127.0.0.1:${client}`, "--advertise-client-urls", `http://127.0.0.1:${client}`,
    "--listen-peer-urls", `http://127.0.0.1:${peer}`, "--initial-advertise-peer-urls", `http://127.0.0.1:${peer}`,
    "--initial-cluster", `bench=http://127.0.0.1:${peer}`,
  ], /ready to serve client requests/, `etcd :${client}`);
  const etcdClient = new Etcd3({ hosts: `http://127.0.0.1:${client}` });
  return {
    name: "etcd3 lock (etcd, 1 member)",
    reads: false,
    servers: [proc],
    async acquire(_worker, resource) {
      for (let attempt = 0; attempt < 10_000; attempt++) {
        const lock = etcdClient.lock(resource).ttl(10);
        try {
          await lock.acquire();
          return async () => {
            await lock.release();
          };
        } catch {
          // Held by another worker: etcd3's lock does not queue, so back off like Redlock does.
          await new Promise((r) => setTimeout(r, 10 + Math.random() * 10));
        }
      }
      throw new Error("etcd lock: no grant after 10 000 attempts");
    },
    async close() {
      etcdClient.close();
      await stopProc(proc);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

const CLOCK_TICK_US = 1e6 / (Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100);

/** User+system CPU time of the processes, µs (from /proc; `NaN` without it). */
function cpuOf(children: ChildProcess[]): number {
  let total = 0;
  for (const c of children) {
    try {
      // Fields after the ")" that ends the command name: state is 3rd, utime 14th, stime 15th.
      const stat = fs.readFileSync(`/proc/${c.pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      total += (Number(f[11]) + Number(f[12])) * CLOCK_TICK_US;
    } catch {
      return NaN;
    }
  }
  return total;
}

async function runCase(system: System, c: Case, seconds = SECONDS): Promise<LockBenchRow> {
  const latencies: number[] = [];
  let ops = 0;
  let errors = 0;
  const end = performance.now() + seconds * 1_000;
  const worker = async (w: number) => {
    for (let i = 0; performance.now() < end && i < 10_000_000; i++) {
      const resource = c.resources === 0 ? `bench/w${w}` : `bench/shared${(w + i) % c.resources}`;
      const t = performance.now();
      try {
        const release = await system.acquire(w, resource, c.read);
        latencies.push(performance.now() - t);
        await release();
        ops++;
      } catch {
        errors++;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  };
  const started = performance.now();
  const client0 = process.cpuUsage();
  const server0 = cpuOf(system.servers);
  await Promise.all(Array.from({ length: c.concurrency }, (_, w) => worker(w)));
  const secs = (performance.now() - started) / 1_000;
  const client = process.cpuUsage(client0);
  const serverUs = cpuOf(system.servers) - server0;
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies.length === 0 ? NaN : latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  return {
    system: system.name,
    case: c.name,
    opsPerSec: ops / secs,
    p50Ms: q(0.5),
    p99Ms: q(0.99),
    errors,
    clientCpuUsPerOp: (client.user + client.system) / Math.max(1, ops),
    serverCpuUsPerOp: serverUs / Math.max(1, ops),
  };
}

async function main(): Promise<void> {
  const rows: LockBenchRow[] = [];
  const skipped: string[] = [];
  const makers = ([
    ["binary", "wsgrid (lockArgsCodec)", () => wsgrid("binary")],
    ["text", "wsgrid (text format)", () => wsgrid("text")],
    ["redlock", "redlock", redlock],
    ["etcd", "etcd", etcd],
  ] as [string, string, () => Promise<System | string>][]).filter(([key]) => SYSTEMS.includes(key)).map(([, label, make]) => [label, make] as const);
  // Every system is up for the whole run and the cells interleave (each case on every system
  // in turn), so that a change in the shared machine's load hits all of them alike; each system
  // is warmed up first (JIT of the client and of the lock nodes, sockets, scripts), unmeasured.
  const systems: System[] = [];
  for (const [label, make] of makers) {
    let system: System | string;
    try {
      system = await make();
    } catch (e) {
      system = (e as Error).message;
    }
    if (typeof system === "string") {
      skipped.push(`${label}: skipped, ${system}`);
      console.error(`lock bench: ${label} skipped: ${system}`);
      continue;
    }
    systems.push(system);
  }
  for (const system of systems) {
    for (const c of CASES.slice(0, 2)) await runCase(system, c, WARMUP_SECONDS);
  }
  const byCell = new Map<string, LockBenchRow[]>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, c] of CASES.entries()) {
      if (CASE_FILTER !== undefined && !CASE_FILTER.includes(i)) continue;
      for (const system of systems) {
        if (c.read && !system.reads) continue;
        const before = system.frames?.();
        const row = await runCase(system, c);
        const key = `${system.name}\u0000${c.name}`;
        byCell.set(key, [...byCell.get(key) ?? [], row]);
        const after = system.frames?.();
        const batching = before === undefined || after === undefined ? "" : `  msgs/frame out ${
          ((after.messagesOut - before.messagesOut) / Math.max(1, after.framesOut - before.framesOut)).toFixed(1)
        } in ${((after.messagesIn - before.messagesIn) / Math.max(1, after.framesIn - before.framesIn)).toFixed(1)}`;
        console.error(`lock bench: r${round + 1} ${row.system.padEnd(28)} ${row.case.padEnd(28)} ${row.opsPerSec.toFixed(0).padStart(7)}/s  p50 ${row.p50Ms.toFixed(2)} ms  p99 ${row.p99Ms.toFixed(2)} ms  errors ${row.errors}  cpu/op client ${row.clientCpuUsPerOp.toFixed(0)} µs servers ${row.serverCpuUsPerOp.toFixed(0)} µs${batching}`);
      }
    }
  }
  for (const system of systems) await system.close();
  for (const runs of byCell.values()) {
    const median = [...runs].sort((a, b) => a.opsPerSec - b.opsPerSec)[Math.floor((runs.length - 1) / 2)];
    rows.push({ ...median, roundsOpsPerSec: runs.map((r) => Math.round(r.opsPerSec)) });
  }
  for (const r of rows) {
    console.error(`lock bench: median ${r.system.padEnd(28)} ${r.case.padEnd(28)} ${r.opsPerSec.toFixed(0).padStart(7)}/s  p50 ${r.p50Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms  cpu/op client ${r.clientCpuUsPerOp.toFixed(0)} µs servers ${r.serverCpuUsPerOp.toFixed(0)} µs  (rounds ${r.roundsOpsPerSec!.join(", ")})`);
  }
  const find = (s: string, c: string) => rows.find((r) => r.system.startsWith(s) && r.case === c);
  const goals: string[] = [];
  const goal = (text: string, ok: boolean | undefined) => goals.push(`${ok === undefined ? "not measured" : ok ? "met" : "NOT met"}: ${text}`);
  const w = find("wsgrid (lockArgsCodec)", CASES[0].name);
  const wc = find("wsgrid (lockArgsCodec)", CASES[1].name);
  const r = find("redlock", CASES[0].name);
  const rc = find("redlock", CASES[1].name);
  const e = find("etcd", CASES[0].name);
  const ratio = (a?: LockBenchRow, b?: LockBenchRow) => a && b ? a.opsPerSec / b.opsPerSec : undefined;
  const fmt = (x?: number) => x === undefined ? "n/a" : `${x.toFixed(1)}×`;
  goal(`uncontended ≥ 5× redlock (${fmt(ratio(w, r))})`, r && w ? ratio(w, r)! >= 5 : undefined);
  goal(`uncontended ≥ 30× etcd (${fmt(ratio(w, e))})`, e && w ? ratio(w, e)! >= 30 : undefined);
  goal(`uncontended p99 acquire ≤ redlock's (${w?.p99Ms.toFixed(2)} vs ${r?.p99Ms.toFixed(2)} ms)`, r && w ? w.p99Ms <= r.p99Ms : undefined);
  goal(`contended ≥ 3× redlock (${fmt(ratio(wc, rc))})`, rc && wc ? ratio(wc, rc)! >= 3 : undefined);
  goal(`contended p99 < half of redlock's (${wc?.p99Ms.toFixed(2)} vs ${rc?.p99Ms.toFixed(2)} ms)`, rc && wc ? wc.p99Ms < rc.p99Ms / 2 : undefined);
  const rd = find("wsgrid (lockArgsCodec)", CASES[3].name);
  goal(`read locks on one resource (c=64) ≥ uncontended write locks (${rd?.opsPerSec.toFixed(0)} vs ${w?.opsPerSec.toFixed(0)}/s)`, rd && w ? rd.opsPerSec >= w.opsPerSec : undefined);
  const t = find("wsgrid (text format)", CASES[0].name);
  goals.push(`codec end to end: lockArgsCodec ${fmt(ratio(w, t))} the text format's throughput (uncontended write, c=64)`);
  for (const g of goals) console.error(`lock bench: ${g}`);
  const result: LocksBenchResult = { at: new Date().toISOString(), seconds: SECONDS, rounds: ROUNDS, rows, skipped, goals };
  fs.mkdirSync(path.dirname(JSON_OUT), { recursive: true });
  fs.writeFileSync(JSON_OUT, JSON.stringify(result, null, 2) + "\n");
  // The last line of stdout is the result, for scripts/bench/main.ts.
  process.stdout.write(JSON.stringify(result) + "\n");
  process.exit(0);
}

await main();
