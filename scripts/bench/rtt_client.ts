/**
 * Raw WebSocket round-trip client (the "per-message socket" baseline). Uses the
 * runtime's global `WebSocket`; keeps `--concurrency` requests outstanding, each
 * a separate `send` of `--size` bytes (default 64) whose first 4 bytes are the
 * request id, matched against the echo. Warms up, measures for `--duration`
 * seconds and prints one JSON line `{ rps, p50, p99, n, ... }` (latencies in ms).
 *
 * ```sh
 * node scripts/bench/rtt_client.ts --url ws://127.0.0.1:8080 --concurrency 64 --duration 3
 * ```
 *
 * @module
 */

import process from "node:process";
import { makePayload, numberFlag, parseFlags, runLoad } from "./_load.ts";

const flags = parseFlags(process.argv.slice(2));
const url = flags.get("url");
if (!url) throw new TypeError("Cannot start client: --url is required");
const concurrency = numberFlag(flags, "concurrency", 1);
const durationMs = numberFlag(flags, "duration", 3) * 1000;
const warmupMs = numberFlag(flags, "warmup", 1) * 1000;
const size = numberFlag(flags, "size", 64);
const connectTimeoutMs = numberFlag(flags, "connect-timeout", 10) * 1000;
if (size < 4) throw new RangeError(`Cannot run: --size ${size} is below the 4-byte id`);

const ws = new WebSocket(url);
ws.binaryType = "arraybuffer";
const pending = new Map<number, (ok: boolean) => void>();
let failure: Error | undefined;

ws.addEventListener("message", (ev: MessageEvent) => {
  const data = ev.data;
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : data as Uint8Array;
  const id = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true);
  const resolve = pending.get(id);
  pending.delete(id);
  resolve?.(bytes.byteLength === size);
});
ws.addEventListener("close", (ev: CloseEvent) => {
  failure ??= new Error(`Cannot continue: socket closed (${ev.code} "${ev.reason}")`);
  for (const resolve of pending.values()) resolve(false);
  pending.clear();
});

await new Promise<void>((resolve, reject) => {
  const timer = setTimeout(
    () => reject(new Error(`Cannot connect to "${url}": no open after ${connectTimeoutMs} ms`)),
    connectTimeoutMs,
  );
  ws.addEventListener("open", () => {
    clearTimeout(timer);
    resolve();
  });
  ws.addEventListener("error", () => {
    clearTimeout(timer);
    reject(new Error(`Cannot connect to "${url}": socket error`));
  });
});

const echo = (id: number): Promise<void> => {
  if (failure) return Promise.reject(failure);
  return new Promise<void>((resolve, reject) => {
    pending.set(id, (ok) => {
      if (ok) resolve();
      else reject(failure ?? new Error(`Cannot verify echo of request ${id}: wrong length`));
    });
    ws.send(makePayload(size, id));
  });
};

try {
  const result = await runLoad(echo, { concurrency, durationMs, warmupMs });
  process.stdout.write(JSON.stringify(result) + "\n");
  ws.close();
  process.exit(0);
} catch (err) {
  process.stderr.write(`rtt_client: ${(err as Error).message}\n`);
  process.exit(1);
}
