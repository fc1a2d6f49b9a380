import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { PayloadTooLargeError, ProtocolError } from "../src/errors.ts";
import { decodeMetadata, encodeMetadata, routeWithMetadata } from "../src/protocol/metadata.ts";
import {
  decodeFrame,
  encodeFrame,
  encodeMessage,
  encodeRoute,
  type Message,
  messageSize,
  type OutMessage,
} from "../src/protocol/frame.ts";
import { DEFAULT_LIMITS, HEADER_BYTES } from "../src/protocol/limits.ts";
import {
  FLAG_METADATA,
  FLAG_ROUTE,
  OP_CANCEL,
  OP_ERROR,
  OP_NAMES,
  OP_PING,
  OP_REQUEST,
  OP_RESPONSE,
  OP_STREAM_OPEN,
  OP_STREAM_RESP,
  OP_STREAM_RESP_CREDIT,
  opHasRoute,
} from "../src/protocol/ops.ts";

const MAX = DEFAULT_LIMITS.maxMessageBytes;
const utf8 = new TextEncoder();

function out(
  op: number,
  fields: { mux?: number; seq?: number; deadline?: number; route?: [string, string]; payload?: number[] | Uint8Array } =
    {},
): OutMessage {
  const p = fields.payload ?? [];
  return {
    op,
    flags: 0,
    mux: fields.mux ?? 0,
    seq: fields.seq ?? 0,
    deadline: fields.deadline ?? 0,
    route: fields.route === undefined ? null : encodeRoute(fields.route[0], fields.route[1]),
    payload: p instanceof Uint8Array ? p : Uint8Array.from(p),
  };
}

function frameOf(msgs: OutMessage[]): Uint8Array<ArrayBuffer> {
  return encodeFrame(msgs, 0, msgs.length, msgs.reduce((n, m) => n + messageSize(m), 0));
}

/** The decoded form of an OutMessage, for deepEqual. */
function expected(m: OutMessage, handler = "", subroute = ""): Message {
  return {
    op: m.op,
    flags: m.route === null ? m.flags : m.flags | FLAG_ROUTE,
    mux: m.mux,
    seq: m.seq,
    deadline: m.deadline,
    handler,
    subroute,
    metadata: null,
    payload: m.payload,
  };
}

/** Plain copy of a decoded message whose payload is a fresh array (deepEqual compares views by content). */
function plain(m: Message): Message {
  return { ...m, payload: Uint8Array.from(m.payload) };
}

function assertProtocolError(bytes: Uint8Array | number[], maxPayload = MAX): void {
  const frame = bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes);
  assert.throws(
    () => decodeFrame(frame, maxPayload),
    (e: unknown) => e instanceof ProtocolError && e.code === "protocol",
  );
}

/** An 18-byte header, written field by field. */
function header(op: number, flags: number, mux: number, seq: number, deadline: number, plen: number): number[] {
  const b = new Uint8Array(HEADER_BYTES);
  const v = new DataView(b.buffer);
  v.setUint8(0, op);
  v.setUint8(1, flags);
  v.setUint32(2, mux);
  v.setUint32(6, seq);
  v.setUint32(10, deadline);
  v.setUint32(14, plen);
  return [...b];
}

describe("frame encoding", () => {
  it("encodes a request message to the documented bytes (golden vector)", () => {
    const m = out(OP_REQUEST, {
      mux: 0x01020304,
      seq: 7,
      deadline: 5000,
      route: ["echo", "b1"],
      payload: [0xaa, 0xbb, 0xcc],
    });
    // deno-fmt-ignore
    const golden = [
      0x05,                   // op: request
      0x01,                   // flags: FLAG_ROUTE
      0x01, 0x02, 0x03, 0x04, // mux
      0x00, 0x00, 0x00, 0x07, // seq
      0x00, 0x00, 0x13, 0x88, // deadline 5000 ms
      0x00, 0x00, 0x00, 0x03, // payload length (route not included)
      0x04, 0x65, 0x63, 0x68, 0x6f, // handler "echo"
      0x02, 0x62, 0x31,       // subroute "b1"
      0xaa, 0xbb, 0xcc,       // payload
    ];
    assert.equal(messageSize(m), golden.length);
    assert.deepEqual([...encodeMessage(m)], golden);
    const [d] = decodeFrame(Uint8Array.from(golden), MAX);
    assert.deepEqual(plain(d), expected(m, "echo", "b1"));
  });

  it("encodes a batched frame of three messages to the documented bytes (golden vector)", () => {
    const msgs = [
      out(OP_RESPONSE, { mux: 1, payload: [1, 2] }),
      out(OP_STREAM_RESP_CREDIT, { mux: 0xffffffff, seq: 16 }),
      out(OP_STREAM_OPEN, { mux: 0x80, deadline: 0xffffffff, route: ["t", ""] }),
    ];
    // deno-fmt-ignore
    const golden = [
      // response, mux 1, payload [1, 2]
      0x10, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x01, 0x02,
      // stream-resp-credit, mux 0xffffffff, seq 16, no payload
      0x0a, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x10,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      // stream-open, mux 0x80, deadline 0xffffffff, handler "t", empty subroute, no payload
      0x07, 0x01, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00,
      0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x01, 0x74, 0x00,
    ];
    assert.deepEqual([...frameOf(msgs)], golden);
    const decoded = decodeFrame(Uint8Array.from(golden), MAX).map(plain);
    assert.deepEqual(decoded, [expected(msgs[0]), expected(msgs[1]), expected(msgs[2], "t", "")]);
  });

  it("round-trips every op, with routes on exactly the ops that take one", () => {
    for (const key of Object.keys(OP_NAMES)) {
      const op = Number(key);
      const m = out(op, {
        mux: op * 1000 + 1,
        seq: op,
        deadline: op === OP_REQUEST ? 60_000 : 0,
        route: opHasRoute(op) ? [`h.${op}`, op % 2 === 0 ? "" : `sub-${op}`] : undefined,
        payload: [op, 0, 255],
      });
      const [d, ...rest] = decodeFrame(encodeMessage(m), MAX);
      assert.equal(rest.length, 0);
      const h = opHasRoute(op) ? `h.${op}` : "";
      const s = opHasRoute(op) && op % 2 !== 0 ? `sub-${op}` : "";
      assert.deepEqual(plain(d), expected(m, h, s), `op ${OP_NAMES[op]}`);
    }
  });

  it("round-trips extreme header values, empty payloads and 255-byte multi-byte routes", () => {
    const handler = "ü".repeat(127) + "x"; // 255 UTF-8 bytes
    const subroute = "€".repeat(85); // 255 UTF-8 bytes
    assert.equal(utf8.encode(handler).length, 255);
    assert.equal(utf8.encode(subroute).length, 255);
    const msgs = [
      out(OP_REQUEST, { mux: 0xffffffff, seq: 0xffffffff, deadline: 0xffffffff, route: [handler, subroute] }),
      out(OP_CANCEL, { mux: 0, seq: 0 }),
      out(OP_STREAM_OPEN, { mux: 2, route: ["日本", "ディスク"], payload: [0] }),
    ];
    const decoded = decodeFrame(frameOf(msgs), MAX).map(plain);
    assert.deepEqual(decoded, [
      expected(msgs[0], handler, subroute),
      expected(msgs[1]),
      expected(msgs[2], "日本", "ディスク"),
    ]);
  });

  it("keeps a leading U+FEFF in a route instead of stripping it as a byte order mark", () => {
    const m = out(OP_REQUEST, { mux: 1, route: ["\uFEFFecho", "\uFEFF"] });
    const [d] = decodeFrame(encodeMessage(m), MAX);
    assert.equal(d.handler, "\uFEFFecho");
    assert.equal(d.subroute, "\uFEFF");
  });

  it("round-trips a batch of 4096 messages (the per-frame maximum) in order", () => {
    const n = DEFAULT_LIMITS.maxMessagesPerFrame;
    const msgs: OutMessage[] = [];
    for (let i = 0; i < n; i++) {
      msgs.push(
        i % 3 === 0
          ? out(OP_REQUEST, { mux: i, seq: i * 7, deadline: i, route: [`h${i % 17}`, i % 2 ? `s${i}` : ""], payload: [i & 255] })
          : out(i % 3 === 1 ? OP_STREAM_RESP : OP_PING, { mux: i, seq: i, payload: new Uint8Array(i % 5).fill(i & 255) }),
      );
    }
    const decoded = decodeFrame(frameOf(msgs), MAX);
    assert.equal(decoded.length, n);
    for (let i = 0; i < n; i++) {
      const m = msgs[i];
      const h = i % 3 === 0 ? `h${i % 17}` : "";
      const s = i % 3 === 0 && i % 2 ? `s${i}` : "";
      assert.deepEqual(plain(decoded[i]), expected(m, h, s), `message ${i}`);
    }
  });

  it("encodes a sub-range of a message list (start, count) and nothing else", () => {
    const msgs = [out(OP_PING, { mux: 1 }), out(OP_RESPONSE, { mux: 2, payload: [9] }), out(OP_PING, { mux: 3 })];
    const frame = encodeFrame(msgs, 1, 1, messageSize(msgs[1]));
    assert.deepEqual(decodeFrame(frame, MAX).map(plain), [expected(msgs[1])]);
  });

  it("decodes a frame that is a view at an offset into a larger buffer", () => {
    const inner = frameOf([out(OP_RESPONSE, { mux: 5, payload: [7, 8, 9] }), out(OP_ERROR, { mux: 6, payload: [1] })]);
    const big = new Uint8Array(inner.length + 13).fill(0xee);
    big.set(inner, 5);
    const view = big.subarray(5, 5 + inner.length);
    const d = decodeFrame(view, MAX);
    assert.equal(d.length, 2);
    assert.equal(d[0].mux, 5);
    assert.deepEqual([...d[0].payload], [7, 8, 9]);
    assert.equal(d[1].mux, 6);
    assert.deepEqual([...d[1].payload], [1]);
  });

  it("accepts a payload of exactly maxPayload bytes", () => {
    const m = out(OP_RESPONSE, { mux: 1, payload: new Uint8Array(100).fill(3) });
    assert.equal(decodeFrame(encodeMessage(m), 100)[0].payload.length, 100);
    assert.equal(decodeFrame(encodeMessage(out(OP_PING)), 0)[0].payload.length, 0);
  });

  it("encodeRoute rejects empty and over-long names with RangeError", () => {
    assert.throws(() => encodeRoute("", ""), RangeError);
    assert.throws(() => encodeRoute("x".repeat(256), ""), RangeError);
    assert.throws(() => encodeRoute("ü".repeat(128), ""), RangeError); // 256 bytes
    assert.throws(() => encodeRoute("h", "s".repeat(256)), RangeError);
    assert.equal(encodeRoute("x".repeat(255), "s".repeat(255)).length, 2 + 255 + 255);
  });
});

describe("frame decoding rejects malformed frames with ProtocolError", () => {
  const ping = header(OP_PING, 0, 1, 0, 0, 0);

  it("an empty frame", () => {
    assertProtocolError([]);
  });

  it("a truncated header (alone, and after a valid message)", () => {
    for (let n = 1; n < HEADER_BYTES; n++) assertProtocolError(ping.slice(0, n));
    assertProtocolError([...ping, ...ping.slice(0, 17)]);
    assertProtocolError([...ping, 0x03]);
  });

  it("an unknown op", () => {
    for (const op of [0, 14, 15, 23, 64, 128, 255]) {
      assert.equal(OP_NAMES[op], undefined);
      assertProtocolError(header(op, 0, 1, 0, 0, 0));
      assertProtocolError([...ping, ...header(op, 0, 1, 0, 0, 0)]);
    }
  });

  it("unknown flag bits", () => {
    for (const flags of [0x02, 0x04, 0x80, 0xfe, 0xff]) {
      assertProtocolError(header(OP_PING, flags, 1, 0, 0, 0));
      assertProtocolError([...header(OP_REQUEST, flags | FLAG_ROUTE, 1, 0, 0, 0), 1, 0x61, 0]);
    }
  });

  it("a route on an op that takes none, and a missing route where one is required", () => {
    assertProtocolError([...header(OP_RESPONSE, FLAG_ROUTE, 1, 0, 0, 0), 1, 0x61, 0]);
    assertProtocolError([...header(OP_PING, FLAG_ROUTE, 1, 0, 0, 0), 1, 0x61, 0]);
    assertProtocolError(header(OP_REQUEST, 0, 1, 0, 0, 0));
    assertProtocolError(header(OP_STREAM_OPEN, 0, 1, 0, 0, 0));
    // Same bytes with the route flag decode: the failures above are about the flag.
    assert.equal(decodeFrame(Uint8Array.from([...header(OP_REQUEST, FLAG_ROUTE, 1, 0, 0, 0), 1, 0x61, 0]), MAX)[0].handler, "a");
  });

  it("a route section that runs past the end of the frame", () => {
    const h = header(OP_REQUEST, FLAG_ROUTE, 1, 0, 0, 0);
    assertProtocolError(h); // no route bytes at all
    assertProtocolError([...h, 5, 0x61, 0x62]); // handler length 5, 2 bytes left
    assertProtocolError([...h, 2, 0x61, 0x62]); // handler complete, subroute length byte missing
    assertProtocolError([...h, 1, 0x61, 3, 0x62]); // subroute length 3, 1 byte left
    assertProtocolError([...h, 255, ...new Array(254).fill(0x61)]);
    assertProtocolError([...h, 0, 0]); // empty handler name
    // The route is complete but the payload length counts bytes that are not there.
    assertProtocolError([...header(OP_REQUEST, FLAG_ROUTE, 1, 0, 0, 1), 1, 0x61, 0]);
  });

  it("a route that is not valid UTF-8", () => {
    const h = header(OP_REQUEST, FLAG_ROUTE, 1, 0, 0, 0);
    assertProtocolError([...h, 1, 0xff, 0]); // invalid byte in the handler
    assertProtocolError([...h, 2, 0xc3, 0x28, 0]); // bad continuation
    assertProtocolError([...h, 1, 0x61, 1, 0x80]); // lone continuation in the subroute
    assertProtocolError([...h, 3, 0xed, 0xa0, 0x80, 0]); // encoded surrogate
    assertProtocolError([...h, 2, 0xc0, 0x80, 0]); // overlong NUL
    assertProtocolError([...h, 1, 0x61, 2, 0xe2, 0x82]); // truncated sequence at the end
  });

  it("a payload length past the end of the frame", () => {
    assertProtocolError(header(OP_RESPONSE, 0, 1, 0, 0, 1));
    assertProtocolError([...header(OP_RESPONSE, 0, 1, 0, 0, 4), 1, 2, 3]);
    assertProtocolError([...header(OP_RESPONSE, 0, 1, 0, 0, 0xffffffff), 1, 2, 3]);
    assertProtocolError([...ping, ...header(OP_RESPONSE, 0, 1, 0, 0, 100), ...new Array(99).fill(0)]);
  });

  it("a payload over maxPayload, even when its bytes are all there", () => {
    const m = encodeMessage(out(OP_RESPONSE, { mux: 1, payload: new Uint8Array(101) }));
    assertProtocolError(m, 100);
    assertProtocolError(encodeMessage(out(OP_PING, { payload: [1] })), 0);
    assertProtocolError(header(OP_RESPONSE, 0, 1, 0, 0, MAX + 1), MAX);
    assertProtocolError(header(OP_RESPONSE, 0, 1, 0, 0, 0xffffffff), 0xfffffffe);
  });

  it("more than maxMessagesPerFrame messages", () => {
    const n = DEFAULT_LIMITS.maxMessagesPerFrame;
    const msgs = Array.from({ length: n + 1 }, (_, i) => out(OP_PING, { mux: i }));
    assertProtocolError(frameOf(msgs));
    assert.equal(decodeFrame(frameOf(msgs.slice(0, n)), MAX).length, n);
  });

  it("a valid message followed by garbage delivers nothing", () => {
    const good = [...encodeMessage(out(OP_RESPONSE, { mux: 1, payload: [1] }))];
    assertProtocolError([...good, 0]);
    assertProtocolError([...good, ...good.slice(0, good.length - 1)]);
  });
});

describe("frame metadata section", () => {
  it("encodes a request with metadata to the documented bytes and decodes it back (golden vector)", () => {
    const meta = encodeMetadata({ k: "v1" }, "test")!;
    const m: OutMessage = {
      ...out(OP_REQUEST, { mux: 7, route: ["e", ""], payload: [9] }),
      flags: FLAG_METADATA,
    };
    m.route = routeWithMetadata(m.route!, meta);
    const bytes = encodeMessage(m);
    // deno-fmt-ignore
    assert.deepEqual([...bytes], [
      OP_REQUEST, FLAG_ROUTE | FLAG_METADATA, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
      1, 0x65, 0,                   // handler "e", empty subroute
      0, 6,                         // metadata section: 6 bytes of entries
      1, 0x6b, 0, 2, 0x76, 0x31,    // "k" = "v1"
      9,                            // payload
    ]);
    const [d] = decodeFrame(bytes, MAX);
    assert.equal(d.handler, "e");
    assert.deepEqual([...d.metadata!], [1, 0x6b, 0, 2, 0x76, 0x31]);
    assert.deepEqual(decodeMetadata(d.metadata!), { k: "v1" });
    assert.deepEqual([...d.payload], [9]);
  });

  it("a metadata flag without a route, or a truncated section, is a protocol error", () => {
    assertProtocolError(header(OP_RESPONSE, FLAG_METADATA, 1, 0, 0, 0));
    const h = header(OP_REQUEST, FLAG_ROUTE | FLAG_METADATA, 1, 0, 0, 0);
    assertProtocolError([...h, 1, 0x61, 0]); // length missing
    assertProtocolError([...h, 1, 0x61, 0, 0]); // half a length
    assertProtocolError([...h, 1, 0x61, 0, 0, 5, 1, 0x6b]); // 5 bytes announced, 2 there
  });

  it("round-trips keys and values of any UTF-8, empty values and a key named __proto__", () => {
    const md = { "trace-id": "abc", "日本": "ディスク", empty: "", ["__proto__"]: "x" };
    const meta = encodeMetadata(md, "test")!;
    const back = decodeMetadata(meta.subarray(2));
    assert.deepEqual(Object.keys(back), Object.keys(md));
    assert.equal(back["日本"], "ディスク");
    assert.equal(back["__proto__"], "x");
    assert.equal(Object.getPrototypeOf(back), Object.prototype);
    assert.equal(encodeMetadata({}, "test"), null);
  });

  it("refuses metadata over maxMetadataBytes, long keys and non-string values before sending", () => {
    const max = DEFAULT_LIMITS.maxMetadataBytes;
    assert.ok(encodeMetadata({ k: "x".repeat(max - 4) }, "test") !== null); // exactly at the limit
    assert.throws(() => encodeMetadata({ k: "x".repeat(max - 3) }, "test"), PayloadTooLargeError);
    assert.throws(() => encodeMetadata({ ["k".repeat(256)]: "" }, "test"), PayloadTooLargeError);
    assert.throws(() => encodeMetadata({ n: 1 as unknown as string }, "test"), TypeError);
    assert.throws(() => encodeMetadata({ "": "v" }, "test"), TypeError);
  });

  it("decoding refuses malformed and over-limit entries with clear errors", () => {
    const max = DEFAULT_LIMITS.maxMetadataBytes;
    assert.throws(() => decodeMetadata(new Uint8Array(max + 1)), PayloadTooLargeError);
    assert.throws(() => decodeMetadata(Uint8Array.of(0, 0, 0)), ProtocolError); // empty key
    assert.throws(() => decodeMetadata(Uint8Array.of(1, 0x6b, 0)), ProtocolError); // truncated
    assert.throws(() => decodeMetadata(Uint8Array.of(1, 0x6b, 0, 2, 0x76)), ProtocolError); // short value
    assert.throws(() => decodeMetadata(Uint8Array.of(1, 0xff, 0, 0)), ProtocolError); // not UTF-8
    assert.throws(() => decodeMetadata(Uint8Array.of(1, 0x6b, 0, 0, 1, 0x6b, 0, 0)), ProtocolError); // duplicate
  });
});
