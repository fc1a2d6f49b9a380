/**
 * `Client`: one outgoing connection to a grid node, for browsers and tools.
 * It authenticates in-band with a read-only token (browsers cannot set
 * WebSocket headers), reconnects with backoff, and can call only handlers
 * registered `readOnly: true`. Web standards and msgpackr only.
 *
 * @example
 * ```ts
 * import { Client } from "wsgrid/client";
 * const admin = new Client("ws://127.0.0.1:9000/grid/v1", { token: "read-only token" });
 * const stats = await admin.request("grid.stats", undefined, { waitForConnect: true });
 * await admin.close();
 * ```
 *
 * @module
 */
import { connectionClock } from "./clock.ts";
import { Connection, type ConnectionOwner, type ConnectionSettings, type ConnectionState } from "./connection.ts";
import type { SingleDefinition, StreamDefinition } from "./handlers/define.ts";
import { HandlerRegistry } from "./handlers/registry.ts";
import { DEFAULT_LIMITS } from "./protocol/limits.ts";
import { PROTOCOL_VERSION } from "./protocol/ops.ts";
import type { GridSocket } from "./socket.ts";
import { HandlerStatsTable } from "./stats/handler_stats.ts";
import { callSingle, callStream } from "./typed_call.ts";
import type { OutgoingInterceptor } from "./interceptors.ts";
import type { CallOptions, ConnectionStats, Stream } from "./types.ts";

/** Options of {@link Client}. */
export interface ClientOptions {
  /** A read-only token accepted by the node's `admin` options. */
  token: string;
  /**
   * Default deadline of a request, ms.
   * @default 60000
   */
  requestTimeout?: number;
  /**
   * Ping interval, ms; the connection is dropped after 2 missed pongs.
   * @default 10000
   */
  pingInterval?: number;
  /**
   * Largest payload of one message, bytes.
   * @default 4194304
   */
  maxMessageBytes?: number;
  /**
   * Reconnect backoff start and cap, ms.
   * @default { base: 100, cap: 5000 }
   */
  backoff?: { base?: number; cap?: number };
  /**
   * Time to complete the handshake, ms.
   * @default 10000
   */
  handshakeTimeout?: number;
  /** Opens the socket; defaults to the global WebSocket. */
  webSocket?: (url: string) => GridSocket;
  /**
   * Interceptors wrapping every call the client makes, the first outermost (see `grid.use`).
   * @default []
   */
  outgoing?: OutgoingInterceptor[];
}

/**
 * A read-only client of one grid node. Same `request` / `newStream` signatures
 * as a peer Connection; a handler name with a non-bytes payload is sent and
 * answered as msgpack.
 *
 * Events: "connect", "disconnect" (`event.detail.host` is the URL).
 *
 * @example
 * ```ts
 * import { Client } from "wsgrid/client";
 * const admin = new Client("wss://node-1.example:9000/grid/v1", { token: "read-only token" });
 * const live = await admin.newStream("grid.watch", { intervalMs: 1000 }, { waitForConnect: true });
 * for await (const stats of live.responses) console.log(stats.connections);
 * ```
 */
export class Client extends EventTarget {
  /** The node's grid URL. */
  readonly url: string;
  private readonly conn: Connection;
  private readonly token: string;
  private readonly factory: ((url: string) => GridSocket) | undefined;

  /**
   * Creates the client and starts connecting to the node's grid URL (`ws://host:port/grid/v1`).
   *
   * @param url the node's grid URL, path included
   * @param options the admin token, and optional timeouts, backoff and WebSocket factory
   * @throws {TypeError} the URL is not ws:// or wss://, or the token is empty
   * @example
   * ```ts
   * const admin = new Client("ws://127.0.0.1:9000/grid/v1", { token: "read-only token" });
   * ```
   */
  constructor(url: string, options: ClientOptions) {
    super();
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new TypeError(`Cannot create Client: "${url}" is not a URL`);
    }
    if (u.protocol !== "ws:" && u.protocol !== "wss:") {
      throw new TypeError(`Cannot create Client: "${url}" must be a ws:// or wss:// URL`);
    }
    if (typeof options?.token !== "string" || options.token.length === 0) {
      throw new TypeError("Cannot create Client: option \"token\" must be a non-empty string");
    }
    this.url = url;
    this.token = options.token;
    this.factory = options.webSocket;
    const outgoing = [...(options.outgoing ?? [])];
    for (const o of outgoing) {
      if (typeof o !== "function") throw new TypeError("Cannot create Client: option \"outgoing\" must be an array of functions");
    }
    const settings: ConnectionSettings = {
      requestTimeout: options.requestTimeout ?? DEFAULT_LIMITS.requestTimeout,
      pingInterval: options.pingInterval ?? DEFAULT_LIMITS.pingInterval,
      maxMessageBytes: options.maxMessageBytes ?? DEFAULT_LIMITS.maxMessageBytes,
      handshakeTimeout: options.handshakeTimeout ?? DEFAULT_LIMITS.handshakeTimeout,
      helloTimeout: DEFAULT_LIMITS.helloTimeout,
      backoffBase: options.backoff?.base ?? DEFAULT_LIMITS.backoffBase,
      backoffCap: options.backoff?.cap ?? DEFAULT_LIMITS.backoffCap,
      maxQueuedBytes: Math.max(DEFAULT_LIMITS.maxQueuedBytes, 4 * (options.maxMessageBytes ?? 0)),
      writeTimeout: DEFAULT_LIMITS.writeTimeout,
      // A client serves no handlers.
      served: { requests: 0, streams: 0 },
      adminServed: { requests: 0, streams: 0 },
    };
    const owner: ConnectionOwner = {
      settings,
      registry: new HandlerRegistry(),
      handlerStats: new HandlerStatsTable(),
      incoming: [],
      outgoing,
      // A read-only client holds no secret, so the node cannot prove one; TLS authenticates the node.
      credentials: {
        hello: (_remote: string, nonce: string) => ({
          kind: "admin",
          v: PROTOCOL_VERSION,
          token: this.token,
          nonce,
          max: settings.maxMessageBytes,
          ping: settings.pingInterval,
        }),
      },
      refusalsFailCalls: true,
      countRejected: () => {},
      clock: connectionClock(settings.pingInterval),
      openSocket: (target: string) => this.factory ? this.factory(target) : new WebSocket(target) as GridSocket,
      notify: (type) => {
        if (type !== "restart") this.dispatchEvent(new CustomEvent(type, { detail: { host: this.url } }));
      },
    };
    this.conn = new Connection(owner, url, url, true);
    this.conn.startDialing();
  }

  /** Current state of the connection. */
  get state(): ConnectionState {
    return this.conn.state;
  }

  /**
   * Calls a read-only handler. Bytes go as they are; other payloads as msgpack.
   *
   * @example
   * ```ts
   * const stats = await admin.request("grid.stats", undefined);
   * ```
   */
  request(handler: string, payload: Uint8Array, options?: CallOptions): Promise<Uint8Array>;
  /**
   * Calls a read-only handler through its typed definition.
   *
   * @example
   * ```ts
   * import { GridStatsHandler } from "wsgrid";
   * const stats = await admin.request(GridStatsHandler, undefined, { waitForConnect: true });
   * ```
   */
  request<Req, Resp>(handler: SingleDefinition<Req, Resp, unknown, unknown>, payload: Req, options?: CallOptions): Promise<Resp>;
  /**
   * Calls a read-only handler by name with a msgpack payload; resolves with the decoded response.
   *
   * @example
   * ```ts
   * const stats = await admin.request("grid.stats", undefined, { timeout: 5_000 });
   * ```
   */
  request(handler: string, payload: unknown, options?: CallOptions): Promise<unknown>;
  request(handler: string | SingleDefinition<unknown, unknown, unknown, unknown>, payload: unknown, options?: CallOptions): Promise<unknown> {
    return callSingle(this.conn, handler, payload, options, "msgpack");
  }

  /**
   * Opens a stream to a read-only stream handler. Bytes go as they are; other payloads as msgpack.
   *
   * @example
   * ```ts
   * const live = await admin.newStream("grid.watch", { intervalMs: 1000 });
   * ```
   */
  newStream(handler: string, payload: Uint8Array, options?: CallOptions): Promise<Stream<Uint8Array, Uint8Array>>;
  /**
   * Opens a stream to a read-only stream handler through its typed definition.
   *
   * @example
   * ```ts
   * import { GridWatchHandler } from "wsgrid";
   * const live = await admin.newStream(GridWatchHandler, { intervalMs: 1000 });
   * for await (const stats of live.responses) console.log(stats.uptimeMs);
   * ```
   */
  newStream<P, Req, Resp>(
    handler: StreamDefinition<P, Req, Resp, unknown, unknown, unknown>,
    payload: P,
    options?: CallOptions,
  ): Promise<Stream<Req, Resp>>;
  /**
   * Opens a stream to a read-only stream handler by name; messages travel as msgpack.
   *
   * @example
   * ```ts
   * const live = await admin.newStream("grid.watch", { intervalMs: 1000 });
   * ```
   */
  newStream(handler: string, payload: unknown, options?: CallOptions): Promise<Stream<unknown, unknown>>;
  newStream(
    handler: string | StreamDefinition<unknown, unknown, unknown, unknown, unknown, unknown>,
    payload: unknown,
    options?: CallOptions,
  ): Promise<Stream<unknown, unknown>> {
    return callStream(this.conn, handler, payload, options, "msgpack");
  }

  /** Resolves once connected. */
  waitForConnect(options?: { timeout?: number; signal?: AbortSignal }): Promise<void> {
    return this.conn.waitForConnect(options);
  }

  /** Connection statistics. */
  stats(): ConnectionStats {
    return this.conn.stats();
  }

  /**
   * Closes the client: rejects in-flight calls and stops reconnecting.
   *
   * @example
   * ```ts
   * await admin.close();
   * ```
   */
  close(): Promise<void> {
    this.conn.close();
    return Promise.resolve();
  }

  /**
   * Closes the client at the end of an `await using` scope.
   *
   * @example
   * ```ts
   * await using admin = new Client("ws://127.0.0.1:9000/grid/v1", { token: "read-only token" });
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
