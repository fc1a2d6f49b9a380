/**
 * Limits and timing defaults, in one place. Every limit is enforced before
 * anything is buffered.
 *
 * @module
 */

/** Defaults of the Manager options and internal limits. */
export const DEFAULT_LIMITS = {
  /** Default deadline of a single request, ms. */
  requestTimeout: 60_000,
  /** Connection ping interval, ms; a connection with no pong for 2 intervals is dropped. */
  pingInterval: 10_000,
  /** Largest payload of one message, bytes. */
  maxMessageBytes: 4 << 20,
  /** Bytes of a handler name or subroute, at most. */
  maxRouteBytes: 255,
  /** Messages in one frame, at most. */
  maxMessagesPerFrame: 4096,
  /** A batch frame is closed once it holds this many bytes (a single larger message goes alone). */
  batchBytes: 64 << 10,
  /** Messages merged into one frame, at most. */
  batchMessages: 256,
  /** Writers wait while the socket has more than this many bytes buffered. */
  highWaterBytes: 1 << 20,
  /**
   * Stream data waits while the socket has more than this many bytes buffered, so
   * that requests and control messages never queue behind much stream data.
   */
  bulkHighWaterBytes: 128 << 10,
  /** Stream data queued in a link before a writer's `write()` waits for it to go out. */
  bulkQueueBytes: 256 << 10,
  /** Handshakes the accepting side runs at once; more are closed with code 1013 (try again later). */
  maxConcurrentHandshakes: 32,
  /** A socket must complete its handshake within this many ms. */
  handshakeTimeout: 10_000,
  /** Hellos whose time differs from ours by more than this are refused, ms. */
  clockSkew: 60_000,
  /** Reconnect backoff start, ms. */
  backoffBase: 100,
  /** Reconnect backoff cap, ms. */
  backoffCap: 5_000,
  /** Maximum stream capacity (credits) a handler may declare. */
  maxCapacity: 65_536,
} as const;

/** Bytes of the fixed message header. */
export const HEADER_BYTES = 18;
