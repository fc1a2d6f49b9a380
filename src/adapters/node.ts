/**
 * Node server adapter (Node 22+): serves the grid endpoint on a `node:http`
 * (or `node:https`) server, or attaches it to an existing one. Upgrades go
 * through `ws`, whose WebSocket already has the WHATWG shape the Manager
 * expects (`addEventListener`, `binaryType`), so sockets are handed over
 * unwrapped. Outgoing sockets of a Manager served here are `ws` clients too
 * (see `_ws_dial.ts`).
 *
 * @module
 */

import { createServer as createHttpServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import type { GridSocket, SocketAcceptor } from "../socket.ts";
import { type GridServer, gridServer, type ServeOptions } from "./_server.ts";
import { markWsSocket, wsDial } from "./_ws_dial.ts";

/** The slice of a `ws` WebSocket used here, beyond the GridSocket shape. */
interface WsSocket extends GridSocket {
  on(event: "error", listener: (err: Error) => void): void;
  once(event: "close", listener: () => void): void;
  terminate(): void;
}

/** The slice of a `ws` WebSocketServer used here, declared locally so no `@types/ws` is needed. */
interface WsServer {
  readonly clients: Set<WsSocket>;
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, done: (ws: WsSocket) => void): void;
  close(): void;
}

type WsServerConstructor = new (opts: { noServer: true; maxPayload: number }) => WsServer;

/** How long `close()` waits for peers to answer the close frame before cutting their sockets. */
const CLOSE_GRACE_MS = 1_000;

function pathnameOf(url: string | undefined): string {
  // The base only completes relative request targets; its host is never used.
  return new URL(url ?? "/", "http://localhost").pathname;
}

function refuseUpgrade(socket: Duplex, status: string): void {
  socket.on("error", () => {}); // the peer may reset first; nothing to do about it
  socket.once("finish", () => socket.destroy());
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

/** Closes every socket with 1001, waits a bounded time for the handshakes, then cuts what is left. */
async function closeSockets(clients: Set<WsSocket>): Promise<void> {
  const closed = [...clients].map((ws) =>
    new Promise<void>((resolve) => {
      ws.once("close", resolve);
      ws.close(1001, "Server shutting down");
    })
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  const grace = new Promise<void>((resolve) => timer = setTimeout(resolve, CLOSE_GRACE_MS));
  await Promise.race([Promise.all(closed), grace]);
  clearTimeout(timer);
  for (const ws of clients) ws.terminate();
}

interface Attached {
  wss: WsServer;
  detach(): void;
}

function attach(grid: SocketAcceptor, server: Server): Attached {
  // Outgoing sockets use the ws client too (why: ./_ws_dial.ts).
  grid.useDialer?.(wsDial);
  const wss = new (WebSocketServer as unknown as WsServerConstructor)({
    noServer: true,
    maxPayload: grid.maxFrameBytes,
  });
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (pathnameOf(req.url) !== grid.path) {
      // Another listener may own this path; Node leaves the socket hanging if nobody does.
      if (server.listenerCount("upgrade") === 1) refuseUpgrade(socket, "404 Not Found");
      return;
    }
    const remoteAddress = req.socket.remoteAddress;
    wss.handleUpgrade(req, socket, head, (ws) => {
      // binaryType stays ws's "nodebuffer": the core reads Buffer views without a copy.
      // ws is an EventEmitter: an "error" with no listener would crash the process.
      ws.on("error", () => {});
      grid.acceptSocket(markWsSocket(ws), { remoteAddress });
    });
  };
  server.on("upgrade", onUpgrade);
  return { wss, detach: () => server.off("upgrade", onUpgrade) };
}

function boundPort(server: Server): number {
  const addr = server.address();
  return typeof addr === "object" && addr !== null ? addr.port : 0;
}

/**
 * Attaches the grid endpoint to an existing `node:http` or `node:https`
 * server: upgrade requests whose URL path is exactly `grid.path` become `ws`
 * WebSockets handed to `grid.acceptSocket`. Upgrades on other paths are left
 * to the server's other `upgrade` listeners; when there is none, they are
 * refused with 404. Plain requests are never touched.
 *
 * `close()` detaches the grid and closes the sockets it accepted; the server
 * itself stays up (it belongs to the app). `port` reads the server's bound port
 * (0 until it listens).
 *
 * @param grid the Manager (or any {@link SocketAcceptor}) that takes the upgraded sockets
 * @param server the app's HTTP(S) server, listening or not
 * @returns the attachment; `close()` undoes it
 *
 * @example
 * ```ts
 * import { createServer } from "node:http";
 * import { attachNode } from "wsgrid/node";
 * const server = createServer((req, res) => res.end("app"));
 * const attached = attachNode(grid, server);
 * server.listen(9000);
 * ```
 */
export function attachNode(grid: SocketAcceptor, server: Server): GridServer {
  const { wss, detach } = attach(grid, server);
  let closing: Promise<void> | undefined;
  return {
    get port() {
      return boundPort(server);
    },
    close() {
      closing ??= (async () => {
        detach();
        await closeSockets(wss.clients);
        wss.close();
      })();
      return closing;
    },
    [Symbol.asyncDispose]() {
      return this.close();
    },
  };
}

/**
 * Serves the grid endpoint on a new `node:http` server (`node:https` with
 * `tls`). Requests outside `grid.path` are answered 404; to serve an app too,
 * use {@link attachNode} on your own server.
 *
 * @param grid the Manager (or any {@link SocketAcceptor}) that takes the upgraded sockets
 * @param opts port (`0` picks one), hostname, TLS (serves `wss://`) and abort signal
 * @returns the running server, once it listens; `close()` stops it and closes its WebSockets
 * @throws when the port cannot be bound, or `opts.signal` is already aborted
 *
 * @example
 * ```ts
 * import { serveNode } from "wsgrid/node";
 * const server = await serveNode(grid, { port: 9000 });
 * // ... later
 * await server.close();
 * ```
 */
export async function serveNode(grid: SocketAcceptor, opts: ServeOptions): Promise<GridServer> {
  opts.signal?.throwIfAborted();
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const onPath = pathnameOf(req.url) === grid.path;
    res.writeHead(onPath ? 426 : 404, {
      "content-type": "text/plain; charset=utf-8",
      ...(onPath ? { upgrade: "websocket" } : {}),
    });
    res.end(onPath ? "Upgrade required: the grid endpoint only accepts WebSocket upgrades\n" : "Not found\n");
  };
  const server: Server = opts.tls
    ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, onRequest)
    : createHttpServer(onRequest);
  const { wss } = attach(grid, server);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port: opts.port, host: opts.hostname }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = boundPort(server);
  let closing: Promise<void> | undefined;
  const onAbort = () => void close();
  const close = () => {
    opts.signal?.removeEventListener("abort", onAbort);
    closing ??= (async () => {
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      await closeSockets(wss.clients);
      wss.close();
      server.closeAllConnections();
      await stopped;
    })();
    return closing;
  };
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  return gridServer(port, close);
}
