/**
 * The dialing side of the handshake: opens a socket, sends the hello, checks
 * the acceptor's welcome (its MAC over both challenges, peers only), answers
 * with the proof and waits for `ready`. Messages that arrive after `ready` and
 * before the caller takes the link over belong to this attempt and are
 * returned with it; nothing of a failed attempt is kept.
 *
 * @module
 */
import { DisconnectedError, errorFromCode, type GridError, ProtocolError, UnauthorizedError } from "../errors.ts";
import { Link } from "../link.ts";
import type { Message } from "../protocol/frame.ts";
import { OP_HELLO, OP_PROOF, OP_READY, OP_WELCOME, PROTOCOL_VERSION } from "../protocol/ops.ts";
import { type GridSocket, SOCKET_OPEN } from "../socket.ts";
import {
  decodeReady,
  decodeWelcome,
  handshakeMessage,
  type Hello,
  newChallenge,
  type Transcript,
  type Welcome,
} from "./handshake.ts";

/** How this side proves who it is. */
export interface DialCredentials {
  /** The hello of a dial to `remote` with this side's challenge `nonce`. */
  hello(remote: string, nonce: string): Hello;
  /**
   * Peers: verifies the acceptor's MAC over the transcript and returns this
   * side's proof, or null when the welcome is not genuine. Absent for a
   * read-only client, which holds no secret (TLS authenticates the node).
   */
  prove?(transcript: Transcript, welcomeMac: string): Promise<string | null>;
}

/** What the remote told about itself in a completed handshake. */
export interface PeerLimits {
  /** The remote's maxMessageBytes. */
  max: number;
  /** The remote's ping interval, ms. */
  ping: number;
}

/** A completed handshake. */
export interface Dialed {
  ok: true;
  link: Link;
  remoteId: string;
  limits: PeerLimits;
  /** Messages that came after `ready`, for the taker of the link. */
  early: Message[];
}

/**
 * A failed dial: `refused` when the other side said no (its word is not
 * authenticated), `forged` when its welcome failed verification (an impostor
 * or another secret), `network` for everything else.
 */
export interface DialFailed {
  ok: false;
  kind: "refused" | "forged" | "network";
  err: GridError;
}

/** The settings a dial reads (a Connection's settings have them all). */
export interface DialSettings {
  readonly handshakeTimeout: number;
  readonly maxMessageBytes: number;
  readonly maxQueuedBytes: number;
  readonly writeTimeout: number;
}

/** Options of {@link dial}. */
export interface DialOptions {
  readonly url: string;
  readonly remote: string;
  readonly settings: DialSettings;
  readonly credentials: DialCredentials;
  openSocket(url: string): GridSocket;
  /** Aborting closes whatever the dial has opened. */
  readonly signal: AbortSignal;
}

/** Opens a socket to `url` and runs the handshake; never rejects. */
export async function dial(o: DialOptions): Promise<Dialed | DialFailed> {
  const s = o.settings;
  const network = (err: GridError): DialFailed => ({ ok: false, kind: "network", err });
  if (o.signal.aborted) return network(o.signal.reason);
  let socket: GridSocket;
  try {
    socket = o.openSocket(o.url);
  } catch (e) {
    return network(new DisconnectedError(`Cannot connect to "${o.remote}": ${(e as Error).message}`, { cause: e }));
  }
  const closeSocket = () => {
    try {
      // 1000: a WHATWG client WebSocket throws on 1001 and would stay open.
      socket.close(1000, "Grid closed");
    } catch {
      // Never opened; nothing to close.
    }
  };
  let closedWith: number | null = null;
  const opened = await new Promise<GridError | null>((resolve) => {
    const timer = setTimeout(() => {
      resolve(new DisconnectedError(`Cannot connect to "${o.remote}": no answer within ${s.handshakeTimeout} ms`));
      closeSocket();
    }, s.handshakeTimeout);
    const settle = (err: GridError | null) => {
      clearTimeout(timer);
      o.signal.removeEventListener("abort", onAbort);
      resolve(err);
    };
    const onAbort = () => {
      settle(o.signal.reason);
      closeSocket();
    };
    o.signal.addEventListener("abort", onAbort, { once: true });
    socket.addEventListener("open", () => settle(null));
    socket.addEventListener("close", (ev) => {
      closedWith = ev.code;
      settle(new DisconnectedError(`Cannot connect to "${o.remote}": closed with code ${ev.code}`));
    });
    socket.addEventListener("error", () => settle(new DisconnectedError(`Cannot connect to "${o.remote}": socket error`)));
  });
  if (opened !== null) return network(opened);
  // The acceptor may close right after the upgrade (1013 when busy): that close event has
  // fired already and would never reach the Link, leaving the dial to wait for its timeout.
  if (closedWith !== null || socket.readyState !== SOCKET_OPEN) {
    return network(new DisconnectedError(`Cannot connect to "${o.remote}": closed with code ${closedWith ?? "unknown"}`));
  }
  return await handshake(o, socket);
}

/** Runs the handshake on an open socket. */
function handshake(o: DialOptions, socket: GridSocket): Promise<Dialed | DialFailed> {
  const s = o.settings;
  const nonce = newChallenge();
  const hello = o.credentials.hello(o.remote, nonce);
  return new Promise((resolve) => {
    let step: "welcome" | "checking" | "ready" | "done" = "welcome";
    let welcome: Welcome | undefined;
    let failure: DialFailed | undefined;
    const early: Message[] = [];
    const fail = (kind: DialFailed["kind"], err: GridError, code: number) => {
      failure ??= { ok: false, kind, err };
      link.close(err, code);
    };
    const timer = setTimeout(() => {
      fail("network", new ProtocolError(`Handshake with "${o.remote}" timed out after ${s.handshakeTimeout} ms`), 1000);
    }, s.handshakeTimeout);
    const onAbort = () => fail("network", o.signal.reason, 1000);
    o.signal.addEventListener("abort", onAbort, { once: true });
    const done = () => {
      step = "done";
      clearTimeout(timer);
      o.signal.removeEventListener("abort", onAbort);
      link.establish();
      resolve({ ok: true, link, remoteId: welcome!.id, limits: { max: welcome!.max, ping: welcome!.ping }, early });
    };
    const link = new Link(socket, {
      onMessage: (m: Message) => {
        if (step === "done") {
          early.push(m);
          return;
        }
        if (step === "welcome" && m.op === OP_WELCOME) {
          step = "checking";
          void onWelcome(m.payload);
          return;
        }
        if (step === "ready" && m.op === OP_READY) {
          let ready;
          try {
            ready = decodeReady(m.payload);
          } catch (e) {
            return fail("network", e as GridError, 1002);
          }
          if (!ready.ok) return refused(ready.code, ready.reason);
          return done();
        }
        fail("network", new ProtocolError(`Handshake with "${o.remote}" failed: unexpected op ${m.op}`), 1002);
      },
      onClose: (err) => {
        clearTimeout(timer);
        o.signal.removeEventListener("abort", onAbort);
        if (step !== "done") resolve(failure ?? { ok: false, kind: "network", err });
      },
    }, { maxPayload: s.maxMessageBytes, maxQueuedBytes: s.maxQueuedBytes, writeTimeout: s.writeTimeout });
    const refused = (code: string, reason: string) => {
      fail("refused", errorFromCode(code, `Handshake with "${o.remote}" refused: ${reason}`), 1000);
    };
    const onWelcome = async (payload: Uint8Array) => {
      let w: Welcome;
      try {
        w = decodeWelcome(payload);
      } catch (e) {
        return fail("network", e as GridError, 1002);
      }
      if (!w.ok) return refused(w.code, w.reason);
      welcome = w;
      const prove = o.credentials.prove;
      if (prove === undefined) return done();
      if (w.v !== PROTOCOL_VERSION || w.from !== o.remote) {
        return fail("forged", new UnauthorizedError(`Handshake with "${o.remote}" failed: welcome from "${w.from}", version ${w.v}`), 1000);
      }
      if (hello.kind !== "peer") return fail("network", new ProtocolError("Cannot prove an admin hello"), 1000);
      let mac: string | null;
      try {
        mac = await prove({ v: PROTOCOL_VERSION, hello, welcome: w }, w.mac);
      } catch (e) {
        return fail("network", new ProtocolError("Handshake failed: cannot sign", { cause: e }), 1000);
      }
      if (link.closed) return;
      if (mac === null) {
        return fail("forged", new UnauthorizedError(`Handshake with "${o.remote}" failed: its welcome is not signed with our secret`), 1000);
      }
      step = "ready";
      link.send(handshakeMessage(OP_PROOF, { mac }));
    };
    link.send(handshakeMessage(OP_HELLO, hello));
  });
}
