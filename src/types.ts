/**
 * Public types shared by the Manager, Connection and Client.
 *
 * @module
 */

/** Converts values to bytes and back. The default codec of typed handlers is msgpack. */
export interface Codec<T> {
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

/** What a handler learns about the call it serves. */
export interface CallContext {
  /** Aborted on caller cancel, deadline, or connection loss; `reason` says which. */
  readonly signal: AbortSignal;
  /** The caller's host name, or `"admin"` for a read-only client. */
  readonly remote: string;
  /** The call's deadline as epoch ms, or undefined when it has none. */
  readonly deadline: number | undefined;
  /** The subroute the caller passed, or `""`. */
  readonly subroute: string;
}

/** A stream call as seen by its handler. */
export interface StreamCall<P, Req, Resp> extends CallContext {
  /** The initial payload. */
  readonly payload: P;
  /** Request messages from the caller; null when the handler's inCapacity is 0. */
  readonly requests: ReadableStream<Req> | null;
  /** Response messages to the caller; `ready` waits for the caller's credit. */
  readonly responses: WritableStream<Resp>;
}

/** A stream as seen by its caller. */
export interface Stream<Req, Resp> {
  /** Request messages to the handler; null when the handler's inCapacity is 0. */
  readonly requests: WritableStream<Req> | null;
  /** Response messages; errors with the remote error, DisconnectedError, or the abort reason. */
  readonly responses: ReadableStream<Resp>;
}

/** Options of a single request or stream call. */
export interface CallOptions {
  /** Aborting rejects the call at once with `signal.reason` and cancels the remote handler. */
  signal?: AbortSignal;
  /**
   * Deadline in ms from now; travels with the call and is enforced on both sides.
   * @default the Manager's requestTimeout for requests; none for streams
   */
  timeout?: number;
  /** Selects a handler registered for this subroute (or one registered for any). */
  subroute?: string;
  /**
   * When the connection is down, wait for it (bounded by the deadline and signal)
   * instead of failing at once with DisconnectedError.
   * @default false
   */
  waitForConnect?: boolean;
}

/** Options of `handle`. */
export interface HandleOptions {
  /** Serve only calls made with this subroute; wins over a registration without one. */
  subroute?: string;
  /**
   * A read-only (admin) client may call this handler.
   * @default false
   */
  readOnly?: boolean;
}

/** Options of `handleStream`. */
export interface HandleStreamOptions extends HandleOptions {
  /**
   * Request messages the caller may have in flight to the handler; 0 means no requests stream.
   * @default 16
   */
  inCapacity?: number;
  /**
   * Response messages the handler may have in flight to the caller.
   * @default 16
   */
  outCapacity?: number;
}

/** A raw single-request handler. */
export type SingleHandler = (req: Uint8Array, ctx: CallContext) => Uint8Array | Promise<Uint8Array>;

/** A raw stream handler. */
export type StreamHandler = (call: StreamCall<Uint8Array, Uint8Array, Uint8Array>) => void | Promise<void>;

/** Per-connection statistics, as in `GridStats.connections`. */
export interface ConnectionStats {
  state: "connecting" | "up" | "down" | "closed";
  rttMs: number | null;
  reconnects: number;
  bytesIn: number;
  bytesOut: number;
  messagesIn: number;
  messagesOut: number;
  framesIn: number;
  framesOut: number;
  inFlight: { requests: number; streams: number };
  serving: { requests: number; streams: number };
  /** The last connection or handshake error, if any. */
  lastError?: string;
}

/** Per-handler statistics. */
export interface HandlerStats {
  calls: number;
  errors: number;
  inFlight: number;
  latencyMs: { p50: number; p99: number };
}

/** What `grid.stats()` returns: plain JSON. */
export interface GridStats {
  local: string;
  instanceId: string;
  uptimeMs: number;
  connections: Record<string, ConnectionStats>;
  handlers: Record<string, HandlerStats>;
  admin: { connections: number };
}
