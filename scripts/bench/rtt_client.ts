/**
 * Raw WebSocket round-trip client (the "per-message socket" baseline). Uses the
 * runtime's global `WebSocket`; keeps `--concurrency` requests outstanding, each
 * a separate `send` of `--size` bytes (default 64) whose first 4 bytes are the
 * request id, matched against the echo. Warms up, measures for `--duration`
 * seconds and prints one JSON line `{ rps, p50, p99, n, ... }` (latencies in ms).
 *
 * With `--stream-url` (the raw baseline of the `loaded` suite) it measures the
 * echo idle, then opens a second socket to that URL (a `raw_server.ts --mode
 * source` streaming 16 KiB messages), reads it as fast as it can, and measures
 * the echo again: `{ idle, loaded, mbps, p99Ratio }`. The echo has a socket of
 * its own, so nothing queues it behind stream data: what it measures is how
 * much two processes moving a stream at full speed delay a small request.
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

/** Reads `target` as fast as it can until the returned stop() is called; stop() gives MB/s. */
async function streamFrom(target: string): Promise<() => number> {
  const st = new WebSocket(target);
  st.binaryType = "arraybuffer";
  let bytes = 0;
  let t0 = 0;
  await new Promise<void>((resolve, reject) => {
    st.addEventListener("open", () => resolve());
    st.addEventListener("error", () => reject(new Error(`Cannot connect to "${target}": socket error`)));
  });
  st.addEventListener("message", (ev: MessageEvent) => {
    if (t0 === 0) t0 = performance.now();
    else bytes += (ev.data as ArrayBuffer).byteLength;
  });
  return () => {
    const seconds = (performance.now() - t0) / 1000;
    st.close();
    return t0 > 0 && seconds > 0 ? Math.round((bytes / 1e6 / seconds) * 10) / 10 : 0;
  };
}

try {
  const streamUrl = flags.get("stream-url");
  let result: Record<string, unknown>;
  if (streamUrl === undefined) {
    result = { ...(await runLoad(echo, { concurrency, durationMs, warmupMs })) };
  } else {
    const idle = await runLoad(echo, { concurrency, durationMs, warmupMs });
    const stop = await streamFrom(streamUrl);
    const loaded = await runLoad(echo, { concurrency, durationMs, warmupMs });
    const mbps = stop();
    result = { idle, loaded, mbps, p99Ratio: Math.round((loaded.p99 / idle.p99) * 100) / 100 };
  }
  process.stdout.write(JSON.stringify(result) + "\n");
  ws.close();
  process.exit(0);
} catch (err) {
  process.stderr.write(`rtt_client: ${(err as Error).message}\n`);
  process.exit(1);
}
