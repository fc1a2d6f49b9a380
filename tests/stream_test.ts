/**
 * Streams between two Managers on loopback, in one process: ordering and
 * integrity, credit flow control, endings and errors, connection loss, stream
 * liveness, and the regression cases MinIO's grid had to fix. Every case ends by
 * checking that no call is left in flight or being served on either side.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import {
  type Connection,
  DisconnectedError,
  type GridStats,
  Manager,
  RemoteError,
  type Stream,
  shouldDial,
  type StreamCall,
  TimeoutError,
  UnknownHandlerError,
} from "../mod.ts";
import { detectRuntime, type GridServer, serve } from "../src/adapters/serve.ts";
import { freePort, startCuttingProxy } from "./_net.ts";
import { withTimeout as within } from "./_wait.ts";

const HOST = "127.0.0.1";
const SECRET = "stream test secret";
const PING = 300;
/** Upper bound of any single wait: generous for a shared 2-core machine. */
const WAIT = 15_000;
const EMPTY = new Uint8Array(0);
const runtime = detectRuntime();

type RawCall = StreamCall<Uint8Array, Uint8Array, Uint8Array>;

// ---------------------------------------------------------------------------------------------
// Small helpers

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Stream cases move more data than the others: a longer default bound. */
const withTimeout = <T>(p: Promise<T>, what: string, ms = WAIT): Promise<T> => within(p, what, ms);

/** Polls `cond` every 5 ms; rejects after `ms`. */
async function until(cond: () => boolean, what: string, ms = WAIT): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Resolves with the signal's reason once it aborts. */
function aborted(signal: AbortSignal): Promise<unknown> {
  if (signal.aborted) return Promise.resolve(signal.reason);
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(signal.reason), { once: true }));
}

/** Message `i`: its index (u32) then a pattern of varying length, so truncation or reordering shows. */
function message(i: number): Uint8Array {
  const b = new Uint8Array(4 + ((i * 37) % 251));
  new DataView(b.buffer).setUint32(0, i);
  for (let j = 4; j < b.length; j++) b[j] = (i + j) & 255;
  return b;
}

/** The index of message `b`, or -1 when it is not intact. */
function indexOf(b: Uint8Array): number {
  if (b.length < 4) return -1;
  const i = new DataView(b.buffer, b.byteOffset, 4).getUint32(0);
  if (b.length !== 4 + ((i * 37) % 251)) return -1;
  for (let j = 4; j < b.length; j++) if (b[j] !== ((i + j) & 255)) return -1;
  return i;
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

function readU32(b: Uint8Array): number {
  return new DataView(b.buffer, b.byteOffset, 4).getUint32(0);
}

function mib(bytes: number): string {
  return (bytes / (1 << 20)).toFixed(1);
}

/** Reads `stream` to its end; rejects with its error. */
async function readAll<T>(stream: ReadableStream<T>): Promise<T[]> {
  const out: T[] = [];
  const reader = stream.getReader();
  for (;;) {
    const r = await reader.read();
    if (r.done) return out;
    out.push(r.value);
  }
}

function isCode(e: unknown, cls: new (...args: never[]) => Error, code: string): boolean {
  return e instanceof cls && (e as { code?: string }).code === code;
}

// ---------------------------------------------------------------------------------------------
// Two Managers on loopback, optionally each behind a TCP proxy that can cut the connection

interface Pair {
  a: Manager;
  b: Manager;
  A: string;
  B: string;
  /** A's connection to B (A calls, B serves). */
  ab: Connection;
  /** B's connection to A. */
  ba: Connection;
  /** Drops the TCP connection between A and B abruptly (pairs made with `proxy: true`). */
  cut(): void;
  /** Closes B's Manager and server, as a process exit would. */
  stopB(): Promise<void>;
  close(): Promise<void>;
}

async function makePair(options: { proxy?: boolean } = {}): Promise<Pair> {
  const realA = await freePort();
  const realB = await freePort();
  const proxyA = options.proxy ? await startCuttingProxy(realA) : null;
  const proxyB = options.proxy ? await startCuttingProxy(realB) : null;
  const A = `ws://${HOST}:${proxyA?.port ?? realA}`;
  const B = `ws://${HOST}:${proxyB?.port ?? realB}`;
  const common = {
    hosts: [A, B],
    secret: SECRET,
    pingInterval: PING,
    requestTimeout: WAIT,
    backoff: { base: 20, cap: 200 },
  };
  const a = new Manager({ ...common, local: A });
  const b = new Manager({ ...common, local: B });
  let sa: GridServer | null = null;
  let sb: GridServer | null = null;
  const stopB = async () => {
    await b.close();
    await sb?.close();
  };
  const close = async () => {
    await a.close();
    await stopB();
    await sa?.close();
    await proxyA?.close();
    await proxyB?.close();
  };
  try {
    sa = await serve(a, { port: realA, hostname: HOST });
    sb = await serve(b, { port: realB, hostname: HOST });
    await withTimeout(
      Promise.all([a.connection(B).waitForConnect({ timeout: WAIT }), b.connection(A).waitForConnect({ timeout: WAIT })]),
      "pair connected",
    );
  } catch (e) {
    await close();
    throw e;
  }
  return {
    a,
    b,
    A,
    B,
    ab: a.connection(B),
    ba: b.connection(A),
    cut: () => {
      proxyA?.cut();
      proxyB?.cut();
    },
    stopB,
    close,
  };
}

interface Snapshot {
  a: { inFlight: { requests: number; streams: number }; serving: { requests: number; streams: number } };
  b: { inFlight: { requests: number; streams: number }; serving: { requests: number; streams: number } };
  busyHandlers: string[];
}

function snapshot(p: Pair): Snapshot {
  const busy = (s: GridStats) =>
    Object.entries(s.handlers).filter(([, h]) => h.inFlight !== 0).map(([n, h]) => `${s.local} ${n}: ${h.inFlight}`);
  const sa = p.a.stats();
  const sb = p.b.stats();
  const ca = sa.connections[p.B];
  const cb = sb.connections[p.A];
  return {
    a: { inFlight: ca.inFlight, serving: ca.serving },
    b: { inFlight: cb.inFlight, serving: cb.serving },
    busyHandlers: [...busy(sa), ...busy(sb)],
  };
}

const IDLE: Snapshot = {
  a: { inFlight: { requests: 0, streams: 0 }, serving: { requests: 0, streams: 0 } },
  b: { inFlight: { requests: 0, streams: 0 }, serving: { requests: 0, streams: 0 } },
  busyHandlers: [],
};

/** Asserts that, within a few seconds, no call is in flight or served on either side. */
async function expectIdle(p: Pair): Promise<void> {
  const idle = JSON.stringify(IDLE);
  await until(() => JSON.stringify(snapshot(p)) === idle, "both sides idle", 5_000).catch(() => {});
  assert.deepEqual(snapshot(p), IDLE);
}

/** The internals a test reaches into to simulate a remote that stopped serving a stream. */
interface ServedStreamInternals {
  onMessage(m: unknown): void;
  cancel(reason: unknown): void;
}

function servedStreams(conn: Connection): Map<number, ServedStreamInternals> {
  return (conn as unknown as { callee: { streams: Map<number, ServedStreamInternals> } }).callee.streams;
}

// ---------------------------------------------------------------------------------------------
// Handlers used by several cases

/** Echoes every request; fails the call if one arrives out of order or damaged. */
async function echoChecked(call: RawCall): Promise<void> {
  const w = call.responses.getWriter();
  let next = 0;
  for await (const m of call.requests!) {
    const i = indexOf(m);
    if (i !== next) throw new Error(`Request ${next} arrived as ${i}`);
    next++;
    await w.write(m);
  }
  await w.close();
}

/** Big message `i`: 1–61 KiB, its index (u32) then a pattern, so any damage shows. */
function big(i: number): Uint8Array {
  const b = new Uint8Array(1024 + ((i * 7919) % (60 << 10)));
  new DataView(b.buffer).setUint32(0, i);
  for (let j = 4; j < b.length; j++) b[j] = (i * 31 + j) & 255;
  return b;
}

/** The index of big message `b`, or -1 when it is not intact. */
function bigIndex(b: Uint8Array): number {
  const i = new DataView(b.buffer, b.byteOffset, 4).getUint32(0);
  if (b.length !== 1024 + ((i * 7919) % (60 << 10))) return -1;
  for (let j = 4; j < b.length; j++) if (b[j] !== ((i * 31 + j) & 255)) return -1;
  return i;
}

/** Writes `payload` (u32) big messages as fast as credits allow, without awaiting each write. */
async function produceBig(call: RawCall): Promise<void> {
  const n = readU32(call.payload);
  const w = call.responses.getWriter();
  for (let i = 0; i < n; i++) {
    await w.ready;
    void w.write(big(i)).catch(() => {});
  }
  await w.close();
}

/** Writes `payload` (u32) intact messages and returns. */
async function produce(call: RawCall): Promise<void> {
  const n = readU32(call.payload);
  const w = call.responses.getWriter();
  for (let i = 0; i < n; i++) await w.write(message(i));
  await w.close();
}

/** Reads every request, checking order and content, then answers their count. */
async function consume(call: RawCall): Promise<void> {
  let next = 0;
  for await (const m of call.requests!) {
    const i = indexOf(m);
    if (i !== next) throw new Error(`Request ${next} arrived as ${i}`);
    next++;
  }
  const w = call.responses.getWriter();
  await w.write(u32(next));
  await w.close();
}

function registerCommon(grid: Manager): void {
  grid.handle("echo", (req) => req);
  grid.handleStream("echo.cap1", echoChecked, { inCapacity: 1, outCapacity: 1 });
  grid.handleStream("echo.cap16", echoChecked);
  grid.handleStream("echo.cap64", echoChecked, { inCapacity: 64, outCapacity: 64 });
  grid.handleStream("produce.big", produceBig, { inCapacity: 0, outCapacity: 1024 });
  grid.handleStream("produce", produce, { inCapacity: 0, outCapacity: 16 });
  grid.handleStream("consume", consume, { inCapacity: 16, outCapacity: 1 });
}

/** Writes `n` messages to `requests` and closes it. */
async function writeAll(requests: WritableStream<Uint8Array>, n: number): Promise<void> {
  const w = requests.getWriter();
  for (let i = 0; i < n; i++) {
    await w.ready;
    void w.write(message(i)).catch(() => {});
  }
  await w.close();
}

/** Reads responses and checks they are messages 0..n-1 in order. */
async function expectMessages(responses: ReadableStream<Uint8Array>, n: number): Promise<void> {
  let next = 0;
  for await (const m of responses) {
    const i = indexOf(m);
    if (i !== next) assert.fail(`Response ${next} arrived as ${i === -1 ? "damaged" : i}`);
    next++;
  }
  assert.equal(next, n);
}

/** Requests 100 single echoes at once and checks every answer. */
async function hundredRequests(conn: Connection): Promise<void> {
  const answers = await withTimeout(
    Promise.all(Array.from({ length: 100 }, (_, i) => conn.request("echo", message(i), { timeout: WAIT }))),
    "100 single requests",
  );
  answers.forEach((b, i) => assert.equal(indexOf(b), i));
}

// ---------------------------------------------------------------------------------------------

describe("streams between two Managers", () => {
  let p: Pair;

  before(async () => {
    p = await makePair();
    registerCommon(p.a);
    registerCommon(p.b);
  });

  after(async () => {
    await p?.close();
  });

  describe("ordering and integrity", () => {
    for (const cap of [1, 16, 64]) {
      it(`echoes 10,000 messages in order and intact both ways with capacity ${cap}`, async () => {
        const st = await p.ab.newStream(`echo.cap${cap}`, EMPTY);
        assert.ok(st.requests !== null);
        await withTimeout(Promise.all([writeAll(st.requests, 10_000), expectMessages(st.responses, 10_000)]), "echo");
        await expectIdle(p);
      });
    }

    it("echoes 10,000 messages when the accepting side opens the stream", async () => {
      const st = await p.ba.newStream("echo.cap16", EMPTY);
      await withTimeout(Promise.all([writeAll(st.requests!, 10_000), expectMessages(st.responses, 10_000)]), "echo");
      await expectIdle(p);
    });

    it("keeps 100 concurrent streams apart, with single requests interleaved", async () => {
      const streams = await Promise.all(Array.from({ length: 100 }, () => p.ab.newStream("echo.cap16", EMPTY)));
      await withTimeout(
        Promise.all([
          ...streams.map((st) => Promise.all([writeAll(st.requests!, 100), expectMessages(st.responses, 100)])),
          hundredRequests(p.ab),
          hundredRequests(p.ba),
        ]),
        "concurrent streams",
      );
      await expectIdle(p);
    });

    for (const writer of ["dialing", "accepting"] as const) {
      it(`keeps large messages intact while every frame reuses one send buffer (${writer} side writes)`, async () => {
        // Every frame is encoded into one shared buffer on a socket that copies on send (the
        // global WebSocket, Bun's and Deno's server sockets), and on a `ws` socket while nothing
        // waits in it. A socket that kept a reference to bytes it could not write yet, with the
        // buffer reused anyway, would show here as damaged messages: with a window of 1,024 the
        // handler writes ~30 MB of 1–61 KiB messages without yielding to the event loop, which
        // fills the kernel's socket buffers, while single requests cut in between. Both sides
        // write once, so both kinds of socket of this runtime are covered.
        const dialerIsA = shouldDial(p.A, p.B);
        const conn = (writer === "dialing") === dialerIsA ? p.ba : p.ab;
        const N = 1_000;
        const st = await conn.newStream("produce.big", u32(N));
        const read = async (): Promise<number> => {
          let next = 0;
          for await (const m of st.responses) {
            const i = bigIndex(m);
            if (i !== next) assert.fail(`Response ${next} arrived as ${i === -1 ? "damaged" : i}`);
            next++;
          }
          return next;
        };
        const [count] = await withTimeout(Promise.all([read(), hundredRequests(p.ab), hundredRequests(p.ba)]), "large");
        assert.equal(count, N);
        await expectIdle(p);
      });
    }

    it(
      "lets stream messages share frames while their writer awaits each write (socket that copies on send)",
      { skip: detectRuntime() === "node" ? "no socket copies on send on Node: both ends are ws sockets" : false },
      async () => {
        // On a socket whose send copies, the link waits a few microtask turns while writers keep
        // adding stream data, so 16 KiB messages written one `await write()` at a time still go
        // out several to a frame. The writer here is the side with such a socket: the dialer
        // (global WebSocket) on Bun, the accepting side (Deno's own server socket) on Deno,
        // whose dialer is the `ws` package.
        const dialerSide = shouldDial(p.A, p.B) ? p.a : p.b;
        const acceptSide = dialerSide === p.a ? p.b : p.a;
        const writer = detectRuntime() === "deno" ? acceptSide : dialerSide;
        const caller = writer === p.a ? p.ba : p.ab;
        const N = 60;
        writer.handleStream("frames.share", async (call) => {
          const w = call.responses.getWriter();
          for (let i = 0; i < N; i++) await w.write(new Uint8Array(16 << 10).fill(i));
          await w.close();
        }, { inCapacity: 0, outCapacity: N });
        const out = (): { messages: number; frames: number } => {
          const c = writer.stats().connections[writer === p.a ? p.B : p.A];
          return { messages: c.messagesOut, frames: c.framesOut };
        };
        const before = out();
        const st = await caller.newStream("frames.share", EMPTY);
        const got = await withTimeout(readAll(st.responses), "frames.share");
        assert.equal(got.length, N);
        got.forEach((m, i) => assert.equal(m[100], i));
        const after = out();
        const messages = after.messages - before.messages;
        const frames = after.frames - before.frames;
        assert.ok(messages >= N, `${messages} messages out`);
        // Without the wait it is one frame per message; the stream's ack and end add two messages.
        assert.ok(frames <= messages * 0.6, `${messages} messages went out in ${frames} frames: expected about 2 or more per frame`);
        await expectIdle(p);
      },
    );

    it("delivers 10,000 requests to the handler in order and intact", async () => {
      const st = await p.ab.newStream("consume", EMPTY);
      const [, answers] = await withTimeout(Promise.all([writeAll(st.requests!, 10_000), readAll(st.responses)]), "consume");
      assert.deepEqual(answers.map(readU32), [10_000]);
      await expectIdle(p);
    });

    it("delivers 10,000 responses to the caller in order and intact", async () => {
      const st = await p.ab.newStream("produce", u32(10_000));
      assert.equal(st.requests, null);
      await withTimeout(expectMessages(st.responses, 10_000), "produce");
      await expectIdle(p);
    });

    it("delivers every large response a handler wrote without awaiting before it returned", async () => {
      // Writes resolve while their data still waits in the link's queue; the end of the stream
      // must queue behind that data, never overtake it (found by the soak under faults).
      const COUNT = 40;
      const SIZE = 60 << 10;
      p.b.handleStream("burst.return", (call) => {
        const w = call.responses.getWriter();
        for (let i = 0; i < COUNT; i++) {
          const chunk = new Uint8Array(SIZE).fill(i & 255);
          void w.write(chunk).catch(() => {});
        }
        w.releaseLock();
      }, { inCapacity: 0, outCapacity: COUNT });
      const reqs: Array<Promise<Uint8Array[]>> = [];
      for (let round = 0; round < 5; round++) {
        const st = await p.ab.newStream("burst.return", EMPTY);
        reqs.push(readAll(st.responses));
      }
      for (const got of await withTimeout(Promise.all(reqs), "bursts")) {
        assert.equal(got.length, COUNT);
        got.forEach((chunk, i) => {
          assert.equal(chunk.length, SIZE);
          assert.equal(chunk[SIZE - 1], i & 255);
        });
      }
      await expectIdle(p);
    });

    it("delivers every request the caller wrote without awaiting before it closed", async () => {
      const COUNT = 40;
      const SIZE = 60 << 10;
      p.b.handleStream("burst.count", async (call) => {
        let n = 0;
        for await (const chunk of call.requests!) if ((chunk as Uint8Array).length === SIZE) n++;
        const w = call.responses.getWriter();
        await w.write(u32(n));
        await w.close();
      }, { inCapacity: COUNT, outCapacity: 1 });
      const st = await p.ab.newStream("burst.count", EMPTY);
      const w = st.requests!.getWriter();
      for (let i = 0; i < COUNT; i++) void w.write(new Uint8Array(SIZE)).catch(() => {});
      void w.close().catch(() => {});
      const answers = await withTimeout(readAll(st.responses), "burst count");
      assert.deepEqual(answers.map(readU32), [COUNT]);
      await expectIdle(p);
    });
  });

  describe("flow control", () => {
    it("makes a handler writing 2,000 × 16 KiB wait on writer.ready while the caller reads slowly", async () => {
      const OUT = 8;
      const N = 2_000;
      const SIZE = 16 << 10;
      let sent = 0;
      let read = 0;
      let maxAhead = 0;
      let readyWaits = 0;
      const handlerDone = deferred<void>();
      p.b.handleStream("slow.produce", async (call) => {
        try {
          const w = call.responses.getWriter();
          for (let i = 0; i < N; i++) {
            if ((w.desiredSize ?? 0) <= 0) readyWaits++;
            await w.ready;
            const m = new Uint8Array(SIZE);
            new DataView(m.buffer).setUint32(0, i);
            void w.write(m).then(() => {
              sent++;
              maxAhead = Math.max(maxAhead, sent - read);
            }, () => {});
          }
          await w.close();
          handlerDone.resolve();
        } catch (e) {
          handlerDone.reject(e);
          throw e;
        }
      }, { inCapacity: 0, outCapacity: OUT });

      const rssBefore = process.memoryUsage().rss;
      let rssPeak = rssBefore;
      const st = await p.ab.newStream("slow.produce", EMPTY);
      const reader = st.responses.getReader();
      const readAllSlowly = async () => {
        for (;;) {
          const r = await reader.read();
          if (r.done) return;
          assert.equal(r.value.length, SIZE);
          assert.equal(readU32(r.value), read);
          read++;
          maxAhead = Math.max(maxAhead, sent - read);
          if (read % 8 === 0) await sleep(1);
          if (read % 100 === 0) rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
        }
      };
      await withTimeout(Promise.all([readAllSlowly(), handlerDone.promise]), "slow reader", 60_000);
      const rssAfter = process.memoryUsage().rss;
      console.log(
        `[${runtime}] slow reader: ${N} × 16 KiB, outCapacity ${OUT}: writer waited on ready ${readyWaits} times, ` +
          `at most ${maxAhead} messages sent but unread; RSS before ${mib(rssBefore)} MiB, ` +
          `peak ${mib(rssPeak)} MiB, after ${mib(rssAfter)} MiB`,
      );
      assert.equal(read, N);
      assert.equal(sent, N);
      assert.ok(readyWaits > 0, "the handler's writer never had to wait on ready");
      assert.ok(maxAhead <= OUT, `${maxAhead} messages were sent but unread, more than outCapacity ${OUT}`);
      assert.ok(rssPeak - rssBefore < 200 << 20, `RSS grew by ${mib(rssPeak - rssBefore)} MiB`);
      await expectIdle(p);
    });

    it("makes the caller's writer wait while the handler reads slowly", async () => {
      const IN = 4;
      const N = 400;
      let taken = 0;
      let maxAhead = 0;
      let written = 0;
      let readyWaits = 0;
      p.b.handleStream("slow.consume", async (call) => {
        for await (const _ of call.requests!) {
          taken++;
          if (taken % 4 === 0) await sleep(1);
        }
      }, { inCapacity: IN, outCapacity: 1 });
      const st = await p.ab.newStream("slow.consume", EMPTY);
      const w = st.requests!.getWriter();
      for (let i = 0; i < N; i++) {
        if ((w.desiredSize ?? 0) <= 0) readyWaits++;
        await w.ready;
        void w.write(message(i)).then(() => {
          written++;
          maxAhead = Math.max(maxAhead, written - taken);
        });
      }
      await withTimeout(w.close(), "requests closed");
      await withTimeout(readAll(st.responses), "stream end");
      assert.equal(taken, N);
      assert.ok(readyWaits > 0, "the caller's writer never had to wait on ready");
      assert.ok(maxAhead <= IN, `${maxAhead} requests were sent but not taken, more than inCapacity ${IN}`);
      await expectIdle(p);
    });
  });

  describe("endings and errors", () => {
    it("ends the handler's requests when the caller closes them", async () => {
      const ended = deferred<number>();
      p.b.handleStream("end.requests", async (call) => {
        let n = 0;
        for await (const _ of call.requests!) n++;
        ended.resolve(n);
        const w = call.responses.getWriter();
        await w.write(u32(n));
        await w.close();
      });
      const st = await p.ab.newStream("end.requests", EMPTY);
      const w = st.requests!.getWriter();
      await w.write(message(0));
      await w.write(message(1));
      await w.close();
      assert.equal(await withTimeout(ended.promise, "handler's requests ended"), 2);
      assert.deepEqual((await withTimeout(readAll(st.responses), "responses")).map(readU32), [2]);
      await expectIdle(p);
    });

    it("ends the caller's responses when the handler returns without closing them", async () => {
      p.b.handleStream("end.return", async (call) => {
        const w = call.responses.getWriter();
        for (let i = 0; i < 3; i++) await w.write(message(i));
      }, { inCapacity: 0 });
      const st = await p.ab.newStream("end.return", EMPTY);
      await withTimeout(expectMessages(st.responses, 3), "responses end");
      await expectIdle(p);
    });

    it("errors the caller's responses with RemoteError after the responses written before the handler threw", async () => {
      p.b.handleStream("end.throw", async (call) => {
        const w = call.responses.getWriter();
        for (let i = 0; i < 3; i++) await w.write(message(i));
        const err = new Error("Cannot list bucket: disk on fire");
        (err as Error & { code: string }).code = "EDISK";
        throw err;
      }, { inCapacity: 0 });
      const st = await p.ab.newStream("end.throw", EMPTY);
      // Let the error arrive before reading: the responses written before it still come first.
      await sleep(100);
      const reader = st.responses.getReader();
      let got = 0;
      await withTimeout(
        assert.rejects(
          (async () => {
            for (;;) {
              const r = await reader.read();
              if (r.done) return;
              assert.equal(indexOf(r.value), got++);
            }
          })(),
          (e: unknown) => {
            assert.ok(isCode(e, RemoteError, "remote"), `expected RemoteError, got ${String(e)}`);
            assert.equal((e as RemoteError).message, "Cannot list bucket: disk on fire");
            assert.equal((e as RemoteError).remoteCode, "EDISK");
            return true;
          },
        ),
        "RemoteError",
      );
      assert.equal(got, 3);
      await expectIdle(p);
    });

    it("aborts the handler's signal and errors the caller's responses with the reason when the caller aborts", async () => {
      const seen = deferred<unknown>();
      const writeFailed = deferred<unknown>();
      p.b.handleStream("abort.caller", async (call) => {
        const w = call.responses.getWriter();
        await w.write(message(0));
        seen.resolve(await aborted(call.signal));
        await w.write(message(1)).then(() => writeFailed.resolve(null), (e) => writeFailed.resolve(e));
      });
      const ctrl = new AbortController();
      const st = await p.ab.newStream("abort.caller", EMPTY, { signal: ctrl.signal });
      const reader = st.responses.getReader();
      assert.equal(indexOf((await reader.read()).value!), 0);
      const reason = new Error("Caller gave up");
      ctrl.abort(reason);
      await assert.rejects(reader.read(), (e: unknown) => e === reason);
      await assert.rejects(st.requests!.getWriter().write(message(0)), (e: unknown) => e === reason);
      const handlerReason = await withTimeout(seen.promise, "handler's signal aborted");
      assert.ok(handlerReason instanceof Error, `handler saw ${String(handlerReason)}`);
      assert.equal((handlerReason as Error).name, "AbortError");
      assert.ok((await withTimeout(writeFailed.promise, "handler's write failed")) !== null);
      await expectIdle(p);
    });

    it("errors the caller's stream when the handler aborts its responses", async () => {
      p.b.handleStream("abort.handler", async (call) => {
        const w = call.responses.getWriter();
        await w.write(message(0));
        w.releaseLock();
        await call.responses.abort(new Error("Handler gave up"));
      });
      const st = await p.ab.newStream("abort.handler", EMPTY);
      const reader = st.responses.getReader();
      const first = await reader.read();
      assert.equal(indexOf(first.value!), 0);
      await withTimeout(
        assert.rejects(reader.read(), (e: unknown) => {
          assert.ok(isCode(e, RemoteError, "remote"), `expected RemoteError, got ${String(e)}`);
          assert.match((e as Error).message, /Handler gave up/);
          return true;
        }),
        "responses error",
      );
      await assert.rejects(st.requests!.getWriter().write(message(0)), RemoteError);
      await expectIdle(p);
    });

    it("ends both sides with TimeoutError when the stream's deadline passes", async () => {
      const seen = deferred<{ reason: unknown; deadline: number | undefined }>();
      p.b.handleStream("deadline", async (call) => {
        const w = call.responses.getWriter();
        await w.write(message(0));
        seen.resolve({ reason: await aborted(call.signal), deadline: call.deadline });
      });
      const t0 = Date.now();
      const st = await p.ab.newStream("deadline", EMPTY, { timeout: 400 });
      const reader = st.responses.getReader();
      assert.equal(indexOf((await reader.read()).value!), 0);
      await withTimeout(assert.rejects(reader.read(), (e: unknown) => isCode(e, TimeoutError, "timeout")), "caller timeout");
      const { reason, deadline } = await withTimeout(seen.promise, "handler's signal aborted");
      assert.ok(isCode(reason, TimeoutError, "timeout"), `handler saw ${String(reason)}`);
      assert.ok(deadline !== undefined && deadline >= t0 + 300 && deadline <= Date.now() + 1000, `deadline ${deadline}`);
      await expectIdle(p);
    });

    it("cancels the handler when the caller cancels its responses reader", async () => {
      const seen = deferred<unknown>();
      p.b.handleStream("cancel.reader", async (call) => {
        const w = call.responses.getWriter();
        await w.write(message(0));
        seen.resolve(await aborted(call.signal));
      });
      const st = await p.ab.newStream("cancel.reader", EMPTY);
      const reader = st.responses.getReader();
      await reader.read();
      await withTimeout(reader.cancel(new Error("Not interested")), "reader.cancel()");
      const reason = await withTimeout(seen.promise, "handler's signal aborted");
      assert.ok(reason instanceof Error && reason.name === "AbortError", `handler saw ${String(reason)}`);
      await expectIdle(p);
    });

    it("rejects a stream to an unknown handler with UnknownHandlerError", async () => {
      await assert.rejects(p.ab.newStream("no.such.stream", EMPTY), (e: unknown) => isCode(e, UnknownHandlerError, "unknown-handler"));
      // A single-request handler is not a stream handler.
      await assert.rejects(p.ab.newStream("echo", EMPTY), (e: unknown) => isCode(e, UnknownHandlerError, "unknown-handler"));
      await expectIdle(p);
    });

    it("keeps the connection when a handler stops reading its requests; the caller's writes fail when the stream ends", async () => {
      const release = deferred<void>();
      p.b.handleStream("requests.break", async (call) => {
        for await (const _ of call.requests!) break;
        await release.promise;
        const w = call.responses.getWriter();
        await w.write(message(0));
      }, { inCapacity: 2, outCapacity: 1 });
      const st = await p.ab.newStream("requests.break", EMPTY);
      const w = st.requests!.getWriter();
      const outcomes = Array.from({ length: 8 }, (_, i) => w.write(message(i)).then(() => "ok", (e) => e));
      await sleep(100);
      await hundredRequests(p.ab);
      release.resolve();
      await withTimeout(expectMessages(st.responses, 1), "responses");
      const settled = await withTimeout(Promise.all(outcomes), "writes settle");
      assert.ok(settled.some((o) => o === "ok"));
      assert.ok(settled.slice(-1)[0] instanceof Error, "the last write did not fail");
      assert.equal(p.ab.state, "up");
      assert.equal(p.a.stats().connections[p.B].reconnects, 0);
      await expectIdle(p);
    });

    it("errors the caller's stream when a response write failed, even if the handler returns normally", async () => {
      const writeErrors: unknown[] = [];
      p.b.handleStream("write.too.large", (call) => {
        const w = call.responses.getWriter();
        for (const m of [message(0), new Uint8Array((4 << 20) + 1), message(1), message(2)]) {
          void w.write(m).catch((e) => writeErrors.push(e));
        }
      }, { inCapacity: 0, outCapacity: 8 });
      const st = await p.ab.newStream("write.too.large", EMPTY);
      const got: number[] = [];
      await withTimeout(
        assert.rejects(
          (async () => {
            for await (const m of st.responses) got.push(indexOf(m));
          })(),
          (e: unknown) => isCode(e, RemoteError, "remote") && (e as RemoteError).remoteCode === "too-large",
        ),
        "caller's stream errors",
      );
      assert.deepEqual(got, [0]);
      assert.equal(writeErrors.length, 3);
      assert.equal((writeErrors[0] as { code?: string }).code, "too-large");
      await expectIdle(p);
    });

    it("fails a raw handler's write of something other than a Uint8Array", async () => {
      const writeError = deferred<unknown>();
      p.b.handleStream("write.not.bytes", async (call) => {
        const w = call.responses.getWriter();
        await w.write("not bytes" as unknown as Uint8Array).catch((e) => writeError.resolve(e));
      }, { inCapacity: 0 });
      const st = await p.ab.newStream("write.not.bytes", EMPTY);
      await withTimeout(assert.rejects(readAll(st.responses), RemoteError), "caller's stream errors");
      assert.ok((await writeError.promise) instanceof TypeError);
      await expectIdle(p);
    });

    it("gives both sides a null requests stream when inCapacity is 0", async () => {
      const seen = deferred<unknown>();
      p.b.handleStream("no.requests", (call) => {
        seen.resolve(call.requests);
      }, { inCapacity: 0 });
      const st = await p.ab.newStream("no.requests", EMPTY);
      assert.equal(st.requests, null);
      assert.equal(await seen.promise, null);
      assert.deepEqual(await withTimeout(readAll(st.responses), "responses end"), []);
      await expectIdle(p);
    });
  });

  describe("stream liveness on a healthy connection", () => {
    it("fails the caller's stream with DisconnectedError when the remote forgot it", async () => {
      const started = deferred<void>();
      p.b.handleStream("forgotten", async (call) => {
        started.resolve();
        await aborted(call.signal);
      }, { inCapacity: 0 });
      const st = await p.ab.newStream("forgotten", EMPTY);
      await started.promise;
      const served = servedStreams(p.ba);
      assert.equal(served.size, 1);
      const [[id, state]] = [...served];
      served.delete(id);
      const t0 = performance.now();
      try {
        await withTimeout(assert.rejects(readAll(st.responses), (e: unknown) => isCode(e, DisconnectedError, "disconnected")), "detection");
        const ms = performance.now() - t0;
        console.log(`[${runtime}] forgotten stream detected after ${Math.round(ms)} ms (ping interval ${PING} ms)`);
        assert.ok(ms < 3 * PING + 1_000, `detected after ${Math.round(ms)} ms`);
        assert.equal(p.ab.state, "up");
      } finally {
        state.cancel(new Error("Test cleanup"));
      }
      await expectIdle(p);
    });

    it("fails the caller's stream with DisconnectedError when the remote stops answering for it", async () => {
      const seen = deferred<unknown>();
      p.b.handleStream("silent", async (call) => {
        seen.resolve(await aborted(call.signal));
      }, { inCapacity: 0 });
      const st = await p.ab.newStream("silent", EMPTY);
      await until(() => servedStreams(p.ba).size === 1, "stream served");
      const [[, state]] = [...servedStreams(p.ba)];
      state.onMessage = () => {};
      const t0 = performance.now();
      await withTimeout(assert.rejects(readAll(st.responses), (e: unknown) => isCode(e, DisconnectedError, "disconnected")), "detection");
      const ms = performance.now() - t0;
      console.log(`[${runtime}] silent stream detected after ${Math.round(ms)} ms (ping interval ${PING} ms)`);
      assert.ok(ms < 4 * PING + 1_000, `detected after ${Math.round(ms)} ms`);
      assert.equal(p.ab.state, "up");
      // The caller tells the remote; its handler is canceled.
      await withTimeout(seen.promise, "handler canceled");
      await expectIdle(p);
    });
  });

  describe("MinIO regression cases", () => {
    /** Opens a stream whose handler writes until it is canceled, with outCapacity 1; the caller never reads. */
    async function blockedStream(name: string, signal?: AbortSignal): Promise<{ st: Stream<Uint8Array, Uint8Array>; canceled: Promise<unknown> }> {
      const canceled = deferred<unknown>();
      let writes = 0;
      p.b.handleStream(name, async (call) => {
        const w = call.responses.getWriter();
        try {
          for (;;) {
            await w.write(new Uint8Array(32 << 10));
            writes++;
          }
        } catch {
          canceled.resolve(call.signal.reason);
        }
      }, { inCapacity: 1, outCapacity: 1 });
      const st = await p.ab.newStream(name, EMPTY, { signal });
      await until(() => writes >= 1, "handler blocked on credit");
      await sleep(50);
      assert.equal(writes, 1, "the handler wrote past its credit");
      return { st, canceled: canceled.promise };
    }

    it("(a) a blocked response stream does not block 100 single requests nor another stream", async () => {
      const ctrl = new AbortController();
      const { canceled } = await blockedStream("blocked.a1", ctrl.signal);
      await hundredRequests(p.ab);
      const other = await p.ab.newStream("produce", u32(500));
      await withTimeout(expectMessages(other.responses, 500), "another stream");
      ctrl.abort(new Error("Done"));
      await withTimeout(canceled, "blocked handler canceled");
      await expectIdle(p);
    });

    it("(a) a blocked response stream stays open across ping intervals, then delivers everything", async () => {
      const N = 50;
      p.b.handleStream("blocked.long", produce, { inCapacity: 0, outCapacity: 1 });
      const st = await p.ab.newStream("blocked.long", u32(N));
      await sleep(4 * PING);
      await withTimeout(expectMessages(st.responses, N), "all responses");
      await expectIdle(p);
    });

    it("(a) a blocked response stream can be canceled", async () => {
      const ctrl = new AbortController();
      const { st, canceled } = await blockedStream("blocked.a2", ctrl.signal);
      const reason = new Error("Stop");
      ctrl.abort(reason);
      await assert.rejects(st.responses.getReader().read(), (e: unknown) => e === reason);
      const seen = await withTimeout(canceled, "blocked handler canceled");
      assert.ok(seen instanceof Error && seen.name === "AbortError");
      await expectIdle(p);
    });

    it("(b) aborting a caller's requests writer whose queue is full does not hang", async () => {
      const seen = deferred<unknown>();
      p.b.handleStream("full.requests.abort", async (call) => {
        seen.resolve(await aborted(call.signal)); // never reads its requests
      }, { inCapacity: 1, outCapacity: 1 });
      const st = await p.ab.newStream("full.requests.abort", EMPTY);
      const w = st.requests!.getWriter();
      const writes = [0, 1, 2, 3].map((i) => w.write(message(i)).then(() => "ok", () => "failed"));
      assert.equal(await writes[0], "ok");
      await sleep(50);
      const reason = new Error("Writer gave up");
      await withTimeout(w.abort(reason), "writer.abort() with a full queue");
      assert.deepEqual(await withTimeout(Promise.all(writes), "queued writes settle"), ["ok", "failed", "failed", "failed"]);
      const r = await withTimeout(seen.promise, "handler's signal aborted");
      assert.ok(r instanceof Error && r.name === "AbortError");
      await assert.rejects(st.responses.getReader().read(), (e: unknown) => e === reason);
      await expectIdle(p);
    });

    it("(b) closing a caller's requests writer whose queue is full does not hang the call", async () => {
      const seen = deferred<unknown>();
      p.b.handleStream("full.requests.close", async (call) => {
        seen.resolve(await aborted(call.signal));
      }, { inCapacity: 1, outCapacity: 1 });
      const ctrl = new AbortController();
      const st = await p.ab.newStream("full.requests.close", EMPTY, { signal: ctrl.signal });
      const w = st.requests!.getWriter();
      const writes = [0, 1, 2].map((i) => w.write(message(i)).catch(() => {}));
      const closed = w.close().then(() => "closed", () => "failed");
      await sleep(50);
      // The close waits for credit the handler never gives; canceling the call settles everything.
      ctrl.abort(new Error("Give up"));
      assert.equal(await withTimeout(closed, "writer.close() settles"), "failed");
      await withTimeout(Promise.all(writes), "writes settle");
      await withTimeout(seen.promise, "handler's signal aborted");
      await expectIdle(p);
    });

    it("(b) aborting a handler's responses writer whose queue is full does not hang", async () => {
      const aborting = deferred<string>();
      p.b.handleStream("full.responses.abort", async (call) => {
        const w = call.responses.getWriter();
        const writes = [0, 1, 2, 3].map((i) => w.write(message(i)).then(() => "ok", () => "failed"));
        await writes[0];
        await sleep(50);
        await withTimeout(w.abort(new Error("Handler gave up")), "handler's writer.abort()").then(
          () => aborting.resolve("aborted"),
          (e) => aborting.resolve(String(e)),
        );
        await Promise.all(writes);
      }, { inCapacity: 0, outCapacity: 1 });
      const st = await p.ab.newStream("full.responses.abort", EMPTY);
      assert.equal(await aborting.promise, "aborted");
      await withTimeout(
        assert.rejects(readAll(st.responses), (e: unknown) => isCode(e, RemoteError, "remote") && /Handler gave up/.test((e as Error).message)),
        "caller's responses error",
      );
      await expectIdle(p);
    });

    it("(b) canceling a call whose handler returned with a full queue does not hang", async () => {
      p.b.handleStream("full.responses.return", (call) => {
        const w = call.responses.getWriter();
        for (let i = 0; i < 10; i++) void w.write(message(i)).catch(() => {});
        void w.close().catch(() => {});
      }, { inCapacity: 0, outCapacity: 1 });
      const ctrl = new AbortController();
      const st = await p.ab.newStream("full.responses.return", EMPTY, { signal: ctrl.signal });
      await sleep(50);
      const reason = new Error("Give up");
      ctrl.abort(reason);
      await assert.rejects(readAll(st.responses), (e: unknown) => e === reason);
      await expectIdle(p);
    });

    it("(c) cancellation racing a normal end loses no response and leaks no state", async () => {
      const K = 5;
      p.b.handleStream("race.end", async (call) => {
        const w = call.responses.getWriter();
        for (let i = 0; i < K; i++) await w.write(message(i));
      }, { inCapacity: 0, outCapacity: 2 });
      let completed = 0;
      let canceled = 0;
      for (let round = 0; round < 150; round++) {
        const ctrl = new AbortController();
        const reason = new Error(`Round ${round}`);
        const st = await p.ab.newStream("race.end", EMPTY, { signal: ctrl.signal });
        const reader = st.responses.getReader();
        // Abort after reading `stopAt` messages, now or a little later, racing the end.
        const stopAt = round % (K + 1);
        const later = round % 3;
        let got = 0;
        let outcome: "done" | "error" = "done";
        try {
          for (;;) {
            if (got === stopAt) {
              if (later === 0) ctrl.abort(reason);
              else setTimeout(() => ctrl.abort(reason), later - 1);
            }
            const r = await withTimeout(reader.read(), `round ${round} read`);
            if (r.done) break;
            assert.equal(indexOf(r.value), got, `round ${round}: response ${got} arrived damaged or out of order`);
            got++;
          }
        } catch (e) {
          assert.equal(e, reason, `round ${round}: stream failed with ${String(e)}`);
          outcome = "error";
        }
        if (outcome === "done") {
          assert.equal(got, K, `round ${round}: stream ended after ${got} of ${K} responses`);
          completed++;
        } else canceled++;
      }
      console.log(`[${runtime}] cancel/end race: ${completed} rounds ended normally, ${canceled} were canceled`);
      assert.ok(canceled > 0);
      await expectIdle(p);
    });

    it("(c) a handler ending while the caller cancels leaks no state", async () => {
      p.b.handleStream("race.return", (call) => {
        const w = call.responses.getWriter();
        void w.write(message(0)).catch(() => {});
      }, { inCapacity: 1, outCapacity: 1 });
      const streams: Promise<unknown>[] = [];
      for (let round = 0; round < 100; round++) {
        const ctrl = new AbortController();
        const st = await p.ab.newStream("race.return", EMPTY, { signal: ctrl.signal });
        setTimeout(() => ctrl.abort(new Error("Race")), round % 4);
        streams.push(readAll(st.responses).then((r) => r.length, () => -1));
        if (round % 2 === 0) void st.requests!.getWriter().write(message(0)).catch(() => {});
      }
      const outcomes = await withTimeout(Promise.all(streams), "all streams settle");
      assert.ok(outcomes.every((n) => n === -1 || n === 1), `unexpected outcomes ${outcomes.join(",")}`);
      await expectIdle(p);
    });

    it("(d) a bidi stream where both sides write and neither reads does not stall other calls", async () => {
      let handlerWrites = 0;
      const canceled = deferred<void>();
      p.b.handleStream("bidi.stuck", async (call) => {
        const w = call.responses.getWriter();
        try {
          for (;;) {
            await w.write(new Uint8Array(64 << 10));
            handlerWrites++;
          }
        } catch {
          canceled.resolve();
        }
      }, { inCapacity: 4, outCapacity: 4 });
      const ctrl = new AbortController();
      const st = await p.ab.newStream("bidi.stuck", EMPTY, { signal: ctrl.signal });
      let callerWrites = 0;
      const w = st.requests!.getWriter();
      const writing = (async () => {
        for (;;) {
          await w.write(new Uint8Array(64 << 10));
          callerWrites++;
        }
      })().catch(() => {});
      await until(() => callerWrites >= 4 && handlerWrites >= 4, "both sides blocked");
      await sleep(50);
      assert.equal(callerWrites, 4, "the caller wrote past its credit");
      assert.equal(handlerWrites, 4, "the handler wrote past its credit");
      await hundredRequests(p.ab);
      await hundredRequests(p.ba);
      const other = await p.ab.newStream("echo.cap16", EMPTY);
      await withTimeout(Promise.all([writeAll(other.requests!, 1_000), expectMessages(other.responses, 1_000)]), "another stream");
      ctrl.abort(new Error("Done"));
      await withTimeout(canceled.promise, "stuck handler canceled");
      await writing;
      await expectIdle(p);
    });

    for (const delay of [0, 200]) {
      it(`(e) the caller receives all N+k responses of a handler that wrote them at once and returned (read after ${delay} ms)`, async () => {
        const N = 4;
        const K = 20;
        const name = `burst.${delay}`;
        p.b.handleStream(name, (call) => {
          const w = call.responses.getWriter();
          for (let i = 0; i < N + K; i++) void w.write(message(i)).catch(() => {});
        }, { inCapacity: 0, outCapacity: N });
        const st = await p.ab.newStream(name, EMPTY);
        await sleep(delay);
        await withTimeout(expectMessages(st.responses, N + K), "all responses");
        await expectIdle(p);
      });
    }

    it("(e) the caller receives all N+k responses when the handler closes without awaiting and returns", async () => {
      const N = 4;
      const K = 20;
      p.b.handleStream("burst.close", (call) => {
        const w = call.responses.getWriter();
        for (let i = 0; i < N + K; i++) void w.write(message(i)).catch(() => {});
        void w.close();
      }, { inCapacity: 0, outCapacity: N });
      const st = await p.ab.newStream("burst.close", EMPTY);
      await sleep(100);
      await withTimeout(expectMessages(st.responses, N + K), "all responses");
      await expectIdle(p);
    });
  });
});

describe("streams and connection loss", () => {
  it("errors both sides with DisconnectedError when the connection drops, then works again after reconnecting", async () => {
    const p = await makePair({ proxy: true });
    try {
      const seen = deferred<unknown>();
      const writeFailed = deferred<unknown>();
      const requestsFailed = deferred<unknown>();
      p.b.handleStream("loss", async (call) => {
        readAll(call.requests!).then(() => requestsFailed.resolve(null), (e) => requestsFailed.resolve(e));
        const w = call.responses.getWriter();
        await w.write(message(0));
        seen.resolve(await aborted(call.signal));
        await w.write(message(1)).then(() => writeFailed.resolve(null), (e) => writeFailed.resolve(e));
      });
      registerCommon(p.b);
      const st = await p.ab.newStream("loss", EMPTY);
      const reader = st.responses.getReader();
      assert.equal(indexOf((await reader.read()).value!), 0);
      p.cut();
      await withTimeout(assert.rejects(reader.read(), (e: unknown) => isCode(e, DisconnectedError, "disconnected")), "caller error");
      await assert.rejects(st.requests!.getWriter().write(message(0)), DisconnectedError);
      assert.ok(isCode(await withTimeout(seen.promise, "handler aborted"), DisconnectedError, "disconnected"));
      assert.ok(isCode(await withTimeout(writeFailed.promise, "handler's write failed"), DisconnectedError, "disconnected"));
      assert.ok(isCode(await withTimeout(requestsFailed.promise, "handler's requests failed"), DisconnectedError, "disconnected"));
      await expectIdle(p);
      await withTimeout(p.ab.waitForConnect({ timeout: WAIT }), "reconnect");
      const again = await p.ab.newStream("produce", u32(100));
      await withTimeout(expectMessages(again.responses, 100), "stream after reconnect");
      await expectIdle(p);
    } finally {
      await p.close();
    }
  });

  it("errors the caller's stream with DisconnectedError when the peer's Manager and server stop", async () => {
    const p = await makePair();
    try {
      const seen = deferred<unknown>();
      p.b.handleStream("peer.stop", async (call) => {
        const w = call.responses.getWriter();
        await w.write(message(0));
        seen.resolve(await aborted(call.signal));
      }, { inCapacity: 0 });
      const st = await p.ab.newStream("peer.stop", EMPTY);
      const reader = st.responses.getReader();
      await reader.read();
      await p.stopB();
      await withTimeout(assert.rejects(reader.read(), (e: unknown) => isCode(e, DisconnectedError, "disconnected")), "caller error");
      assert.ok(isCode(await withTimeout(seen.promise, "handler aborted"), DisconnectedError, "disconnected"));
      await expectIdle(p);
    } finally {
      await p.close();
    }
  });

  it("(a) a blocked response stream does not block reconnecting", async () => {
    const p = await makePair({ proxy: true });
    try {
      registerCommon(p.b);
      let writes = 0;
      p.b.handleStream("blocked.reconnect", async (call) => {
        const w = call.responses.getWriter();
        for (;;) {
          await w.write(new Uint8Array(32 << 10));
          writes++;
        }
      }, { inCapacity: 0, outCapacity: 1 });
      const st = await p.ab.newStream("blocked.reconnect", EMPTY);
      await until(() => writes >= 1, "handler blocked");
      p.cut();
      await withTimeout(assert.rejects(readAll(st.responses), DisconnectedError), "blocked stream fails");
      await withTimeout(p.ab.waitForConnect({ timeout: WAIT }), "reconnect");
      await hundredRequests(p.ab);
      await expectIdle(p);
    } finally {
      await p.close();
    }
  });
});
