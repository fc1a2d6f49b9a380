/**
 * The benchmark cases, as a list of descriptors. A case starts one server
 * process (which prints `READY <port>`, and may print one JSON line of its own
 * stats when it exits) and one client process (which prints one JSON line:
 * `{ rps, p50, p99, n }` for round-trip cases, `{ mbps, ... }` for stream
 * cases), both under the same runtime. `suite` says which table a case
 * belongs to; `runtimes`, `sizes` and `concurrencies` restrict where it runs.
 * To add a case, append a descriptor to `CASES`; `baseline` names the case its
 * ratio is computed against (same suite, runtime, size and concurrency).
 *
 * @module
 */

import { existsSync } from "node:fs";
import { join } from "node:path";
import type { ProcSpec } from "./_proc.ts";

/** Parameters of one measurement. */
export interface CaseParams {
  concurrency: number;
  /** Measured window, seconds. */
  duration: number;
  /** Warm-up, seconds. */
  warmup: number;
  /** Payload bytes per message. */
  size: number;
  /** Free loopback ports reserved for this run (`ports` of the descriptor, after `arrange`). */
  ports: number[];
}

/** Which process of a wsgrid pair opens the socket. */
export type Dialer = "client" | "server" | "any";

/** The tables a case can belong to. */
export type Suite = "rtt" | "stream" | "loaded" | "slow" | "interceptors";

/** One benchmark case. */
export interface BenchCase {
  /** Short name shown in the table ("raw", "wsgrid"). */
  name: string;
  /** Which table: single-request round trips (default), stream throughput, latency under a stream, slow consumer. */
  suite?: Suite;
  /** Runtimes this case runs on (default: every runtime of the run). */
  runtimes?: readonly string[];
  /** Payload sizes this case runs with (round-trip cases; default: every size of the run). */
  sizes?: readonly number[];
  /** Concurrencies this case runs with (round-trip cases; default: every concurrency of the run). */
  concurrencies?: readonly number[];
  /** One-line description for the results file. */
  description: string;
  /** Name of the case this one's rps is divided by in the ratio column. */
  baseline?: string;
  /** How many free loopback ports to reserve before starting. */
  ports: number;
  /** Reorders the reserved ports (say, so that a given side dials). */
  arrange?(ports: number[], dialer: Dialer): Promise<number[]>;
  /** Why the case cannot run here, or undefined when it can. `root` is the repo root. */
  skip(root: string): string | undefined;
  server(p: CaseParams): ProcSpec;
  client(p: CaseParams, serverPort: number): ProcSpec;
}

function loadArgs(p: CaseParams): string[] {
  return [
    "--concurrency", String(p.concurrency),
    "--duration", String(p.duration),
    "--warmup", String(p.warmup),
    "--size", String(p.size),
  ];
}

/** Raw WebSocket echo: one frame per message, the client keeps `concurrency` sends outstanding. */
export const rawCase: BenchCase = {
  name: "raw",
  description: "raw WebSocket echo, one frame per 64-byte message (global WebSocket client)",
  ports: 0,
  skip: () => undefined,
  server: () => ({ script: "scripts/bench/raw_server.ts", args: ["--port", "0"] }),
  client: (p, port) => ({
    script: "scripts/bench/rtt_client.ts",
    args: ["--url", `ws://127.0.0.1:${port}`, ...loadArgs(p)],
  }),
};

/** wsgrid single requests between two Managers in separate processes. */
export const wsgridCase: BenchCase = {
  name: "wsgrid",
  description: "wsgrid conn.request(\"echo\") between two Manager processes",
  baseline: "raw",
  ports: 2,
  // The dialing side uses the runtime's global WebSocket, the other side the
  // server adapter. The raw baseline's client dials, so by default the ports
  // are ordered so that the measuring process dials too; otherwise the side
  // would follow the port numbers and change from run to run.
  async arrange(ports, dialer) {
    if (dialer === "any") return ports;
    const { shouldDial } = await import("../../src/dial_rule.ts");
    const [server, client] = ports.map((p) => `ws://127.0.0.1:${p}`);
    const clientDials = shouldDial(client, server);
    return clientDials === (dialer === "client") ? ports : [ports[1], ports[0]];
  },
  skip(root) {
    for (const f of ["src/manager.ts", "src/adapters/serve.ts", "src/dial_rule.ts"]) {
      if (!existsSync(join(root, f))) return `${f} does not exist yet`;
    }
    return undefined;
  },
  server: (p) => ({
    script: "scripts/bench/grid_node.ts",
    args: ["--role", "serve", "--port", String(p.ports[0]), "--peer-port", String(p.ports[1])],
  }),
  client: (p) => ({
    script: "scripts/bench/grid_node.ts",
    args: [
      "--role", "client", "--port", String(p.ports[1]), "--peer-port", String(p.ports[0]),
      ...loadArgs(p),
    ],
  }),
};

function wsgridStreamCase(
  name: string,
  suite: Suite,
  description: string,
  mode: string,
  extra: string[] = [],
  serverExtra: string[] = [],
): BenchCase {
  return {
    ...wsgridCase,
    name,
    suite,
    description,
    baseline: suite === "stream" ? "raw" : undefined,
    server: (p) => ({ ...wsgridCase.server(p), args: [...wsgridCase.server(p).args, ...serverExtra] }),
    client: (p) => ({
      script: "scripts/bench/grid_node.ts",
      args: [
        "--role", "client", "--port", String(p.ports[1]), "--peer-port", String(p.ports[0]),
        "--mode", mode, ...loadArgs(p), ...extra,
      ],
    }),
  };
}

/** Node-only peer libraries need their dev dependencies installed. */
function peerSkip(pkgs: string[]): (root: string) => string | undefined {
  return (root) => {
    for (const p of pkgs) if (!existsSync(join(root, "node_modules", p))) return `npm package ${p} is not installed`;
    return undefined;
  };
}

function peerCase(lib: string, description: string, pkgs: string[]): BenchCase {
  return {
    name: lib,
    description,
    baseline: "raw",
    runtimes: ["node"],
    sizes: [64],
    concurrencies: [1, 64],
    ports: 0,
    skip: peerSkip(pkgs),
    server: () => ({ script: "scripts/bench/peer_server.ts", args: ["--lib", lib] }),
    client: (p, port) => ({
      script: "scripts/bench/peer_client.ts",
      args: ["--lib", lib, "--url", `ws://127.0.0.1:${port}`, ...loadArgs(p)],
    }),
  };
}

/** Raw one-way throughput: the server sends 16 KiB messages as fast as `bufferedAmount` allows. */
export const rawStreamCase: BenchCase = {
  name: "raw",
  suite: "stream",
  description: "raw WebSocket, server sends 16 KiB messages while bufferedAmount < 1 MiB, client counts",
  ports: 0,
  skip: () => undefined,
  server: () => ({ script: "scripts/bench/raw_server.ts", args: ["--port", "0", "--mode", "source"] }),
  client: (p, port) => ({
    script: "scripts/bench/raw_stream_client.ts",
    args: ["--url", `ws://127.0.0.1:${port}`, "--duration", String(p.duration), "--warmup", String(p.warmup)],
  }),
};

/**
 * The runtime's own floor for the `loaded` suite: a raw echo on one socket,
 * timed idle and then while a raw stream (as in {@link rawStreamCase}) runs on
 * a second socket between the same two processes.
 */
export const rawLoadedCase: BenchCase = {
  name: "raw",
  suite: "loaded",
  description: "raw WebSocket echo (64 B, concurrency 1) idle, then while a raw 16 KiB stream runs on a second socket between the same processes",
  ports: 0,
  skip: () => undefined,
  server: () => ({ script: "scripts/bench/raw_server.ts", args: ["--port", "0", "--mode", "source"] }),
  client: (p, port) => ({
    script: "scripts/bench/rtt_client.ts",
    args: [
      "--url", `ws://127.0.0.1:${port}/echo`,
      "--stream-url", `ws://127.0.0.1:${port}/`,
      "--concurrency", "1",
      "--duration", String(p.duration),
      "--warmup", String(p.warmup),
      "--size", "64",
    ],
  }),
};

/** capnweb's ReadableStream passed over RPC (Node only). */
export const capnwebStreamCase: BenchCase = {
  ...peerCase("capnweb", "capnweb RPC returning a ReadableStream of 16 KiB chunks (pulled as fast as it is read)", ["capnweb", "ws"]),
  suite: "stream",
  client: (p, port) => ({
    script: "scripts/bench/peer_client.ts",
    args: ["--lib", "capnweb", "--mode", "stream", "--url", `ws://127.0.0.1:${port}`, ...loadArgs(p)],
  }),
};

/**
 * wsgrid single requests (64 B, concurrency 64) with `--interceptors mode` on both processes:
 * the interceptor-cost suite compares none (baseline), a no-op pair and the OpenTelemetry pair.
 */
function interceptorCase(mode: "none" | "noop" | "otel", description: string): BenchCase {
  const extra = ["--interceptors", mode];
  return {
    ...wsgridCase,
    name: mode,
    suite: "interceptors",
    description,
    baseline: mode === "none" ? undefined : "none",
    server: (p) => ({ ...wsgridCase.server(p), args: [...wsgridCase.server(p).args, ...extra] }),
    client: (p, port) => ({ ...wsgridCase.client(p, port), args: [...wsgridCase.client(p, port).args, ...extra] }),
  };
}

/** Every case, in the order they are interleaved within a round. */
export const CASES: readonly BenchCase[] = [
  rawCase,
  wsgridCase,
  peerCase("capnweb", "capnweb WebSocket RPC session (ws server), api.echo(bytes)", ["capnweb", "ws"]),
  peerCase("birpc", "birpc over a ws socket (post/on), msgpackr serialisation, rpc.echo(bytes)", ["birpc", "ws"]),
  peerCase("socketio", "socket.io emit with ack, websocket transport only, binary payload", ["socket.io", "socket.io-client"]),
  rawStreamCase,
  wsgridStreamCase("wsgrid", "stream", "wsgrid stream: handler writes 16 KiB messages as fast as credits allow (default outCapacity 16), caller reads", "stream"),
  // The same with as many bytes in flight as the raw case allows itself (its 1 MiB of bufferedAmount).
  wsgridStreamCase("wsgrid-1MiB", "stream", "the wsgrid stream with outCapacity 64: 64 × 16 KiB = 1 MiB in flight, as the raw sender's 1 MiB bufferedAmount", "stream", [], ["--out-capacity", "64"]),
  capnwebStreamCase,
  rawLoadedCase,
  wsgridStreamCase("wsgrid", "loaded", "wsgrid single-request latency (64 B, concurrency 1) idle, then while a 16 KiB stream runs on the same connection", "loaded", ["--concurrency", "1"]),
  wsgridStreamCase("wsgrid", "slow", "wsgrid stream read by a slow consumer (one 16 KiB message every 10 ms); writer's RSS", "slow", ["--read-every", "10"]),
  interceptorCase("none", "wsgrid conn.request(\"echo\"), 64 B, concurrency 64, no interceptor installed (the fast path)"),
  interceptorCase("noop", "the same with a no-op incoming and outgoing interceptor on both processes"),
  interceptorCase("otel", "the same with wsgrid/otel on both processes (SDK, BatchSpanProcessor, an exporter that drops the spans)"),
];
