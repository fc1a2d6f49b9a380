/**
 * Serve the grid endpoint on whichever runtime is running: Deno, Bun or Node.
 * The runtime's adapter is imported lazily, so a program running on one
 * runtime never loads the other two.
 *
 * Also home of the types the three adapters share: {@link ServeOptions},
 * {@link TlsOptions} and {@link GridServer}.
 *
 * @module
 */

import type { SocketAcceptor } from "../socket.ts";

/**
 * A certificate and private key, both PEM-encoded, to serve `wss://`.
 *
 * @example
 * ```ts
 * import { serve } from "wsgrid/serve";
 * const tls = { cert: await Deno.readTextFile("cert.pem"), key: await Deno.readTextFile("key.pem") };
 * const server = await serve(grid, { port: 9443, tls });
 * ```
 */
export interface TlsOptions {
  /** The certificate chain, PEM. */
  cert: string;
  /** The private key, PEM. */
  key: string;
}

/**
 * Where and how a server adapter listens.
 *
 * @example
 * ```ts
 * import { serve, type ServeOptions } from "wsgrid/serve";
 * const opts: ServeOptions = { port: 9000, hostname: "0.0.0.0" };
 * const server = await serve(grid, opts);
 * ```
 */
export interface ServeOptions {
  /** The port to listen on; `0` picks a free port, read it back from {@link GridServer.port}. */
  port: number;
  /**
   * The interface to listen on.
   * @default all interfaces (the runtime's default)
   */
  hostname?: string;
  /**
   * Serve `wss://` with this certificate and key.
   * @default undefined (plain `ws://`)
   */
  tls?: TlsOptions;
  /**
   * Aborting it closes the server, as {@link GridServer.close} does.
   * @default undefined
   */
  signal?: AbortSignal;
}

/**
 * A running grid server, as returned by every adapter.
 *
 * @example
 * ```ts
 * import { serve } from "wsgrid/serve";
 * const server = await serve(grid, { port: 0, hostname: "127.0.0.1" });
 * console.log(`listening on ${server.port}`);
 * await server.close();
 * ```
 */
export interface GridServer {
  /** The port actually bound (the chosen one when listening on port `0`). */
  readonly port: number;
  /**
   * Stops listening and closes the grid sockets this server accepted. Resolves
   * once nothing of the server keeps the process alive. Calling it again
   * returns the same promise.
   */
  close(): Promise<void>;
}

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
