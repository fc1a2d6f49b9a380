/**
 * The demo orchestrator: starts a local grid of lock nodes as separate
 * processes (one each on Deno, Bun and Node by default), runs lock traffic on
 * all of them, checks mutual exclusion throughout, prints live progress and a
 * final summary. Started by `npm run demo` (scripts/run_demo.mjs) on Node 24.
 *
 * The orchestrator is a grid member itself: the witness. Every client that
 * holds a lock reports `demo.enter` (and awaits the ack) before its critical
 * section and `demo.exit` after it, before unlocking; the witness counts two
 * writers, or a writer with readers, on one resource as a violation. Being in
 * this process, the witness survives `--kill-one`; entries of a node that died
 * are dropped when its connection drops (its locks stay in the other nodes'
 * tables until they expire, so nobody else enters before).
 *
 * Usage: node scripts/demo/main.ts [--nodes N] [--duration S] [--kill-one]
 *
 * Exit code 0 only when no violation was seen and operations completed.
 *
 * @module
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import process from "node:process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Manager } from "../../mod.ts";
import { attachNode } from "../../src/adapters/node.ts";
import {
  type NodeConfig,
  type NodeReport,
  NodeReportHandler,
  NodeStopHandler,
  type WitnessCall,
  WitnessEnter,
  WitnessExit,
} from "./_protocol.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const BIN = path.join(ROOT, "node_modules", ".bin");
const NODE_SCRIPT = path.join(ROOT, "scripts", "demo", "node.ts");
const RUNTIMES = ["deno", "bun", "node"] as const;
type RuntimeName = typeof RUNTIMES[number];

const USAGE = `Usage: npm run demo -- [--nodes N] [--duration SECONDS] [--kill-one] [--no-quorum]

Starts a local grid of N lock nodes (default 3: one each on Deno, Bun and Node), runs
contending lock traffic on every node for SECONDS (default 15), checks mutual exclusion
throughout and prints a summary. --kill-one kills one node (SIGKILL) midway, shows locking
continue on the quorum, restarts it and shows it rejoin. Ctrl-C stops everything.

--no-quorum is a negative control of the checker: every node locks on its own table only,
so mutual exclusion across nodes breaks and the witness must count violations (exit 1).`;

interface Options {
  nodes: number;
  duration: number;
  killOne: boolean;
  noQuorum: boolean;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { nodes: 3, duration: 15, killOne: false, noQuorum: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith("--") && arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [arg, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) usageError(`Missing value for ${flag}`);
      return v;
    };
    switch (flag) {
      case "-h":
      case "--help":
        console.log(USAGE);
        process.exit(0);
        break;
      case "--nodes":
        opts.nodes = Number(value());
        break;
      case "--duration":
        opts.duration = Number(value());
        break;
      case "--kill-one":
        opts.killOne = true;
        break;
      case "--no-quorum":
        opts.noQuorum = true;
        break;
      default:
        usageError(`Unknown option ${arg}`);
    }
  }
  if (!Number.isInteger(opts.nodes) || opts.nodes < 1 || opts.nodes > 9) usageError("--nodes must be an integer 1..9");
  if (!(opts.duration > 0) || opts.duration > 3600) usageError("--duration must be 1..3600 seconds");
  if (opts.killOne && opts.nodes < 3) usageError("--kill-one needs at least 3 nodes (a quorum must survive)");
  return opts;
}

function usageError(message: string): never {
  console.error(`demo: ${message}\n\n${USAGE}`);
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));
const SECRET = `demo-${crypto.randomUUID()}`;
const ADMIN_TOKEN = `admin-${crypto.randomUUID().slice(0, 8)}`;
const RESOURCES = Array.from({ length: 16 }, (_, i) => `bucket/object-${i}`);
const CLIENTS_PER_NODE = 4;

// ---------------------------------------------------------------------------------------------
// Runtimes

function available(runtime: RuntimeName): string | null {
  const bin = path.join(BIN, runtime);
  if (!fs.existsSync(bin)) return `node_modules/.bin/${runtime} is missing`;
  const res = spawnSync(bin, ["--version"], { stdio: "ignore", timeout: 20_000 });
  return res.status === 0 ? null : `node_modules/.bin/${runtime} --version failed`;
}

const missing = new Map<RuntimeName, string>();
for (const r of RUNTIMES) {
  const why = available(r);
  if (why !== null) missing.set(r, why);
}
const usable = RUNTIMES.filter((r) => !missing.has(r));
if (usable.length === 0) {
  console.error("demo: no runtime available (deno, bun and node all missing); run npm ci");
  process.exit(1);
}

function runtimeFor(index: number): RuntimeName {
  const wanted = RUNTIMES[index % RUNTIMES.length];
  if (!missing.has(wanted)) return wanted;
  const instead = usable[index % usable.length];
  console.log(`demo: ${wanted} is not available (${missing.get(wanted)}); node${index + 1} runs on ${instead} instead`);
  return instead;
}

function command(runtime: RuntimeName, config: NodeConfig): [string, string[]] {
  const bin = path.join(BIN, runtime);
  const json = JSON.stringify(config);
  switch (runtime) {
    case "deno":
      return [bin, ["run", "-A", NODE_SCRIPT, json]];
    case "bun":
      return [bin, ["run", NODE_SCRIPT, json]];
    case "node":
      return [bin, [NODE_SCRIPT, json]];
  }
}

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The grid

const ports = await Promise.all(Array.from({ length: opts.nodes + 1 }, () => freePort()));
const witnessUrl = `ws://127.0.0.1:${ports[0]}`;
const lockHosts = ports.slice(1).map((p) => `ws://127.0.0.1:${p}`);
const hosts = [witnessUrl, ...lockHosts];

interface DemoNode {
  index: number;
  name: string;
  runtime: RuntimeName;
  url: string;
  config: NodeConfig;
  child: ChildProcess | null;
  /** Resolves when the current process exits. */
  exited: Promise<void>;
  ready: Promise<void>;
  /** Killed on purpose and not restarted yet. */
  killed: boolean;
  report: Omit<NodeReport, "latencies"> | null;
  reportOk: boolean;
}

const nodes: DemoNode[] = lockHosts.map((url, index) => {
  const name = `node${index + 1}`;
  const config: NodeConfig = {
    name,
    local: url,
    hosts,
    lockHosts: opts.noQuorum ? [url] : lockHosts,
    witness: witnessUrl,
    secret: SECRET,
    adminToken: ADMIN_TOKEN,
    clients: CLIENTS_PER_NODE,
    resources: RESOURCES,
    readShare: 0.25,
    holdMs: [1, 5],
    expireAfterMs: 1_500,
    sweepMs: 100,
    refreshInterval: 300,
  };
  return {
    index,
    name,
    runtime: runtimeFor(index),
    url,
    config,
    child: null,
    exited: Promise.resolve(),
    ready: Promise.resolve(),
    killed: false,
    report: null,
    reportOk: false,
  };
});

function label(n: DemoNode): string {
  return `${n.name}(${n.runtime})`;
}

/** Starts the node's process; `ready` resolves on its READY line. */
function startNode(n: DemoNode): void {
  const [cmd, args] = command(n.runtime, n.config);
  const child = spawn(cmd, args, {
    cwd: ROOT,
    env: { ...process.env, DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    stdio: ["pipe", "pipe", "pipe"],
    // Its own process group: Ctrl-C reaches only the orchestrator, which stops nodes in order.
    detached: true,
  });
  n.child = child;
  n.exited = new Promise((resolve) => child.once("exit", () => resolve()));
  n.ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${label(n)} did not start within 30 s`)), 30_000);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${label(n)} exited before it was ready (${signal ?? `code ${code}`})`));
    });
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (line === "READY") {
        clearTimeout(timer);
        resolve();
      } else if (line.trim() !== "") console.log(`  [${n.name}] ${line}`);
    });
  });
  n.ready.catch(() => {});
  createInterface({ input: child.stderr! }).on("line", (line) => {
    if (line.trim() !== "" && !/ExperimentalWarning|--trace-warnings/.test(line)) console.log(`  [${n.name}] ${line}`);
  });
  child.stdin!.on("error", () => {});
}

function killGroup(n: DemoNode, signal: NodeJS.Signals): void {
  const pid = n.child?.pid;
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

// ---------------------------------------------------------------------------------------------
// The witness

interface Holder {
  uid: string;
  node: string;
  write: boolean;
}

const holders = new Map<string, Holder[]>();
/** Per resource, the fencing token of the last writer that entered: the next must be larger. */
const lastWriteToken = new Map<string, number>();
const tokenRange = { min: Infinity, max: -Infinity, writes: 0, outOfOrder: 0 };
let violations = 0;
let enters = 0;
const violationSamples: string[] = [];

function nameOf(url: string): string {
  const n = nodes.find((n) => n.url === url);
  return n === undefined ? url : label(n);
}

function enter(c: WitnessCall): { violation: boolean } {
  enters++;
  const held = holders.get(c.resource) ?? [];
  const clash = c.write ? held.length > 0 : held.some((h) => h.write);
  if (clash) {
    violations++;
    if (violationSamples.length < 5) {
      const who = held.map((h) => `${h.write ? "writer" : "reader"} ${h.uid.slice(0, 8)}@${nameOf(h.node)}`).join(", ");
      violationSamples.push(
        `${c.write ? "writer" : "reader"} ${c.uid.slice(0, 8)}@${nameOf(c.node)} entered "${c.resource}" held by ${who}`,
      );
    }
  }
  held.push({ uid: c.uid, node: c.node, write: c.write });
  holders.set(c.resource, held);
  let stale = false;
  if (c.write) {
    tokenRange.writes++;
    tokenRange.min = Math.min(tokenRange.min, c.token);
    tokenRange.max = Math.max(tokenRange.max, c.token);
    const last = lastWriteToken.get(c.resource) ?? 0;
    stale = !(c.token > last);
    if (stale) {
      tokenRange.outOfOrder++;
      violations++;
      if (violationSamples.length < 5) {
        violationSamples.push(`writer ${c.uid.slice(0, 8)}@${nameOf(c.node)} entered "${c.resource}" with token ${c.token} after ${last}`);
      }
    } else {
      lastWriteToken.set(c.resource, c.token);
    }
  }
  return { violation: clash || stale };
}

function exit(c: WitnessCall): { known: boolean } {
  const held = holders.get(c.resource);
  const i = held?.findIndex((h) => h.uid === c.uid) ?? -1;
  if (held === undefined || i < 0) return { known: false };
  held.splice(i, 1);
  if (held.length === 0) holders.delete(c.resource);
  return { known: true };
}

/** A node that died cannot report exit: forget what it held. */
function forgetNode(url: string): void {
  for (const [resource, held] of holders) {
    const kept = held.filter((h) => h.node !== url);
    if (kept.length === 0) holders.delete(resource);
    else holders.set(resource, kept);
  }
}

const witness = new Manager({
  local: witnessUrl,
  hosts,
  secret: SECRET,
  pingInterval: 500,
  requestTimeout: 5_000,
  backoff: { base: 50, cap: 500 },
  admin: { tokens: [ADMIN_TOKEN] },
});
witness.handle(WitnessEnter, enter);
witness.handle(WitnessExit, exit);
witness.addEventListener("disconnect", (ev) => forgetNode((ev as CustomEvent<{ host: string }>).detail.host));

// The witness's HTTP server carries the grid endpoint and, when src/admin/ provides it, the admin page.
type PageHandler = (req: Request) => Response | undefined;
const ADMIN_PAGE = path.join(ROOT, "src", "admin", "serve_page.ts");
let adminPage: PageHandler | null = null;
let adminNote = "";
if (fs.existsSync(ADMIN_PAGE)) {
  try {
    const mod = await import(ADMIN_PAGE) as { adminPageHandler?: (grid: Manager, o: { path: string }) => PageHandler };
    if (typeof mod.adminPageHandler === "function") adminPage = mod.adminPageHandler(witness, { path: "/admin" });
    else adminNote = "src/admin/serve_page.ts does not export adminPageHandler";
  } catch (e) {
    adminNote = `cannot load src/admin/serve_page.ts: ${(e as Error).message}`;
  }
} else {
  adminNote = "not built yet (src/admin/serve_page.ts is missing)";
}
const httpServer = http.createServer((req, res) => {
  const page = adminPage?.(new Request(`http://127.0.0.1:${ports[0]}${req.url ?? "/"}`, { method: req.method }));
  if (page === undefined) {
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("Not found\n");
    return;
  }
  res.writeHead(page.status, Object.fromEntries(page.headers));
  void page.text().then((body) => res.end(body), () => res.end());
});
const witnessServer = attachNode(witness, httpServer);
await new Promise<void>((resolve, reject) => {
  httpServer.once("error", reject);
  httpServer.listen(ports[0], "127.0.0.1", () => resolve());
});


// ---------------------------------------------------------------------------------------------
// Counters

const MAX_SAMPLES = 2_000_000;
const totals = { ops: 0, readOps: 0, writeOps: 0, retries: 0, timeouts: 0, lost: 0, errors: 0 };
const allLatencies: number[] = [];
let windowLatencies: number[] = [];

function absorb(n: DemoNode, r: NodeReport): void {
  for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += r[k];
  for (const ms of r.latencies) {
    if (allLatencies.length < MAX_SAMPLES) allLatencies.push(ms);
    windowLatencies.push(ms);
  }
  const { latencies: _, ...rest } = r;
  n.report = rest;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

function ms(v: number): string {
  return Number.isNaN(v) ? "  -  " : `${v.toFixed(1)} ms`;
}

async function poll(n: DemoNode): Promise<void> {
  const conn = witness.connection(n.url);
  if (conn.state !== "up") {
    n.reportOk = false;
    return;
  }
  try {
    absorb(n, await conn.request(NodeReportHandler, null, { timeout: 900 }));
    n.reportOk = true;
  } catch {
    n.reportOk = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Run

let stopping = false;
let started = 0;
let lastOps = 0;
let lastAttempts = 0;
let lastRetries = 0;
let interrupted = false;

function elapsed(): number {
  return (performance.now() - started) / 1000;
}

function health(n: DemoNode): string {
  const state = witness.stats().connections[n.url]?.state ?? "down";
  if (n.killed) return `${label(n)} KILLED`;
  if (state !== "up") return `${label(n)} ${state.toUpperCase()}`;
  if (!n.reportOk || n.report === null) return `${label(n)} up (no report)`;
  return `${label(n)} up ${n.report.peersUp}/${n.report.peers} peers ${n.report.ops} ops`;
}

async function tick(): Promise<void> {
  await Promise.all(nodes.map(poll));
  const t = elapsed();
  const ops = totals.ops - lastOps;
  lastOps = totals.ops;
  const attempts = totals.ops + totals.retries + totals.timeouts;
  const windowAttempts = attempts - lastAttempts;
  lastAttempts = attempts;
  const w = windowLatencies.sort((a, b) => a - b);
  windowLatencies = [];
  const retried = totals.retries - lastRetries;
  lastRetries = totals.retries;
  const contention = Math.round((100 * retried) / Math.max(1, windowAttempts));
  console.log(
    `[${t.toFixed(0).padStart(3)}s] ${String(ops).padStart(5)} ops/s  total ${String(totals.ops).padStart(6)}  ` +
      `acquire p50 ${ms(percentile(w, 0.5))} p99 ${ms(percentile(w, 0.99))}  ` +
      `contention ${retried} retried (${contention}%) ${totals.timeouts} timeouts  violations ${violations}\n` +
      `       ${nodes.map(health).join("  ·  ")}`,
  );
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** Aborted when the demo stops (end of the run or Ctrl-C): cuts every pause short. */
const halt = new AbortController();
function pause(msec: number): Promise<void> {
  return new Promise((resolve) => {
    if (halt.signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      halt.signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, msec);
    halt.signal.addEventListener("abort", done, { once: true });
  });
}

let chaosNote = "";

async function killAndRestart(n: DemoNode): Promise<void> {
  await pause(opts.duration * 300);
  if (stopping) return;
  console.log(`\n>>> kill -9 ${label(n)} (pid ${n.child?.pid}): locking must continue on the quorum of ${opts.nodes - 1}\n`);
  n.killed = true;
  const killedAt = elapsed();
  chaosNote = `${label(n)} killed at ${killedAt.toFixed(1)} s, not restarted before the end`;
  killGroup(n, "SIGKILL");
  await n.exited;
  await pause(opts.duration * 200);
  if (stopping) return;
  console.log(`\n>>> restarting ${label(n)} on ${n.url}\n`);
  const t0 = performance.now();
  startNode(n);
  try {
    await n.ready;
  } catch (e) {
    console.log(`>>> ${label(n)} did not restart: ${(e as Error).message}`);
    return;
  }
  n.killed = false;
  n.child!.stdin!.write("go\n");
  const conn = witness.connection(n.url);
  try {
    await conn.waitForConnect({ timeout: 10_000 });
  } catch {
    // Reported by the health line.
  }
  const peersUp = async () => {
    for (let i = 0; i < 50 && !stopping; i++) {
      if (n.report !== null && n.report.peersUp === n.report.peers && n.report.ops > 0) return true;
      await sleep(100);
    }
    return false;
  };
  n.report = null;
  if (await peersUp()) {
    chaosNote = `${label(n)} killed at ${killedAt.toFixed(1)} s, restarted and rejoined the grid in ${((performance.now() - t0) / 1000).toFixed(1)} s`;
    console.log(`\n>>> ${label(n)} rejoined after ${((performance.now() - t0) / 1000).toFixed(1)} s: all peers up, locking again\n`);
  }
}

async function shutdown(): Promise<void> {
  stopping = true;
  halt.abort();
  // Whatever happens below, the demo ends: nodes are stopped in 6 + 5 s at most.
  setTimeout(() => {
    console.error("demo: shutdown took more than 20 s; killing every node");
    for (const n of nodes) killGroup(n, "SIGKILL");
    process.exit(1);
  }, 20_000).unref();
  const live = nodes.filter((n) => n.child !== null && n.child.exitCode === null && n.child.signalCode === null);
  // Stop traffic first and collect the last counters, then end the processes.
  await Promise.all(live.map(async (n) => {
    try {
      absorb(n, await witness.connection(n.url).request(NodeStopHandler, null, { timeout: 6_000 }));
    } catch {
      // A node that cannot answer is ended below all the same.
    }
  }));
  for (const n of live) n.child!.stdin!.end();
  await Promise.all(live.map(async (n) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exited = await Promise.race([n.exited.then(() => true), new Promise<false>((r) => timer = setTimeout(() => r(false), 5_000))]);
    clearTimeout(timer);
    if (!exited) {
      console.log(`demo: ${label(n)} did not exit within 5 s; killing it`);
      killGroup(n, "SIGKILL");
    }
  }));
  await witness.close();
  await witnessServer.close();
  httpServer.closeAllConnections();
  await new Promise<void>((resolve) => httpServer.close(() => resolve()));
}

function summary(): number {
  const sorted = allLatencies.sort((a, b) => a - b);
  const secs = elapsed();
  const open = [...holders.values()].reduce((k, h) => k + h.length, 0);
  console.log("\n======== summary ========");
  console.log(`nodes:               ${nodes.map(label).join(", ")}${opts.killOne ? " (one killed and restarted midway)" : ""}`);
  console.log(`duration:            ${secs.toFixed(1)} s${interrupted ? " (interrupted)" : ""}`);
  if (chaosNote !== "") console.log(`--kill-one:          ${chaosNote}`);
  console.log(`completed operations: ${totals.ops} (${totals.writeOps} write, ${totals.readOps} read), ${(totals.ops / secs).toFixed(0)} ops/s`);
  console.log(`acquire latency:     p50 ${ms(percentile(sorted, 0.5))}, p99 ${ms(percentile(sorted, 0.99))}, max ${ms(sorted.at(-1) ?? NaN)}`);
  console.log(`contention:          ${totals.retries} retried attempts, ${totals.timeouts} timeouts, ${totals.lost} lost locks, ${totals.errors} errors`);
  console.log(`witness:             ${enters} critical sections checked, ${open} still open`);
  const tokens = tokenRange.writes === 0
    ? "no write holds"
    : `${tokenRange.min}..${tokenRange.max} over ${tokenRange.writes} write holds, ${tokenRange.outOfOrder} not above the previous writer's`;
  console.log(`fencing tokens:      ${tokens}`);
  console.log(`invariant violations: ${violations}`);
  for (const v of violationSamples) console.log(`  ${v}`);
  return violations === 0 && totals.ops > 0 ? 0 : 1;
}

process.on("SIGINT", () => {
  if (stopping) {
    console.log("\ndemo: second interrupt, killing every node");
    for (const n of nodes) killGroup(n, "SIGKILL");
    process.exit(130);
  }
  interrupted = true;
  console.log("\ndemo: interrupted, stopping every node...");
  halt.abort();
});
process.on("SIGTERM", () => {
  interrupted = true;
  halt.abort();
});

async function main(): Promise<number> {
  console.log(
    `wsgrid demo: ${opts.nodes} lock nodes, ${CLIENTS_PER_NODE} clients each, ${RESOURCES.length} resources, ` +
      `${opts.duration} s${opts.killOne ? ", --kill-one" : ""}`,
  );
  if (opts.noQuorum) {
    console.log("  --no-quorum: every node locks on itself only; the witness must report violations");
  }
  console.log(
    "  each node: lock handlers + clients taking write (75%) and read (25%) locks on random resources, holding 1-5 ms",
  );
  for (const n of nodes) startNode(n);
  try {
    await Promise.all(nodes.map((n) => n.ready));
    await Promise.all(nodes.map((n) => witness.connection(n.url).waitForConnect({ timeout: 15_000 })));
  } catch (e) {
    console.error(`demo: cannot start the grid: ${(e as Error).message}`);
    await shutdown();
    return 1;
  }
  for (const n of nodes) console.log(`  ${label(n)} pid ${n.child?.pid} on ${n.url}`);
  console.log(`  witness (orchestrator, node ${process.version}) on ${witnessUrl}`);
  if (adminPage !== null) {
    console.log(`  admin page: http://127.0.0.1:${ports[0]}/admin#token=${ADMIN_TOKEN}`);
  } else {
    console.log(`  admin page: ${adminNote}; read-only clients may connect to ${witnessUrl}/grid/v1 with token ${ADMIN_TOKEN}`);
  }
  console.log("");
  started = performance.now();
  for (const n of nodes) n.child!.stdin!.write("go\n");
  const chaos = opts.killOne ? killAndRestart(nodes[nodes.length - 1]) : Promise.resolve();
  const end = started + opts.duration * 1000;
  while (!interrupted && performance.now() < end) {
    await pause(Math.min(1000, end - performance.now()));
    if (interrupted) break;
    await tick();
  }
  stopping = true;
  halt.abort();
  await chaos;
  await shutdown();
  return summary();
}

process.exitCode = await main();
