/**
 * The accepting side of the handshake: admission limits (concurrent handshakes,
 * admin handshake rate, handshake timeout), hello checks (version, clock, host,
 * signature, replay, dial rule) and the welcome or refusal.
 *
 * @module
 */
import type { Connection, ConnectionSettings } from "./connection.ts";
import { shouldDial } from "./dial_rule.ts";
import { GridError, ProtocolError, UnauthorizedError } from "./errors.ts";
import { Link } from "./link.ts";
import type { AdminOptions } from "./manager.ts";
import type { Message } from "./protocol/frame.ts";
import {
  type AdminHello,
  decodeHello,
  encodeHandshake,
  type Hello,
  helloSigningText,
  type HmacKey,
  sign,
  verify,
  type Welcome,
  welcomeSigningText,
} from "./protocol/handshake.ts";
import { DEFAULT_LIMITS } from "./protocol/limits.ts";
import { OP_HELLO, OP_WELCOME, PROTOCOL_VERSION } from "./protocol/ops.ts";
import type { GridSocket } from "./socket.ts";

/** What the acceptor needs from its Manager. */
export interface AcceptorHost {
  readonly local: string;
  readonly instanceId: string;
  readonly settings: ConnectionSettings;
  readonly key: Promise<HmacKey>;
  readonly admin: AdminOptions | undefined;
  readonly maxHandshakes: number;
  isClosed(): boolean;
  /** The connection to a known peer host. */
  peer(host: string): Connection | undefined;
  /** A new admin connection, or undefined when `admin.maxConnections` are open. */
  openAdmin(): Connection | undefined;
  /** An admin connection's socket closed. */
  closeAdmin(conn: Connection): void;
}

/** Null when `from` is the side that should dial `local`, else why not. */
export function dialRuleCheck(from: string, local: string): string | null {
  if (from === local) return `host "${from}" cannot dial itself`;
  if (!shouldDial(from, local)) return `"${local}" dials "${from}", not the other way round`;
  return null;
}

/** Runs the handshake of every socket a server adapter accepts. */
export class Acceptor {
  private readonly host: AcceptorHost;
  private readonly seenNonces = new Map<string, number>();
  private readonly adminBucket = { tokens: 0, at: 0 };
  private handshakes = 0;

  constructor(host: AcceptorHost) {
    this.host = host;
  }

  /** Takes an upgraded socket: admits it, waits for its hello, answers. */
  accept(socket: GridSocket): void {
    if (this.host.isClosed()) {
      socket.close(1001, "Grid is closed");
      return;
    }
    if (this.handshakes >= this.host.maxHandshakes) {
      socket.close(1013, "Too many handshakes; try again later");
      return;
    }
    this.handshakes++;
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      this.handshakes--;
      clearTimeout(timer);
    };
    const link = new Link(socket, {
      onMessage: (m: Message) => {
        if (settled || m.op !== OP_HELLO) {
          link.close(new ProtocolError(`Cannot accept: expected hello, got op ${m.op}`), 1002);
          return;
        }
        settled = true;
        this.handshakes--;
        clearTimeout(timer);
        link.receiver = { onMessage: () => link.close(new ProtocolError("Cannot accept: message before welcome"), 1002), onClose: () => {} };
        this.answerHello(link, m.payload).catch((e) => {
          link.close(e instanceof GridError ? e : new ProtocolError("Cannot accept: handshake failed", { cause: e }), 1011);
        });
      },
      onClose: settle,
    }, this.host.settings.maxMessageBytes);
    const timer = setTimeout(() => {
      link.close(new ProtocolError("Cannot accept: no hello in time"), 1002);
    }, this.host.settings.handshakeTimeout);
  }

  /** Checks a hello on an accepted socket and answers it with a welcome or a refusal. */
  private async answerHello(link: Link, payload: Uint8Array): Promise<void> {
    let hello: Hello;
    try {
      hello = decodeHello(payload);
    } catch (e) {
      return this.refuse(link, "protocol", (e as Error).message);
    }
    if (hello.v !== PROTOCOL_VERSION) {
      return this.refuse(link, "protocol", `protocol version ${hello.v} is not supported (this node speaks ${PROTOCOL_VERSION})`);
    }
    const skew = Math.abs(Date.now() - hello.t);
    if (skew > DEFAULT_LIMITS.clockSkew) return this.refuse(link, "unauthorized", `hello is stale: clock differs by ${skew} ms`);
    // Nonces are remembered only once the hello is authenticated, so unauthenticated hellos
    // can neither burn a genuine hello's nonce nor fill the replay table (which refuses
    // everything when full).
    if (hello.kind === "admin") return this.acceptAdmin(link, hello);
    const conn = this.host.peer(hello.from);
    if (conn === undefined) return this.refuse(link, "unauthorized", `host "${hello.from}" is not in this grid`);
    if (hello.to !== this.host.local) return this.refuse(link, "unauthorized", `hello is addressed to "${hello.to}", this is "${this.host.local}"`);
    const key = await this.host.key;
    if (!(await verify(key, helloSigningText(hello), hello.mac))) {
      const err = "hello is not signed with this grid's secret";
      conn.refused(new UnauthorizedError(`Handshake from "${hello.from}" refused: ${err}`));
      return this.refuse(link, "unauthorized", err);
    }
    if (!this.rememberNonce(hello.nonce)) return this.refuse(link, "unauthorized", "hello was replayed");
    const rule = dialRuleCheck(hello.from, this.host.local);
    if (rule !== null) return this.refuse(link, "protocol", rule);
    if (link.closed || this.host.isClosed()) return;
    const w = this.welcome(true, "", "");
    const welcome: Welcome = { ...w, mac: await sign(key, welcomeSigningText(w, hello.nonce)) };
    if (link.closed || this.host.isClosed()) return;
    link.send({ op: OP_WELCOME, flags: 0, mux: 0, seq: 0, deadline: 0, route: null, payload: encodeHandshake(welcome) });
    conn.adopt(link, hello.id, undefined, hello);
  }

  /** Accepts or refuses a read-only (admin) client's hello. */
  private async acceptAdmin(link: Link, hello: AdminHello): Promise<void> {
    const { token, nonce } = hello;
    const admin = this.host.admin;
    if (!this.takeAdminHandshake()) {
      // Transient, like the handshake limit: the client backs off and tries again.
      link.close(new GridError("unavailable", "Too many admin handshakes; try again later"), 1013);
      return;
    }
    let ok = false;
    if (admin !== undefined) {
      if (admin.tokens !== undefined) ok = admin.tokens.some((t) => constantTimeEqual(t, token));
      if (!ok && admin.verify !== undefined) {
        try {
          ok = (await admin.verify(token)) === true;
        } catch {
          ok = false;
        }
      }
    }
    if (!ok) return this.refuse(link, "unauthorized", "admin token is not valid");
    if (!this.rememberNonce(nonce)) return this.refuse(link, "unauthorized", "hello was replayed");
    if (link.closed || this.host.isClosed()) return;
    const conn = this.host.openAdmin();
    if (conn === undefined) return this.refuse(link, "unauthorized", "too many admin connections");
    const w = this.welcome(true, "", "");
    link.send({ op: OP_WELCOME, flags: 0, mux: 0, seq: 0, deadline: 0, route: null, payload: encodeHandshake(w) });
    conn.adopt(link, "admin", () => this.host.closeAdmin(conn), hello);
  }

  /** Token bucket for admin handshakes: `maxHandshakesPerSecond`, bursts of twice that. */
  private takeAdminHandshake(): boolean {
    const rate = this.host.admin?.maxHandshakesPerSecond ?? 20;
    const now = performance.now();
    const b = this.adminBucket;
    b.tokens = Math.min(2 * rate, b.tokens + ((now - b.at) / 1000) * rate);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  }

  /** An unsigned welcome (the peer path signs it with the hello's nonce). */
  private welcome(ok: boolean, code: string, reason: string): Welcome {
    return {
      ok,
      v: PROTOCOL_VERSION,
      id: this.host.instanceId,
      from: this.host.local,
      t: Date.now(),
      mac: "",
      code,
      reason,
      max: this.host.settings.maxMessageBytes,
      ping: this.host.settings.pingInterval,
    };
  }

  /** Sends a refusing welcome and closes the socket with 1008. */
  private refuse(link: Link, code: string, reason: string): void {
    if (link.closed) return;
    const w = this.welcome(false, code, reason);
    link.send({ op: OP_WELCOME, flags: 0, mux: 0, seq: 0, deadline: 0, route: null, payload: encodeHandshake(w) });
    link.flushNow();
    link.close(new GridError(code, `Handshake refused: ${reason}`), 1008);
  }

  /** Records a hello's nonce; false when it was seen before (a replay) or the table is full. */
  private rememberNonce(nonce: string): boolean {
    const now = Date.now();
    if (this.seenNonces.has(nonce)) return false;
    if (this.seenNonces.size >= 4096) {
      for (const [n, exp] of this.seenNonces) if (exp < now) this.seenNonces.delete(n);
      if (this.seenNonces.size >= 65536) return false;
    }
    this.seenNonces.set(nonce, now + 2 * DEFAULT_LIMITS.clockSkew);
    return true;
  }
}

function constantTimeEqual(a: string, b: string): boolean {
  const n = Math.max(a.length, b.length);
  let diff = a.length ^ b.length;
  for (let i = 0; i < n; i++) diff |= (a.charCodeAt(i) | 0) ^ (b.charCodeAt(i) | 0);
  return diff === 0;
}
