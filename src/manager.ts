/**
 * The Manager: this node's side of the grid. It holds the handler registry,
 * one Connection per remote host, the Acceptor for incoming sockets, events
 * and statistics.
 *
 * @module
 */
import { Acceptor } from "./auth/acceptor.ts";
import { type Clock, connectionClock } from "./clock.ts";
import type { DialCredentials } from "./auth/dialer.ts";
import { Connection, type ConnectionSettings } from "./connection.ts";
import { DisconnectedError, GridError } from "./errors.ts";
import type { SingleDefinition, StreamDefinition } from "./handlers/define.ts";
import { HandlerRegistry, RAW_STREAM_CODECS, type StreamEntry } from "./handlers/registry.ts";
import {
  type HmacKey,
  importSecret,
  randomId,
  signTranscript,
  type Transcript,
  verifyTranscript,
} from "./auth/handshake.ts";
import { DEFAULT_LIMITS } from "./protocol/limits.ts";
import { PROTOCOL_VERSION } from "./protocol/ops.ts";
import type { AcceptInfo, DialLimits, GridSocket, SocketAcceptor } from "./socket.ts";
import { HandlerStatsTable } from "./stats/handler_stats.ts";
import { validatedSingle, validatedStream } from "./handlers/validated.ts";
import { shouldDial } from "./dial_rule.ts";
import type {
  CallContext,
  CallOptions,
  GridStats,
  HandleOptions,
  HandleStreamOptions,
  SingleHandler,
  StreamCall,
  StreamHandler,
} from "./types.ts";
import { registerBuiltins } from "./builtins.ts";
import { checkHosts, CLOSE_REMOVED, removedMessage } from "./membership/host_list.ts";
import { broadcast, type BroadcastOptions, type BroadcastResult } from "./membership/broadcast.ts";
import { DialTurns } from "./membership/dial_turns.ts";
import { pickConnection, type PickOptions } from "./membership/pick.ts";
import { requestWithRetry, type RetryHost } from "./membership/retry.ts";
import { checkInterceptor, type IncomingInterceptor, type Interceptor, type OutgoingInterceptor } from "./interceptors.ts";

/** Admin (read-only client) access. */
export interface AdminOptions {
  /** Tokens that grant read-only access. */
  tokens?: string[];
  /** Or a function deciding whether a token grants read-only access. */
  verify?: (token: string) => boolean | Promise<boolean>;
  /**
   * Admin connections open at once, at most.
   * @default 16
   */
  maxConnections?: number;
  /**
   * Admin handshakes accepted per second (bursts of twice as many); more are
   * closed with 1013 (try again later) before their token is checked.
   * @default 20
   */
  maxHandshakesPerSecond?: number;
  /**
   * Admin handshakes in progress at once, a pool apart from the peers'; more
   * are closed with 1013.
   * @default 8
   */
  maxConcurrentHandshakes?: number;
  /**
   * Requests one admin client may have served at once; more are refused with
   * `BusyError` (code "busy").
   * @default 64
   */
  maxServedRequests?: number;
  /**
   * Streams one admin client may have served at once (`grid.watch` included).
   * @default 16
   */
  maxServedStreams?: number;
}

/** Options of {@link Manager}. */
export interface ManagerOptions {
  /** This node's URL (`ws://host:port` or `wss://…`); also its name on the grid. */
  local: string;
  /** Every node of the grid, `local` included. */
  hosts: string[];
  /** The cluster secret; peers prove they know it with HMAC-SHA256. */
  secret: string;
  /**
   * The upgrade path; bump it for incompatible protocol changes.
   * @default "/grid/v1"
   */
  path?: string;
  /**
   * Default deadline of a single request, ms.
   * @default 60000
   */
  requestTimeout?: number;
  /**
   * Connection ping interval, ms; a connection is dropped after 2 missed pongs.
   * @default 10000
   */
  pingInterval?: number;
  /**
   * Largest payload of one message, bytes; larger ones are refused with PayloadTooLargeError.
   * @default 4194304
   */
  maxMessageBytes?: number;
  /** Read-only client access; none when absent. */
  admin?: AdminOptions;
  /**
   * Handshakes run at once on the accepting side; more are closed with code 1013.
   * @default 32
   */
  maxConcurrentHandshakes?: number;
  /**
   * Reconnect backoff start and cap, ms (exponential with full jitter).
   * @default { base: 100, cap: 5000 }
   */
  backoff?: { base?: number; cap?: number };
  /**
   * Time a socket has to complete its handshake, ms.
   * @default 10000
   */
  handshakeTimeout?: number;
  /**
   * Time an accepted socket has to send its hello (and, later, its proof), ms.
   * Short, so that idle sockets cannot hold handshake slots.
   * @default 2000
   */
  helloTimeout?: number;
  /**
   * Handshakes in progress at once from one remote address; more are closed with 1013.
   * @default 8
   */
  maxHandshakesPerAddress?: number;
  /**
   * Bytes one connection may hold queued for its socket (its queues and the
   * socket's buffer). Calls wait while a quarter of it is in use; past all of
   * it the peer is not reading and the connection is dropped.
   * @default 33554432
   */
  maxQueuedBytes?: number;
  /**
   * A connection whose socket wrote nothing for this long while data waited is
   * dropped (the peer stopped reading), ms.
   * @default 4000
   */
  writeTimeout?: number;
  /**
   * Requests one peer may have served at once on its connection; more are
   * refused with `BusyError` (code "busy", retryable).
   * @default 4096
   */
  maxServedRequests?: number;
  /**
   * Streams one peer may have served at once on its connection; more are
   * refused with `BusyError`.
   * @default 1024
   */
  maxServedStreams?: number;
  /**
   * Opens outgoing sockets; defaults to the server adapter's dialer (on Deno
   * wsgrid's own client with TCP_NODELAY, on Node the `ws` client) or else
   * the global WebSocket. For TLS with a private CA on some runtimes.
   */
  webSocket?: (url: string) => GridSocket;
}

function positive(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
    throw new RangeError(`Cannot create Manager: option "${name}" must be a positive number, got ${String(v)}`);
  }
  return v;
}

/** Event detail of "connect", "disconnect" and "restart". */
export interface GridEventDetail {
  /** The remote host the event is about. */
  host: string;
}

/** Event detail of "hosts": what `setHosts` changed. */
export interface HostsEventDetail {
  /** Hosts now in the list that were not before. */
  added: string[];
  /** Hosts that were in the list and are not any more. */
  removed: string[];
}

/**
 * This node's side of the grid.
 *
 * Events: `"connect"`, `"disconnect"`, `"restart"` (`event.detail.host` names the remote),
 * `"hosts"` when {@link Manager.setHosts} changed the list (`event.detail.added`, `.removed`), and
 * `"close"` once `close()` ran (after {@link Manager.signal} aborted).
 *
 * @example
 * ```ts
 * import { Manager } from "wsgrid";
 * import { serve } from "wsgrid/serve";
 * const grid = new Manager({ local: "ws://127.0.0.1:9000", hosts: ["ws://127.0.0.1:9000", "ws://127.0.0.1:9001"], secret: "s" });
 * grid.handle("echo", (req) => req);
 * const server = await serve(grid, { port: 9000 });
 * ```
 */
// Manager is also the ConnectionOwner of its connections (checked where it passes itself to
// `new Connection`); not declared with `implements`, which would make that internal type public.
export class Manager extends EventTarget implements SocketAcceptor {
  /** This node's name. */
  readonly local: string;
  /** Every node, local included: the list given to the constructor or to the last `setHosts`. */
  get hosts(): readonly string[] {
    return this.hostList;
  }
  private hostList: readonly string[];
  /** The upgrade path. */
  readonly path: string;
  /** A random id, new for every Manager; peers see a change as a restart. */
  readonly instanceId: string = randomId();
  /**
   * Aborted when the grid closes (its reason a GridError with code `"closed"`), just before the
   * `"close"` event: services built on the grid (the lock handlers, a sweep timer) stop with it.
   *
   * @example
   * ```ts
   * const sweep = setInterval(() => {}, 1_000);
   * grid.signal.addEventListener("abort", () => clearInterval(sweep), { once: true });
   * ```
   */
  get signal(): AbortSignal {
    return this.closing.signal;
  }
  /** @internal */
  readonly settings: ConnectionSettings;
  /** @internal Ticks every up connection (see {@link ConnectionOwner.clock}). */
  readonly clock: Clock;
  /** @internal */
  readonly registry: HandlerRegistry = new HandlerRegistry();
  /** @internal */
  readonly handlerStats: HandlerStatsTable = new HandlerStatsTable();
  /** @internal Interceptors installed by {@link Manager.use}, outermost first. */
  readonly incoming: IncomingInterceptor[] = [];
  /** @internal */
  readonly outgoing: OutgoingInterceptor[] = [];
  private readonly key: Promise<HmacKey>;
  private readonly connections = new Map<string, Connection>();
  private readonly adminConnections = new Set<Connection>();
  private readonly acceptor: Acceptor;
  private readonly webSocketFactory: ((url: string) => GridSocket) | undefined;
  private adapterDialer: ((url: string, limits: DialLimits) => GridSocket) | undefined;
  private dialTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly started = performance.now();
  private closed = false;
  /** Settles once close() finished (after its drain); null before close(). */
  private closeDone: Promise<void> | null = null;
  private readonly rejected: Record<string, number> = {};
  /** Handler names that a host answered with unknown-handler since it last connected (see `pick`). */
  private readonly lacking = new Map<string, Set<string>>();
  private retried = 0;
  /** What `retryOn` calls use of this Manager. */
  private readonly retryHost: RetryHost;
  /** @internal How this node proves itself when it dials a peer. */
  readonly credentials: DialCredentials;
  /** @internal A peer's refusal is unauthenticated: it never fails waiting calls. */
  readonly refusalsFailCalls = false;
  private readonly turns = new DialTurns(DEFAULT_LIMITS.maxConcurrentDials, DEFAULT_LIMITS.dialTurnMs);
  /** @internal See {@link ConnectionOwner.dialTurn}. */
  readonly dialTurn = (signal: AbortSignal): Promise<() => void> => this.turns.take(signal);
  private readonly closing = new AbortController();

  /**
   * Creates this node's side of the grid and starts dialing the hosts it should dial (in a
   * task after construction). Serve it with an adapter (`serve`, `attachNode`, `bunHandlers`, ...).
   *
   * @param options `local`, `hosts` and `secret`, plus optional limits and admin settings
   * @throws {TypeError} invalid options (e.g. `local` not in `hosts`, a non ws:// URL)
   * @example
   * ```ts
   * const hosts = ["ws://127.0.0.1:9000", "ws://127.0.0.1:9001"];
   * const grid = new Manager({ local: hosts[0], hosts, secret: "cluster secret" });
   * ```
   */
  constructor(options: ManagerOptions) {
    super();
    if (typeof options !== "object" || options === null) throw new TypeError("Cannot create Manager: options required");
    const { local, hosts, secret } = options;
    if (typeof local !== "string") throw new TypeError("Cannot create Manager: option \"local\" must be a string");
    if (typeof secret !== "string" || secret.length === 0) {
      throw new TypeError("Cannot create Manager: option \"secret\" must be a non-empty string");
    }
    this.hostList = Object.freeze(checkHosts("create Manager", local, hosts));
    this.local = local;
    this.path = options.path ?? "/grid/v1";
    if (!this.path.startsWith("/")) throw new TypeError(`Cannot create Manager: "path" must start with "/"`);
    this.settings = {
      requestTimeout: positive("requestTimeout", options.requestTimeout, DEFAULT_LIMITS.requestTimeout),
      pingInterval: positive("pingInterval", options.pingInterval, DEFAULT_LIMITS.pingInterval),
      maxMessageBytes: positive("maxMessageBytes", options.maxMessageBytes, DEFAULT_LIMITS.maxMessageBytes),
      handshakeTimeout: positive("handshakeTimeout", options.handshakeTimeout, DEFAULT_LIMITS.handshakeTimeout),
      helloTimeout: positive("helloTimeout", options.helloTimeout, DEFAULT_LIMITS.helloTimeout),
      backoffBase: positive("backoff.base", options.backoff?.base, DEFAULT_LIMITS.backoffBase),
      backoffCap: positive("backoff.cap", options.backoff?.cap, DEFAULT_LIMITS.backoffCap),
      maxQueuedBytes: positive("maxQueuedBytes", options.maxQueuedBytes, DEFAULT_LIMITS.maxQueuedBytes),
      writeTimeout: positive("writeTimeout", options.writeTimeout, DEFAULT_LIMITS.writeTimeout),
      served: {
        requests: positive("maxServedRequests", options.maxServedRequests, DEFAULT_LIMITS.maxServedRequests),
        streams: positive("maxServedStreams", options.maxServedStreams, DEFAULT_LIMITS.maxServedStreams),
      },
      adminServed: {
        requests: positive("admin.maxServedRequests", options.admin?.maxServedRequests, DEFAULT_LIMITS.maxAdminServedRequests),
        streams: positive("admin.maxServedStreams", options.admin?.maxServedStreams, DEFAULT_LIMITS.maxAdminServedStreams),
      },
    };
    this.clock = connectionClock(this.settings.pingInterval);
    this.retryHost = {
      settings: this.settings,
      pick: (o) => this.pick(o),
      lacksHandler: (host, handler) => {
        if (!this.connections.has(host)) return;
        let names = this.lacking.get(host);
        if (names === undefined) this.lacking.set(host, names = new Set());
        names.add(handler);
      },
      countRetry: () => {
        this.retried++;
      },
    };
    const minQueue = 2 * (this.settings.maxMessageBytes + 1024);
    if (this.settings.maxQueuedBytes < minQueue) {
      throw new RangeError(`Cannot create Manager: option "maxQueuedBytes" must be at least twice maxMessageBytes (${minQueue})`);
    }
    const maxHandshakes = positive(
      "maxConcurrentHandshakes",
      options.maxConcurrentHandshakes,
      DEFAULT_LIMITS.maxConcurrentHandshakes,
    );
    this.webSocketFactory = options.webSocket;
    this.key = importSecret(secret);
    this.key.catch(() => {});
    const settings = this.settings;
    const key = this.key;
    this.credentials = {
      hello: (remote, nonce) => ({
        kind: "peer",
        v: PROTOCOL_VERSION,
        from: local,
        to: remote,
        id: this.instanceId,
        nonce,
        max: settings.maxMessageBytes,
        ping: settings.pingInterval,
      }),
      prove: async (t: Transcript, welcomeMac: string) => {
        const k = await key;
        if (!(await verifyTranscript(k, "acceptor", t, welcomeMac))) return null;
        return await signTranscript(k, "dialer", t);
      },
    };
    const admin = options.admin;
    this.acceptor = new Acceptor({
      local,
      instanceId: this.instanceId,
      settings: this.settings,
      key: this.key,
      admin,
      admission: {
        maxHandshakes,
        maxAdminHandshakes: positive("admin.maxConcurrentHandshakes", admin?.maxConcurrentHandshakes, DEFAULT_LIMITS.maxAdminHandshakes),
        perAddress: positive("maxHandshakesPerAddress", options.maxHandshakesPerAddress, DEFAULT_LIMITS.maxHandshakesPerAddress),
      },
      countRejected: (reason) => this.countRejected(reason),
      isClosed: () => this.closed,
      peer: (host) => this.connections.get(host),
      openAdmin: () => {
        if (this.adminConnections.size >= (admin?.maxConnections ?? 16)) return undefined;
        const conn = new Connection(this, "admin", "", false, true);
        this.adminConnections.add(conn);
        return conn;
      },
      closeAdmin: (conn) => {
        conn.close();
        this.adminConnections.delete(conn);
      },
    });
    for (const h of this.hostList) {
      if (h !== local) this.addConnection(h);
    }
    registerBuiltins(this);
    // Dialing starts on the next task, so that `serve()` right after the constructor
    // can install its runtime's dialer first.
    this.dialTimer = setTimeout(() => {
      this.dialTimer = undefined;
      for (const c of this.connections.values()) c.startDialing();
    }, 0);
  }

  /** @internal See {@link SocketAcceptor.useDialer}. */
  useDialer(open: (url: string, limits: DialLimits) => GridSocket): void {
    this.adapterDialer = open;
  }

  /** Largest WebSocket message a peer may send: one full message (with route and metadata) or one batch. */
  get maxFrameBytes(): number {
    return Math.max(this.settings.maxMessageBytes + 1024 + DEFAULT_LIMITS.maxMetadataBytes, DEFAULT_LIMITS.batchBytes * 2);
  }

  /**
   * Installs interceptors: `incoming` wraps every call this node serves, `outgoing` every call
   * it makes (requests and stream opens). The first installed is the outermost.
   *
   * @param interceptor an `{ incoming?, outgoing? }` pair
   * @throws {TypeError} a side that is not a function
   * @example
   * ```ts
   * import { UnauthorizedError } from "wsgrid";
   * grid.use({
   *   incoming: (call, next) => {
   *     if (call.handler.startsWith("admin.") && call.metadata.role !== "admin") {
   *       throw new UnauthorizedError(`"${call.handler}" needs role admin`);
   *     }
   *     return next();
   *   },
   * });
   * ```
   */
  use(interceptor: Interceptor): void {
    checkInterceptor(interceptor, "install interceptor");
    if (interceptor.incoming !== undefined) this.incoming.push(interceptor.incoming);
    if (interceptor.outgoing !== undefined) this.outgoing.push(interceptor.outgoing);
  }

  /**
   * The connection to a remote host (stable identity).
   *
   * @throws {GridError} code "unknown-host" for a host not in `hosts`, or for `local`
   * @example
   * ```ts
   * const conn = grid.connection("ws://10.0.0.2:9000");
   * ```
   */
  connection(host: string): Connection {
    const c = this.connections.get(host);
    if (c === undefined) {
      throw new GridError(
        "unknown-host",
        host === this.local ? `Cannot connect to "${host}": it is the local node` : `Cannot connect to "${host}": not in hosts`,
      );
    }
    return c;
  }

  /** Creates the connection to `host` (not dialing yet). */
  private addConnection(host: string): Connection {
    const url = host.replace(/\/+$/, "") + this.path;
    const conn = new Connection(this, host, url, shouldDial(this.local, host));
    this.connections.set(host, conn);
    return conn;
  }

  /**
   * Replaces the host list while the grid runs. Added hosts are dialed (or waited for) by the
   * dial rule; connections to removed hosts close, and their calls in flight, on both sides,
   * reject with DisconnectedError saying the host was removed; `connection(removed)` throws
   * "unknown-host" from then on. A hello is accepted only from a host in the current list, so
   * when two nodes update their lists at different times the pair connects once both lists
   * have each other (the early side's dials are refused with close code 4003, counted as
   * `not-member`, and retried with backoff). Dispatches `"hosts"` when the list changed.
   *
   * @param hosts every node of the grid, `local` included
   * @throws {TypeError} not an array of distinct ws:// or wss:// URLs with `local` among them
   * @throws {GridError} code "closed" after `close()`
   * @example
   * ```ts
   * grid.addEventListener("hosts", (e) => console.log((e as CustomEvent).detail));
   * grid.setHosts([...grid.hosts, "ws://10.0.0.4:9000"]);
   * ```
   */
  setHosts(hosts: readonly string[]): void {
    if (this.closed) throw new GridError("closed", `Cannot set hosts: grid "${this.local}" is closed`);
    const next = checkHosts("set hosts", this.local, hosts);
    const keep = new Set(next);
    const removed = this.hostList.filter((h) => !keep.has(h));
    const added = next.filter((h) => h !== this.local && !this.connections.has(h));
    this.hostList = Object.freeze(next);
    for (const h of removed) {
      const conn = this.connections.get(h)!;
      this.connections.delete(h);
      this.lacking.delete(h);
      conn.close(new DisconnectedError(removedMessage(h, this.local)), CLOSE_REMOVED);
    }
    for (const h of added) {
      const conn = this.addConnection(h);
      // Before the first dial task ran, that task starts every connection.
      if (this.dialTimer === undefined) conn.startDialing();
    }
    if (added.length === 0 && removed.length === 0) return;
    this.dispatchEvent(new CustomEvent<HostsEventDetail>("hosts", { detail: { added, removed } }));
  }

  /**
   * Calls a handler on every host (or the given ones) in parallel and resolves, never rejects
   * for a host's failure, with one entry per host shaped like `Promise.allSettled`'s: a dead
   * or slow node costs its own entry. The local node, when included, runs in-process.
   *
   * @param handler handler name (bytes payload) or a `defineSingle` definition
   * @param payload request bytes, or the typed request value
   * @param options timeout, signal, subroute, hosts, includeLocal
   * @returns one entry per host, in the order of `hosts`
   * @throws {TypeError} a payload that is not bytes for a handler name, bad `hosts`
   * @throws {RangeError} `timeout` is NaN, 0 or negative
   * @example
   * ```ts
   * const results = await grid.broadcast("echo", new Uint8Array([1]), { timeout: 2_000 });
   * for (const r of results) console.log(r.host, r.status);
   * ```
   */
  broadcast(handler: string, payload: Uint8Array, options?: BroadcastOptions): Promise<BroadcastResult<Uint8Array>[]>;
  /**
   * Calls a typed handler on every host (or the given ones); see the raw form.
   *
   * @example
   * ```ts
   * const Version = defineSingle<null, string>("app.version");
   * const versions = await grid.broadcast(Version, null, { timeout: 2_000 });
   * ```
   */
  broadcast<Req, Resp>(
    handler: SingleDefinition<Req, Resp, unknown, unknown>,
    payload: Req,
    options?: BroadcastOptions,
  ): Promise<BroadcastResult<Resp>[]>;
  broadcast<Req, Resp>(
    handler: string | SingleDefinition<Req, Resp, unknown, unknown>,
    payload: Req | Uint8Array,
    options?: BroadcastOptions,
  ): Promise<BroadcastResult<Resp | Uint8Array>[]> {
    return broadcast<Resp | Uint8Array>(this, handler as SingleDefinition<unknown, Resp>, payload, options);
  }

  /**
   * An `up` connection with the fewest calls in flight (ties: the lower RTT), for spreading
   * idempotent calls over the peers; with `retryOn: "disconnected"` a call that could not be
   * sent is tried on the next pick.
   *
   * @param options `exclude` hosts; `handler` skips peers known not to serve it
   * @throws {DisconnectedError} no connection is up
   * @example
   * ```ts
   * const res = await grid.pick().request("echo", new Uint8Array([1]), { retryOn: "disconnected" });
   * ```
   */
  pick(options: PickOptions = {}): Connection {
    return pickConnection(this.connections.values(), options, (h, name) => this.lacking.get(h)?.has(name) === true);
  }

  /** @internal See {@link ConnectionOwner.retryElsewhere}. */
  readonly retryElsewhere = (first: Connection, name: string, payload: Uint8Array, options: CallOptions): Promise<Uint8Array> =>
    requestWithRetry(this.retryHost, first, name, payload, options);

  /**
   * Registers a single-request handler.
   *
   * @throws {GridError} code `"exists"` when a handler of that name (and subroute) is registered
   * @example
   * ```ts
   * grid.handle("echo", (req) => req);
   * ```
   */
  handle(name: string, fn: SingleHandler, options?: HandleOptions): void;
  /**
   * Registers a typed single-request handler: the request and response go through the
   * definition's codecs.
   *
   * @example
   * ```ts
   * const Add = defineSingle<{ x: number; y: number }, number>("add");
   * grid.handle(Add, ({ x, y }) => x + y);
   * ```
   */
  handle<Req, Resp, In, Out>(
    def: SingleDefinition<Req, Resp, In, Out>,
    fn: (req: In, ctx: CallContext) => Out | Promise<Out>,
    options?: HandleOptions,
  ): void;
  handle<Req, Resp, In, Out>(
    nameOrDef: string | SingleDefinition<Req, Resp, In, Out>,
    fn: SingleHandler | ((req: In, ctx: CallContext) => Out | Promise<Out>),
    options: HandleOptions = {},
  ): void {
    if (typeof fn !== "function") throw new TypeError("Cannot register handler: fn must be a function");
    if (typeof nameOrDef === "string") {
      this.registry.add({ kind: "single", name: nameOrDef, readOnly: options.readOnly === true, fn: fn as SingleHandler }, options.subroute);
      return;
    }
    const def = nameOrDef;
    const typed = fn as (req: In, ctx: CallContext) => Out | Promise<Out>;
    const enc = (v: Resp) => def.response.encode(v);
    this.registry.add({
      kind: "single",
      name: def.name,
      readOnly: options.readOnly === true,
      fn: def.schemas === undefined
        ? (bytes, ctx) => {
          // Without schemas, In and Out are Req and Resp.
          const r = typed(def.request.decode(bytes) as unknown as In, ctx) as Resp | Promise<Resp>;
          return r instanceof Promise ? r.then(enc) : enc(r);
        }
        : validatedSingle(def, typed),
    }, options.subroute);
  }

  /**
   * Registers a stream handler: it writes `call.responses`, or is an `async function*`
   * whose yields are the responses.
   *
   * @throws {GridError} code `"exists"` when a handler of that name (and subroute) is registered
   * @example
   * ```ts
   * grid.handleStream("tail", async (call) => {
   *   const w = call.responses.getWriter();
   *   for await (const chunk of call.requests!) await w.write(chunk);
   *   await w.close();
   * }, { inCapacity: 16, outCapacity: 16 });
   * ```
   */
  handleStream(name: string, fn: StreamHandler, options?: HandleStreamOptions): void;
  /**
   * Registers a typed stream handler: payload, requests and responses go through the
   * definition's codecs, and its capacities apply.
   *
   * @example
   * ```ts
   * const Count = defineStream<{ to: number }, never, number>("count", { inCapacity: 0 });
   * grid.handleStream(Count, async (call) => {
   *   const w = call.responses.getWriter();
   *   for (let i = 1; i <= call.payload.to; i++) await w.write(i);
   *   await w.close();
   * });
   * ```
   */
  handleStream<P, Req, Resp, HP, HReq, HResp>(
    def: StreamDefinition<P, Req, Resp, HP, HReq, HResp>,
    fn: (call: StreamCall<HP, HReq, HResp>) => void | Promise<void> | AsyncIterable<HResp>,
    options?: HandleOptions,
  ): void;
  handleStream<P, Req, Resp, HP, HReq, HResp>(
    nameOrDef: string | StreamDefinition<P, Req, Resp, HP, HReq, HResp>,
    fn: StreamHandler | ((call: StreamCall<HP, HReq, HResp>) => void | Promise<void> | AsyncIterable<HResp>),
    options: HandleStreamOptions = {},
  ): void {
    if (typeof fn !== "function") throw new TypeError("Cannot register stream handler: fn must be a function");
    const isName = typeof nameOrDef === "string";
    const inCapacity = isName ? options.inCapacity ?? 16 : nameOrDef.inCapacity;
    const outCapacity = isName ? options.outCapacity ?? 16 : nameOrDef.outCapacity;
    const max = DEFAULT_LIMITS.maxCapacity;
    if (!Number.isInteger(inCapacity) || inCapacity < 0 || inCapacity > max) {
      throw new RangeError(`Cannot register stream handler: inCapacity must be an integer 0..${max}`);
    }
    if (!Number.isInteger(outCapacity) || outCapacity < 1 || outCapacity > max) {
      throw new RangeError(`Cannot register stream handler: outCapacity must be an integer 1..${max}`);
    }
    const codecs = isName ? RAW_STREAM_CODECS : nameOrDef;
    const schemas = isName ? undefined : nameOrDef.schemas;
    const handler = fn as (call: StreamCall<unknown, unknown, unknown>) => void | Promise<void> | AsyncIterable<unknown>;
    this.registry.add({
      kind: "stream",
      name: isName ? nameOrDef : nameOrDef.name,
      readOnly: options.readOnly === true,
      inCapacity,
      outCapacity,
      payload: codecs.payload,
      request: codecs.request,
      response: codecs.response,
      fn: schemas === undefined ? handler : validatedStream(isName ? "" : nameOrDef.name, schemas, handler),
    } as StreamEntry, options.subroute);
  }

  /**
   * Statistics of this node: connections, handlers, admin clients.
   *
   * @example
   * ```ts
   * console.log(grid.stats().connections);
   * ```
   */
  stats(): GridStats {
    const connections: GridStats["connections"] = {};
    for (const [h, c] of this.connections) connections[h] = c.stats();
    return {
      local: this.local,
      instanceId: this.instanceId,
      uptimeMs: Math.round(performance.now() - this.started),
      connections,
      handlers: this.handlerStats.snapshot(),
      admin: { connections: this.adminConnections.size },
      rejectedHandshakes: { ...this.rejected },
      retried: this.retried,
    };
  }

  /**
   * Closes the grid: rejects in-flight calls, closes sockets, clears timers. Requests this
   * grid is serving get up to 1 s to be answered first (calls that arrive meanwhile are not
   * taken, and their callers see them fail as never sent, which `retryOn` retries elsewhere).
   *
   * @example
   * ```ts
   * await grid.close();
   * ```
   */
  close(): Promise<void> {
    if (this.closeDone !== null) return this.closeDone;
    this.closed = true;
    if (this.dialTimer !== undefined) clearTimeout(this.dialTimer);
    // Requests being served get up to closeDrain to finish (nothing new is taken meanwhile), so
    // that a graceful stop answers what it took and tells its peers the rest never ran here.
    const drains: Promise<void>[] = [];
    for (const c of this.connections.values()) {
      const d = c.drain(DEFAULT_LIMITS.closeDrain);
      if (d !== null) drains.push(d);
    }
    const finish = () => {
      for (const c of this.connections.values()) c.close();
      for (const c of this.adminConnections) c.close();
      this.adminConnections.clear();
      this.closing.abort(new GridError("closed", `Grid "${this.local}" closed`));
      this.dispatchEvent(new Event("close"));
    };
    if (drains.length === 0) {
      finish();
      this.closeDone = Promise.resolve();
    } else this.closeDone = Promise.all(drains).then(finish);
    return this.closeDone;
  }

  /**
   * Closes the grid, as {@link Manager.close} does, at the end of an `await using` scope.
   *
   * @example
   * ```ts
   * await using grid = new Manager({ local: hosts[0], hosts, secret: "s" });
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // --- ConnectionOwner -------------------------------------------------------

  /** @internal Counts a refused or failed handshake (stats `rejectedHandshakes`). */
  countRejected(reason: string): void {
    this.rejected[reason] = (this.rejected[reason] ?? 0) + 1;
  }

  /** @internal */
  openSocket(url: string): GridSocket {
    if (this.webSocketFactory !== undefined) return this.webSocketFactory(url);
    if (this.adapterDialer !== undefined) return this.adapterDialer(url, { maxFrameBytes: this.maxFrameBytes });
    // The global WebSocket has no message size limit to set: only the Link's checks apply.
    return new WebSocket(url) as GridSocket;
  }

  /** @internal */
  notify(type: "connect" | "disconnect" | "restart", conn: Connection): void {
    if (conn.remote === "admin") return;
    // A peer that connects again may have been upgraded: what it lacked is asked again.
    if (type === "connect") this.lacking.delete(conn.remote);
    this.dispatchEvent(new CustomEvent<GridEventDetail>(type, { detail: { host: conn.remote } }));
  }

  // --- SocketAcceptor --------------------------------------------------------

  /**
   * Takes an upgraded socket on `path`: server adapters call it (the {@link SocketAcceptor}
   * contract, so it stays in the published types).
   */
  acceptSocket(socket: GridSocket, info?: AcceptInfo): void {
    this.acceptor.accept(socket, info);
  }
}
