/**
 * Holds a lock on a one-node grid, closes the grid and its server, and must then exit by
 * itself: nothing here calls `process.exit`, so a refresh or lapse timer of the held lock (or
 * any other) that outlives `grid.close()` shows as a process that does not exit.
 * `deno run -A tests/e2e/_lock_exit.ts PORT` (or bun, node). Prints `CLOSED` once closed.
 *
 * @module
 */
import process from "node:process";
import { Manager } from "../../mod.ts";
import { serve } from "../../src/adapters/serve.ts";
import { DistributedLock, registerLockHandlers } from "../../src/locks/mod.ts";

const local = `ws://127.0.0.1:${process.argv[2]}`;
const grid = new Manager({ local, hosts: [local], secret: "lock exit secret" });
const { ready } = registerLockHandlers(grid, { leaseMs: 1_000, sweepMs: 50 });
const server = await serve(grid, { port: Number(process.argv[2]), hostname: "127.0.0.1" });
await ready;
const mutex = new DistributedLock(grid, { resources: ["exit"] });
const hold = await mutex.lock({ timeout: 5_000 });
await grid.close();
await server.close();
process.stdout.write(`CLOSED ${hold.lost.aborted ? "lost" : "held"}\n`);
