/**
 * The reply of the lock handlers: 13 bytes, `u8 status, u32 lease ms (big
 * endian), f64 fencing token`. One fixed layout for every handler, so the
 * client decodes without branching on the call.
 *
 * @module
 */

/** Status byte: the call was refused (lock taken, uid unknown). */
export const REFUSED = 0;
/** Status byte: granted / done. */
export const GRANTED = 1;
/** Status byte: refused because the node is recovering its token floor after a restart. */
export const RECOVERING = 2;

/** A decoded reply. */
export interface LockReply {
  status: number;
  leaseMs: number;
  token: number;
}

/** Size of a reply on the wire. */
export const REPLY_BYTES = 13;

/** Encodes a reply into a fresh array (the grid keeps it until written). */
export function encodeReply(status: number, leaseMs: number, token: number): Uint8Array {
  const out = new Uint8Array(REPLY_BYTES);
  const view = new DataView(out.buffer);
  view.setUint8(0, status);
  view.setUint32(1, Math.min(0xffff_ffff, Math.max(0, Math.floor(leaseMs))));
  view.setFloat64(5, token);
  return out;
}

/** Decodes a reply, or `undefined` when the bytes are not one. */
export function decodeReply(bytes: Uint8Array): LockReply | undefined {
  if (bytes.length !== REPLY_BYTES) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const status = view.getUint8(0);
  const token = view.getFloat64(5);
  if (status > RECOVERING || !Number.isSafeInteger(token) || token < 0) return undefined;
  return { status, leaseMs: view.getUint32(1), token };
}

/** A fence request: `f64 token` then the `lockArgsCodec` bytes. */
export function encodeFence(token: number, args: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + args.length);
  new DataView(out.buffer).setFloat64(0, token);
  out.set(args, 8);
  return out;
}

/** Splits a fence request into its token and its args bytes, or `undefined` when malformed. */
export function decodeFence(bytes: Uint8Array): { token: number; args: Uint8Array } | undefined {
  if (bytes.length < 9) return undefined;
  const token = new DataView(bytes.buffer, bytes.byteOffset, 8).getFloat64(0);
  if (!Number.isSafeInteger(token) || token < 0) return undefined;
  return { token, args: bytes.subarray(8) };
}
