/**
 * One process of the lock history checker (tests/e2e/lock_history_test.ts), runnable
 * under Deno, Bun or Node with one JSON config argument (see {@link HistoryNodeConfig}).
 *
 * - role "lock": serves the lock handlers (lease `leaseMs`), recovering its token floor
 *   from the other lock nodes, until stdin ends.
 * - role "client": takes write locks on the resources in a loop and, in each critical
 *   section, writes its fencing token to the fenced register (`history.write` on the
 *   test process), deliberately without checking `lost` first, so a holder paused past
 *   its lease writes late and fencing must refuse it. It tells the register when it holds
 *   (`history.held`, so the test can pause a holder). After unlocking it reports when
 *   its hold ended (`history.release`). On a `stop` line it prints one JSON summary
 *   line and exits.
 *
 * Prints `READY` once serving.
 *
 * @module
 */
import process from "node:process";
import { createInterface } from "node:readline";
import { DisconnectedError, Manager, TimeoutError } from "../../mod.ts";
import { detectRuntime, serve } from "../../src/adapters/serve.ts";
import { DistributedLock, registerLockHandlers } from "../../src/locks/mod.ts";
import {
  type HistoryClientSummary,
  type HistoryNodeConfig,
  HistoryHeldHandler,
  HistoryReleaseHandler,
  type HistoryWrite,
  HistoryWriteHandler,
} from "./_lock_history_protocol.ts";

await main();

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? "") as HistoryNodeConfig;
  const runtime = detectRuntime();
  const grid = new Manager({
    local: config.local,
    hosts: config.hosts,
    secret: config.secret,
    pingInterval: 300,
    requestTimeout: 2_000,
    backoff: { base: 20, cap: 200 },
  });
  if (config.role === "lock") {
    registerLockHandlers(grid, {
      leaseMs: config.leaseMs,
      sweepMs: 50,
      peers: config.lockHosts.filter((h) => h !== config.local),
    });
  }
  const server = await serve(grid, { port: config.servePort ?? Number(new URL(config.local).port), hostname: "127.0.0.1" });
  const stop = new AbortController();
  let loop: Promise<HistoryClientSummary> | undefined;
  if (config.role === "client") loop = client(grid, config, runtime, stop.signal);
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  const finish = async () => {
    stop.abort();
    if (loop !== undefined) process.stdout.write(JSON.stringify(await loop) + "\n");
    await grid.close();
    await server.close();
    process.exit(0);
  };
  rl.on("line", (line) => {
    if (line.trim() === "stop") void finish();
  });
  rl.on("close", () => void finish());
  process.stdout.write("READY\n");
}

async function client(grid: Manager, config: HistoryNodeConfig, runtime: string, stop: AbortSignal): Promise<HistoryClientSummary> {
  const s: HistoryClientSummary = {
    client: config.name,
    runtime,
    acquired: 0,
    timeouts: 0,
    aborts: 0,
    errors: 0,
    maxTimeoutOvershootMs: 0,
    maxAbortOvershootMs: 0,
    pausedAcquires: 0,
  };
  // A paused process (SIGSTOP) shows as a gap in this heartbeat; its acquires are not the library's overshoot.
  let lastBeat = performance.now();
  let maxGap = 0;
  const beat = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - lastBeat);
    lastBeat = now;
  }, 10);
  const register = grid.connection(config.register);
  const wall = (t: number) => performance.timeOrigin + t;
  for (let i = 0; i < 1_000_000 && !stop.aborted; i++) {
    const resource = config.resources[i % config.resources.length];
    const mutex = new DistributedLock(grid, {
      resources: [resource],
      hosts: config.lockHosts,
      source: `history/${config.name}`,
      callTimeout: 300,
    });
    const abortAt = i % 5 === 4 ? 20 + Math.random() * 80 : undefined;
    const controller = new AbortController();
    const abortTimer = abortAt === undefined ? undefined : setTimeout(() => controller.abort(new Error("history abort")), abortAt);
    let abortedAt = 0;
    controller.signal.addEventListener("abort", () => abortedAt = performance.now());
    maxGap = 0;
    const started = performance.now();
    try {
      const hold = await mutex.lock({ timeout: config.acquireTimeoutMs, retryMin: 2, retryMax: 40, signal: controller.signal });
      clearTimeout(abortTimer);
      s.acquired++;
      const start = wall(performance.now());
      await register.request(HistoryHeldHandler, { client: config.name }, { timeout: 2_000 }).catch(() => {});
      await new Promise((r) => setTimeout(r, 10 + Math.random() * 30));
      const write: HistoryWrite = {
        client: config.name,
        runtime,
        uid: hold.uid,
        resource,
        token: hold.token,
        start,
        expiresAt: wall(hold.expiresAt),
        at: wall(performance.now()),
        lostBeforeWrite: hold.lost.aborted,
      };
      // A paused process finds its connection to the register dropped (missed pongs) when it
      // wakes: it retries the write, as a real paused writer would, and fencing must refuse it.
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          await register.request(HistoryWriteHandler, write, { timeout: 2_000, waitForConnect: true });
          break;
        } catch (e) {
          if (!(e instanceof DisconnectedError) || attempt === 2) {
            s.errors++;
            break;
          }
          await register.waitForConnect({ timeout: 2_000 }).catch(() => {});
        }
      }
      const end = wall(Math.min(performance.now(), hold.expiresAt));
      await mutex.unlock();
      await register.request(HistoryReleaseHandler, { uid: hold.uid, end }, { timeout: 2_000, waitForConnect: true }).catch(() => s.errors++);
    } catch (e) {
      clearTimeout(abortTimer);
      const settled = performance.now();
      // A timer may run before the heartbeat after SIGCONT: the gap up to now counts too.
      const paused = Math.max(maxGap, settled - lastBeat) > 150;
      if (paused) s.pausedAcquires++;
      if (e instanceof TimeoutError) {
        s.timeouts++;
        if (!paused) s.maxTimeoutOvershootMs = Math.max(s.maxTimeoutOvershootMs, settled - started - config.acquireTimeoutMs);
      } else if (controller.signal.aborted) {
        s.aborts++;
        if (!paused) s.maxAbortOvershootMs = Math.max(s.maxAbortOvershootMs, settled - abortedAt);
      } else {
        s.errors++;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }
  clearInterval(beat);
  return s;
}
