/**
 * Public types shared by the Manager, Connection and Client.
 *
 * @module
 */

/** Converts values to bytes and back. The default codec of typed handlers is msgpack. */
export interface Codec<T> {
  /** Encodes a value to bytes. */
  encode(value: T): Uint8Array;
  /** Decodes bytes made by `encode`; throws on malformed input. */
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
  /** The metadata the caller sent (`{}` when none): string keys and values. */
  readonly metadata: Readonly<Record<string, string>>;
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
  /**
   * Response messages; errors with the remote error, DisconnectedError, or the abort reason.
   * Async-iterable (`for await`) on every runtime, also where ReadableStream is not.
   */
  readonly responses: ReadableStream<Resp> & AsyncIterable<Resp>;
  /**
   * Ends the stream at the end of an `await using` scope: a stream still open is canceled on
   * both sides (the handler's signal aborts); one that ended already is left as it is.
   */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Options of a single request or stream call. */
export interface CallOptions {
  /** Aborting rejects the call at once with `signal.reason` and cancels the remote handler. */
  signal?: AbortSignal;
  /**
   * Deadline in ms from now; travels with the call and is enforced on both sides. A reply that
   * arrives at or after it is a TimeoutError. `Infinity` means no deadline; NaN, 0 and negative
   * values are refused with RangeError. A call waiting for a connection waits within it (for a
   * stream without one, within the requestTimeout).
   * @default the Manager's requestTimeout for requests; none for streams
   */
  timeout?: number;
  /** Selects a handler registered for this subroute (or one registered for any). */
  subroute?: string;
  /**
   * String keys and values sent with the call; the handler reads them as `ctx.metadata`. Keys
   * are 1 to 255 UTF-8 bytes; all entries together at most 4 KiB (`maxMetadataBytes`): more is
   * refused with PayloadTooLargeError before anything is sent.
   */
  metadata?: Record<string, string>;
  /**
   * The call being served, for a call made inside its handler: the call takes the shorter of
   * the two deadlines, aborts when the parent's signal aborts, and carries the parent's trace
   * context (metadata `traceparent` and `tracestate`, unless `metadata` sets either).
   */
  parent?: CallContext;
  /**
   * When the connection is down after having been up, wait for it (bounded by the deadline and
   * signal) instead of failing at once with DisconnectedError. A connection that has never been
   * up makes every call wait for it this way.
   * @default false
   */
  waitForConnect?: boolean;
  /**
   * `"disconnected"`: a request that fails with DisconnectedError before it was handed to the
   * socket (so the remote never saw it) is sent again to another peer chosen by `grid.pick`,
   * within the same deadline and signal. Only for idempotent handlers; requests only (streams
   * ignore it), and only on a Manager's connections.
   * @default undefined (no retry)
   */
  retryOn?: "disconnected";
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

/**
 * A raw stream handler: it writes `call.responses` and returns (or throws), or it is an
 * `async function*` whose yields are the responses (each waits for the caller's credit).
 */
export type StreamHandler = (
  call: StreamCall<Uint8Array, Uint8Array, Uint8Array>,
) => void | Promise<void> | AsyncIterable<Uint8Array>;

/** Per-connection statistics, as in `GridStats.connections`. */
export interface ConnectionStats {
  /** The connection's state. */
  state: "connecting" | "up" | "down" | "closed";
  /** Round-trip time of the last ping, ms; null before the first pong. */
  rttMs: number | null;
  /** How many times the connection came up again after being lost. */
  reconnects: number;
  /** Bytes received (WebSocket payloads). */
  bytesIn: number;
  /** Bytes sent (WebSocket payloads). */
  bytesOut: number;
  /** Grid messages received. */
  messagesIn: number;
  /** Grid messages sent. */
  messagesOut: number;
  /** WebSocket frames received (each carries one or more messages). */
  framesIn: number;
  /** WebSocket frames sent. */
  framesOut: number;
  /** Calls this node made on the connection that are still open. */
  inFlight: { requests: number; streams: number };
  /** Calls from the remote that this node's handlers are serving. */
  serving: { requests: number; streams: number };
  /** The last connection or handshake error, if any. */
  lastError?: string;
}

/** Per-handler statistics. */
export interface HandlerStats {
  /** Calls served. */
  calls: number;
  /** Calls that ended with an error. */
  errors: number;
  /**
   * Errors by code: `remote` (the handler threw), `invalid`, `timeout`, `canceled`
   * (the caller aborted), `disconnected`, `too-large`, ...; they add up to `errors`.
   */
  errorsByCode: Record<string, number>;
  /** Calls being served now. */
  inFlight: number;
  /** Latency percentiles of served calls, ms. */
  latencyMs: { p50: number; p99: number };
  /**
   * Latency of served calls as cumulative buckets (what a Prometheus histogram
   * exports): `counts[i]` calls took at most `boundsMs[i]`; `count` calls in all,
   * taking `sumMs` together.
   */
  latencyBuckets: { boundsMs: number[]; counts: number[]; count: number; sumMs: number };
}

/** What `grid.stats()` returns: plain JSON. */
export interface GridStats {
  /** This node's name (its `local` URL). */
  local: string;
  /** The Manager's random instance id; a new one means the node restarted. */
  instanceId: string;
  /** Time since the Manager was created, ms. */
  uptimeMs: number;
  /** Per remote host. */
  connections: Record<string, ConnectionStats>;
  /** Per handler name. */
  handlers: Record<string, HandlerStats>;
  /** Read-only (admin) clients connected now. */
  admin: { connections: number };
  /**
   * Handshakes that failed, by reason: on the accepting side `timeout`,
   * `evicted`, `address-limit`, `unexpected-op`, `oversize`, `malformed`,
   * `version`, `unknown-host` (a hello naming this node itself), `not-member` (a host not in
   * the current host list; refused with close code 4003), `wrong-target`, `dial-rule`, `bad-mac`,
   * `bad-token`, `admin-busy`, `admin-rate`, `admin-connections`, `closed`;
   * on the dialing side `dial-bad-mac` and `dial-refused-<code>` (`dial-refused-unknown-host`
   * when the remote's host list does not have this node yet, or any more).
   */
  rejectedHandshakes: Record<string, number>;
  /** Requests made with `retryOn: "disconnected"` that were sent again to another peer. */
  retried?: number;
}
