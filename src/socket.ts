/**
 * The socket contract between the core and the runtime adapters: the slice of
 * the WHATWG `WebSocket` the core uses. Outgoing dials use the runtime's global
 * `WebSocket`, which already has this shape; each server adapter wraps its
 * runtime's server-side socket into it.
 *
 * @module
 */

/** Event payload of a `message` event: binary data as ArrayBuffer (binaryType "arraybuffer"). */
export interface SocketMessageEvent {
  /** The message; the core sets binaryType "arraybuffer" and handles ArrayBuffer and views. */
  readonly data: ArrayBuffer | ArrayBufferView | string | Blob;
}

/** Event payload of a `close` event. */
export interface SocketCloseEvent {
  /** The WebSocket close code. */
  readonly code: number;
  /** The close reason sent by the peer, or `""`. */
  readonly reason: string;
}

/**
 * The WHATWG WebSocket shape the core expects from a socket.
 *
 * - `send` queues a binary message; it never blocks. `bufferedAmount` reports bytes queued
 *   and not yet written, which the writer uses for backpressure.
 * - `close` starts the closing handshake; a `close` event follows exactly once.
 * - Listeners are registered once with `addEventListener`; events are "open", "message",
 *   "close" and "error". A socket handed over by a server adapter is already open.
 */
export interface GridSocket {
  /**
   * Set to `"arraybuffer"` by the core before use, unless it is `"nodebuffer"`
   * (the `ws` package's default, which hands over each message as a Buffer
   * view of the bytes read, where "arraybuffer" would copy them into a new
   * ArrayBuffer first). The core reads ArrayBuffer and any Uint8Array view.
   */
  binaryType: string;
  /** One of SOCKET_CONNECTING, SOCKET_OPEN, SOCKET_CLOSING, SOCKET_CLOSED. */
  readonly readyState: number;
  /** Bytes queued by `send` and not yet written to the network. */
  readonly bufferedAmount: number;
  /** Queues one binary message; never blocks. */
  send(data: Uint8Array<ArrayBuffer>): void;
  /**
   * What `send` does with the bytes it is given, so that the core may encode
   * frames into one reused buffer instead of a new one per frame:
   * - `"copies"`: they are copied (or written out) before `send` returns, as
   *   the WHATWG `send` does; any frame may reuse the buffer.
   * - `"until-written"`: they stay referenced until written to the network,
   *   and `bufferedAmount` counts them until then (the `ws` package); the
   *   buffer is reused only while `bufferedAmount` reads 0 right after `send`.
   *
   * Left out: `"copies"` for an instance of the global `WebSocket`, else the
   * buffer is never reused.
   */
  readonly sendBuffer?: "copies" | "until-written";
  /**
   * The socket dispatches a "drain" event when its send backlog has gone down
   * after a `send` had to queue (Bun's `drain` callback, the Deno dialer's write
   * loop). The core then resumes writing at once instead of at its next poll;
   * it polls more slowly as a fallback. Left out: no such events.
   */
  readonly drainEvents?: boolean;
  /** Starts the closing handshake; a `close` event follows exactly once. */
  close(code?: number, reason?: string): void;
  /** Adds an "open" listener (dialed sockets only; accepted sockets are already open). */
  addEventListener(type: "open", listener: () => void): void;
  /** Adds a "message" listener. */
  addEventListener(type: "message", listener: (ev: SocketMessageEvent) => void): void;
  /** Adds a "close" listener, called once. */
  addEventListener(type: "close", listener: (ev: SocketCloseEvent) => void): void;
  /** Adds an "error" listener; a `close` event follows an error. */
  addEventListener(type: "error", listener: (ev: unknown) => void): void;
  /** Adds a "drain" listener (sockets with `drainEvents` only). */
  addEventListener(type: "drain", listener: () => void): void;
}

/** WebSocket ready states, as in the WHATWG spec. */
export const SOCKET_CONNECTING = 0;
/** The socket is open. */
export const SOCKET_OPEN = 1;
/** The socket is closing. */
export const SOCKET_CLOSING = 2;
/** The socket is closed. */
export const SOCKET_CLOSED = 3;

/**
 * What an adapter hands the Manager for each accepted upgrade on the grid path.
 * `remoteAddress` is informational (logs, rate limits).
 */
export interface AcceptInfo {
  /** The peer's address as the server saw it, if known. */
  remoteAddress?: string;
}

/**
 * The surface of the Manager that server adapters use. Adapters call
 * `acceptSocket` once per upgraded socket on `path`; the Manager runs the
 * handshake and owns the socket from then on. `maxFrameBytes` is the largest
 * WebSocket message a peer may legitimately send; adapters pass it to their
 * runtime's payload limit where one exists.
 */
export interface SocketAcceptor {
  /** The URL path the grid accepts upgrades on (e.g. `/grid/v1`). */
  readonly path: string;
  /** The largest WebSocket message a peer may legitimately send, in bytes. */
  readonly maxFrameBytes: number;
  /** Takes over an upgraded, open socket: runs the handshake and owns it from then on. */
  acceptSocket(socket: GridSocket, info?: AcceptInfo): void;
  /**
   * Lets an adapter supply the dialer for outgoing sockets when its runtime's
   * global WebSocket is unsuitable (Deno's client does not disable Nagle's
   * algorithm: messages over 1 KiB stall ~40 ms; Node's copies every message
   * it receives, which under a stream keeps V8 in full collections). A
   * `webSocket` factory given in the Manager options wins over this one.
   */
  useDialer?(open: (url: string, limits: DialLimits) => GridSocket): void;
}

/** What a dialer is told about the socket it opens. */
export interface DialLimits {
  /**
   * The largest WebSocket message the other side may legitimately send: a
   * dialer that can refuses a larger one (close 1009) before buffering it.
   */
  readonly maxFrameBytes: number;
}
