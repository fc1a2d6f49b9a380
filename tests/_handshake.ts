/**
 * The peer handshake by hand, for tests that play a peer (or an attacker) on raw sockets:
 * handshake frames, a version 2 hello, and the dialer's proof made with a given secret.
 *
 * @module
 */
import { handshakeMessage, type Hello, importSecret, newChallenge, type PeerHello, type Proof, randomId, type Ready, signTranscript, type Welcome } from "../src/auth/handshake.ts";
import { encodeMessage } from "../src/protocol/frame.ts";
import { OP_HELLO, OP_PROOF, PROTOCOL_VERSION } from "../src/protocol/ops.ts";

/** One handshake message as a frame of its own. */
export function handshakeFrame(op: number, h: Hello | Welcome | Proof | Ready | Record<string, unknown>): Uint8Array<ArrayBuffer> {
  // Records of any shape too: tests send malformed handshakes on purpose.
  return encodeMessage(handshakeMessage(op, h as Hello));
}

/** A hello frame. */
export function helloFrame(h: Hello | Record<string, unknown>): Uint8Array<ArrayBuffer> {
  return handshakeFrame(OP_HELLO, h);
}

/** A version 2 peer hello from `from` to `to`, with a fresh challenge. */
export function peerHello(from: string, to: string, fields: Partial<PeerHello> = {}): PeerHello {
  return { kind: "peer", v: PROTOCOL_VERSION, from, to, id: randomId(), nonce: newChallenge(), max: 1 << 20, ping: 10_000, ...fields };
}

/** The dialer's proof frame for `hello` answered by `welcome`, made with `secret`. */
export async function proofFor(hello: PeerHello, welcome: Welcome, secret: string): Promise<Uint8Array<ArrayBuffer>> {
  const mac = await signTranscript(await importSecret(secret), "dialer", { v: PROTOCOL_VERSION, hello, welcome });
  return handshakeFrame(OP_PROOF, { mac });
}
