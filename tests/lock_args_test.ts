import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Packr } from "msgpackr";
import { ProtocolError } from "../src/errors.ts";
import { utf8Length } from "../src/locks/_lock_args_check.ts";
import {
  binaryLockArgsCodec,
  decodeLockArgs,
  encodeLockArgs,
  LOCK_ARGS_LIMITS,
  LOCK_ARGS_VERSION,
  type LockArgs,
  lockArgsCodec,
} from "../src/locks/lock_args.ts";
import { decodeLockArgsMsgpack, encodeLockArgsMsgpack, msgpackLockArgsCodec } from "../src/locks/lock_args_msgpack.ts";
import { seeded } from "./e2e/_load.ts";

const utf8 = new TextEncoder();
const rawPackr = new Packr({ useRecords: false });

const typical: LockArgs = {
  uid: "0b6f4a6e-2d7c-4f1e-9b7a-3c1d2e4f5a6b",
  resources: ["bucket/photos/2024/IMG_1003.jpg"],
  source: "[cmd/erasure-object.go:103:erasureObjects.PutObject()]",
  owner: "e1a2b3c4-d5e6-47f8-9a0b-1c2d3e4f5a6b",
  quorum: 3,
};

const samples: Record<string, LockArgs> = {
  typical,
  "empty resources": { ...typical, resources: [] },
  "empty strings": { uid: "", resources: [""], source: "", owner: "", quorum: 0 },
  unicode: {
    uid: "üñí©ødé-😀",
    resources: ["桶/对象", "emoji/🪣/🔒", "combining/e\u0301", "\uFEFFleading-bom", "literal-\uFFFD"],
    source: "[ßource.ts:1]",
    owner: "ノード-1",
    quorum: 2,
  },
  "long strings": {
    ...typical,
    uid: "u".repeat(LOCK_ARGS_LIMITS.maxStringBytes),
    resources: ["r".repeat(5000), "é".repeat(LOCK_ARGS_LIMITS.maxStringBytes / 2)],
  },
  "many resources": {
    ...typical,
    resources: Array.from({ length: LOCK_ARGS_LIMITS.maxResources }, (_, i) => `bucket/object-${i}`),
    quorum: LOCK_ARGS_LIMITS.maxQuorum,
  },
  "a 2-byte varint length": { ...typical, resources: ["x".repeat(200)] },
};

/** Concatenates bytes, arrays of bytes and strings (as UTF-8). */
function bytes(...parts: (number | number[] | string)[]): Uint8Array {
  const out: number[] = [];
  for (const part of parts) {
    if (typeof part === "number") out.push(part);
    else if (typeof part === "string") out.push(...utf8.encode(part));
    else out.push(...part);
  }
  return new Uint8Array(out);
}

function assertProtocolError(fn: () => unknown, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ProtocolError, `expected ProtocolError, got ${String(e)}`);
    assert.equal(e.code, "protocol");
    assert.match(e.message, /^Cannot decode LockArgs: /);
    if (message !== undefined) assert.match(e.message, message);
    return true;
  });
}

describe("lockArgsCodec (binary)", () => {
  it("is the binary codec", () => {
    assert.equal(lockArgsCodec, binaryLockArgsCodec);
  });

  for (const [name, args] of Object.entries(samples)) {
    it(`round-trips ${name}`, () => {
      const encoded = lockArgsCodec.encode(args);
      assert.equal(encoded[0], LOCK_ARGS_VERSION);
      assert.deepEqual(lockArgsCodec.decode(encoded), args);
    });
  }

  it("writes the documented layout", () => {
    const encoded = encodeLockArgs({ uid: "u1", resources: ["a", "bc"], source: "s", owner: "é", quorum: 300 });
    assert.deepEqual([...encoded], [...bytes(1, 2, 1, 2, [0xac, 0x02], 2, 1, 2, "u1", "s", "é", "a", "bc")]);
  });

  it("sizes the output exactly", () => {
    for (const args of Object.values(samples)) {
      const encoded = encodeLockArgs(args);
      const strings = [args.uid, args.source, args.owner, ...args.resources];
      const text = strings.reduce((n, s) => n + utf8Length(s), 0);
      assert.ok(encoded.length > text && encoded.length <= text + 4 * (strings.length + 2) + 1);
      assert.equal(encoded.byteLength, encoded.length);
    }
  });

  it("keeps earlier results intact while encoding more", () => {
    const first = encodeLockArgs(typical);
    const copy = first.slice();
    for (let i = 0; i < 500; i++) encodeLockArgs({ ...typical, uid: `uid-${i}-é` });
    assert.deepEqual(first, copy);
  });

  it("decodes from a view inside a larger buffer", () => {
    const encoded = encodeLockArgs(samples.unicode);
    const big = new Uint8Array(encoded.length + 10);
    big.set(encoded, 7);
    assert.deepEqual(decodeLockArgs(big.subarray(7, 7 + encoded.length)), samples.unicode);
  });

  it("encodes a lone surrogate as U+FFFD, as TextEncoder does", () => {
    const decoded = lockArgsCodec.decode(lockArgsCodec.encode({ ...typical, uid: "a\uD800b", owner: "\uDC00" }));
    assert.equal(decoded.uid, "a\uFFFDb");
    assert.equal(decoded.owner, "\uFFFD");
  });

  it("keeps strings apart whose surrogates would pair up when joined", () => {
    const args = { ...typical, uid: "x\uD83D", source: "\uDE00y" };
    const decoded = lockArgsCodec.decode(lockArgsCodec.encode(args));
    assert.equal(decoded.uid, "x\uFFFD");
    assert.equal(decoded.source, "\uFFFDy");
  });

  it("refuses values of the wrong type with TypeError", () => {
    const bad: unknown[] = [
      { ...typical, uid: 1 },
      { ...typical, owner: null },
      { ...typical, source: undefined },
      { ...typical, resources: "a" },
      { ...typical, resources: ["a", 2] },
    ];
    for (const value of bad) assert.throws(() => encodeLockArgs(value as LockArgs), TypeError);
  });

  it("refuses values past the limits with RangeError", () => {
    const max = LOCK_ARGS_LIMITS.maxStringBytes;
    const bad: LockArgs[] = [
      { ...typical, uid: "u".repeat(max + 1) },
      { ...typical, resources: ["é".repeat(max / 2 + 1)] }, // within the limit in UTF-16, past it in UTF-8
      { ...typical, resources: Array.from({ length: LOCK_ARGS_LIMITS.maxResources + 1 }, () => "r") },
      { ...typical, quorum: 1.5 },
      { ...typical, quorum: -1 },
      { ...typical, quorum: LOCK_ARGS_LIMITS.maxQuorum + 1 },
      { ...typical, quorum: Number.NaN },
    ];
    for (const value of bad) {
      assert.throws(() => encodeLockArgs(value), RangeError);
      assert.throws(() => encodeLockArgsMsgpack(value), RangeError);
    }
  });

  it("applies custom limits on both sides", () => {
    const limits = { ...LOCK_ARGS_LIMITS, maxResources: 1 };
    const two = { ...typical, resources: ["a", "b"] };
    assert.throws(() => encodeLockArgs(two, limits), RangeError);
    assertProtocolError(() => decodeLockArgs(encodeLockArgs(two), limits), /resource count 2 exceeds maxResources 1/);
  });
});

describe("decodeLockArgs on malformed input", () => {
  const valid = encodeLockArgs({ uid: "u1", resources: ["a", "bc"], source: "s", owner: "o", quorum: 3 });

  it("raises ProtocolError for empty input", () => {
    assertProtocolError(() => decodeLockArgs(new Uint8Array()), /empty input/);
  });

  it("raises ProtocolError for an unknown version", () => {
    assertProtocolError(() => decodeLockArgs(bytes(0, ...valid.subarray(1))), /unsupported version 0/);
    assertProtocolError(() => decodeLockArgs(bytes(2, ...valid.subarray(1))), /unsupported version 2/);
  });

  it("raises ProtocolError for every truncation", () => {
    for (let n = 0; n < valid.length; n++) assertProtocolError(() => decodeLockArgs(valid.subarray(0, n)));
    assertProtocolError(() => decodeLockArgs(bytes(1, 2)), /input ends inside source length at offset 2/);
    assertProtocolError(() => decodeLockArgs(bytes(1, 0x80)), /input ends inside uid length at offset 1/);
  });

  it("raises ProtocolError for a varint longer than 4 bytes", () => {
    assertProtocolError(
      () => decodeLockArgs(bytes(1, 0, 0, 0, [0x80, 0x80, 0x80, 0x80, 0x01], 0)),
      /quorum at offset 4 is a varint longer than 4 bytes/,
    );
  });

  it("raises ProtocolError for a varint that is not minimal", () => {
    assertProtocolError(
      () => decodeLockArgs(bytes(1, [0x81, 0x00], 0, 0, 0, 0, "u")),
      /uid length at offset 1 is not a minimal varint/,
    );
  });

  it("raises ProtocolError for a string length past the end", () => {
    assertProtocolError(
      () => decodeLockArgs(bytes(1, 0, 0, 0, 1, 1, [0xa8, 0x46], "twelve bytes")),
      /^Cannot decode LockArgs: resource length 9000 exceeds remaining 12 bytes$/,
    );
    assertProtocolError(() => decodeLockArgs(bytes(1, 5, 0, 0, 1, 0, "abc")), /uid length 5 exceeds remaining 3 bytes/);
  });

  it("raises ProtocolError for a string longer than maxStringBytes", () => {
    assertProtocolError(
      () => decodeLockArgs(bytes(1, 0, [0x81, 0x80, 0x01], 0, 1, 0)),
      /source length 16385 exceeds maxStringBytes 16384/,
    );
  });

  it("raises ProtocolError for too many resources", () => {
    assertProtocolError(
      () => decodeLockArgs(bytes(1, 0, 0, 0, 1, [0xe9, 0x07])),
      /resource count 1001 exceeds maxResources 1000/,
    );
    assertProtocolError(
      () => decodeLockArgs(bytes(1, 0, 0, 0, 1, 100, 0, 0)),
      /resource count 100 exceeds remaining 2 bytes/,
    );
  });

  it("raises ProtocolError for a quorum past maxQuorum", () => {
    assertProtocolError(
      () => decodeLockArgs(bytes(1, 0, 0, 0, [0x80, 0x80, 0x04], 0)),
      /quorum 65536 exceeds maxQuorum 65535/,
    );
  });

  it("raises ProtocolError for trailing bytes", () => {
    assertProtocolError(() => decodeLockArgs(bytes(...valid, 0, 0, 0)), /3 trailing bytes after the last resource/);
  });

  it("raises ProtocolError for invalid UTF-8, naming the field", () => {
    const cases: [Uint8Array, RegExp][] = [
      [bytes(1, 1, 0, 0, 1, 0, 0xff), /uid is not valid UTF-8/],
      [bytes(1, 0, 0, 2, 1, 0, [0xc0, 0x80]), /owner is not valid UTF-8/], // overlong NUL
      [bytes(1, 0, 0, 0, 1, 1, 3, [0xed, 0xa0, 0x80]), /resource 0 is not valid UTF-8/], // encoded surrogate
      [bytes(1, 0, 1, 0, 1, 1, 1, [0xc3, 0xa9]), /source is not valid UTF-8/], // "é" split across two fields
      [bytes(1, 0, 0, 0, 1, 2, 1, 1, "a", 0x80), /resource 1 is not valid UTF-8/],
    ];
    for (const [input, message] of cases) {
      assertProtocolError(() => decodeLockArgs(input), message);
      assert.ok(getCause(() => decodeLockArgs(input)) instanceof TypeError);
    }
  });

  it("raises TypeError for input that is not a Uint8Array", () => {
    assert.throws(() => decodeLockArgs([1, 0] as unknown as Uint8Array), TypeError);
  });
});

function getCause(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return (e as Error).cause;
  }
  return undefined;
}

describe("msgpackLockArgsCodec (the other candidate)", () => {
  for (const [name, args] of Object.entries(samples)) {
    it(`round-trips ${name}`, () => {
      assert.deepEqual(msgpackLockArgsCodec.decode(msgpackLockArgsCodec.encode(args)), args);
    });
  }

  it("raises ProtocolError for malformed input", () => {
    const valid = encodeLockArgsMsgpack(typical);
    const array = msgpackTuple;
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array(), /malformed MessagePack/],
      [valid.subarray(0, valid.length - 3), /malformed MessagePack/],
      [bytes(...valid, 0), /malformed MessagePack/], // trailing byte
      [bytes(0xc1), /expected an array of 6 items/], // msgpackr reads the reserved 0xc1 as a marker object
      [bytes(0x2a), /expected an array of 6 items/],
      [array([1, "u", [], "s", "o"]), /expected an array of 6 items/],
      [array([2, "u", [], "s", "o", 1]), /unsupported version 2/],
      [array([1, 7, [], "s", "o", 1]), /uid is number, not a string/],
      [array([1, "u", "r", "s", "o", 1]), /resources is string, not an array/],
      [array([1, "u", ["a", null], "s", "o", 1]), /resource is null, not a string/],
      [array([1, "u", [], "s", "o", 1.5]), /quorum 1.5 is not an integer/],
      [array([1, "u", [], "s", "o", "3"]), /quorum 3 is not an integer/],
      [array([1, "u", [], "s", "o", -1]), /quorum -1 is outside 0 to maxQuorum 65535/],
      [array([1, "u".repeat(16_385), [], "s", "o", 1]), /uid is 16385 UTF-8 bytes, more than maxStringBytes 16384/],
      [
        array([1, "u", Array.from({ length: 1_001 }, () => ""), "s", "o", 1]),
        /resource count 1001 exceeds maxResources 1000/,
      ],
    ];
    for (const [input, message] of cases) assertProtocolError(() => decodeLockArgsMsgpack(input), message);
  });
});

/** Packs any array with msgpackr, bypassing the encoder's checks. */
function msgpackTuple(items: unknown[]): Uint8Array {
  return rawPackr.pack(items);
}

describe("decoding arbitrary bytes", () => {
  it("20k random and mutated inputs either decode (canonically) or raise ProtocolError", () => {
    const random = seeded(0x10c4a265); // deterministic, so a failure reproduces
    const int = (n: number) => Math.floor(random() * n);
    const seeds = [
      ...Object.entries(samples).filter(([name]) => !name.startsWith("long") && !name.startsWith("many")).map(([, v]) =>
        v
      ),
      { ...typical, resources: Array.from({ length: 20 }, (_, i) => `r${i}`) },
    ];
    const binarySeeds = seeds.map((s) => encodeLockArgs(s));
    const msgpackSeeds = seeds.map((s) => encodeLockArgsMsgpack(s));
    const mutate = (seed: Uint8Array): Uint8Array => {
      const b = [...seed];
      const edits = 1 + int(3);
      for (let e = 0; e < edits; e++) {
        const at = int(b.length + 1);
        switch (int(6)) {
          case 0: // flip one bit
            if (b.length > 0) b[at % b.length] ^= 1 << int(8);
            break;
          case 1: // random byte
            if (b.length > 0) b[at % b.length] = int(256);
            break;
          case 2: // truncate
            b.length = at;
            break;
          case 3: // insert
            b.splice(at, 0, int(256));
            break;
          case 4: // delete
            b.splice(at, 1);
            break;
          default: // a high-bit byte, to hit varints and UTF-8
            if (b.length > 0) b[at % b.length] = 0x80 | int(128);
        }
      }
      return new Uint8Array(b);
    };
    let decoded = 0;
    let refused = 0;
    for (let i = 0; i < 20_000; i++) {
      let input: Uint8Array;
      const kind = i % 4;
      if (kind === 0) {
        input = new Uint8Array(Array.from({ length: int(48) }, () => int(256)));
        if (input.length > 0 && random() < 0.7) input[0] = LOCK_ARGS_VERSION;
      } else if (kind === 3) {
        input = mutate(msgpackSeeds[int(msgpackSeeds.length)]);
      } else {
        input = mutate(binarySeeds[int(binarySeeds.length)]);
      }
      try {
        const value = decodeLockArgs(input);
        assert.deepEqual(encodeLockArgs(value), input, "a decoded message re-encodes to the same bytes");
        decoded++;
      } catch (e) {
        if (!(e instanceof ProtocolError) || e.code !== "protocol") {
          assert.fail(`binary input ${JSON.stringify([...input])} raised ${String(e)}`);
        }
        refused++;
      }
      try {
        decodeLockArgsMsgpack(input);
      } catch (e) {
        if (!(e instanceof ProtocolError) || e.code !== "protocol") {
          assert.fail(`msgpack input ${JSON.stringify([...input])} raised ${String(e)}`);
        }
      }
    }
    assert.ok(decoded > 100, `only ${decoded} mutated inputs decoded`);
    assert.ok(refused > 1000, `only ${refused} inputs were refused`);
  });
});
