/**
 * The benchmark cases, as a list of descriptors. A case starts one server
 * process (which prints `READY <port>`) and one client process (which prints
 * one JSON line `{ rps, p50, p99, n }`), both under the same runtime. To add a
 * case (stream throughput, the lockargs codec, a peer library), append a
 * descriptor here; `baseline` names the case its ratio is computed against.
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

/** One benchmark case. */
export interface BenchCase {
  /** Short name shown in the table ("raw", "wsgrid"). */
  name: string;
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

/** Every case, in the order they are interleaved within a round. */
export const CASES: readonly BenchCase[] = [rawCase, wsgridCase];
