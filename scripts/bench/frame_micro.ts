/**
 * Micro-benchmark of the framer's hot path under the current runtime: encode
 * and decode of a batch frame of 64 single requests (64-byte payloads, handler
 * "echo"), ns per message, and what one `TextDecoder.decode` of the 4-byte
 * handler name costs — the per-message work that `decodeFrame`'s reuse of the
 * last handler name saves — and what a `setTimeout` + `clearTimeout` pair
 * costs, which the caller's shared timeout queues save per request. Prints
 * one JSON line.
 *
 * ```sh
 * node scripts/bench/frame_micro.ts
 * ```
 *
 * @module
 */

import process from "node:process";
import { decodeFrame, encodeFrame, encodeRoute, messageSize, type OutMessage } from "../../src/protocol/frame.ts";
import { OP_REQUEST } from "../../src/protocol/ops.ts";
import { numberFlag, parseFlags } from "./_load.ts";

const flags = parseFlags(process.argv.slice(2));
const roundMs = numberFlag(flags, "round-ms", 150);
const rounds = numberFlag(flags, "rounds", 5);
const BATCH = 64;
const route = encodeRoute("echo", "");
const msgs: OutMessage[] = Array.from({ length: BATCH }, (_, i) => ({
  op: OP_REQUEST,
  flags: 0,
  mux: i + 1,
  seq: 0,
  deadline: 60_000,
  route,
  payload: new Uint8Array(64),
}));
const size = msgs.reduce((a, m) => a + messageSize(m), 0);
const frame = encodeFrame(msgs, 0, BATCH, size);
const nameBytes = new TextEncoder().encode("echo");
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
let sink = 0;

/** Median ns per unit of `fn`, which does `units` units per call. */
function time(fn: () => number, units: number): number {
  let n = 64;
  for (let t = 0; t < roundMs / 4;) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) sink += fn();
    t = performance.now() - t0;
    if (t < roundMs / 4) n *= 2;
  }
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) sink += fn();
    samples.push(((performance.now() - t0) * 1e6) / (n * units));
  }
  samples.sort((a, b) => a - b);
  return Math.round(samples[samples.length >> 1] * 10) / 10;
}

const decodeNs = time(() => decodeFrame(frame, 1 << 22).length, BATCH);
const encodeNs = time(() => encodeFrame(msgs, 0, BATCH, size).length, BATCH);
const textDecodeNs = time(() => decoder.decode(nameBytes).length, 1);
const noop = (): void => {};
const timerPairNs = time(() => {
  clearTimeout(setTimeout(noop, 60_000));
  return 1;
}, 1);
process.stdout.write(JSON.stringify({ batch: BATCH, decodeNsPerMsg: decodeNs, encodeNsPerMsg: encodeNs, textDecodeNs, timerPairNs, sink: sink > 0 }) + "\n");
process.exit(0);
