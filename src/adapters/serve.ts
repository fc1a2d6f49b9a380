/**
 * Serve the grid endpoint on whichever runtime is running: Deno, Bun or Node.
 * The runtime's adapter is imported lazily, so a program running on one
 * runtime never loads the other two.
 *
 * Re-exports the types the three adapters share (declared in `_server.ts`, which the
 * adapters import, so that they do not import this module that imports them).
 *
 * @module
 */

import type { SocketAcceptor } from "../socket.ts";

export type { GridServer, ServeOptions, TlsOptions } from "./_server.ts";
import type { GridServer, ServeOptions } from "./_server.ts";

/** The runtime a program runs on, as far as choosing an adapter goes. */
export type Runtime = "deno" | "bun" | "node";

/**
 * Detects the running runtime. Deno and Bun are recognised by their global
 * namespace object; anything else is taken to be Node.
 *
 * @returns `"deno"`, `"bun"` or `"node"`
 *
 * @example
 * ```ts
 * import { detectRuntime } from "wsgrid/serve";
 * console.log(detectRuntime()); // "deno" when run with deno
 * ```
 */
export function detectRuntime(): Runtime {
  if ("Deno" in globalThis) return "deno";
  if ("Bun" in globalThis) return "bun";
  return "node";
}

/**
 * Serves the grid endpoint (`grid.path`) with the adapter of the running
 * runtime: `serveDeno`, `serveBun` or `serveNode`. Every other request is
 * answered 404; to put the grid next to an application, use the runtime's
 * embedding helper (`denoHandler`, `bunHandlers`, `attachNode`) instead.
 *
 * @param grid the Manager (or any {@link SocketAcceptor}) that takes the upgraded sockets
 * @param opts port, hostname, TLS and abort signal
 * @returns the running server, once it listens
 * @throws when the port cannot be bound, or `opts.signal` is already aborted
 *
 * @example
 * ```ts
 * import { Manager } from "wsgrid";
 * import { serve } from "wsgrid/serve";
 * const grid = new Manager({ local: "ws://10.0.0.1:9000", hosts, secret });
 * const server = await serve(grid, { port: 9000, hostname: "0.0.0.0" });
 * // ... later
 * await grid.close();
 * await server.close();
 * ```
 */
export async function serve(grid: SocketAcceptor, opts: ServeOptions): Promise<GridServer> {
  switch (detectRuntime()) {
    case "deno": {
      const { serveDeno } = await import("./deno.ts");
      return serveDeno(grid, opts);
    }
    case "bun": {
      const { serveBun } = await import("./bun.ts");
      return serveBun(grid, opts);
    }
    case "node": {
      const { serveNode } = await import("./node.ts");
      return serveNode(grid, opts);
    }
  }
}
