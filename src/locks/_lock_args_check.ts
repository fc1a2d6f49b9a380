/**
 * Checks shared by the `LockArgs` codecs (private to `src/locks/`).
 *
 * @module
 */

import { ProtocolError } from "../errors.ts";
import type { LockArgsLimits } from "./lock_args.ts";

/** A `ProtocolError` whose message starts with "Cannot decode LockArgs: ". */
export function decodeError(detail: string, cause?: unknown): ProtocolError {
  return new ProtocolError(`Cannot decode LockArgs: ${detail}`, cause === undefined ? undefined : { cause });
}

/**
 * UTF-8 length of `s` as `TextEncoder` writes it (a lone surrogate becomes
 * U+FFFD, 3 bytes).
 */
export function utf8Length(s: string): number {
  let length = s.length;
  for (let i = 0; i < s.length; i++) {
    const unit = s.charCodeAt(i);
    if (unit < 0x80) continue;
    if (unit < 0x800) {
      length += 1;
    } else if (unit >= 0xd800 && unit <= 0xdbff && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      length += 2; // a pair: 2 units, 4 bytes
      i++;
    } else {
      length += 2;
    }
  }
  return length;
}

/** UTF-8 is never shorter than UTF-16 units, and at most 3 bytes per unit. */
export function utf8Exceeds(s: string, max: number): boolean {
  return s.length > max || (s.length * 3 > max && utf8Length(s) > max);
}

/**
 * Checks the fields of a value to encode: strings, an array of resources (its
 * items are checked by the caller, while it walks them anyway), the limits.
 *
 * @throws {TypeError} for a field of the wrong type
 * @throws {RangeError} for a field past `limits`
 */
export function checkEncodeFields(
  uid: unknown,
  source: unknown,
  owner: unknown,
  resources: unknown,
  quorum: unknown,
  limits: LockArgsLimits,
): asserts resources is unknown[] {
  checkEncodeString(uid, "uid", limits);
  checkEncodeString(source, "source", limits);
  checkEncodeString(owner, "owner", limits);
  if (!Array.isArray(resources)) {
    throw new TypeError(`Cannot encode LockArgs: resources must be an array, got ${typeName(resources)}`);
  }
  if (resources.length > limits.maxResources) {
    throw new RangeError(
      `Cannot encode LockArgs: ${resources.length} resources exceed maxResources ${limits.maxResources}`,
    );
  }
  if (typeof quorum !== "number" || !Number.isInteger(quorum) || quorum < 0 || quorum > limits.maxQuorum) {
    throw new RangeError(
      `Cannot encode LockArgs: quorum ${String(quorum)} is not an integer from 0 to ${limits.maxQuorum}`,
    );
  }
}

/** Checks one string to encode: its type and its UTF-8 length. */
export function checkEncodeString(value: unknown, what: string, limits: LockArgsLimits): asserts value is string {
  if (typeof value !== "string") {
    throw new TypeError(`Cannot encode LockArgs: ${what} must be a string, got ${typeName(value)}`);
  }
  if (utf8Exceeds(value, limits.maxStringBytes)) {
    throw new RangeError(
      `Cannot encode LockArgs: ${what} is ${
        utf8Length(value)
      } UTF-8 bytes, more than maxStringBytes ${limits.maxStringBytes}`,
    );
  }
}

/** A value's type for a message: `typeof`, but telling null and arrays apart. */
export function typeName(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "array" : typeof value;
}

/** Checks one decoded string: its type and its UTF-8 length. */
export function checkDecodedString(value: unknown, what: string, max: number): asserts value is string {
  if (typeof value !== "string") throw decodeError(`${what} is ${typeName(value)}, not a string`);
  if (utf8Exceeds(value, max)) {
    throw decodeError(`${what} is ${utf8Length(value)} UTF-8 bytes, more than maxStringBytes ${max}`);
  }
}
