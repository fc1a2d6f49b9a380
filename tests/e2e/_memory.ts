/**
 * Memory and handle measurement for the reliability suites, on any runtime: heap after a forced
 * GC where one can be had without flags (V8 through `node:v8` + `node:vm` on Node and Deno,
 * `Bun.gc` on Bun), and the count of active handles where the runtime reports it.
 *
 * @module
 */
import process from "node:process";
import { runInNewContext } from "node:vm";
import { setFlagsFromString } from "node:v8";

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

type GcFn = () => void;

/** A full GC function where the runtime can give one without flags (Node, Deno: V8; Bun: Bun.gc). */
function findGc(): GcFn | null {
  const g = (globalThis as { gc?: GcFn }).gc;
  if (typeof g === "function") return g;
  const bun = (globalThis as { Bun?: { gc?: (sync: boolean) => void } }).Bun;
  if (typeof bun?.gc === "function") return () => bun.gc!(true);
  try {
    setFlagsFromString("--expose-gc");
    const fn = runInNewContext("gc") as unknown;
    if (typeof fn === "function") return fn as GcFn;
  } catch {
    // No way to force a GC here: callers compare with looser bounds.
  }
  return null;
}

const gcFn = findGc();

/** Whether {@link heapUsed} collects garbage first. */
export const GC_AVAILABLE: boolean = gcFn !== null;

/** `heapUsed` in bytes, after full GCs when available. */
export async function heapUsed(): Promise<number> {
  if (gcFn !== null) {
    for (let i = 0; i < 3; i++) {
      gcFn();
      await sleep(5);
    }
  }
  return process.memoryUsage().heapUsed;
}

/** Active handles (timers, sockets, servers) by type, where the runtime reports them. */
export function activeResources(): number | null {
  const info = (process as { getActiveResourcesInfo?: () => string[] }).getActiveResourcesInfo;
  if (typeof info !== "function") return null;
  // A running grid always holds a server and a timer: an empty list means "not reported" (Bun).
  const n = info.call(process).length;
  return n === 0 ? null : n;
}

/** Bytes in MB (10^6), one decimal. */
export function mb(bytes: number): number {
  return Math.round(bytes / 1e5) / 10;
}

/**
 * Heap plus memory outside it (`external`: array buffers, which is where queued frames live),
 * in bytes, after full GCs when available.
 */
export async function memoryUsed(): Promise<number> {
  await heapUsed();
  const m = process.memoryUsage() as { heapUsed: number; external?: number };
  return m.heapUsed + (m.external ?? 0);
}
