/**
 * A Connection is this node's relation with one remote: it dials (or waits to
 * be dialed), authenticates, reconnects with backoff, and carries the calls
 * made to and served for that remote over its current Link.
 *
 * @module
 */
import {
  DisconnectedError,
  type GridError,
  PayloadTooLargeError,
  ProtocolError,
  TimeoutError,
} from "./errors.ts";
import type { SingleDefinition, StreamDefinition } from "./handlers/define.ts";
import type { HandlerRegistry } from "./handlers/registry.ts";
import type { CallObserver, IncomingInterceptor, OutgoingInterceptor } from "./interceptors.ts";
import type { Clock } from "./clock.ts";
import type { Link } from "./link.ts";
import { type CalleeHost, MuxCallee } from "./mux/callee.ts";
import { downError, MuxCaller, type MuxHost } from "./mux/caller.ts";
import { needsOutgoing, outgoingCall } from "./mux/outgoing.ts";
import { callTimeout, timeLeft } from "./mux/wire.ts";
import type { Message } from "./protocol/frame.ts";
import { DEFAULT_LIMITS } from "./protocol/limits.ts";
import { dial, type DialCredentials, type PeerLimits } from "./auth/dialer.ts";
import { isHandshakeOp, OP_REQUEST, OP_STREAM_OPEN } from "./protocol/ops.ts";
import { decodeError, errorMessage } from "./mux/wire.ts";
import type { GridSocket } from "./socket.ts";
import type { HandlerStatsTable } from "./stats/handler_stats.ts";
import type { CallOptions, ConnectionStats, Stream } from "./types.ts";
import { abortReason } from "./stream/caller_stream.ts";
import { type CallCodecs, callSingle, callStream } from "./typed_call.ts";
import { markUnsent } from "./membership/unsent.ts";

/** Connection states, as reported by stats. */
export type ConnectionState = "connecting" | "up" | "down" | "closed";

/** Settings a Connection takes from its Manager or Client. */
export interface ConnectionSettings {
  readonly requestTimeout: number;
  readonly pingInterval: number;
  readonly maxMessageBytes: number;
  readonly handshakeTimeout: number;
  /** An accepted socket's hello, and a dialer's proof, must arrive within this many ms. */
  readonly helloTimeout: number;
  readonly backoffBase: number;
  readonly backoffCap: number;
  /** Byte budget of a link's queues (see Link). */
  readonly maxQueuedBytes: number;
  /** Write deadline of a link, ms. */
  readonly writeTimeout: number;
  /** Calls served at once for one peer, and for one admin client. */
  readonly served: { readonly requests: number; readonly streams: number };
  readonly adminServed: { readonly requests: number; readonly streams: number };
}

/** What a Connection needs from its owner. */
export interface ConnectionOwner {
  readonly settings: ConnectionSettings;
  readonly registry: HandlerRegistry;
  readonly handlerStats: HandlerStatsTable;
  /** Interceptors of the calls this side serves and makes, outermost first (live arrays). */
  readonly incoming: readonly IncomingInterceptor[];
  readonly outgoing: readonly OutgoingInterceptor[];
  /** How this side proves who it is when it dials. */
  readonly credentials: DialCredentials;
  /**
   * A refusal from the remote fails the calls waiting for the connection. True
   * for a read-only client, which cannot authenticate the node anyway; false
   * for peers, where a refusal is unauthenticated and anyone reachable could
   * forge one.
   */
  readonly refusalsFailCalls: boolean;
  /** Counts a failed handshake by reason (stats `rejectedHandshakes`). */
  countRejected(reason: string): void;
  /** Opens a socket to `url` (the global WebSocket, unless the owner overrides it). */
  openSocket(url: string): GridSocket;
  /** Ticks every up connection, at least twice per ping interval (see {@link Connection.tick}). */
  readonly clock: Clock;
  /**
   * Waits for a turn to dial, when the owner bounds its dials in progress (a Manager does);
   * the result ends the turn. Resolves at once when `signal` is aborted.
   */
  readonly dialTurn?: (signal: AbortSignal) => Promise<() => void>;
  /** State changes worth an event. */
  notify(type: "connect" | "disconnect" | "restart", conn: Connection): void;
  /** Runs a request made with `retryOn: "disconnected"` (a Manager: on other peers too); absent on a Client. */
  readonly retryElsewhere?: (first: Connection, name: string, payload: Uint8Array, options: CallOptions) => Promise<Uint8Array>;
}

/**
 * Mux id of the "drained" notice, an OP_ERROR that a closing grid sends last (mux ids of calls
 * start at 1, so peers that predate the notice drop it as an answer to no call).
 */
const DRAINED_MUX = 0;

/** How often a draining connection looks whether its requests in service are answered, ms. */
const DRAIN_LOOK_MS = 5;

const ZERO_COUNTERS = { bytesIn: 0, bytesOut: 0, messagesIn: 0, messagesOut: 0, framesIn: 0, framesOut: 0 };

interface Waiter {
  resolve: () => void;
  reject: (e: unknown) => void;
}

/**
 * The connection to one remote host. Obtain it with `grid.connection(host)`.
 *
 * @example
 * ```ts
 * const conn = grid.connection("ws://10.0.0.2:9000");
 * const res = await conn.request("echo", new Uint8Array([1, 2, 3]), { timeout: 5_000 });
 * ```
 */
export class Connection {
  /** The remote host's name (its URL). */
  readonly remote: string;
  /** This side dials the remote (by the dial rule); the other side waits. */
  readonly dialer: boolean;
  private readonly owner: ConnectionOwner;
  private readonly url: string;
  private readonly caller: MuxCaller;
  private readonly callee: MuxCallee;
  private stateValue: ConnectionState = "connecting";
  private link: Link | null = null;
  /** Aborted by close(): ends a dial in progress. */
  private readonly closing = new AbortController();
  private sleepTimer: ReturnType<typeof setTimeout> | undefined;
  private sleepWake: (() => void) | null = null;
  private readonly waiters = new Set<Waiter>();
  private readonly totals = { ...ZERO_COUNTERS };
  private remoteId: string | null = null;
  private reconnectCount = 0;
  private everUp = false;
  /** The last connection or handshake error (stats show it while the connection is not up). */
  private lastError: GridError | null = null;
  /**
   * What the mux layers read from this connection, one object for both; `maxPayload` is the
   * largest payload we send: the smaller of our and the remote's maxMessageBytes, from the
   * latest handshake.
   */
  private readonly host: MuxHost & CalleeHost & { maxPayload: number };
  /** The remote's ping interval; a stream the caller stopped pinging for 2 of them (+1 s) is dropped. */
  private remotePing: number;

  /** @internal Built by the Manager or Client. */
  constructor(owner: ConnectionOwner, remote: string, url: string, dialer: boolean, readOnly = false) {
    this.owner = owner;
    this.remote = remote;
    this.url = url;
    this.dialer = dialer;
    const s = owner.settings;
    this.remotePing = s.pingInterval;
    this.servedCap = readOnly ? s.adminServed : s.served;
    this.host = {
      remote,
      maxPayload: s.maxMessageBytes,
      pingInterval: s.pingInterval,
      readOnly,
      registry: owner.registry,
      handlerStats: owner.handlerStats,
      incoming: owner.incoming,
    };
    this.caller = new MuxCaller(this.host);
    this.callee = new MuxCallee(this.host);
  }

  /** Current state. */
  get state(): ConnectionState {
    return this.stateValue;
  }

  /** @internal Calls this side made on the connection that are still open (for `grid.pick`). */
  get callsInFlight(): number {
    return this.caller.requestCount + this.caller.streams.size;
  }

  /** @internal Round-trip time of the last ping, ms; null before the first pong. */
  get rttMs(): number | null {
    return this.link?.rttMs ?? null;
  }

  /**
   * Sends a single request and resolves with the response. Every failure is a rejection. A call
   * made while the connection has never been up waits for it within its deadline; once it was up
   * and went down, calls fail at once with DisconnectedError unless `waitForConnect` is set.
   *
   * @param handler handler name, or a typed definition from `defineSingle`
   * @param payload request bytes, or the typed request value
   * @param options signal, timeout (`Infinity` for none), subroute, waitForConnect
   * @returns the response bytes or typed value
   * @throws {DisconnectedError} the connection is down or was lost
   * @throws {TimeoutError} the deadline passed (also when the reply came at or after it)
   * @throws {RemoteError} the handler threw
   * @throws {RangeError} `timeout` is NaN, 0 or negative
   * @example
   * ```ts
   * const res = await grid.connection(host).request("echo", new Uint8Array([1]), { timeout: 1_000 });
   * ```
   */
  request(handler: string, payload: Uint8Array, options?: CallOptions): Promise<Uint8Array>;
  /**
   * Sends a typed single request: the payload and the response go through the definition's codecs.
   *
   * @example
   * ```ts
   * const Add = defineSingle<{ x: number; y: number }, number>("add");
   * const sum = await grid.connection(host).request(Add, { x: 1, y: 2 });
   * ```
   */
  request<Req, Resp>(handler: SingleDefinition<Req, Resp, unknown, unknown>, payload: Req, options?: CallOptions): Promise<Resp>;
  request<Req, Resp>(
    handler: string | SingleDefinition<Req, Resp, unknown, unknown>,
    payload: Req | Uint8Array,
    options?: CallOptions,
  ): Promise<Resp | Uint8Array> {
    return callSingle(this, handler as SingleDefinition<unknown, unknown>, payload, options, "bytes") as Promise<
      Resp | Uint8Array
    >;
  }

  /**
   * Opens a stream to a remote stream handler. Waits for a first connection like `request`.
   *
   * @param handler handler name, or a typed definition from `defineStream`
   * @param payload the initial payload
   * @param options signal, timeout (no deadline by default), subroute, waitForConnect
   * @returns the stream's `requests` (null when the handler takes none) and `responses`
   * @example
   * ```ts
   * const st = await grid.connection(host).newStream("tail", new Uint8Array());
   * for await (const chunk of st.responses) console.log(chunk.length);
   * ```
   */
  newStream(handler: string, payload: Uint8Array, options?: CallOptions): Promise<Stream<Uint8Array, Uint8Array>>;
  /**
   * Opens a typed stream: payload, requests and responses go through the definition's codecs.
   *
   * @example
   * ```ts
   * const Count = defineStream<{ to: number }, never, number>("count", { inCapacity: 0 });
   * const st = await grid.connection(host).newStream(Count, { to: 3 });
   * for await (const n of st.responses) console.log(n);
   * ```
   */
  newStream<P, Req, Resp>(
    handler: StreamDefinition<P, Req, Resp, unknown, unknown, unknown>,
    payload: P,
    options?: CallOptions,
  ): Promise<Stream<Req, Resp>>;
  newStream<P, Req, Resp>(
    handler: string | StreamDefinition<P, Req, Resp, unknown, unknown, unknown>,
    payload: P | Uint8Array,
    options?: CallOptions,
  ): Promise<Stream<Req, Resp> | Stream<Uint8Array, Uint8Array>> {
    return callStream(this, handler as StreamDefinition<unknown, unknown, unknown>, payload, options, "bytes") as Promise<
      Stream<Req, Resp>
    >;
  }

  /** @internal The bytes-level request of the typed-call layer. */
  requestBytes(name: string, payload: Uint8Array, options: CallOptions | undefined): Promise<Uint8Array> {
    const retry = this.owner.retryElsewhere;
    if (options?.retryOn === "disconnected" && retry !== undefined) return retry(this, name, payload, options);
    return this.requestOnce(name, payload, options, false);
  }

  /**
   * @internal One attempt of a request, through the outgoing interceptors (each attempt of a
   * retried call is its own intercepted call). With `track`, a failure that happened before the
   * request was handed to a socket is marked (see ../membership/unsent.ts) for `retryOn`.
   */
  requestOnce(name: string, payload: Uint8Array, options: CallOptions | undefined, track: boolean): Promise<Uint8Array> {
    const chain = this.owner.outgoing;
    if (!needsOutgoing(options, chain)) return this.attempt(name, payload, options, null, track);
    const timeout = this.owner.settings.requestTimeout;
    return outgoingCall("request", this.remote, name, options, chain, timeout, (o, meta) => this.attempt(name, payload, o, meta, track));
  }

  /** Sends a request whose options are resolved; `meta` is its encoded metadata section. */
  private attempt(
    name: string,
    payload: Uint8Array,
    options: CallOptions | undefined,
    meta: Uint8Array | null,
    track: boolean,
  ): Promise<Uint8Array> {
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    let timeout: number;
    try {
      timeout = callTimeout(options?.timeout, this.owner.settings.requestTimeout);
    } catch (e) {
      return Promise.reject(e);
    }
    const subroute = options?.subroute ?? "";
    const what = `Request "${name}" to "${this.remote}"`;
    const unsent = (e: unknown) => Promise.reject(track ? markUnsent(e) : e);
    const link = this.link;
    if (link !== null) {
      const big = this.tooLarge("request", name, payload);
      if (big !== null) return Promise.reject(big);
      const room = link.room(payload.length, timeout, signal, what);
      if (room === undefined) return this.sendRequest(link, name, subroute, payload, timeout, signal, meta, track);
      const started = performance.now();
      return room.then(() => {
        const link = this.upLink();
        return this.sendRequest(link, name, subroute, payload, timeLeft(timeout, performance.now() - started), signal, meta, track);
      }, unsent);
    }
    const refusal = this.refusal(options);
    if (refusal !== null) return unsent(refusal);
    const started = performance.now();
    return this.waitUp(timeout, signal).then(async () => {
      let link = this.upLink();
      const big = this.tooLarge("request", name, payload);
      if (big !== null) throw big;
      const room = link.room(payload.length, timeLeft(timeout, performance.now() - started), signal, what);
      if (room !== undefined) {
        await room;
        link = this.upLink();
      }
      return link;
    }).then(
      (link) => this.sendRequest(link, name, subroute, payload, timeLeft(timeout, performance.now() - started), signal, meta, track),
      unsent,
    );
  }

  /** Sends on `link`; with `track`, a DisconnectedError of a request the socket never got is marked unsent. */
  private sendRequest(
    link: Link,
    name: string,
    subroute: string,
    payload: Uint8Array,
    timeout: number,
    signal: AbortSignal | undefined,
    meta: Uint8Array | null,
    track: boolean,
  ): Promise<Uint8Array> {
    if (!track) return this.caller.request(link, name, subroute, payload, timeout, signal, meta);
    const before = link.queuedCount;
    const p = this.caller.request(link, name, subroute, payload, timeout, signal, meta);
    const seq = link.queuedCount;
    return p.catch((e) => {
      throw seq === before || link.handedOver < seq ? markUnsent(e) : e;
    });
  }

  /** @internal The bytes-level stream open of the typed-call layer. */
  openBytes(name: string, payload: Uint8Array, options: CallOptions | undefined, codecs: CallCodecs): Promise<Stream<unknown, unknown>> {
    const chain = this.owner.outgoing;
    if (!needsOutgoing(options, chain)) return this.sendStream(name, payload, options, codecs, null, null);
    return outgoingCall("stream", this.remote, name, options, chain, Infinity, (o, meta, observer) => this.sendStream(name, payload, o, codecs, meta, observer));
  }

  /** Opens a stream whose options are resolved; `meta` as for sendRequest, `observer` its interceptors' listeners. */
  private async sendStream(
    name: string,
    payload: Uint8Array,
    options: CallOptions | undefined,
    codecs: CallCodecs,
    meta: Uint8Array | null,
    observer: CallObserver | null,
  ): Promise<Stream<unknown, unknown>> {
    const signal = options?.signal;
    if (signal?.aborted) throw abortReason(signal);
    // Streams have no deadline unless given one; the wait for a connection is bounded all the same.
    let timeout = options?.timeout === undefined ? Infinity : callTimeout(options.timeout, Infinity);
    if (this.link === null) {
      const refusal = this.refusal(options);
      if (refusal !== null) throw refusal;
      const started = performance.now();
      await this.waitUp(timeout === Infinity ? this.owner.settings.requestTimeout : timeout, signal);
      timeout = timeLeft(timeout, performance.now() - started);
    }
    let link = this.upLink();
    const big = this.tooLarge("stream", name, payload);
    if (big !== null) throw big;
    const started = performance.now();
    const room = link.room(payload.length, timeout, signal, `Stream "${name}" to "${this.remote}"`);
    if (room !== undefined) {
      await room;
      link = this.upLink();
      timeout = timeLeft(timeout, performance.now() - started);
    }
    const t = timeout === Infinity ? undefined : timeout;
    return await this.caller.openStream(link, name, options?.subroute ?? "", payload, t, signal, codecs, meta, observer);
  }

  /** The current link, or DisconnectedError when it dropped (between a wait and its send). */
  private upLink(): Link {
    const link = this.link;
    if (link !== null) return link;
    throw this.stateValue === "closed"
      ? this.closedError()
      : new DisconnectedError(`Cannot call "${this.remote}": connection lost before the call was sent`);
  }

  /** A payload over the limit negotiated with the remote (known once a link is up). */
  private tooLarge(kind: "request" | "stream", name: string, payload: Uint8Array): PayloadTooLargeError | null {
    if (payload.length <= this.host.maxPayload) return null;
    const what = kind === "request" ? `send request "${name}"` : `open stream "${name}"`;
    return new PayloadTooLargeError(
      `Cannot ${what}: payload of ${payload.length} bytes exceeds maxMessageBytes ${this.host.maxPayload}`,
    );
  }

  /**
   * Why a call made while no link is up must fail now, or null when it waits: a connection that
   * has never been up makes calls wait for it (as does `waitForConnect`); one that was up and
   * went down fails them fast. A refused handshake fails them with its error on a client (which
   * cannot authenticate the node anyway), never on a peer connection, where anyone who can reach
   * the port could forge the refusal.
   */
  private refusal(options: CallOptions | undefined): GridError | null {
    if (this.stateValue === "closed") return this.closedError();
    const last = this.lastError;
    if (this.owner.refusalsFailCalls && last !== null && (last.code === "unauthorized" || last.code === "protocol")) return last;
    if (options?.waitForConnect === true || !this.everUp) return null;
    return downError(this.remote, last);
  }

  /**
   * Resolves once the connection is up.
   *
   * @param options timeout (default: the request timeout; `Infinity` for none) and signal
   * @throws {TimeoutError} it did not come up in time
   * @throws {UnauthorizedError} the handshake was refused
   * @example
   * ```ts
   * await grid.connection(host).waitForConnect({ timeout: 10_000 });
   * ```
   */
  waitForConnect(options: { timeout?: number; signal?: AbortSignal } = {}): Promise<void> {
    let timeout: number;
    try {
      timeout = callTimeout(options.timeout, this.owner.settings.requestTimeout);
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.link !== null) return Promise.resolve();
    if (this.stateValue === "closed") return Promise.reject(this.closedError());
    if (options.signal?.aborted) return Promise.reject(abortReason(options.signal));
    return this.waitUp(timeout, options.signal);
  }

  /** Resolves when the connection is up; rejects at the timeout (none when Infinity), on abort or on close. */
  private waitUp(timeout: number, signal: AbortSignal | undefined): Promise<void> {
    if (this.link !== null) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined = undefined;
      const onAbort = () => done(abortReason(signal!));
      const done = (err?: unknown) => {
        if (!this.waiters.delete(w)) return;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        if (err === undefined) resolve();
        else reject(err);
      };
      const w: Waiter = { resolve: () => done(), reject: (e) => done(e) };
      this.waiters.add(w);
      if (timeout !== Infinity) {
        timer = setTimeout(() => {
          // The wait is bounded by the call's deadline, so passing it is a timeout (API.md error table).
          const forged = this.forgedDials === 0
            ? ""
            : ` (${this.forgedDials} handshakes failed verification: another secret, or not the real host)`;
          const last = this.lastError === null ? forged : ` (last error: ${this.lastError.message})${forged}`;
          done(new TimeoutError(`Cannot call "${this.remote}": not connected within ${timeout} ms${last}`));
        }, timeout);
      }
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  private readonly servedCap: { readonly requests: number; readonly streams: number };
  /** Dials whose welcome failed verification, for the message of a call that timed out waiting. */
  private forgedDials = 0;

  /** Whether the connection is closed for good. */
  private isClosed(): boolean {
    return this.stateValue === "closed";
  }

  /** Why close() was called, when not because the grid closed (a host removed from the list). */
  private closeReason: DisconnectedError | null = null;

  /** The error of a call made after close. */
  private closedError(): GridError {
    return this.closeReason ?? new DisconnectedError(`Cannot call "${this.remote}": the grid is closed`);
  }

  /** @internal Starts the dial loop (dialing side only). */
  startDialing(): void {
    if (this.dialer) void this.dialLoop();
  }

  /** Dials until connected, with backoff, and again after each loss, until closed. */
  private async dialLoop(): Promise<void> {
    let attempt = 0;
    // Dials wait their turn, except a redial after one that failed only once its turn ran out
    // (a silent host, a blackhole): hosts that stay down like that must not queue up ahead of
    // live ones, and backoff with jitter spreads their redials. A dial that fails fast (refused,
    // busy) gives its turn back at once and keeps taking turns, so a join stays paced.
    let slowFailure = false;
    const s = this.owner.settings;
    while (this.stateValue !== "closed") {
      const endTurn = slowFailure ? undefined : await this.owner.dialTurn?.(this.closing.signal);
      if (this.isClosed()) {
        endTurn?.();
        break;
      }
      const dialAt = performance.now();
      const r = await dial({
        url: this.url,
        remote: this.remote,
        settings: s,
        credentials: this.owner.credentials,
        openSocket: (url) => this.owner.openSocket(url),
        signal: this.closing.signal,
      }).finally(endTurn);
      slowFailure = !r.ok && performance.now() - dialAt >= DEFAULT_LIMITS.dialTurnMs;
      if (r.ok) {
        const upAt = performance.now();
        await new Promise<void>((resolve) => {
          this.adopt(r.link, r.remoteId, resolve, r.limits, r.early);
        });
        // Backoff starts over only after a link that lasted: a remote that drops every link
        // right after its handshake is redialed ever more slowly, not in a tight loop.
        if (performance.now() - upAt >= s.backoffCap) attempt = 0;
      } else if (r.kind === "forged") {
        // An impostor, or another secret: counted, and nothing else is touched (no waiter
        // fails, lastError stays), so whoever answers a dial cannot fail our calls.
        this.owner.countRejected("dial-bad-mac");
        this.forgedDials++;
      } else {
        if (r.kind === "refused") this.owner.countRejected(`dial-refused-${r.err.code}`);
        this.lastError = r.err;
        if (r.kind === "refused" && this.owner.refusalsFailCalls) {
          for (const w of [...this.waiters]) w.reject(r.err);
        }
      }
      if (this.isClosed()) break;
      if (this.stateValue === "up") this.setDown();
      const delay = Math.random() * Math.min(s.backoffCap, s.backoffBase * 2 ** attempt);
      attempt = Math.min(attempt + 1, 30);
      await new Promise<void>((resolve) => {
        this.sleepWake = resolve;
        this.sleepTimer = setTimeout(resolve, delay);
      });
      this.sleepWake = null;
      this.sleepTimer = undefined;
    }
  }

  /**
   * @internal Takes over an authenticated link. A previous link is dropped
   * (its calls fail). `onClosed` runs when this link closes.
   */
  adopt(link: Link, remoteId: string, onClosed: (() => void) | undefined, limits: PeerLimits, early: Message[] = []): void {
    if (link.closed) {
      onClosed?.();
      return;
    }
    if (this.stateValue === "closed") {
      link.close(this.closedError(), 1001);
      onClosed?.();
      return;
    }
    const old = this.link;
    if (old !== null) old.close(new DisconnectedError(`Connection to "${this.remote}" replaced by a new one`), 1000);
    this.link = link;
    link.receiver = {
      onMessage: (m) => {
        if (m.op >= 16) {
          if (m.mux === DRAINED_MUX) this.remoteDrained(link, m.payload);
          else this.caller.onMessage(m);
        }
        else if (this.draining && (m.op === OP_REQUEST || m.op === OP_STREAM_OPEN)) {
          // Not taken: the grid is closing, and its "drained" notice tells the remote this call never ran here.
        } else if (m.op === OP_REQUEST && this.callee.requestCount >= this.servedCap.requests) {
          link.send(errorMessage(m.mux, "busy", `Cannot serve "${m.handler}": ${this.servedCap.requests} requests in service for this caller`));
        } else if (m.op === OP_STREAM_OPEN && this.callee.streams.size >= this.servedCap.streams) {
          link.send(errorMessage(m.mux, "busy", `Cannot serve "${m.handler}": ${this.servedCap.streams} streams in service for this caller`));
        } else if (isHandshakeOp(m.op)) {
          link.close(new ProtocolError(`Handshake op ${m.op} after the handshake`), 1002);
        } else this.callee.onMessage(m, link);
      },
      onClose: (err) => {
        this.linkClosed(link, err);
        onClosed?.();
      },
    };
    link.startPing(this.owner.settings.pingInterval);
    const s = this.owner.settings;
    this.host.maxPayload = Math.min(s.maxMessageBytes, limits.max);
    this.remotePing = limits.ping;
    const restarted = this.remoteId !== null && this.remoteId !== remoteId;
    this.remoteId = remoteId;
    if (this.everUp) this.reconnectCount++;
    this.everUp = true;
    this.lastError = null;
    this.stateValue = "up";
    this.owner.clock.add(this);
    for (const w of [...this.waiters]) w.resolve();
    if (restarted) this.owner.notify("restart", this);
    this.owner.notify("connect", this);
    for (const m of early) link.receiver.onMessage(m);
  }

  /** @internal The owner's clock, while a link is up: call deadlines, stream silence, pings. */
  tick(now: number): void {
    this.link?.pingTick(now);
    this.caller.tick(now);
    this.callee.tick(now, 2 * this.remotePing + 1000);
  }

  /**
   * The remote is closing and answered every request it had taken: the requests still open on
   * `link` never ran there, so they fail as unsent (`retryOn` sends them elsewhere), and the link
   * is dropped now rather than when the remote's close arrives.
   */
  private remoteDrained(link: Link, payload: Uint8Array): void {
    const notice = decodeError(payload);
    if (notice.code !== "drained") return;
    link.close(markUnsent(new DisconnectedError(`Connection to "${this.remote}" closed: ${notice.message}`)), 1000);
  }

  /** Handles the loss of the current link: keeps its counters, fails its calls, marks the connection down. */
  private linkClosed(link: Link, err: GridError): void {
    const c = link.counters;
    const t = this.totals;
    t.bytesIn += c.bytesIn;
    t.bytesOut += c.bytesOut;
    t.messagesIn += c.messagesIn;
    t.messagesOut += c.messagesOut;
    t.framesIn += c.framesIn;
    t.framesOut += c.framesOut;
    const lost = err.code === "disconnected"
      ? err
      : new DisconnectedError(`Connection to "${this.remote}" lost: ${err.message}`, { cause: err });
    this.caller.failAll(lost, link);
    this.callee.failAll(lost, link);
    if (this.link !== link) return;
    this.link = null;
    this.lastError = err;
    this.owner.clock.delete(this);
    if (this.stateValue === "up") this.setDown();
  }

  /** Marks the connection down and dispatches "disconnect". */
  private setDown(): void {
    this.stateValue = "down";
    this.owner.notify("disconnect", this);
  }

  /** Set while the grid drains before it closes: calls that arrive are not taken. */
  private draining = false;

  /**
   * @internal The first half of a graceful close: while requests taken from the remote are
   * still in service, stops taking new calls and resolves once every one is answered or after
   * `ms`, whichever comes first; `close()` then sends the "drained" notice, which makes the calls
   * the remote still has open here fail as unsent (so `retryOn` sends them elsewhere). Null when
   * nothing is in service (close at once).
   */
  drain(ms: number): Promise<void> | null {
    if (this.stateValue === "closed" || this.link === null || this.callee.requestCount === 0) return null;
    this.draining = true;
    const until = performance.now() + ms;
    return new Promise((resolve) => {
      const look = () => {
        if (this.link === null || this.callee.requestCount === 0 || performance.now() >= until) resolve();
        else setTimeout(look, DRAIN_LOOK_MS);
      };
      setTimeout(look, DRAIN_LOOK_MS);
    });
  }

  /**
   * @internal Closes for good: fails every call, stops reconnecting. With a `reason` (a host
   * removed from the list), calls fail with it and the socket closes with `code` and its message.
   */
  close(reason?: DisconnectedError, code = 1001): void {
    if (this.stateValue === "closed") return;
    if (reason !== undefined) this.closeReason = reason;
    const wasUp = this.stateValue === "up";
    this.stateValue = "closed";
    if (this.sleepTimer !== undefined) clearTimeout(this.sleepTimer);
    this.sleepWake?.();
    this.owner.clock.delete(this);
    const err = this.closedError();
    for (const w of [...this.waiters]) w.reject(err);
    this.closing.abort(err);
    const link = this.link;
    if (link !== null) {
      // Answers made already go out before the close; when that leaves no request taken from
      // the remote unanswered, a last message tells it so: its open requests never ran here.
      link.flushNow();
      if (reason === undefined && this.callee.requestCount === 0 && link.handedOver === link.queuedCount) {
        link.send(errorMessage(DRAINED_MUX, "drained", "the remote grid closed after answering every request it had taken"));
        link.flushNow();
      }
      link.close(reason ?? new DisconnectedError(`Connection to "${this.remote}" closed`), code);
    }
    this.caller.failAll(err);
    this.callee.failAll(err);
    if (wasUp) this.owner.notify("disconnect", this);
  }

  /** Plain-JSON statistics. */
  stats(): ConnectionStats {
    const t = this.totals;
    const c = this.link?.counters ?? ZERO_COUNTERS;
    const st: ConnectionStats = {
      state: this.stateValue,
      rttMs: this.link?.rttMs ?? null,
      reconnects: this.reconnectCount,
      bytesIn: t.bytesIn + c.bytesIn,
      bytesOut: t.bytesOut + c.bytesOut,
      messagesIn: t.messagesIn + c.messagesIn,
      messagesOut: t.messagesOut + c.messagesOut,
      framesIn: t.framesIn + c.framesIn,
      framesOut: t.framesOut + c.framesOut,
      inFlight: { requests: this.caller.requestCount, streams: this.caller.streams.size },
      serving: { requests: this.callee.requestCount, streams: this.callee.streams.size },
    };
    if (this.lastError !== null && this.stateValue !== "up") st.lastError = this.lastError.message;
    return st;
  }
}
