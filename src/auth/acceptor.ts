/**
 * The accepting side of the handshake: admission (slot pools, per-address cap,
 * hello timeout), hello checks (version, names, dial rule), the challenge and
 * MAC exchange of protocol version 2 (see ./handshake.ts), and the admin token
 * check. Nothing a socket sends before its handshake completes reaches a
 * Connection: a failed handshake closes that socket, is counted in
 * `rejectedHandshakes`, and touches nothing else.
 *
 * @module
 */
import type { Connection, ConnectionSettings } from "../connection.ts";
import { shouldDial } from "../dial_rule.ts";
import { GridError, ProtocolError } from "../errors.ts";
import { Link } from "../link.ts";
import type { Message, OutMessage } from "../protocol/frame.ts";
import { OP_HELLO, OP_PROOF, OP_READY, OP_WELCOME, PROTOCOL_VERSION } from "../protocol/ops.ts";
import type { AcceptInfo, GridSocket } from "../socket.ts";
import { Admission, type AdmissionLimits, type Slot } from "./admission.ts";
import {
  type AdminHello,
  constantTimeEqual,
  decodeHello,
  decodeProof,
  handshakeMessage,
  type Hello,
  helloVersion,
  type HmacKey,
  newChallenge,
  type PeerHello,
  refusedWelcome,
  signTranscript,
  type Transcript,
  verifyTranscript,
  type Welcome,
} from "./handshake.ts";

/** Admin (read-only client) access, as the acceptor needs it. */
export interface AcceptorAdmin {
  readonly tokens?: string[];
  readonly verify?: (token: string) => boolean | Promise<boolean>;
  readonly maxHandshakesPerSecond?: number;
}

/** What the acceptor needs from its Manager. */
export interface AcceptorHost {
  readonly local: string;
  readonly instanceId: string;
  readonly settings: ConnectionSettings;
  readonly key: Promise<HmacKey>;
  readonly admin: AcceptorAdmin | undefined;
  readonly admission: AdmissionLimits;
  isClosed(): boolean;
  /** The connection to a known peer host. */
  peer(host: string): Connection | undefined;
  /** A new admin connection, or undefined when `admin.maxConnections` are open. */
  openAdmin(): Connection | undefined;
  /** An admin connection's socket closed. */
  closeAdmin(conn: Connection): void;
  /** Counts a refused or failed handshake by reason (stats `rejectedHandshakes`). */
  countRejected(reason: string): void;
}

/** Null when `from` is the side that should dial `local`, else why not. */
export function dialRuleCheck(from: string, local: string): string | null {
  if (from === local) return `host "${from}" cannot dial itself`;
  if (!shouldDial(from, local)) return `"${local}" dials "${from}", not the other way round`;
  return null;
}

/**
 * WebSocket close code of a hello refused because its sender is not in this node's current
 * host list (private range): apart from a bad secret (1008), so that a dialer whose list is
 * ahead of ours backs off and tries again instead of reporting an attack.
 */
export const CLOSE_NOT_MEMBER = 4003;

/** Reasons a link closed itself during the handshake, by the close code it used. */
const CLOSE_REASONS: Readonly<Record<number, string>> = { 1002: "malformed", 1003: "text-frame", 1009: "oversize" };


/** One socket's handshake on the accepting side. */
class Attempt {
  readonly link: Link;
  step: "hello" | "checking" | "proof" | "done" = "hello";
  /** Set once the attempt was counted as rejected, so that it is counted once. */
  rejected = false;
  timer: ReturnType<typeof setTimeout> | undefined;
  slot: Slot | undefined;
  /** The welcome went out: a refusal from now on is a `ready`. */
  welcomed = false;

  constructor(link: Link) {
    this.link = link;
  }
}

/** Runs the handshake of every socket a server adapter accepts. */
export class Acceptor {
  private readonly host: AcceptorHost;
  private readonly admission: Admission;
  private readonly adminBucket = { tokens: 0, at: 0 };

  constructor(host: AcceptorHost) {
    this.host = host;
    this.admission = new Admission(host.admission);
  }

  /** Takes an upgraded socket: admits it, runs its handshake. */
  accept(socket: GridSocket, info?: AcceptInfo): void {
    if (this.host.isClosed()) {
      socket.close(1001, "Grid is closed");
      return;
    }
    const s = this.host.settings;
    const attempt: Attempt = new Attempt(
      new Link(socket, {
        onMessage: (m) => this.onMessage(attempt, m),
        onClose: () => this.onClose(attempt),
      }, { maxPayload: s.maxMessageBytes, maxQueuedBytes: s.maxQueuedBytes, writeTimeout: s.writeTimeout }),
    );
    const slot = this.admission.admit(info?.remoteAddress ?? "", () => {
      attempt.slot = undefined;
      this.fail(attempt, "evicted", new GridError("unavailable", "Too many handshakes; try again later"), 1013);
    });
    if (typeof slot === "string") {
      this.fail(attempt, slot, new GridError("unavailable", "Too many handshakes from this address; try again later"), 1013);
      return;
    }
    attempt.slot = slot;
    this.arm(attempt, s.helloTimeout, "no hello");
  }

  /** Handshake slots held now, per pool (for tests and stats). */
  get slotsHeld(): Record<"new" | "peer" | "admin", number> {
    return this.admission.held;
  }

  private arm(a: Attempt, ms: number, what: string): void {
    if (a.timer !== undefined) clearTimeout(a.timer);
    a.timer = setTimeout(() => {
      a.timer = undefined;
      this.fail(a, "timeout", new ProtocolError(`Cannot accept: ${what} within ${ms} ms`), 1008);
    }, ms);
  }

  private onMessage(a: Attempt, m: Message): void {
    if (a.step === "hello" && m.op === OP_HELLO) {
      a.step = "checking";
      this.answerHello(a, m.payload).catch((e) => {
        this.fail(a, "error", e instanceof GridError ? e : new ProtocolError("Cannot accept: handshake failed", { cause: e }), 1011);
      });
      return;
    }
    this.fail(a, "unexpected-op", new ProtocolError(`Cannot accept: op ${m.op} is not allowed before the handshake completes`), 1002);
  }

  private onClose(a: Attempt): void {
    if (a.timer !== undefined) clearTimeout(a.timer);
    a.timer = undefined;
    if (a.slot !== undefined) this.admission.release(a.slot);
    a.slot = undefined;
    if (a.step !== "done" && !a.rejected) {
      a.rejected = true;
      this.host.countRejected(CLOSE_REASONS[a.link.closeCode] ?? "closed");
    }
  }

  /** Ends a handshake: counted under `reason`, the socket closed with `code`. */
  private fail(a: Attempt, reason: string, err: GridError, code: number): void {
    if (a.link.closed || a.step === "done") return;
    a.rejected = true;
    this.host.countRejected(reason);
    a.link.close(err, code);
  }

  /** Sends a refusal (welcome or ready), then closes with `closeCode` (1008 unless told). */
  private refuse(a: Attempt, reason: string, code: string, message: string, closeCode = 1008): void {
    if (a.link.closed) return;
    const payload = a.welcomed
      ? handshakeMessage(OP_READY, { ok: false, code, reason: message })
      : handshakeMessage(OP_WELCOME, refusedWelcome(PROTOCOL_VERSION, code, message));
    a.link.send(payload);
    a.link.flushNow();
    this.fail(a, reason, new GridError(code, `Handshake refused: ${message}`), closeCode);
  }

  /** Checks a hello and answers it: the admin path at once, the peer path with a challenge. */
  private async answerHello(a: Attempt, payload: Uint8Array): Promise<void> {
    let hello: Hello;
    try {
      const v = helloVersion(payload);
      if (v !== PROTOCOL_VERSION) {
        return this.refuse(a, "version", "protocol", `protocol version ${v} is not supported (this node speaks ${PROTOCOL_VERSION})`);
      }
      hello = decodeHello(payload);
    } catch (e) {
      return this.refuse(a, "malformed", "protocol", (e as Error).message);
    }
    if (hello.kind === "admin") return this.acceptAdmin(a, hello);
    if (hello.from === this.host.local) {
      return this.refuse(a, "unknown-host", "unauthorized", `host "${hello.from}" is this node's own name`);
    }
    const conn = this.host.peer(hello.from);
    if (conn === undefined) {
      // Not (or not yet, or no longer) in this node's host list: during a rolling change of the
      // lists the dialer retries with backoff and connects once both lists agree.
      return this.refuse(
        a,
        "not-member",
        "unknown-host",
        `host "${hello.from}" is not in the host list of "${this.host.local}"`,
        CLOSE_NOT_MEMBER,
      );
    }
    if (hello.to !== this.host.local) {
      return this.refuse(a, "wrong-target", "unauthorized", `hello is addressed to "${hello.to}", this is "${this.host.local}"`);
    }
    const rule = dialRuleCheck(hello.from, this.host.local);
    if (rule !== null) return this.refuse(a, "dial-rule", "protocol", rule);
    if (a.slot !== undefined) this.admission.move(a.slot, "peer");
    const key = await this.host.key;
    if (a.link.closed || this.host.isClosed()) return;
    const welcome = this.welcome();
    const transcript: Transcript = { v: PROTOCOL_VERSION, hello, welcome };
    welcome.mac = await signTranscript(key, "acceptor", transcript);
    if (a.link.closed || this.host.isClosed()) return;
    a.link.send(handshakeMessage(OP_WELCOME, welcome));
    a.welcomed = true;
    a.step = "proof";
    this.arm(a, this.host.settings.helloTimeout, "no proof");
    const proof = await this.nextProof(a);
    if (proof === null) return;
    let mac: string;
    try {
      mac = decodeProof(proof).mac;
    } catch (e) {
      return this.refuse(a, "malformed", "protocol", (e as Error).message);
    }
    if (!(await verifyTranscript(key, "dialer", transcript, mac))) {
      return this.refuse(a, "bad-mac", "unauthorized", "proof is not signed with this grid's secret");
    }
    if (a.link.closed || this.host.isClosed()) return;
    this.complete(a, handshakeMessage(OP_READY, { ok: true, code: "", reason: "" }), () => conn.adopt(a.link, hello.id, undefined, limitsOf(hello)));
  }

  /** The proof's payload when it arrives, null when the attempt ended first. */
  private nextProof(a: Attempt): Promise<Uint8Array | null> {
    return new Promise((resolve) => {
      a.link.receiver = {
        onMessage: (m) => {
          if (a.step === "proof" && m.op === OP_PROOF) {
            a.step = "checking";
            resolve(m.payload);
            return;
          }
          this.onMessage(a, m);
          resolve(null);
        },
        onClose: () => {
          this.onClose(a);
          resolve(null);
        },
      };
    });
  }

  /** Accepts or refuses a read-only (admin) client's hello. */
  private async acceptAdmin(a: Attempt, hello: AdminHello): Promise<void> {
    if (a.slot !== undefined && this.admission.move(a.slot, "admin") !== true) {
      return this.fail(a, "admin-busy", new GridError("unavailable", "Too many admin handshakes; try again later"), 1013);
    }
    if (!this.takeAdminHandshake()) {
      return this.fail(a, "admin-rate", new GridError("unavailable", "Too many admin handshakes; try again later"), 1013);
    }
    const admin = this.host.admin;
    let ok = false;
    if (admin !== undefined) {
      if (admin.tokens !== undefined) ok = admin.tokens.some((t) => constantTimeEqual(t, hello.token));
      if (!ok && admin.verify !== undefined) {
        try {
          ok = (await admin.verify(hello.token)) === true;
        } catch {
          ok = false;
        }
      }
    }
    if (!ok) return this.refuse(a, "bad-token", "unauthorized", "admin token is not valid");
    if (a.link.closed || this.host.isClosed()) return;
    const conn = this.host.openAdmin();
    if (conn === undefined) {
      return this.fail(a, "admin-connections", new GridError("unavailable", "Too many admin connections; try again later"), 1013);
    }
    this.complete(
      a,
      handshakeMessage(OP_WELCOME, this.welcome()),
      () => conn.adopt(a.link, "admin", () => this.host.closeAdmin(conn), limitsOf(hello)),
    );
  }

  /** Sends the last handshake message alone in its frame, then hands the link over. */
  private complete(a: Attempt, last: OutMessage, adopt: () => void): void {
    if (a.timer !== undefined) clearTimeout(a.timer);
    a.timer = undefined;
    a.step = "done";
    if (a.slot !== undefined) this.admission.release(a.slot);
    a.slot = undefined;
    a.link.send(last);
    // Alone in its frame: the other side reads it under the handshake's frame limit.
    a.link.flushNow();
    a.link.establish();
    adopt();
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

  /** An accepting welcome with a fresh challenge, unsigned. */
  private welcome(): Welcome {
    const s = this.host.settings;
    return {
      ok: true,
      v: PROTOCOL_VERSION,
      from: this.host.local,
      id: this.host.instanceId,
      nonce: newChallenge(),
      max: s.maxMessageBytes,
      ping: s.pingInterval,
      mac: "",
      code: "",
      reason: "",
    };
  }
}

function limitsOf(h: PeerHello | AdminHello): { max: number; ping: number } {
  return { max: h.max, ping: h.ping };
}
