/**
 * Client side of the peer-library baselines (Node only), timed by the same
 * loop as wsgrid (`runLoad`): `--lib capnweb|birpc|socketio` against
 * `peer_server.ts`. `--mode rtt` (default) echoes `--size`-byte payloads and
 * prints `{ rps, p50, p99, n, ... }`; `--mode stream` (capnweb only) reads
 * `source(--msg-size)`, a ReadableStream passed over RPC, and prints
 * `{ mbps, msgs, bytes, windowMs, rssPeakMB }`.
 *
 * ```sh
 * node scripts/bench/peer_client.ts --lib birpc --url ws://127.0.0.1:8080 --concurrency 64
 * ```
 *
 * @module
 */

import process from "node:process";
import { makePayload, MemorySampler, numberFlag, parseFlags, readStreamFor, runLoad } from "./_load.ts";

const flags = parseFlags(process.argv.slice(2));
const lib = flags.get("lib");
const url = flags.get("url");
if (!url) throw new TypeError("Cannot start client: --url is required");
const mode = flags.get("mode") ?? "rtt";
const concurrency = numberFlag(flags, "concurrency", 1);
const durationMs = numberFlag(flags, "duration", 3) * 1000;
const warmupMs = numberFlag(flags, "warmup", 1) * 1000;
const size = numberFlag(flags, "size", 64);
const msgSize = numberFlag(flags, "msg-size", 16 << 10);
// RSS sampling costs a little CPU, so round-trip runs go without it.
const mem = mode === "rtt" ? undefined : new MemorySampler();

type Echo = (b: Uint8Array) => Promise<Uint8Array>;
let echo: Echo;
let source: ((size: number) => Promise<ReadableStream<Uint8Array>>) | undefined;
let close: () => void;

function opened(ws: { addEventListener?: unknown; once?: unknown } & object): Promise<void> {
  return new Promise((resolve, reject) => {
    const w = ws as { once(ev: string, fn: (e?: unknown) => void): void };
    w.once("open", () => resolve());
    w.once("error", (e) => reject(new Error(`Cannot connect to "${url}": ${String(e)}`)));
  });
}

if (lib === "capnweb") {
  const { newWebSocketRpcSession } = await import("capnweb");
  interface Api {
    echo(b: Uint8Array): Uint8Array;
    source(size: number): ReadableStream<Uint8Array>;
  }
  const ws = new WebSocket(url);
  const api = newWebSocketRpcSession(ws) as unknown as {
    echo(b: Uint8Array): Promise<Uint8Array>;
    source(size: number): Promise<ReadableStream<Uint8Array>>;
  } & Partial<Api>;
  echo = (b) => api.echo(b);
  source = (s) => api.source(s);
  close = () => ws.close();
} else if (lib === "birpc") {
  const { createBirpc } = await import("birpc");
  const { pack, unpack } = await import("msgpackr");
  const { WebSocket: Ws } = await import("ws");
  const ws = new Ws(url, { perMessageDeflate: false });
  await opened(ws);
  const rpc = createBirpc<{ echo(b: Uint8Array): Uint8Array }>({}, {
    post: (d) => ws.send(d),
    on: (fn) => void ws.on("message", (data) => fn(data)),
    serialize: (v) => pack(v),
    deserialize: (v) => unpack(v as Uint8Array),
  });
  echo = (b) => rpc.echo(b);
  close = () => ws.close();
} else if (lib === "socketio") {
  const { io } = await import("socket.io-client");
  const socket = io(url, { transports: ["websocket"], reconnection: false });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("connect_error", (e: Error) => reject(new Error(`Cannot connect to "${url}": ${e.message}`)));
  });
  echo = (b) => new Promise((resolve) => socket.emit("echo", b, (r: Uint8Array) => resolve(r)));
  close = () => void socket.close();
} else {
  throw new TypeError(`Cannot start: --lib must be capnweb, birpc or socketio, got "${lib}"`);
}

try {
  let out: Record<string, unknown>;
  if (mode === "rtt") {
    const first = await echo(makePayload(size, 0xffffffff));
    if (first.byteLength !== size) throw new Error(`Cannot verify echo: got ${first.byteLength} bytes, sent ${size}`);
    out = {
      ...(await runLoad(async (id) => {
        const r = await echo(makePayload(size, id));
        if (r.byteLength !== size) throw new Error(`Cannot verify echo of request ${id}: got ${r.byteLength} bytes`);
      }, { concurrency, durationMs, warmupMs })),
    };
  } else if (mode === "stream" && source) {
    const rs = await source(msgSize);
    out = { ...(await readStreamFor(rs, { warmupMs, durationMs })) };
  } else {
    throw new TypeError(`Cannot run: --mode ${mode} is not supported for ${lib}`);
  }
  mem?.stop();
  process.stdout.write(JSON.stringify({ ...out, rssPeakMB: mem?.peakMB() }) + "\n");
  close();
  process.exit(0);
} catch (err) {
  process.stderr.write(`peer_client: ${(err as Error).message}\n`);
  process.exit(1);
}
