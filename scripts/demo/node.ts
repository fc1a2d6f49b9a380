/**
 * One lock node of the demo: a Manager that serves the lock handlers and runs
 * lock traffic (a few concurrent clients contending on a small set of
 * resources, mostly write locks, some read locks, each held briefly).
 *
 * Runs on Deno, Bun or Node: `deno run -A scripts/demo/node.ts CONFIG`,
 * `bun run scripts/demo/node.ts CONFIG`, `node scripts/demo/node.ts CONFIG`
 * (CONFIG: JSON {@link NodeConfig}). Prints `READY` once serving; starts the
 * traffic on a `go` line on stdin. Every held lock is reported to the witness
 * (the orchestrator) with `demo.enter` before the critical section and
 * `demo.exit` after it, before unlocking. Exits when stdin ends.
 *
 * @module
 */
import process from "node:process";
import { createInterface } from "node:readline";
import { GridError, Manager, TimeoutError } from "../../mod.ts";
import { detectRuntime, serve } from "../../src/adapters/serve.ts";
import { DistributedLock, registerLockHandlers } from "../../src/locks/mod.ts";
import {
  type NodeConfig,
  type NodeReport,
  NodeReportHandler,
  NodeStopHandler,
  WitnessEnter,
  WitnessExit,
} from "./_protocol.ts";

const config = JSON.parse(process.argv[2] ?? "") as NodeConfig;
const runtime = detectRuntime();

const grid = new Manager({
  local: config.local,
  hosts: config.hosts,
  secret: config.secret,
  pingInterval: 500,
  requestTimeout: 5_000,
  backoff: { base: 50, cap: 500 },
  admin: { tokens: [config.adminToken] },
});
const service = registerLockHandlers(grid, {
  leaseMs: config.expireAfterMs,
  sweepMs: config.sweepMs,
  peers: config.lockHosts.filter((h) => h !== config.local),
});

/** Bound on latencies kept between two reports. */
const MAX_SAMPLES = 50_000;
const counters = { ops: 0, readOps: 0, writeOps: 0, retries: 0, timeouts: 0, lost: 0, errors: 0 };
let latencies: number[] = [];
let lastError = "";

function report(): NodeReport {
  const stats = grid.stats();
  const peers = Object.values(stats.connections);
  const table = service.table.stats();
  const r: NodeReport = {
    name: config.name,
    runtime,
    pid: process.pid,
    ...counters,
    latencies,
    peersUp: peers.filter((c) => c.state === "up").length,
    peers: peers.length,
    tableLocks: table.writeLocks + table.readLocks,
  };
  for (const k of Object.keys(counters) as (keyof typeof counters)[]) counters[k] = 0;
  latencies = [];
  return r;
}

const stopController = new AbortController();
const stopSignal = stopController.signal;
let clients: Promise<void>[] = [];

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function pick<T>(list: readonly T[]): T {
  return list[Math.floor(Math.random() * list.length)];
}

/**
 * Resources a client of this node recently failed to lock in time, with when
 * to try them again: a resource locked by a node that was killed stays locked
 * until its lock expires on the survivors, and clients should work on the
 * others meanwhile instead of all queueing on it.
 */
const cooldown = new Map<string, number>();

function pickResource(): string {
  const now = performance.now();
  const open = config.resources.filter((r) => (cooldown.get(r) ?? 0) <= now);
  return pick(open.length > 0 ? open : config.resources);
}

async function client(index: number): Promise<void> {
  const witness = grid.connection(config.witness);
  const witnessOptions = { timeout: 5_000, waitForConnect: true };
  while (!stopSignal.aborted) {
    const resource = pickResource();
    const write = Math.random() >= config.readShare;
    const mutex = new DistributedLock(grid, {
      resources: [resource],
      hosts: config.lockHosts,
      source: `demo/${config.name}/client${index}`,
      refreshInterval: config.refreshInterval,
      callTimeout: 1_000,
    });
    let hold;
    try {
      // A short timeout: a client that meets a resource still locked by a killed node moves on to another.
      const options = { timeout: 300, retryMin: 2, retryMax: 50, signal: stopSignal };
      hold = write ? await mutex.lock(options) : await mutex.rlock(options);
    } catch (e) {
      if (stopSignal.aborted) break;
      if (e instanceof TimeoutError) {
        counters.timeouts++;
        cooldown.set(resource, performance.now() + config.expireAfterMs);
      } else {
        noteError(e);
        // An error that comes back at once must not turn this loop into a microtask spin.
        await sleep(50);
      }
      continue;
    }
    counters.retries += hold.attempts - 1;
    if (latencies.length < MAX_SAMPLES) latencies.push(hold.waitedMs);
    const call = { resource, write, uid: hold.uid, node: config.local, token: hold.token };
    try {
      await witness.request(WitnessEnter, call, witnessOptions);
      const [lo, hi] = config.holdMs;
      await sleep(lo + Math.random() * (hi - lo));
      await witness.request(WitnessExit, call, witnessOptions);
      if (hold.lost.aborted) counters.lost++;
      counters.ops++;
      if (write) counters.writeOps++;
      else counters.readOps++;
    } catch (e) {
      noteError(e);
    } finally {
      await mutex.unlock();
    }
  }
}

function noteError(e: unknown): void {
  counters.errors++;
  const text = e instanceof GridError ? `${e.code}: ${e.message}` : String(e);
  if (text !== lastError) {
    lastError = text;
    console.error(`${config.name}: ${text}`);
  }
}

function start(): void {
  if (clients.length > 0) return;
  clients = Array.from({ length: config.clients }, (_, i) => client(i));
}

async function stopTraffic(): Promise<NodeReport> {
  stopController.abort(new GridError("stopped", "Demo stopped"));
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    Promise.allSettled(clients),
    new Promise<void>((resolve) => timer = setTimeout(resolve, 4_000)),
  ]);
  clearTimeout(timer);
  return report();
}

grid.handle(NodeReportHandler, () => report(), { readOnly: true });
grid.handle(NodeStopHandler, () => stopTraffic());

const server = await serve(grid, { port: Number(new URL(config.local).port), hostname: "127.0.0.1" });

let closing = false;
async function close(): Promise<void> {
  if (closing) return;
  closing = true;
  if (!stopSignal.aborted) await stopTraffic();
  await grid.close();
  await server.close();
  process.stdin.destroy();
}

// The orchestrator owns Ctrl-C (this process is in its own process group);
// a SIGINT/SIGTERM sent here directly still ends the node cleanly.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => void close().finally(() => process.exit(0)));
}

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", (line) => {
  if (line.trim() === "go") start();
});
rl.on("close", () => {
  // stdin ended: the orchestrator is stopping us, or is gone.
  void close().finally(() => process.exit(0));
});

process.stdout.write("READY\n");
