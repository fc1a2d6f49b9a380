/**
 * Raw WebSocket one-way throughput reader, the baseline of the stream case.
 * Connects with the runtime's global `WebSocket` to `raw_server.ts --mode
 * source`, which sends as fast as its socket's buffered amount allows; counts
 * the bytes received after `--warmup` s for `--duration` s and prints one JSON
 * line `{ mbps, msgs, bytes, windowMs, rssPeakMB }`.
 *
 * ```sh
 * node scripts/bench/raw_stream_client.ts --url ws://127.0.0.1:8080 --duration 2
 * ```
 *
 * @module
 */

import process from "node:process";
import { MemorySampler, numberFlag, parseFlags } from "./_load.ts";

const flags = parseFlags(process.argv.slice(2));
const url = flags.get("url");
if (!url) throw new TypeError("Cannot start client: --url is required");
const durationMs = numberFlag(flags, "duration", 3) * 1000;
const warmupMs = numberFlag(flags, "warmup", 1) * 1000;
const mem = new MemorySampler();

const result = await new Promise<Record<string, number>>((resolve, reject) => {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  let start = NaN;
  let end = NaN;
  let msgs = 0;
  let bytes = 0;
  let last = 0;
  const hard = setTimeout(() => reject(new Error("Cannot finish: no result in time")), warmupMs + durationMs + 15_000);
  ws.addEventListener("open", () => {
    const t0 = performance.now();
    start = t0 + warmupMs;
    end = start + durationMs;
  });
  ws.addEventListener("message", (ev: MessageEvent) => {
    const now = performance.now();
    if (now < start) return;
    if (msgs === 0 && bytes === 0 && last === 0) {
      last = now;
      start = now;
      end = now + durationMs;
      return;
    }
    msgs++;
    bytes += (ev.data as ArrayBuffer).byteLength;
    last = now;
    if (now >= end) {
      clearTimeout(hard);
      ws.close();
      const windowMs = last - start;
      resolve({ mbps: Math.round((bytes / 1e6 / (windowMs / 1000)) * 10) / 10, msgs, bytes, windowMs: Math.round(windowMs) });
    }
  });
  ws.addEventListener("error", () => reject(new Error(`Cannot read from "${url}": socket error`)));
  ws.addEventListener("close", () => reject(new Error("Cannot finish: socket closed early")));
});
mem.stop();
process.stdout.write(JSON.stringify({ ...result, rssPeakMB: mem.peakMB() }) + "\n");
process.exit(0);
