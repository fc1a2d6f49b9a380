/**
 * Bun server adapter: serves the grid endpoint with `Bun.serve`, or provides
 * the `fetch` / `websocket` pair to embed it in an existing `Bun.serve`.
 * Bun's `ServerWebSocket` is callback-based; it is wrapped into the WHATWG
 * shape the Manager expects ({@link GridSocket}).
 *
 * @module
 */

import type {
  GridSocket,
  SocketAcceptor,
  SocketCloseEvent,
  SocketMessageEvent,
} from "../socket.ts";
import { isWebSocketUpgrade, upgradeRequired } from "./_http.ts";
import { type GridServer, gridServer, type ServeOptions } from "./_server.ts";

/** What the grid keeps in `ServerWebSocket.data`. */
export interface BunSocketData {
  /** The remote address seen at upgrade time. */
  remoteAddress: string | undefined;
  /** The wrapper handed to the Manager, set on open. */
  socket: BunGridSocket | undefined;
}

/**
 * The slice of Bun's `ServerWebSocket<T>` used here, declared locally so no
 * runtime types are needed.
 */
export interface BunServerWebSocket<T> {
  /** The socket's user data, as passed to `server.upgrade`. */
  readonly data: T;
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
  /** How binary messages are delivered to `message`. */
  binaryType?: string;
  /** Returns bytes sent, -1 when queued under backpressure, 0 when dropped. */
  send(data: Uint8Array): number;
  /** Starts the closing handshake. */
  close(code?: number, reason?: string): void;
  /** Bytes queued and not yet written. */
  getBufferedAmount(): number;
}

/** The slice of Bun's `Server` used here. */
export interface BunServer {
  /** Upgrades the request to a WebSocket; false when it is not a valid upgrade. */
  upgrade(req: Request, options: { data: BunSocketData }): boolean;
  /** The peer's address, or null when unknown. */
  requestIP(req: Request): { address: string } | null;
}

/** The slice of Bun's `WebSocketHandler<T>` the grid provides. */
export interface BunWebSocketHandler {
  /** Called once the upgrade completes. */
  open(ws: BunServerWebSocket<BunSocketData>): void;
  /** Called per message; binary data arrives as ArrayBuffer (binaryType "arraybuffer"). */
  message(ws: BunServerWebSocket<BunSocketData>, message: string | ArrayBuffer | Uint8Array): void;
  /** Called once the socket has closed. */
  close(ws: BunServerWebSocket<BunSocketData>, code: number, reason: string): void;
  /** The socket's backlog went down after a send had to queue. */
  drain(ws: BunServerWebSocket<BunSocketData>): void;
  /** Largest message accepted; a larger one closes the socket with 1009. */
  maxPayloadLength: number;
  /** Bytes that may queue on a socket before `send` drops messages. */
  backpressureLimit: number;
  /** Whether reaching `backpressureLimit` closes the socket. */
  closeOnBackpressureLimit: boolean;
}

/**
 * The `fetch` and `websocket` pair made by {@link bunHandlers}.
 */
export interface BunGridHandlers {
  /**
   * Upgrades requests on the grid path; returns `undefined` for every other
   * request, so that `?? app(req)` hands it to the app.
   */
  fetch(req: Request, server: BunServer): Response | undefined;
  /** The `websocket` option of `Bun.serve`. */
  websocket: BunWebSocketHandler;
}

/** The slice of `Bun.serve` options used here. */
interface BunServeInit {
  port: number;
  hostname?: string;
  tls?: { cert: string; key: string };
  fetch(req: Request, server: BunServer): Response | Promise<Response>;
  websocket: BunWebSocketHandler;
}

/** The slice of the server returned by `Bun.serve`. */
interface BunRunningServer {
  readonly port: number;
  stop(closeActiveConnections?: boolean): Promise<void>;
}

function bunNamespace(): { serve(init: BunServeInit): BunRunningServer } {
  return (globalThis as unknown as { Bun: { serve(init: BunServeInit): BunRunningServer } }).Bun;
}

type Listener = (ev: unknown) => void;

/**
 * A Bun `ServerWebSocket` in the WHATWG shape: Bun's callbacks are re-dispatched
 * to listeners added with `addEventListener`, `bufferedAmount` reads
 * `getBufferedAmount()`.
 */
export class BunGridSocket implements GridSocket {
  /** Always "arraybuffer": binary messages are delivered as ArrayBuffer. */
  binaryType = "arraybuffer";
  /** The wrapped Bun socket. */
  readonly ws: BunServerWebSocket<BunSocketData>;
  private readonly listeners: Record<string, Listener[]> = {
    open: [],
    message: [],
    close: [],
    error: [],
    drain: [],
  };

  /**
   * Wraps an open Bun socket.
   *
   * @param ws the Bun socket to wrap
   */
  constructor(ws: BunServerWebSocket<BunSocketData>) {
    this.ws = ws;
  }

  /** The WHATWG ready state (Bun uses the same numbers). */
  get readyState(): number {
    return this.ws.readyState;
  }

  /** Bytes queued by `send` and not yet written to the network. */
  get bufferedAmount(): number {
    return this.ws.getBufferedAmount();
  }

  /** Bun's `send` writes the bytes out or copies them into its backlog before returning. */
  readonly sendBuffer = "copies";

  /** Bun's `drain` callback is dispatched as a "drain" event. */
  readonly drainEvents = true;

  /**
   * Queues a binary message. Bun drops a message instead of queueing it when
   * the socket's backlog is over `backpressureLimit`; a dropped message would
   * corrupt the stream of frames, so the socket is closed (1011) instead.
   */
  send(data: Uint8Array): void {
    const sent = this.ws.send(data);
    if (sent === 0 && this.ws.readyState === 1) {
      this.ws.close(1011, "Cannot send: backpressure limit exceeded");
    }
  }

  /** Starts the closing handshake; a `close` event follows. */
  close(code?: number, reason?: string): void {
    this.ws.close(code, reason);
  }

  /** Adds an "open" listener; never called, as the socket is handed over open. */
  addEventListener(type: "open", listener: () => void): void;
  /** Adds a "message" listener; binary data arrives as ArrayBuffer. */
  addEventListener(type: "message", listener: (ev: SocketMessageEvent) => void): void;
  /** Adds a "close" listener, called once with Bun's close code and reason. */
  addEventListener(type: "close", listener: (ev: SocketCloseEvent) => void): void;
  /** Adds an "error" listener; Bun reports no socket errors apart from closing. */
  addEventListener(type: "error", listener: (ev: unknown) => void): void;
  /** Adds a "drain" listener: Bun's backlog went down after a send had to queue. */
  addEventListener(type: "drain", listener: () => void): void;
  addEventListener(type: string, listener: (ev: never) => void): void {
    this.listeners[type]?.push(listener as Listener);
  }

  /** Calls the listeners of `type`; a throwing listener is reported and does not stop the others. */
  dispatch(type: "message" | "close" | "drain", ev: SocketMessageEvent | SocketCloseEvent | undefined): void {
    for (const listener of this.listeners[type]) {
      try {
        listener(ev);
      } catch (err) {
        reportError(err);
      }
    }
  }
}

/** Bun's default `backpressureLimit`; raised when a single frame may be larger. */
const DEFAULT_BACKPRESSURE_LIMIT = 16 << 20;

function makeHandlers(grid: SocketAcceptor, open?: Set<BunGridSocket>): BunGridHandlers {
  return {
    fetch(req, server) {
      if (new URL(req.url).pathname !== grid.path) return undefined;
      if (!isWebSocketUpgrade(req)) return upgradeRequired();
      const data: BunSocketData = { remoteAddress: server.requestIP(req)?.address, socket: undefined };
      if (!server.upgrade(req, { data })) {
        return new Response("Cannot upgrade to WebSocket: invalid upgrade request\n", { status: 400 });
      }
      // Bun ignores the Response returned after a successful upgrade; a non-nullish
      // value keeps `h.fetch(req, srv) ?? app(req)` from calling the app.
      return new Response(null);
    },
    websocket: {
      open(ws) {
        ws.binaryType = "arraybuffer";
        const socket = new BunGridSocket(ws);
        ws.data.socket = socket;
        open?.add(socket);
        grid.acceptSocket(socket, { remoteAddress: ws.data.remoteAddress });
      },
      message(ws, message) {
        // binaryType "arraybuffer" makes Bun deliver ArrayBuffer; copy any view defensively.
        const data = message instanceof Uint8Array ? message.slice().buffer : message;
        ws.data.socket?.dispatch("message", { data });
      },
      drain(ws) {
        ws.data.socket?.dispatch("drain", undefined);
      },
      close(ws, code, reason) {
        const socket = ws.data.socket;
        if (!socket) return;
        open?.delete(socket);
        socket.dispatch("close", { code, reason });
      },
      maxPayloadLength: grid.maxFrameBytes,
      // The Manager keeps its own backlog small by watching bufferedAmount; this
      // limit is only a safety net, above which Bun would drop messages.
      backpressureLimit: Math.max(DEFAULT_BACKPRESSURE_LIMIT, 4 * grid.maxFrameBytes),
      closeOnBackpressureLimit: false,
    },
  };
}

/**
 * Makes the `fetch` and `websocket` options to embed the grid endpoint in an
 * existing `Bun.serve`. `fetch` upgrades requests whose URL path is exactly
 * `grid.path` (the socket goes to `grid.acceptSocket` once open) and returns
 * `undefined` for every other request, so `?? app(req)` passes it on. After a
 * successful upgrade it returns an empty Response, which Bun ignores.
 *
 * The `websocket` handler is the grid's: a server embedding the grid cannot
 * serve other WebSockets through the same `Bun.serve`.
 *
 * @param grid the Manager (or any {@link SocketAcceptor}) that takes the upgraded sockets
 * @returns the `fetch` function to call first and the `websocket` option
 *
 * @example
 * ```ts
 * import { bunHandlers } from "wsgrid/bun";
 * const h = bunHandlers(grid);
 * Bun.serve({ port: 9000, fetch: (req, srv) => h.fetch(req, srv) ?? app(req), websocket: h.websocket });
 * ```
 */
export function bunHandlers(grid: SocketAcceptor): BunGridHandlers {
  return makeHandlers(grid);
}

/**
 * Serves the grid endpoint with `Bun.serve`. Requests outside `grid.path` are
 * answered 404; to serve an app too, use {@link bunHandlers}.
 *
 * @param grid the Manager (or any {@link SocketAcceptor}) that takes the upgraded sockets
 * @param opts port (`0` picks one), hostname, TLS (serves `wss://`) and abort signal
 * @returns the running server; `close()` stops it and closes its WebSockets
 * @throws when the port cannot be bound, or `opts.signal` is already aborted
 *
 * @example
 * ```ts
 * import { serveBun } from "wsgrid/bun";
 * const server = await serveBun(grid, { port: 9000 });
 * // ... later
 * await server.close();
 * ```
 */
export function serveBun(grid: SocketAcceptor, opts: ServeOptions): Promise<GridServer> {
  try {
    opts.signal?.throwIfAborted();
    const open = new Set<BunGridSocket>();
    const handlers = makeHandlers(grid, open);
    const server = bunNamespace().serve({
      port: opts.port,
      ...(opts.hostname !== undefined ? { hostname: opts.hostname } : {}),
      ...(opts.tls ? { tls: { cert: opts.tls.cert, key: opts.tls.key } } : {}),
      fetch: (req, srv) => handlers.fetch(req, srv) ?? new Response("Not found\n", { status: 404 }),
      websocket: handlers.websocket,
    });
    let closing: Promise<void> | undefined;
    const onAbort = () => void close();
    const close = () => {
      opts.signal?.removeEventListener("abort", onAbort);
      closing ??= (async () => {
        for (const socket of open) socket.close(1001, "Server shutting down");
        // `true` also ends connections still open (a peer not answering the close frame).
        await server.stop(true);
      })();
      return closing;
    };
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    return Promise.resolve(gridServer(server.port, close));
  } catch (err) {
    return Promise.reject(err);
  }
}
