/**
 * A fault-injecting TCP proxy for tests, loopback only: it listens on 127.0.0.1 and forwards
 * every accepted connection to one loopback target, misbehaving on demand. The mode can be
 * switched at run time and applies to every connection, open or new:
 *
 * - `pass`: forwards bytes both ways (with backpressure); a FIN or RST on one side is passed on.
 * - `delay`: forwards every chunk `ms` later, order kept.
 * - `blackhole`: keeps sockets open and drops bytes both ways; new connections are accepted and
 *   never reach the target. A connection that lost bytes stays blackholed after the mode changes
 *   (its byte stream is broken; a real network would have retransmitted), until a peer closes it.
 * - `reset`: destroys every connection with a TCP RST; new connections are reset on accept.
 * - `half-close`: sends FIN to both peers of every connection and drops what they still send;
 *   the sockets stay open until each peer closes its side. New connections get FIN on accept.
 *
 * Works under Deno, Bun and Node (`node:net` only).
 *
 * @example
 * ```ts
 * const proxy = await FaultProxy.start({ targetPort: 9000 });
 * proxy.set("blackhole");
 * proxy.set("delay", 50);
 * proxy.set("pass");
 * await proxy.close();
 * ```
 *
 * @module
 */
import { connect, createServer, type Server, type Socket } from "node:net";

/** What the proxy does to traffic. */
export type FaultMode = "pass" | "delay" | "blackhole" | "reset" | "half-close";

/** Options of {@link FaultProxy.start}. */
export interface FaultProxyOptions {
  /** The port to forward to. */
  targetPort: number;
  /**
   * The loopback host to forward to.
   * @default "127.0.0.1"
   */
  targetHost?: string;
  /**
   * The port to listen on (127.0.0.1 only).
   * @default 0 (a free port)
   */
  port?: number;
  /**
   * The mode at start.
   * @default "pass"
   */
  mode?: FaultMode;
  /**
   * The delay of mode "delay" at start, ms.
   * @default 0
   */
  delayMs?: number;
}

/** Counters of a {@link FaultProxy}. */
export interface FaultProxyStats {
  /** Connections accepted since start. */
  accepted: number;
  /** Connections whose client socket is still open. */
  active: number;
  /** Open connections that still carry bytes (neither blackholed nor half-closed). */
  live: number;
  /** The highest `active` seen. */
  peakActive: number;
  /** Connections reset by the proxy (mode "reset"), open or new. */
  resets: number;
  /** Connections half-closed by the proxy (mode "half-close"), open or new. */
  halfClosed: number;
  /** Connections that lost bytes to a blackhole. */
  blackholed: number;
  /** Bytes forwarded, both directions. */
  bytesForwarded: number;
  /** Bytes dropped (blackhole, half-close), both directions. */
  bytesDropped: number;
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

/** One direction of a proxied connection. */
interface Direction {
  from: Socket;
  to: Socket;
  /** Chunks waiting for their delay, in order, with the time they may go. */
  queue: { at: number; chunk: Uint8Array }[];
  timer: ReturnType<typeof setTimeout> | undefined;
  /** `from` sent FIN; pass it on once the queue is empty. */
  ended: boolean;
}

/** One accepted connection and its upstream socket (null until dialed, or never). */
interface Pair {
  client: Socket;
  upstream: Socket | null;
  /** The upstream connect completed. */
  connected: boolean;
  /** Bytes were dropped: the stream is broken for good. */
  tainted: boolean;
  halfClosed: boolean;
  closed: boolean;
  up: Direction | null;
  down: Direction | null;
}

/**
 * A loopback TCP proxy with switchable faults. Create it with {@link FaultProxy.start}.
 *
 * @example
 * ```ts
 * const proxy = await FaultProxy.start({ targetPort: 9000 });
 * const url = proxy.url(); // "ws://127.0.0.1:<proxy port>"
 * ```
 */
export class FaultProxy {
  /** The port the proxy listens on (127.0.0.1). */
  readonly port: number;
  /** The port it forwards to. */
  readonly targetPort: number;
  private readonly targetHost: string;
  private readonly server: Server;
  private readonly pairs = new Set<Pair>();
  private modeValue: FaultMode;
  private delayValue: number;
  private closing: Promise<void> | null = null;
  private readonly counters = {
    accepted: 0,
    peakActive: 0,
    resets: 0,
    halfClosed: 0,
    blackholed: 0,
    bytesForwarded: 0,
    bytesDropped: 0,
  };

  private constructor(server: Server, port: number, options: FaultProxyOptions) {
    this.server = server;
    this.port = port;
    this.targetPort = options.targetPort;
    this.targetHost = options.targetHost ?? "127.0.0.1";
    this.modeValue = options.mode ?? "pass";
    this.delayValue = options.delayMs ?? 0;
    server.on("connection", (s) => this.accept(s));
  }

  /**
   * Starts a proxy listening on 127.0.0.1.
   *
   * @throws {RangeError} the target is not a loopback host
   */
  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const host = options.targetHost ?? "127.0.0.1";
    if (!LOOPBACK.has(host)) throw new RangeError(`Cannot start proxy: target "${host}" is not a loopback host`);
    if (!Number.isInteger(options.targetPort) || options.targetPort <= 0 || options.targetPort > 65535) {
      throw new RangeError(`Cannot start proxy: target port ${options.targetPort} is not a TCP port`);
    }
    // allowHalfOpen: a FIN from the client must not end our side by itself (mode half-close,
    // and passing the FIN on only once delayed bytes are out).
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 0, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    const addr = server.address();
    if (addr === null || typeof addr === "string") throw new Error("Cannot start proxy: no TCP address");
    return new FaultProxy(server, addr.port, options);
  }

  /** `ws://127.0.0.1:<port>` plus `path`: the proxy as a grid host URL. */
  url(path = ""): string {
    return `ws://127.0.0.1:${this.port}${path}`;
  }

  /** The current mode. */
  get mode(): FaultMode {
    return this.modeValue;
  }

  /** The delay of mode "delay", ms. */
  get delayMs(): number {
    return this.delayValue;
  }

  /**
   * Switches the mode for every connection, open or new. `ms` is the delay of mode "delay".
   *
   * @throws {RangeError} an unknown mode, or a negative delay
   */
  set(mode: FaultMode, ms?: number): void {
    if (!["pass", "delay", "blackhole", "reset", "half-close"].includes(mode)) {
      throw new RangeError(`Cannot set proxy mode: unknown mode "${mode}"`);
    }
    if (ms !== undefined) {
      if (!(ms >= 0)) throw new RangeError(`Cannot set proxy mode: delay ${ms} must be >= 0`);
      this.delayValue = ms;
    }
    this.modeValue = mode;
    if (mode === "reset") for (const p of [...this.pairs]) this.reset(p);
    else if (mode === "half-close") for (const p of [...this.pairs]) this.halfClose(p);
    else if (mode === "pass") for (const p of this.pairs) this.resumeAll(p);
  }

  /** Counters and connection counts. */
  stats(): FaultProxyStats {
    let live = 0;
    for (const p of this.pairs) if (!p.tainted && !p.halfClosed) live++;
    return { ...this.counters, active: this.pairs.size, live };
  }

  /** Destroys every connection and stops listening. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const p of [...this.pairs]) this.destroy(p);
    });
    return this.closing;
  }

  // --- connections -----------------------------------------------------------

  private accept(client: Socket): void {
    if (this.closing !== null) {
      client.destroy();
      return;
    }
    this.counters.accepted++;
    const pair: Pair = {
      client,
      upstream: null,
      connected: false,
      tainted: false,
      halfClosed: false,
      closed: false,
      up: null,
      down: null,
    };
    this.pairs.add(pair);
    this.counters.peakActive = Math.max(this.counters.peakActive, this.pairs.size);
    client.setNoDelay(true);
    client.on("error", () => {});
    client.on("close", () => this.onClientClose(pair));
    switch (this.modeValue) {
      case "reset":
        this.reset(pair);
        return;
      case "half-close":
        client.on("data", (c: Uint8Array) => this.counters.bytesDropped += c.length);
        client.resume();
        this.halfClose(pair);
        return;
      case "blackhole":
        this.taint(pair);
        client.on("data", (c: Uint8Array) => this.counters.bytesDropped += c.length);
        client.resume();
        return;
      default:
        this.dialUpstream(pair);
    }
  }

  private dialUpstream(pair: Pair): void {
    const client = pair.client;
    const upstream = connect({ port: this.targetPort, host: this.targetHost, allowHalfOpen: true });
    pair.upstream = upstream;
    upstream.setNoDelay(true);
    upstream.on("error", () => {});
    upstream.on("close", (hadError) => {
      // Pass a reset on as a reset; a clean close becomes a FIN once delayed bytes are out.
      if (pair.closed) return;
      if (hadError || !pair.connected) this.resetSocket(client);
      else if (!pair.halfClosed && !pair.tainted) this.endWhenFlushed(pair.down!);
    });
    upstream.once("connect", () => {
      pair.connected = true;
      pair.up = { from: client, to: upstream, queue: [], timer: undefined, ended: false };
      pair.down = { from: upstream, to: client, queue: [], timer: undefined, ended: false };
      this.wire(pair, pair.up);
      this.wire(pair, pair.down);
      // Until now the client was paused (pauseOnConnect): its bytes waited in the kernel.
      client.resume();
    });
  }

  private wire(pair: Pair, d: Direction): void {
    d.from.on("data", (chunk: Uint8Array) => this.forward(pair, d, chunk));
    d.from.on("end", () => {
      d.ended = true;
      if (!pair.tainted && !pair.halfClosed) this.endWhenFlushed(d);
    });
    d.to.on("drain", () => {
      if (this.modeValue !== "blackhole") d.from.resume();
    });
  }

  private forward(pair: Pair, d: Direction, chunk: Uint8Array): void {
    if (pair.closed) return;
    if (pair.halfClosed || pair.tainted || this.modeValue === "blackhole") {
      if (!pair.halfClosed) this.taint(pair);
      this.counters.bytesDropped += chunk.length;
      return;
    }
    const delay = this.modeValue === "delay" ? this.delayValue : 0;
    if (delay > 0 || d.queue.length > 0) {
      const last = d.queue.length > 0 ? d.queue[d.queue.length - 1].at : 0;
      d.queue.push({ at: Math.max(performance.now() + delay, last), chunk });
      this.schedule(pair, d);
      return;
    }
    this.counters.bytesForwarded += chunk.length;
    if (!d.to.write(chunk)) d.from.pause();
  }

  private schedule(pair: Pair, d: Direction): void {
    if (d.timer !== undefined || d.queue.length === 0) return;
    const wait = Math.max(0, d.queue[0].at - performance.now());
    d.timer = setTimeout(() => {
      d.timer = undefined;
      if (pair.closed || pair.halfClosed) return;
      const now = performance.now();
      while (d.queue.length > 0 && d.queue[0].at <= now + 1) {
        const { chunk } = d.queue.shift()!;
        if (pair.tainted) {
          this.counters.bytesDropped += chunk.length;
          continue;
        }
        this.counters.bytesForwarded += chunk.length;
        d.to.write(chunk);
      }
      if (d.queue.length > 0) this.schedule(pair, d);
      else if (d.ended && !pair.tainted) d.to.end();
    }, wait);
  }

  private endWhenFlushed(d: Direction): void {
    if (d.queue.length === 0) d.to.end();
    else d.ended = true;
  }

  private resumeAll(pair: Pair): void {
    if (pair.connected && !pair.tainted && !pair.halfClosed) {
      pair.client.resume();
      pair.upstream?.resume();
    }
  }

  private taint(pair: Pair): void {
    if (pair.tainted) return;
    pair.tainted = true;
    this.counters.blackholed++;
    this.dropQueued(pair);
  }

  /**
   * Drops what waits in both directions (counted as dropped) and keeps reading, so that
   * the peers' writes succeed and their bytes are dropped here.
   */
  private dropQueued(pair: Pair): void {
    for (const d of [pair.up, pair.down]) {
      if (d === null) continue;
      if (d.timer !== undefined) clearTimeout(d.timer);
      d.timer = undefined;
      for (const q of d.queue) this.counters.bytesDropped += q.chunk.length;
      d.queue = [];
      d.from.resume();
    }
  }

  private reset(pair: Pair): void {
    if (pair.closed) return;
    this.counters.resets++;
    this.resetSocket(pair.client);
    if (pair.upstream !== null) this.resetSocket(pair.upstream);
    this.finish(pair);
  }

  private halfClose(pair: Pair): void {
    if (pair.closed || pair.halfClosed) return;
    pair.halfClosed = true;
    this.counters.halfClosed++;
    this.dropQueued(pair);
    pair.client.end();
    pair.client.resume();
    if (pair.upstream !== null) {
      if (pair.connected) pair.upstream.end();
      else pair.upstream.destroy();
      pair.upstream.resume();
      // A peer that closes its side after our FIN ends that socket; nothing is forwarded.
      pair.upstream.on("end", () => pair.upstream?.destroy());
    }
    pair.client.on("end", () => pair.client.destroy());
  }

  private resetSocket(s: Socket): void {
    const r = (s as Socket & { resetAndDestroy?: () => void }).resetAndDestroy;
    try {
      if (typeof r === "function" && !s.destroyed && s.readyState !== "opening") r.call(s);
      else s.destroy();
    } catch {
      s.destroy();
    }
  }

  private onClientClose(pair: Pair): void {
    if (pair.closed) return;
    if (pair.upstream !== null && !pair.upstream.destroyed) {
      // A clean close was passed on as FIN by "end"; make sure the upstream goes too.
      if (pair.tainted || pair.halfClosed || !pair.connected) pair.upstream.destroy();
      else pair.upstream.end(() => pair.upstream?.destroy());
    }
    this.finish(pair);
  }

  private destroy(pair: Pair): void {
    pair.client.destroy();
    pair.upstream?.destroy();
    this.finish(pair);
  }

  private finish(pair: Pair): void {
    pair.closed = true;
    for (const d of [pair.up, pair.down]) {
      if (d?.timer !== undefined) clearTimeout(d.timer);
    }
    this.pairs.delete(pair);
  }
}
