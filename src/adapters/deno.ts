/**
 * Deno server adapter: serves the grid endpoint with `Deno.serve`, or plugs
 * it into an existing `Deno.serve` handler. `Deno.upgradeWebSocket` already
 * yields a WHATWG WebSocket, so sockets go to the Manager unwrapped.
 *
 * @module
 */

import type { GridSocket, SocketAcceptor } from "../socket.ts";
import { isWebSocketUpgrade, upgradeRequired } from "./_http.ts";
import { denoDial } from "./_deno_dial.ts";
import { type GridServer, gridServer, type ServeOptions } from "./_server.ts";

/**
 * The slice of `Deno.NetAddr` (or any `Deno.Addr`) read here.
 *
 * @example
 * ```ts
 * import type { DenoAddr } from "wsgrid/deno";
 * const addr: DenoAddr = { transport: "tcp", hostname: "127.0.0.1", port: 9000 };
 * ```
 */
export interface DenoAddr {
  /** "tcp", "unix", ... */
  readonly transport: string;
  /** The IP address, for network transports. */
  readonly hostname?: string;
  /** The port, for network transports. */
  readonly port?: number;
}

/**
 * The slice of `Deno.ServeHandlerInfo` the grid handler reads: the peer's address.
 *
 * @example
 * ```ts
 * import type { DenoHandlerInfo } from "wsgrid/deno";
 * const info: DenoHandlerInfo = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 } };
 * ```
 */
export interface DenoHandlerInfo {
  /** The remote address of the connection. */
  readonly remoteAddr: DenoAddr;
}

/** The slice of `Deno.HttpServer` used here. */
interface DenoHttpServer {
  readonly addr: DenoAddr;
  shutdown(): Promise<void>;
}

/** The slice of the `Deno.serve` options used here. */
interface DenoServeInit {
  port: number;
  hostname?: string;
  cert?: string;
  key?: string;
  onListen?: (addr: DenoAddr) => void;
  handler: (req: Request, info: DenoHandlerInfo) => Response | Promise<Response>;
}

/** The slice of the `Deno` namespace used here, declared locally so no runtime types are needed. */
interface DenoNamespace {
  serve(init: DenoServeInit): DenoHttpServer;
  upgradeWebSocket(req: Request, options?: { idleTimeout?: number }): { socket: WebSocket; response: Response };
}

function denoNamespace(): DenoNamespace {
  return (globalThis as unknown as { Deno: DenoNamespace }).Deno;
}

/**
 * A request handler as made by {@link denoHandler}: a Response for requests on
 * the grid path, `undefined` for everything else.
 */
export type DenoGridHandler = (req: Request, info?: DenoHandlerInfo) => Response | undefined;

/**
 * Makes a `Deno.serve` handler for the grid endpoint. Upgrade requests whose
 * URL path is exactly `grid.path` become WebSocket connections handed to
 * `grid.acceptSocket` once open; other requests on that path get 426; every
 * request elsewhere yields `undefined`, so `?? app(req)` passes it to your app.
 *
 * Deno has no per-message size limit to configure; the Manager enforces
 * `maxFrameBytes` itself.
 *
 * @param grid the Manager (or any {@link SocketAcceptor}) that takes the upgraded sockets
 * @returns a handler to call first in your `Deno.serve` handler
 *
 * @example
 * ```ts
 * import { denoHandler } from "wsgrid/deno";
 * const gridHandler = denoHandler(grid);
 * Deno.serve({ port: 9000 }, (req, info) => gridHandler(req, info) ?? app(req));
 * ```
 */
export function denoHandler(grid: SocketAcceptor): DenoGridHandler {
  grid.useDialer?.(denoDial);
  return (req, info) => {
    if (new URL(req.url).pathname !== grid.path) return undefined;
    if (!isWebSocketUpgrade(req)) return upgradeRequired();
    // The address must be read before upgrading: afterwards Deno reports the request as closed.
    const remoteAddress = info?.remoteAddr.hostname;
    let upgraded: { socket: WebSocket; response: Response };
    try {
      // idleTimeout 0: the grid pings on its own, and Deno's idle timer outlives a socket
      // whose peer vanished without a close frame, keeping the process alive after close()
      // for up to the timeout (30 s by default; cf. denoland/deno#22622).
      upgraded = denoNamespace().upgradeWebSocket(req, { idleTimeout: 0 });
    } catch (err) {
      return new Response(`Cannot upgrade to WebSocket: ${(err as Error).message}\n`, { status: 400 });
    }
    const { socket, response } = upgraded;
    socket.binaryType = "arraybuffer";
    // A WHATWG WebSocket is a GridSocket, except that lib.dom types `send` for
    // ArrayBuffer-backed views only while GridSocket sends any Uint8Array.
    const gridSocket = socket as unknown as GridSocket;
    socket.addEventListener("open", () => grid.acceptSocket(gridSocket, { remoteAddress }), { once: true });
    return response;
  };
}


/**
 * Serves the grid endpoint with `Deno.serve`. Requests outside `grid.path`
 * are answered 404; to serve an app too, use {@link denoHandler}.
 *
 * @param grid the Manager (or any {@link SocketAcceptor}) that takes the upgraded sockets
 * @param opts port (`0` picks one), hostname, TLS (serves `wss://`) and abort signal
 * @returns the running server; `close()` shuts it down and closes its WebSockets
 * @throws when the port cannot be bound, or `opts.signal` is already aborted
 *
 * @example
 * ```ts
 * import { serveDeno } from "wsgrid/deno";
 * const server = await serveDeno(grid, { port: 9000 });
 * // ... later
 * await server.close();
 * ```
 */
export function serveDeno(grid: SocketAcceptor, opts: ServeOptions): Promise<GridServer> {
  try {
    opts.signal?.throwIfAborted();
    const handle = denoHandler(grid);
    const server = denoNamespace().serve({
      port: opts.port,
      ...(opts.hostname !== undefined ? { hostname: opts.hostname } : {}),
      ...(opts.tls ? { cert: opts.tls.cert, key: opts.tls.key } : {}),
      onListen() {},
      handler: (req, info) => handle(req, info) ?? new Response("Not found\n", { status: 404 }),
    });
    let closing: Promise<void> | undefined;
    const onAbort = () => void close();
    // Shutting down also closes the upgraded WebSockets (code 1001), which fire "close" on the grid side.
    const close = () => {
      opts.signal?.removeEventListener("abort", onAbort);
      return closing ??= server.shutdown();
    };
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    return Promise.resolve(gridServer(server.addr.port ?? opts.port, close));
  } catch (err) {
    return Promise.reject(err);
  }
}
