/**
 * Scale case, as MinIO's BenchmarkRequests: `--nodes N` Managers in ONE
 * process, each served on its own loopback port, forming a full mesh
 * (N·(N−1)/2 sockets, both ends in this process). Measures the time from
 * constructing the Managers until every connection is up, the memory the mesh
 * added (RSS and JS heap, after a GC when the runtime exposes one) divided by
 * the number of connections, then `--concurrency` workers in total, each
 * calling a random node → random other node `echo` with `--size` bytes for
 * `--duration` s. Prints one JSON line.
 *
 * With `--membership`, the mesh is formed at run time instead: the Managers start knowing only
 * themselves, then each is given the full list with `setHosts`, and the time is measured from
 * those calls until every pair is up, with the memory per connection as above; then every
 * Manager but the first 3 is removed again (`setHosts` on all of them) and the time until the
 * rest has settled (the 3 pairs up, every other connection gone) is measured too. No load.
 *
 * ```sh
 * node --expose-gc scripts/bench/scale.ts --nodes 8 --duration 2
 * node --expose-gc scripts/bench/scale.ts --membership --nodes 64
 * ```
 *
 * @module
 */

import process from "node:process";
import { Manager } from "../../src/manager.ts";
import { serve } from "../../src/adapters/serve.ts";
import { freePorts } from "./_proc.ts";
import { makePayload, numberFlag, parseFlags, runLoad } from "./_load.ts";

const flags = parseFlags(process.argv.slice(2));
const n = numberFlag(flags, "nodes", 8);
const concurrency = numberFlag(flags, "concurrency", 64);
const durationMs = numberFlag(flags, "duration", 2) * 1000;
const warmupMs = numberFlag(flags, "warmup", 0.5) * 1000;
const size = numberFlag(flags, "size", 64);
const upTimeoutMs = numberFlag(flags, "up-timeout", 60) * 1000;
if (!Number.isInteger(n) || n < 2 || n > 256) throw new RangeError("Cannot run: --nodes must be an integer in 2..256");

/** Resolves once `done()` holds (polled), or rejects after upTimeoutMs. */
async function until(done: () => boolean, what: string): Promise<void> {
  const t0 = performance.now();
  while (!done()) {
    if (performance.now() - t0 > upTimeoutMs) throw new Error(`Cannot measure: ${what} not within ${upTimeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The `--membership` case: prints its JSON line and exits. */
async function membership(): Promise<never> {
  const grids = urls.map((local) =>
    new Manager({ local, hosts: [local], secret: "wsgrid bench secret", backoff: { base: 20, cap: 200 } })
  );
  const servers = await Promise.all(grids.map((grid, i) => serve(grid, { port: ports[i], hostname: "127.0.0.1" })));
  const connections = (n * (n - 1)) / 2;
  // Counted from the events, so that polling stats() of every Manager does not slow the mesh down.
  let connects = 0;
  for (const grid of grids) grid.addEventListener("connect", () => connects++);
  const before = await settle();
  const t0 = performance.now();
  for (const grid of grids) grid.setHosts(urls);
  await until(() => connects === 2 * connections, `${connections} connections up`);
  const joinMs = performance.now() - t0;
  const after = await settle();
  const keep = urls.slice(0, 3);
  const t1 = performance.now();
  grids.forEach((grid, i) => grid.setHosts(i < 3 ? keep : [grid.local]));
  const settled = () =>
    grids.every((grid, i) => {
      const conns = Object.values(grid.stats().connections);
      return i < 3 ? conns.length === 2 && conns.every((c) => c.state === "up") : conns.length === 0;
    });
  await until(settled, "the shrunk grid settled");
  const shrinkMs = performance.now() - t1;
  process.stdout.write(JSON.stringify({
    membership: true,
    nodes: n,
    connections,
    joinMs: Math.round(joinMs),
    shrinkMs: Math.round(shrinkMs * 10) / 10,
    rssPerConnKB: Math.round((after.rss - before.rss) / connections / 102.4) / 10,
    heapPerConnKB: Math.round((after.heap - before.heap) / connections / 102.4) / 10,
    youngPerConnKB: after.young === null || before.young === null
      ? null
      : Math.round((after.young - before.young) / connections / 102.4) / 10,
    rssMB: Math.round(after.rss / 1e5) / 10,
    gc: Boolean(g.gc || g.Bun),
  }) + "\n");
  await Promise.race([
    Promise.all([...grids.map((grid) => grid.close()), ...servers.map((s) => s.close())]),
    new Promise((r) => setTimeout(r, 3000)),
  ]);
  process.exit(0);
}

const g = globalThis as { gc?: () => void; Bun?: { gc(force: boolean): void } };
/**
 * V8's young generation (`new_space`): sized by the allocation and survival
 * rate, not by what is live, and empty after a GC, yet resident once used. On
 * Node and Deno; null on Bun (JavaScriptCore has none).
 */
const v8 = g.Bun ? null : await import("node:v8").catch(() => null);
function youngBytes(): number | null {
  const s = v8?.getHeapSpaceStatistics?.().find((x) => x.space_name === "new_space");
  return s === undefined ? null : s.space_size;
}

async function settle(): Promise<{ rss: number; heap: number; young: number | null }> {
  for (let i = 0; i < 3; i++) {
    if (g.Bun) g.Bun.gc(true);
    else g.gc?.();
    await new Promise((r) => setTimeout(r, 20));
  }
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed, young: youngBytes() };
}

// A throwaway 2-node mesh first, so module loading and compilation are not
// counted as memory of the measured mesh.
{
  const wp = await freePorts(2);
  const wu = wp.map((p) => `ws://127.0.0.1:${p}`);
  const wg = wu.map((local) => new Manager({ local, hosts: wu, secret: "warm-up", backoff: { base: 20, cap: 200 } }));
  wg[1].handle("echo", (req: Uint8Array) => req);
  const ws = await Promise.all(wg.map((grid, i) => serve(grid, { port: wp[i], hostname: "127.0.0.1" })));
  for (let i = 0; i < 200; i++) {
    await wg[0].connection(wu[1]).request("echo", makePayload(size, i), { waitForConnect: true, timeout: upTimeoutMs });
  }
  await Promise.all([...wg.map((grid) => grid.close()), ...ws.map((s) => s.close())]);
}

const ports = await freePorts(n);
const urls = ports.map((p) => `ws://127.0.0.1:${p}`);
if (flags.has("membership")) await membership();
const before = await settle();
const t0 = performance.now();
const grids = urls.map((local) =>
  new Manager({ local, hosts: urls, secret: "wsgrid bench secret", backoff: { base: 20, cap: 200 } })
);
for (const grid of grids) grid.handle("echo", (req: Uint8Array) => req);
const servers = await Promise.all(grids.map((grid, i) => serve(grid, { port: ports[i], hostname: "127.0.0.1" })));
const waits: Promise<unknown>[] = [];
for (const grid of grids) {
  for (const url of urls) if (url !== grid.local) waits.push(grid.connection(url).waitForConnect({ timeout: upTimeoutMs }));
}
await Promise.all(waits);
const meshUpMs = performance.now() - t0;
const after = await settle();
const connections = (n * (n - 1)) / 2;

const payload = makePayload(size, 0);
const pick = (k: number): number => Math.floor(Math.random() * k);
const load = await runLoad(async () => {
  const from = pick(n);
  let to = pick(n - 1);
  if (to >= from) to++;
  const r = await grids[from].connection(urls[to]).request("echo", payload);
  if (r.byteLength !== size) throw new Error(`Cannot verify echo: got ${r.byteLength} bytes`);
}, { concurrency, durationMs, warmupMs });

let sockets = 0;
for (const grid of grids) {
  for (const c of Object.values(grid.stats().connections)) if (c.state === "up") sockets++;
}
process.stdout.write(JSON.stringify({
  nodes: n,
  connections,
  connectionsUp: sockets / 2,
  meshUpMs: Math.round(meshUpMs),
  rssPerConnKB: Math.round((after.rss - before.rss) / connections / 102.4) / 10,
  heapPerConnKB: Math.round((after.heap - before.heap) / connections / 102.4) / 10,
  rssMB: Math.round(after.rss / 1e5) / 10,
  gc: Boolean(g.gc || g.Bun),
  ...load,
}) + "\n");
await Promise.race([
  Promise.all([...grids.map((grid) => grid.close()), ...servers.map((s) => s.close())]),
  new Promise((r) => setTimeout(r, 3000)),
]);
process.exit(0);
