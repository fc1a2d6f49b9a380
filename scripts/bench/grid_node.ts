/**
 * One wsgrid node of the two-process round-trip benchmark. Both processes are
 * Managers on loopback (`ws://127.0.0.1:<port>` and `ws://127.0.0.1:<peer-port>`)
 * and both serve, so either may be the side that dials.
 *
 * - `--role serve`: registers the `echo` handler, prints `READY <port>`, and runs
 *   until stdin closes (the harness went away) or `--max-seconds` pass.
 * - `--role client`: waits for the connection (first call with `waitForConnect`),
 *   then, by `--mode`:
 *   - `rtt` (default): the shared measurement loop with `conn.request("echo", bytes)`,
 *     printing one JSON line `{ rps, p50, p99, n, ... }` like `rtt_client.ts`;
 *   - `stream`: opens the `bench.source` stream (the handler writes `--msg-size`-byte
 *     messages as fast as credits allow) and reads it for `--duration` s:
 *     `{ mbps, msgs, bytes, rssPeakMB }`;
 *   - `loaded`: single-request latency (concurrency `--concurrency`, default 1) idle,
 *     then while a `bench.source` stream runs on the same connection:
 *     `{ idle: {p50,p99,rps}, loaded: {p50,p99,rps}, mbps }`;
 *   - `slow`: reads the `bench.source` stream slowly (one message per `--read-every` ms)
 *     for `--duration` s; the writer's memory is what the serving process reports.
 *
 * `--interceptors none|noop|otel` (both roles, default none) installs interceptors first
 * (scripts/bench/_interceptors.ts), for the interceptor-cost suite.
 *
 * The serving process, when it exits, prints one JSON line with its peak RSS and,
 * per stream it served, the RSS when the stream started and the peak during it.
 *
 * ```sh
 * node scripts/bench/grid_node.ts --role serve --port 9101 --peer-port 9102
 * node scripts/bench/grid_node.ts --role client --port 9102 --peer-port 9101 --concurrency 64
 * ```
 *
 * @module
 */

import process from "node:process";
import { Manager } from "../../src/manager.ts";
import { installInterceptors } from "./_interceptors.ts";
import { serve } from "../../src/adapters/serve.ts";
import type { StreamCall } from "../../src/types.ts";
import {
  exitWithParent,
  makePayload,
  MemorySampler,
  numberFlag,
  parseFlags,
  readStreamFor,
  runLoad,
} from "./_load.ts";

const flags = parseFlags(process.argv.slice(2));
const role = flags.get("role");
const port = numberFlag(flags, "port", 0);
const peerPort = numberFlag(flags, "peer-port", 0);
if (role !== "serve" && role !== "client") {
  throw new TypeError(`Cannot start grid node: --role must be "serve" or "client", got "${role}"`);
}
if (port <= 0 || peerPort <= 0) {
  throw new TypeError("Cannot start grid node: --port and --peer-port are required (non-zero)");
}
const local = `ws://127.0.0.1:${port}`;
const peer = `ws://127.0.0.1:${peerPort}`;
const grid = new Manager({
  local,
  hosts: [local, peer],
  secret: flags.get("secret") ?? "wsgrid bench secret",
});
await installInterceptors(grid, flags.get("interceptors") ?? "none");
const server = await serve(grid, { port, hostname: "127.0.0.1" });
const shutdown = async (): Promise<void> => {
  await grid.close();
  await server.close();
};

if (role === "serve") {
  const mem = new MemorySampler();
  const served: { rssStartMB: number; rssPeakMB: number; msgs: number }[] = [];
  grid.handle("echo", (req: Uint8Array) => req);
  // Payload: u32 message size, u32 message count (0: until the caller cancels), little-endian.
  grid.handleStream("bench.source", async (call: StreamCall<Uint8Array, Uint8Array, Uint8Array>) => {
    const v = new DataView(call.payload.buffer, call.payload.byteOffset, call.payload.byteLength);
    const msgSize = v.getUint32(0, true);
    const count = v.getUint32(4, true) || Infinity;
    const chunk = makePayload(msgSize, 0);
    const rec = { rssStartMB: mem.nowMB(), rssPeakMB: 0, msgs: 0 };
    served.push(rec);
    const mark = mem.mark();
    const w = call.responses.getWriter();
    try {
      while (rec.msgs < count && !call.signal.aborted) {
        await w.ready;
        if (call.signal.aborted) break;
        w.write(chunk).catch(() => {});
        rec.msgs++;
      }
      if (!call.signal.aborted) await w.close();
    } catch {
      // The caller cancelled: the end of a throughput run.
    } finally {
      rec.rssPeakMB = mem.peakSinceMB(mark);
    }
  }, { inCapacity: 0, outCapacity: numberFlag(flags, "out-capacity", 16) });
  process.stdout.write(`READY ${server.port}\n`);
  exitWithParent(async () => {
    await shutdown();
    mem.stop();
    process.stdout.write(JSON.stringify({ rssPeakMB: mem.peakMB(), streams: served }) + "\n");
  }, numberFlag(flags, "max-seconds", 600));
} else {
  const concurrency = numberFlag(flags, "concurrency", 1);
  const durationMs = numberFlag(flags, "duration", 3) * 1000;
  const warmupMs = numberFlag(flags, "warmup", 1) * 1000;
  const size = numberFlag(flags, "size", 64);
  const connectTimeoutMs = numberFlag(flags, "connect-timeout", 15) * 1000;
  const mode = flags.get("mode") ?? "rtt";
  const msgSize = numberFlag(flags, "msg-size", 16 << 10);
  const conn = grid.connection(peer);
  const sourcePayload = (count: number): Uint8Array => {
    const b = new Uint8Array(8);
    const v = new DataView(b.buffer);
    v.setUint32(0, msgSize, true);
    v.setUint32(4, count, true);
    return b;
  };
  // RSS sampling costs a little CPU, so round-trip runs go without it.
  const mem = mode === "rtt" ? undefined : new MemorySampler();
  try {
    const first = await conn.request("echo", makePayload(size, 0xffffffff), {
      waitForConnect: true,
      timeout: connectTimeoutMs,
    });
    if (first.byteLength !== size) {
      throw new Error(`Cannot verify echo: got ${first.byteLength} bytes, sent ${size}`);
    }
    const echo = async (id: number): Promise<void> => {
      const res = await conn.request("echo", makePayload(size, id));
      if (res.byteLength !== size) {
        throw new Error(`Cannot verify echo of request ${id}: got ${res.byteLength} bytes`);
      }
    };
    let out: Record<string, unknown>;
    if (mode === "rtt") {
      out = { ...(await runLoad(echo, { concurrency, durationMs, warmupMs })) };
    } else if (mode === "stream" || mode === "slow") {
      const st = await conn.newStream("bench.source", sourcePayload(0));
      const readEvery = mode === "slow" ? numberFlag(flags, "read-every", 10) : 0;
      const r = await readStreamFor(st.responses, { warmupMs, durationMs, readEveryMs: readEvery });
      out = { ...r, rssPeakMB: mem?.peakMB() };
    } else if (mode === "loaded") {
      const idle = await runLoad(echo, { concurrency, durationMs, warmupMs });
      const st = await conn.newStream("bench.source", sourcePayload(0));
      const ctl = new AbortController();
      const pump = readStreamFor(st.responses, { warmupMs: 0, durationMs: 3_600_000, signal: ctl.signal });
      const loaded = await runLoad(echo, { concurrency, durationMs, warmupMs });
      ctl.abort();
      const r = await pump;
      out = { idle, loaded, mbps: r.mbps, p99Ratio: Math.round((loaded.p99 / idle.p99) * 100) / 100 };
    } else {
      throw new TypeError(`Cannot run: unknown --mode "${mode}" (rtt, stream, loaded, slow)`);
    }
    mem?.stop();
    // Messages per frame on this side shows how much the writer batched.
    const c = grid.stats().connections[peer];
    const batching = c
      ? { messagesOut: c.messagesOut, framesOut: c.framesOut, messagesIn: c.messagesIn, framesIn: c.framesIn }
      : {};
    process.stdout.write(JSON.stringify({ ...out, ...batching }) + "\n");
    await Promise.race([shutdown(), new Promise((r) => setTimeout(r, 2000))]);
    process.exit(0);
  } catch (err) {
    process.stderr.write(`grid_node: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
