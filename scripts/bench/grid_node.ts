/**
 * One wsgrid node of the two-process round-trip benchmark. Both processes are
 * Managers on loopback (`ws://127.0.0.1:<port>` and `ws://127.0.0.1:<peer-port>`)
 * and both serve, so either may be the side that dials.
 *
 * - `--role serve`: registers the `echo` handler, prints `READY <port>`, and runs
 *   until stdin closes (the harness went away) or `--max-seconds` pass.
 * - `--role client`: waits for the connection (first call with `waitForConnect`),
 *   then runs the shared measurement loop with `conn.request("echo", bytes)` and
 *   prints one JSON line `{ rps, p50, p99, n, ... }` like `rtt_client.ts`.
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
import { serve } from "../../src/adapters/serve.ts";
import { exitWithParent, makePayload, numberFlag, parseFlags, runLoad } from "./_load.ts";

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
const server = await serve(grid, { port, hostname: "127.0.0.1" });
const shutdown = async (): Promise<void> => {
  await grid.close();
  await server.close();
};

if (role === "serve") {
  grid.handle("echo", (req: Uint8Array) => req);
  process.stdout.write(`READY ${server.port}\n`);
  exitWithParent(shutdown, numberFlag(flags, "max-seconds", 600));
} else {
  const concurrency = numberFlag(flags, "concurrency", 1);
  const durationMs = numberFlag(flags, "duration", 3) * 1000;
  const warmupMs = numberFlag(flags, "warmup", 1) * 1000;
  const size = numberFlag(flags, "size", 64);
  const connectTimeoutMs = numberFlag(flags, "connect-timeout", 15) * 1000;
  const conn = grid.connection(peer);
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
    const result = await runLoad(echo, { concurrency, durationMs, warmupMs });
    // Messages per frame on this side shows how much the writer batched.
    const c = grid.stats().connections[peer];
    const batching = c ? { messagesOut: c.messagesOut, framesOut: c.framesOut } : {};
    process.stdout.write(JSON.stringify({ ...result, ...batching }) + "\n");
    await Promise.race([shutdown(), new Promise((r) => setTimeout(r, 2000))]);
    process.exit(0);
  } catch (err) {
    process.stderr.write(`grid_node: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
