/**
 * A rolling restart under load: four nodes of mixed runtimes (tests/e2e/_node.ts) serve a
 * loader (a Manager in this test's process, a member of the grid) that keeps a continuous load
 * of idempotent `echo` requests going with `grid.pick()` and `retryOn: "disconnected"`. Each
 * node in turn is killed with SIGTERM (a graceful stop: its grid closes, then the process
 * exits) and started again on the same URL; the load must see no failed call. Prints the calls
 * made, how many were retried on another peer, and the p99 latency during the restarts.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { DisconnectedError, GridError, Manager } from "../../mod.ts";
import { type GridServer, serve } from "../../src/adapters/serve.ts";
import { Cluster, type Runtime, sleep, withTimeout } from "./_cluster.ts";
import { freePorts } from "./_subprocess.ts";

const RUNTIMES: Runtime[] = (process.env.WSGRID_ROLLING_RUNTIMES?.split(",") as Runtime[] | undefined) ?? ["deno", "bun", "node", "bun"];
const WORKERS = 8;
const CALL_TIMEOUT_MS = 5_000;
/** Load before the first restart and after the last one, ms. */
const STEADY_MS = 1_000;
/** Bound of the whole load, whatever happens (every loop is bounded in time). */
const LOAD_BOUND_MS = 45_000;
const TEST = { timeout: 90_000 };
const enc = new TextEncoder();
const dec = new TextDecoder();

interface Sample {
  at: number;
  ms: number;
}

let cluster: Cluster | undefined;
let loader: Manager | undefined;
let server: GridServer | undefined;

before(async () => {
  cluster = await Cluster.start(RUNTIMES, { gracefulSigterm: true, pingInterval: 500, backoff: { base: 20, cap: 200 } });
});

after(async () => {
  await loader?.close();
  await server?.close();
  await cluster?.destroy();
});

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

describe("rolling restart", () => {
  it("a 4-node mixed-runtime grid restarted node by node under pick() + retryOn load sees no failed call", TEST, async () => {
    const c = cluster!;
    const [port] = await freePorts(1);
    const local = `ws://127.0.0.1:${port}`;
    const hosts = [...c.urls, local];
    loader = new Manager({ local, hosts, secret: "e2e cluster secret", pingInterval: 500, backoff: { base: 20, cap: 200 } });
    server = await serve(loader, { port, hostname: "127.0.0.1" });
    for (const n of c.nodes) await n.command({ cmd: "setHosts", hosts });
    await Promise.all(c.urls.map((u) => loader!.connection(u).waitForConnect({ timeout: 15_000 })));

    const samples: Sample[] = [];
    const failures: string[] = [];
    let stop = false;
    const loadStarted = Date.now();
    const worker = async (w: number) => {
      for (let i = 0; !stop && Date.now() - loadStarted < LOAD_BOUND_MS; i++) {
        const payload = enc.encode(`${w}:${i}`);
        const t0 = performance.now();
        try {
          const res = await loader!.pick({ handler: "echo" }).request("echo", payload, {
            retryOn: "disconnected",
            timeout: CALL_TIMEOUT_MS,
          });
          if (dec.decode(res) !== `${w}:${i}`) failures.push(`worker ${w} call ${i}: wrong answer`);
        } catch (e) {
          const code = e instanceof GridError ? e.code : String(e);
          if (failures.length < 1_000) failures.push(`worker ${w} call ${i}: ${code}: ${(e as Error).message}`);
          // A failed pick (none up) would spin: wait a little, bounded by the load's time bound.
          if (e instanceof DisconnectedError) await sleep(5);
        }
        samples.push({ at: Date.now(), ms: performance.now() - t0 });
      }
    };
    const workers = Array.from({ length: WORKERS }, (_, w) => worker(w));

    const windows: [number, number][] = [];
    try {
      await sleep(STEADY_MS);
      for (let i = 0; i < c.nodes.length; i++) {
        const from = Date.now();
        const old = c.nodes[i];
        old.signal("SIGTERM");
        await withTimeout(old.exited, 10_000, () => `${old.name} did not exit on SIGTERM`);
        const fresh = await c.restart(i, { hosts });
        await loader.connection(fresh.url).waitForConnect({ timeout: 15_000 });
        await fresh.command({ cmd: "wait", to: hosts.filter((h) => h !== fresh.url), timeout: 15_000 }, 17_000);
        windows.push([from, Date.now()]);
        await sleep(300);
      }
      await sleep(STEADY_MS);
    } finally {
      stop = true;
      await withTimeout(Promise.all(workers), CALL_TIMEOUT_MS + 5_000, () => "load workers did not stop");
    }

    const during = samples.filter((s) => windows.some(([a, b]) => s.at >= a && s.at <= b)).map((s) => s.ms).sort((a, b) => a - b);
    const all = samples.map((s) => s.ms).sort((a, b) => a - b);
    const retried = loader.stats().retried ?? 0;
    const restartMs = windows.map(([a, b]) => b - a);
    console.log(
      `# rolling restart of ${c.nodes.length} nodes (${RUNTIMES.join(", ")}), loader on ${loader.stats().local}: ` +
        `${samples.length} calls made, ${retried} retried, ${failures.length} failed; ` +
        `p99 ${quantile(during, 0.99).toFixed(1)} ms during restarts (${during.length} calls), ` +
        `p99 ${quantile(all, 0.99).toFixed(1)} ms overall, max ${quantile(all, 1).toFixed(1)} ms; ` +
        `restarts took ${restartMs.join(", ")} ms`,
    );
    assert.deepEqual(failures.slice(0, 10), [], `${failures.length} calls failed`);
    assert.ok(samples.length > 1_000, `only ${samples.length} calls were made`);
    assert.ok(during.length > 0, "calls were made during the restarts");
  });
});
