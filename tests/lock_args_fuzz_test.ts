/**
 * Property tests of `lockArgsCodec`'s fast paths (inline header, one length
 * sum, one lenient decode of the whole message, the unit-by-unit copy on
 * JavaScriptCore) against an oracle: the codec as it was before them, copied
 * below, which checks every field in order and decodes every string strictly.
 * Both must give the same bytes, the same values and the same errors, for
 * strings made of the awkward parts of UTF-16 and for mutated, truncated and
 * random bytes.
 *
 * @module
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { ProtocolError } from "../src/errors.ts";
import { checkEncodeFields, checkEncodeString, decodeError, utf8Length } from "../src/locks/_lock_args_check.ts";
import {
  decodeLockArgs,
  encodeLockArgs,
  LOCK_ARGS_LIMITS,
  LOCK_ARGS_VERSION,
  type LockArgs,
  type LockArgsLimits,
} from "../src/locks/lock_args.ts";

// ---- The oracle: the codec before its fast paths, kept simple on purpose. ----

const oracleEncoder = new TextEncoder();
const oracleDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function oracleEncode(args: LockArgs, limits: LockArgsLimits): Uint8Array {
  const { uid, source, owner, resources, quorum } = args;
  checkEncodeFields(uid, source, owner, resources, quorum, limits);
  for (const resource of resources) checkEncodeString(resource, "resource", limits);
  const strings = [uid, source, owner, ...resources].map((s) => oracleEncoder.encode(s));
  strings.forEach((s, i) => {
    if (s.length > limits.maxStringBytes) {
      const what = i === 0 ? "uid" : i === 1 ? "source" : i === 2 ? "owner" : `resource ${i - 3}`;
      throw new RangeError(
        `Cannot encode LockArgs: ${what} is ${s.length} UTF-8 bytes, more than maxStringBytes ${limits.maxStringBytes}`,
      );
    }
  });
  const out: number[] = [LOCK_ARGS_VERSION];
  const varint = (value: number) => {
    while (value >= 0x80) {
      out.push((value & 0x7f) | 0x80);
      value >>>= 7;
    }
    out.push(value);
  };
  varint(strings[0].length);
  varint(strings[1].length);
  varint(strings[2].length);
  varint(quorum);
  varint(resources.length);
  for (const s of strings.slice(3)) varint(s.length);
  for (const s of strings) out.push(...s);
  return new Uint8Array(out);
}

function oracleDecode(bytes: Uint8Array, limits: LockArgsLimits): LockArgs {
  const end = bytes.length;
  if (end === 0) throw decodeError("empty input");
  if (bytes[0] !== LOCK_ARGS_VERSION) {
    throw decodeError(`unsupported version ${bytes[0]} (this build reads version ${LOCK_ARGS_VERSION})`);
  }
  let cursor = 1;
  const varint = (what: string): number => {
    const start = cursor;
    let value = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      if (cursor >= end) throw decodeError(`input ends inside ${what} at offset ${start}`);
      const byte = bytes[cursor++];
      value |= (byte & 0x7f) << shift;
      if (byte < 0x80) {
        if (byte === 0 && cursor - start > 1) throw decodeError(`${what} at offset ${start} is not a minimal varint`);
        return value;
      }
    }
    throw decodeError(`${what} at offset ${start} is a varint longer than 4 bytes`);
  };
  const max = limits.maxStringBytes;
  const length = (what: string): number => {
    const n = varint(what);
    if (n > max) throw decodeError(`${what} ${n} exceeds maxStringBytes ${max}`);
    return n;
  };
  const uidLength = length("uid length");
  const sourceLength = length("source length");
  const ownerLength = length("owner length");
  const quorum = varint("quorum");
  if (quorum > limits.maxQuorum) throw decodeError(`quorum ${quorum} exceeds maxQuorum ${limits.maxQuorum}`);
  const count = varint("resource count");
  if (count > limits.maxResources) {
    throw decodeError(`resource count ${count} exceeds maxResources ${limits.maxResources}`);
  }
  if (count > end - cursor) throw decodeError(`resource count ${count} exceeds remaining ${end - cursor} bytes`);
  const lengths = Array.from({ length: count }, () => length("resource length"));
  let remaining = end - cursor;
  const consume = (n: number, what: string) => {
    if (n > remaining) throw decodeError(`${what} length ${n} exceeds remaining ${remaining} bytes`);
    remaining -= n;
  };
  consume(uidLength, "uid");
  consume(sourceLength, "source");
  consume(ownerLength, "owner");
  for (const n of lengths) consume(n, "resource");
  if (remaining !== 0) throw decodeError(`${remaining} trailing bytes after the last resource`);
  const text = (n: number, what: string): string => {
    try {
      return oracleDecoder.decode(bytes.subarray(cursor, cursor + n));
    } catch (cause) {
      throw decodeError(`${what} is not valid UTF-8`, cause);
    } finally {
      cursor += n;
    }
  };
  const uid = text(uidLength, "uid");
  const source = text(sourceLength, "source");
  const owner = text(ownerLength, "owner");
  const resources = lengths.map((n, i) => text(n, `resource ${i}`));
  return { uid, resources, source, owner, quorum };
}

// ---- Comparing the codec with the oracle. ----

type Outcome = { value: unknown } | { error: string; kind: string };

function outcome(fn: () => unknown): Outcome {
  try {
    const value = fn();
    return { value: value instanceof Uint8Array ? [...value] : value };
  } catch (e) {
    const kind = e instanceof ProtocolError ? `ProtocolError ${e.code}` : (e as Error).constructor.name;
    return { error: (e as Error).message, kind };
  }
}

function sameDecode(bytes: Uint8Array, limits: LockArgsLimits = LOCK_ARGS_LIMITS): void {
  const got = outcome(() => decodeLockArgs(bytes, limits));
  assert.deepEqual(got, outcome(() => oracleDecode(bytes, limits)));
  // Decoding is total: what decodes re-encodes to the same bytes.
  if ("value" in got) assert.deepEqual([...encodeLockArgs(got.value as LockArgs, limits)], [...bytes]);
}

function sameEncode(args: LockArgs, limits: LockArgsLimits = LOCK_ARGS_LIMITS): void {
  const got = outcome(() => encodeLockArgs(args, limits));
  assert.deepEqual(got, outcome(() => oracleEncode(args, limits)));
  if ("value" in got) sameDecode(new Uint8Array(got.value as number[]), limits);
}

// ---- Arbitraries. ----

/** Pieces of text that stress each path: ASCII, NUL, BOM, U+FFFD, lone and paired surrogates, long runs. */
const piece = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: "grapheme-ascii", maxLength: 12 }) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      "\u0000",
      "\u007f",
      "\u0080",
      "\uFEFF",
      "\uFFFD",
      "\uFFFF",
      "\uD800",
      "\uDBFF",
      "\uDC00",
      "\uDFFF",
      "\uD83D\uDE00",
      "é",
      "e\u0301",
      "桶",
      "𐍈",
    ),
  },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 6 }) },
  { weight: 1, arbitrary: fc.constantFrom("x".repeat(127), "y".repeat(128), "z".repeat(300), "w".repeat(2100)) },
);
const text = fc.array(piece, { maxLength: 6 }).map((parts) => parts.join(""));
/** Mostly plain ASCII (the fast path), sometimes anything. */
const field = fc.oneof({ weight: 2, arbitrary: fc.string({ unit: "grapheme-ascii", maxLength: 60 }) }, text);
const lockArgs: fc.Arbitrary<LockArgs> = fc.record({
  uid: field,
  resources: fc.array(field, { maxLength: 20 }),
  source: field,
  owner: field,
  quorum: fc.oneof(fc.integer({ min: 0, max: 130 }), fc.integer({ min: 0, max: 70_000 })),
});
const limits: fc.Arbitrary<LockArgsLimits> = fc.oneof(
  { weight: 4, arbitrary: fc.constant(LOCK_ARGS_LIMITS) },
  {
    weight: 1,
    arbitrary: fc.record({
      maxResources: fc.integer({ min: 0, max: 200 }),
      maxStringBytes: fc.integer({ min: 0, max: 400 }),
      maxQuorum: fc.integer({ min: 0, max: 200 }),
    }),
  },
);

/** Valid encodings changed by one to three edits: overwrite, insert or delete a byte, or truncate. */
const mutated = fc.tuple(
  lockArgs.filter((a) => a.resources.length <= 1000 && a.quorum <= 65_535),
  fc.array(
    fc.tuple(fc.constantFrom("set", "insert", "delete", "truncate"), fc.nat(), fc.integer({ min: 0, max: 255 })),
    { minLength: 1, maxLength: 3 },
  ),
).map(([args, edits]) => {
  let bytes = [...oracleEncode(args, { maxResources: 1000, maxStringBytes: 1 << 20, maxQuorum: 65_535 })];
  for (const [edit, where, value] of edits) {
    const at = bytes.length === 0 ? 0 : where % bytes.length;
    if (edit === "set") bytes[at] = value;
    else if (edit === "insert") bytes.splice(at, 0, value);
    else if (edit === "delete") bytes.splice(at, 1);
    else bytes = bytes.slice(0, at);
  }
  return new Uint8Array(bytes);
});

/** A well-formed header of one-byte varints followed by arbitrary bytes of exactly the right length. */
const headerThenBytes = fc.array(fc.integer({ min: 0, max: 12 }), { minLength: 3, maxLength: 8 }).chain((lengths) =>
  fc.tuple(
    fc.constant(lengths),
    fc.uint8Array({ minLength: lengths.reduce((a, b) => a + b, 0), maxLength: lengths.reduce((a, b) => a + b, 0) }),
  )
).map(([lengths, body]) => {
  const [uid, source, owner, ...resources] = lengths;
  return new Uint8Array([LOCK_ARGS_VERSION, uid, source, owner, 3, resources.length, ...resources, ...body]);
});

const runs = { numRuns: 1500, seed: 15 };

describe("lockArgsCodec against the strict oracle", () => {
  it("encodes every value as the oracle does, or fails with the same error", () => {
    fc.assert(fc.property(lockArgs, limits, (args, lim) => sameEncode(args, lim)), runs);
  });

  it("decodes mutated and truncated encodings as the oracle does", () => {
    fc.assert(fc.property(mutated, limits, (bytes, lim) => sameDecode(bytes, lim)), runs);
  });

  it("decodes arbitrary text after a valid header as the oracle does", () => {
    fc.assert(fc.property(headerThenBytes, (bytes) => sameDecode(bytes)), runs);
  });

  it("decodes random bytes as the oracle does", () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 24 }),
      fc.uint8Array({ maxLength: 24 }).map((b) => new Uint8Array([LOCK_ARGS_VERSION, ...b])),
    );
    fc.assert(fc.property(bytes, limits, (b, lim) => sameDecode(b, lim)), runs);
  });

  it("decodes a message inside a larger buffer as the oracle decodes it alone", () => {
    const placed = fc.tuple(lockArgs, fc.uint8Array({ maxLength: 9 }), fc.uint8Array({ maxLength: 9 }));
    fc.assert(
      fc.property(placed, ([args, before, after]) => {
        let encoded: Uint8Array;
        try {
          encoded = oracleEncode(args, LOCK_ARGS_LIMITS);
        } catch {
          return;
        }
        const big = new Uint8Array([...before, ...encoded, ...after]);
        const view = big.subarray(before.length, before.length + encoded.length);
        assert.deepEqual(outcome(() => decodeLockArgs(view)), outcome(() => oracleDecode(encoded, LOCK_ARGS_LIMITS)));
      }),
      runs,
    );
  });

  it("agrees with the oracle on the named hard cases", () => {
    const hard = ["\uD800", "\uDC00", "a\uD83D", "\uDE00b", "\uFFFD", "\uFEFF", "\uFEFFx", "\u0000", "😀", "\u0080"];
    for (const s of hard) {
      for (const where of ["uid", "source", "owner", "resource"] as const) {
        const args: LockArgs = { uid: "u", resources: ["r"], source: "s", owner: "o", quorum: 3 };
        if (where === "resource") args.resources = ["r", s];
        else args[where] = s;
        sameEncode(args);
      }
    }
    // A literal U+FFFD and a BOM in the bytes, and an invalid byte where one would be.
    const enc = (s: string) => [...oracleEncoder.encode(s)];
    sameDecode(new Uint8Array([1, 3, 0, 0, 3, 0, ...enc("\uFFFD")]));
    sameDecode(new Uint8Array([1, 3, 0, 0, 3, 0, ...enc("\uFEFF")]));
    sameDecode(new Uint8Array([1, 1, 0, 0, 3, 0, 0xff]));
    sameDecode(new Uint8Array([1, 3, 0, 0, 3, 0, 0xed, 0xa0, 0x80])); // an encoded lone surrogate
    assert.equal(utf8Length("\uD800"), 3);
  });
});
