/**
 * The types the server adapters share, and the server object they return.
 *
 * @module
 */

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
  /** Closes the server, as `close()` does: `await using server = await serve(grid, opts)`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** A {@link GridServer} of a bound port and its close function. */
export function gridServer(port: number, close: () => Promise<void>): GridServer {
  return { port, close, [Symbol.asyncDispose]: close };
}
