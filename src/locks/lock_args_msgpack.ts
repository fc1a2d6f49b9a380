/**
 * The other `LockArgs` codec candidate: msgpackr, an array of 6 items. It lost
 * to the binary format of `lock_args.ts` on every runtime (see that module's
 * doc for the numbers) and is kept for `scripts/bench/lockargs.ts` and for
 * peers that prefer MessagePack.
 *
 * @module
 */

import { Packr } from "msgpackr";
import { checkDecodedString, checkEncodeFields, checkEncodeString, decodeError, typeName } from "./_lock_args_check.ts";
import {
  LOCK_ARGS_LIMITS,
  LOCK_ARGS_VERSION,
  type LockArgs,
  type LockArgsCodec,
  type LockArgsLimits,
} from "./lock_args.ts";

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

/**
 * Encodes `args` with msgpackr as `[version, uid, resources, source, owner,
 * quorum]`.
 *
 * @param args the value to encode
 * @param limits the limits to enforce
 * @returns the encoded bytes
 * @throws {TypeError} when a field has the wrong type
 * @throws {RangeError} when a string, the resource count or the quorum breaks `limits`
 * @example
 * ```ts
 * import { encodeLockArgsMsgpack } from "wsgrid/locks";
 * const bytes = encodeLockArgsMsgpack({ uid: "u1", resources: ["a"], source: "", owner: "n1", quorum: 2 });
 * ```
 */
export function encodeLockArgsMsgpack(args: LockArgs, limits: LockArgsLimits = LOCK_ARGS_LIMITS): Uint8Array {
  const { uid, source, owner, resources, quorum } = args;
  checkEncodeFields(uid, source, owner, resources, quorum, limits);
  for (const resource of resources) checkEncodeString(resource, "resource", limits);
  return packr.pack([LOCK_ARGS_VERSION, uid, resources, source, owner, quorum]);
}

/**
 * Decodes what {@link encodeLockArgsMsgpack} wrote. Strings are not checked
 * for valid UTF-8 (msgpackr replaces bad sequences).
 *
 * @param bytes the encoded message
 * @param limits the limits to enforce
 * @returns the decoded value
 * @throws {ProtocolError} (`code` `"protocol"`) when `bytes` is not a valid message
 * @example
 * ```ts
 * import { decodeLockArgsMsgpack, encodeLockArgsMsgpack } from "wsgrid/locks";
 * const args = decodeLockArgsMsgpack(encodeLockArgsMsgpack({ uid: "u1", resources: [], source: "", owner: "n1", quorum: 1 }));
 * ```
 */
export function decodeLockArgsMsgpack(bytes: Uint8Array, limits: LockArgsLimits = LOCK_ARGS_LIMITS): LockArgs {
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (cause) {
    throw decodeError(`malformed MessagePack (${cause instanceof Error ? cause.message : String(cause)})`, cause);
  }
  if (!Array.isArray(value) || value.length !== 6) throw decodeError("expected an array of 6 items");
  if (value[0] !== LOCK_ARGS_VERSION) {
    throw decodeError(`unsupported version ${String(value[0])} (this build reads version ${LOCK_ARGS_VERSION})`);
  }
  const [, uid, resources, source, owner, quorum] = value;
  const max = limits.maxStringBytes;
  checkDecodedString(uid, "uid", max);
  checkDecodedString(source, "source", max);
  checkDecodedString(owner, "owner", max);
  if (!Array.isArray(resources)) throw decodeError(`resources is ${typeName(resources)}, not an array`);
  if (resources.length > limits.maxResources) {
    throw decodeError(`resource count ${resources.length} exceeds maxResources ${limits.maxResources}`);
  }
  for (const resource of resources) checkDecodedString(resource, "resource", max);
  if (typeof quorum !== "number" || !Number.isInteger(quorum)) {
    throw decodeError(`quorum ${String(quorum)} is not an integer`);
  }
  if (quorum < 0 || quorum > limits.maxQuorum) {
    throw decodeError(`quorum ${quorum} is outside 0 to maxQuorum ${limits.maxQuorum}`);
  }
  return { uid, resources, source, owner, quorum };
}

/**
 * The msgpackr codec ({@link encodeLockArgsMsgpack} / {@link decodeLockArgsMsgpack}) with the default limits.
 *
 * @example
 * ```ts
 * import { msgpackLockArgsCodec } from "wsgrid/locks";
 * const bytes = msgpackLockArgsCodec.encode({ uid: "u", resources: ["r"], source: "", owner: "", quorum: 1 });
 * ```
 */
export const msgpackLockArgsCodec: LockArgsCodec = {
  encode: (value) => encodeLockArgsMsgpack(value),
  decode: (bytes) => decodeLockArgsMsgpack(bytes),
};
