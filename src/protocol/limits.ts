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
  /**
   * Bytes of a call's metadata section (its entries, without the 2-byte length), at most:
   * larger metadata is refused before sending, and a call that carries more is answered
   * with an error (code "too-large") without running anything.
   */
  maxMetadataBytes: 4096,
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
  /**
   * Dials a node runs at once (socket and handshake); the others wait their turn, so that
   * joining a large grid does not open every socket in one burst (see membership/dial_turns.ts).
   */
  maxConcurrentDials: 2,
  /** A dial holds its turn this long at most, ms, so a silent or slow host delays the others by no more. */
  dialTurnMs: 250,
  /** A socket must complete its handshake within this many ms. */
  handshakeTimeout: 10_000,
  /** An accepted socket must send its hello within this many ms. */
  helloTimeout: 2_000,
  /** Largest frame before the handshake completes (every handshake message fits), bytes. */
  handshakeFrameBytes: 4096,
  /** Handshakes from one remote address at once; more are closed with 1013. */
  maxHandshakesPerAddress: 8,
  /** Admin (read-only client) handshakes at once, a pool apart from the peers'; more are closed with 1013. */
  maxAdminHandshakes: 8,
  /**
   * Bytes a link may hold queued for the socket (its own queues and the socket's
   * `bufferedAmount`). Callers wait while a quarter of it is used; past all of it
   * the peer is not reading and the link is dropped.
   */
  maxQueuedBytes: 32 << 20,
  /** A link whose socket wrote nothing for this long while data waited is dropped, ms. */
  writeTimeout: 4_000,
  /** Largest ping payload, bytes. */
  maxPingBytes: 16,
  /**
   * A closing grid lets the requests it is serving finish for up to this long before it
   * closes their connections (requests that arrive meanwhile are not taken), ms.
   */
  closeDrain: 1_000,
  /** Requests a peer may have served at once on one connection; more are refused with "busy". */
  maxServedRequests: 4096,
  /** Streams a peer may have served at once on one connection; more are refused with "busy". */
  maxServedStreams: 1024,
  /** Requests an admin client may have served at once. */
  maxAdminServedRequests: 64,
  /** Streams an admin client may have served at once. */
  maxAdminServedStreams: 16,
  /** Shortest `grid.watch` interval, ms. */
  minWatchIntervalMs: 250,
  /** Reconnect backoff start, ms. */
  backoffBase: 100,
  /** Reconnect backoff cap, ms. */
  backoffCap: 5_000,
  /** Maximum stream capacity (credits) a handler may declare. */
  maxCapacity: 65_536,
} as const;

/** Bytes of the fixed message header. */
export const HEADER_BYTES = 18;
