/**
 * A served Manager under hostile connections: raw WebSockets sending random
 * bytes, frames without a hello, forged, replayed and stale hellos, text
 * frames, silence, and more handshakes than it accepts at once. The server must
 * stay up and a legitimate peer must keep completing requests.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Manager, type ManagerOptions, shouldDial, TimeoutError } from "../mod.ts";
import { type GridServer, serve } from "../src/adapters/serve.ts";
import { decodeFrame, encodeFrame, encodeMessage, encodeRoute, messageSize, type OutMessage } from "../src/protocol/frame.ts";
import {
  decodeReady,
  decodeWelcome,
  importSecret,
  type PeerHello,
  randomId,
  type Ready,
  verifyTranscript,
  type Welcome,
} from "../src/auth/handshake.ts";
import {
  OP_CANCEL,
  OP_ERROR,
  OP_HELLO,
  OP_NAMES,
  OP_PING,
  OP_PONG,
  OP_PROOF,
  OP_READY,
  OP_REQUEST,
  OP_RESPONSE,
  OP_WELCOME,
  opHasRoute,
  PROTOCOL_VERSION,
} from "../src/protocol/ops.ts";
import { decodeError } from "../src/mux/wire.ts";
import { CLOSE_NOT_MEMBER } from "../src/auth/acceptor.ts";
import { handshakeFrame, helloFrame, peerHello as anyPeerHello, proofFor as proofWith } from "./_handshake.ts";
import { urlWhere } from "./_net.ts";
import { withTimeout } from "./_wait.ts";

const SECRET = "hostile test secret";
const PATH = "/grid/v1";
const WAIT_MS = 10_000;
const TEST = { timeout: 120_000 };
const MAX_BYTES = 64 << 10;
/** Raw sockets in the flood, and how many run at once (below maxConcurrentHandshakes). */
const FLOOD_SOCKETS = 3_000;
const FLOOD_CONCURRENCY = 12;
const enc = new TextEncoder();

// --- helpers -----------------------------------------------------------------

/** A host name that no server listens on, satisfying `pred`. */
function ghostWhere(pred: (u: string) => boolean): string {
  for (let p = 1; p < 65_536; p++) {
    const u = `ws://127.0.0.2:${p}`;
    if (pred(u)) return u;
  }
  throw new Error("Cannot find a ghost host name");
}

interface TestNode {
  url: string;
  grid: Manager;
  server: GridServer;
}

async function startNode(url: string, hosts: string[], over: Partial<ManagerOptions> = {}): Promise<TestNode> {
  const grid = new Manager({
    secret: SECRET,
    pingInterval: 300,
    backoff: { base: 20, cap: 200 },
    maxMessageBytes: MAX_BYTES,
    ...over,
    local: url,
    hosts,
  });
  try {
    return { url, grid, server: await serve(grid, { port: Number(new URL(url).port), hostname: "127.0.0.1" }) };
  } catch (e) {
    await grid.close();
    throw e;
  }
}

async function stopNode(n: TestNode | undefined): Promise<void> {
  if (n === undefined) return;
  await n.grid.close();
  await n.server.close();
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A raw client socket: every binary message queued, the close captured. */
class Raw {
  readonly ws: WebSocket;
  readonly opened: Promise<boolean>;
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly queue: Uint8Array[] = [];
  private readonly waiters: ((b: Uint8Array | null) => void)[] = [];
  private isClosed = false;

  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.binaryType = "arraybuffer";
    this.ws.addEventListener("message", (ev) => {
      if (!(ev.data instanceof ArrayBuffer)) return;
      const b = new Uint8Array(ev.data);
      const w = this.waiters.shift();
      if (w) w(b);
      else this.queue.push(b);
    });
    this.closed = new Promise((resolve) => {
      this.ws.addEventListener("close", (ev) => {
        this.isClosed = true;
        for (const w of this.waiters.splice(0)) w(null);
        resolve({ code: ev.code, reason: ev.reason });
      });
    });
    this.opened = new Promise((resolve) => {
      this.ws.addEventListener("open", () => resolve(true), { once: true });
      this.closed.then(() => resolve(false));
    });
    this.ws.addEventListener("error", () => {});
  }

  /** The next binary message, or null once the socket closed. */
  next(ms = WAIT_MS): Promise<Uint8Array | null> {
    const b = this.queue.shift();
    if (b !== undefined) return Promise.resolve(b);
    if (this.isClosed) return Promise.resolve(null);
    return withTimeout(new Promise<Uint8Array | null>((r) => this.waiters.push(r)), "next message", ms);
  }

  send(data: Uint8Array<ArrayBuffer> | string): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(data);
  }

  close(): Promise<{ code: number; reason: string }> {
    try {
      this.ws.close(1000);
    } catch {
      // already closing
    }
    return withTimeout(this.closed, "raw close");
  }
}

async function openRaw(url: string): Promise<Raw> {
  const r = new Raw(url);
  assert.equal(await withTimeout(r.opened, `open ${url}`), true, "the upgrade is accepted");
  return r;
}

function peerHello(from: string, to: string, fields: Partial<PeerHello> = {}): PeerHello {
  return anyPeerHello(from, to, { max: MAX_BYTES, ...fields });
}

function proofFor(hello: PeerHello, welcome: Welcome, secret = SECRET): Promise<Uint8Array<ArrayBuffer>> {
  return proofWith(hello, welcome, secret);
}

/** The next handshake message of `op` on `raw`, or null when it closed first. */
async function nextHandshake(raw: Raw, op: number): Promise<Uint8Array | null> {
  const got = await raw.next();
  if (got === null) return null;
  const [m] = decodeFrame(got, MAX_BYTES);
  assert.equal(m.op, op, `expected op ${OP_NAMES[op]}, got ${OP_NAMES[m.op] ?? m.op}`);
  return m.payload;
}

/** Sends `frame` on a new raw socket and returns the welcome it got (null if none). */
async function handshake(url: string, frame: Uint8Array<ArrayBuffer>): Promise<{ raw: Raw; welcome: Welcome | null }> {
  const raw = await openRaw(url);
  raw.send(frame);
  const payload = await nextHandshake(raw, OP_WELCOME);
  return { raw, welcome: payload === null ? null : decodeWelcome(payload) };
}

/** The whole peer handshake by hand: hello, welcome, proof (made with `secret`), ready. */
async function peerHandshake(
  url: string,
  hello: PeerHello,
  secret = SECRET,
): Promise<{ raw: Raw; welcome: Welcome; ready: Ready | null; proof: Uint8Array<ArrayBuffer> }> {
  const { raw, welcome } = await handshake(url, helloFrame(hello));
  assert.ok(welcome !== null && welcome.ok, `welcome: ${welcome?.reason}`);
  const proof = await proofFor(hello, welcome, secret);
  raw.send(proof);
  const payload = await nextHandshake(raw, OP_READY);
  return { raw, welcome, ready: payload === null ? null : decodeReady(payload), proof };
}

async function refusedWith(url: string, frame: Uint8Array<ArrayBuffer>, code: string, closeCode = 1008): Promise<void> {
  const { raw, welcome } = await handshake(url, frame);
  assert.ok(welcome !== null, "a refusal is explained by a welcome");
  assert.equal(welcome.ok, false);
  assert.equal(welcome.code, code);
  assert.equal(welcome.mac, "");
  const closed = await withTimeout(raw.closed, "close after refusal");
  assert.equal(closed.code, closeCode);
}

/** sfc32, seeded; the seed is printed so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = 0x9e3779b9, b = 0x243f6a88, c = 0xb7e15162, d = seed >>> 0;
  const next = () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 0x100000000;
  };
  for (let i = 0; i < 16; i++) next();
  return next;
}

// --- the cluster under attack ------------------------------------------------------

describe("hostile connections to a served Manager", () => {
  let target: TestNode;
  let peer: TestNode;
  /** In the target's hosts, dials the target, never runs: its name is used by hand-made hellos. */
  let ghost: string;
  /** In the target's hosts, but the target is the one that dials it. */
  let dialedGhost: string;
  let endpoint: string;
  const handled = { echo: 0, wait: 0 };
  const waitAborts: unknown[] = [];

  before(async () => {
    const taken = new Set<string>();
    const targetUrl = await urlWhere(() => true, taken);
    const peerUrl = await urlWhere((u) => shouldDial(u, targetUrl), taken);
    ghost = ghostWhere((u) => shouldDial(u, targetUrl));
    dialedGhost = ghostWhere((u) => shouldDial(targetUrl, u));
    target = await startNode(targetUrl, [targetUrl, peerUrl, ghost, dialedGhost], {
      handshakeTimeout: 500,
      helloTimeout: 500,
      // Every socket of the flood comes from 127.0.0.1; the per-address cap has a test of its own.
      maxHandshakesPerAddress: 64,
    });
    peer = await startNode(peerUrl, [targetUrl, peerUrl]);
    endpoint = targetUrl + PATH;
    target.grid.handle("echo", (req) => {
      handled.echo++;
      return req;
    });
    target.grid.handle("wait", async (_req, ctx) => {
      handled.wait++;
      const signal = ctx.signal;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 20_000);
        signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
      waitAborts.push(signal.reason);
      throw signal.reason;
    });
    await peer.grid.connection(targetUrl).waitForConnect({ timeout: WAIT_MS });
  });

  after(async () => {
    await stopNode(peer);
    await stopNode(target);
  });

  async function legitRoundTrip(tag: number): Promise<void> {
    const payload = Uint8Array.of(tag & 255, (tag >> 8) & 255, 7);
    const res = await peer.grid.connection(target.url).request("echo", payload, { timeout: WAIT_MS });
    assert.deepEqual([...res], [...payload]);
  }

  it(`survives ${FLOOD_SOCKETS} raw sockets of random and forged frames while the peer keeps working`, TEST, async () => {
    const seed = (Date.now() ^ (Math.random() * 0x100000000)) >>> 0;
    console.log(`hostile flood: seed ${seed}`);
    const rand = rng(seed);
    const int = (n: number) => Math.floor(rand() * n);
    const bytes = (n: number) => Uint8Array.from({ length: n }, () => int(256));
    // No hellos: a frame whose first message is a hello is answered, not dropped.
    const ops = Object.keys(OP_NAMES).map(Number).filter((op) => op !== OP_HELLO);
    const randomMessage = (): OutMessage => {
      const op = ops[int(ops.length)];
      return {
        op,
        flags: 0,
        mux: int(1000),
        seq: int(10),
        deadline: int(5000),
        route: opHasRoute(op) ? encodeRoute(["echo", "wait", "grid.stats", "nope"][int(4)], int(2) ? "" : "s") : null,
        payload: bytes(int(64)),
      };
    };
    const randomFrame = (): Uint8Array<ArrayBuffer> => {
      const msgs = Array.from({ length: 1 + int(5) }, randomMessage);
      return encodeFrame(msgs, 0, msgs.length, msgs.reduce((n, m) => n + messageSize(m), 0));
    };
    const hosts = [target.url, peer.url, ghost, "ws://127.0.0.9:1"];
    const baseHello = (): Record<string, unknown> => ({ ...peerHello(hosts[int(hosts.length)], target.url) });

    type Kind =
      | "noise"
      | "frame-without-hello"
      | "bad-proof"
      | "wrong-version"
      | "text"
      | "mutated-hello"
      | "hello-plus-more"
      | "oversize";
    const kinds: Kind[] = [
      "noise",
      "frame-without-hello",
      "bad-proof",
      "wrong-version",
      "text",
      "mutated-hello",
      "hello-plus-more",
      "oversize",
    ];
    const outcome = new Map<string, number>();
    let frames = 0;
    let sessions = 0;

    const attack = async (i: number): Promise<void> => {
      const kind = i % 50 === 49 ? "oversize" : kinds[int(kinds.length - 1)];
      const raw = new Raw(endpoint);
      if (!(await withTimeout(raw.opened, `open hostile socket ${i}`))) {
        const c = await raw.closed;
        outcome.set(`${kind}: refused upgrade ${c.code}`, (outcome.get(`${kind}: refused upgrade ${c.code}`) ?? 0) + 1);
        return;
      }
      switch (kind) {
        case "noise":
          raw.send(bytes(int(600)));
          break;
        case "frame-without-hello":
          raw.send(randomFrame());
          break;
        case "bad-proof":
          // A hello from the ghost (in the target's hosts) gets a real challenge; the proof is random.
          raw.send(helloFrame(peerHello(ghost, target.url)));
          break;
        case "wrong-version":
          raw.send(helloFrame({ ...baseHello(), v: [0, 1, 3, 99, -1, 1.5][int(6)] }));
          break;
        case "text":
          raw.send(["hello", "{\"kind\":\"peer\"}", ""][int(3)]);
          break;
        case "mutated-hello": {
          const f = helloFrame(baseHello());
          const flips = 1 + int(6);
          for (let k = 0; k < flips; k++) f[18 + int(f.length - 18)] ^= 1 << int(8);
          raw.send(f);
          break;
        }
        case "hello-plus-more": {
          const hello = helloFrame(baseHello());
          const more = randomFrame();
          const both = new Uint8Array(hello.length + more.length);
          both.set(hello);
          both.set(more, hello.length);
          raw.send(both);
          break;
        }
        case "oversize":
          // Over the handshake's frame limit (closed by the Link), or over the runtime's (closed by it).
          raw.send(new Uint8Array(int(2) ? 4097 + int(4000) : target.grid.maxFrameBytes + 1 + int(1000)));
          break;
      }
      frames++;
      // A few more frames behind the first (the server has decided to close already), except
      // where the outcome is checked: frames after a hello end it before its welcome, and
      // writes racing the server's close can turn the close code seen here into an abnormal one.
      const checked = kind === "bad-proof" || kind === "wrong-version" || kind === "text" ||
        kind === "frame-without-hello";
      for (let k = checked ? 0 : int(3); k > 0; k--) {
        raw.send(randomFrame());
        frames++;
      }
      // Every hostile socket is closed by the server, promptly.
      const replies: Welcome[] = [];
      const readies: Ready[] = [];
      for (;;) {
        const got = await raw.next();
        if (got === null) break;
        try {
          for (const m of decodeFrame(got, MAX_BYTES)) {
            if (m.op === OP_WELCOME) {
              const w = decodeWelcome(m.payload);
              replies.push(w);
              if (kind === "bad-proof" && w.ok) raw.send(handshakeFrame(OP_PROOF, { mac: randomId(32) }));
            }
            if (m.op === OP_READY) readies.push(decodeReady(m.payload));
          }
        } catch {
          // a ping or pong or anything else: not what we check
        }
      }
      const closed = await raw.closed;
      if (readies.some((r) => r.ok)) sessions++;
      if (kind === "wrong-version") {
        assert.equal(replies.length, 1, `${kind}: one welcome explains the refusal`);
        assert.equal(replies[0].code, "protocol", `${kind} welcome code`);
        assert.equal(closed.code, 1008, `${kind} close code`);
      }
      if (kind === "bad-proof") {
        assert.equal(replies[0]?.ok, true, "the ghost's hello gets a challenge");
        assert.equal(readies.length, 1, "one ready explains the refusal of the proof");
        assert.equal(readies[0].code, "unauthorized");
        assert.equal(closed.code, 1008, `${kind} close code`);
      }
      if (kind === "text") assert.equal(closed.code, 1003, "text frames are refused with 1003");
      if (kind === "frame-without-hello") assert.equal(closed.code, 1002, "frames before a hello: 1002");
      const key = `${kind}: ${closed.code}${replies.length ? ` welcome ${replies[0].code}` : ""}`;
      outcome.set(key, (outcome.get(key) ?? 0) + 1);
    };

    // Legitimate traffic all through the flood.
    let flooding = true;
    let legit = 0;
    const legitLoop = (async () => {
      while (flooding) {
        await legitRoundTrip(legit++);
        await sleep(2);
      }
    })();

    let nextIndex = 0;
    const workers = Array.from({ length: FLOOD_CONCURRENCY }, async () => {
      while (nextIndex < FLOOD_SOCKETS) await attack(nextIndex++);
    });
    try {
      await Promise.all(workers);
    } finally {
      flooding = false;
      await legitLoop;
    }
    console.log(`hostile flood: ${FLOOD_SOCKETS} sockets, ${frames} frames, ${legit} legit requests during; outcomes`, Object.fromEntries(outcome));
    assert.ok(frames >= FLOOD_SOCKETS, `${frames} frames sent`);
    assert.equal(sessions, 0, "no forged proof was accepted");
    assert.ok(legit > 0, "the peer made requests during the flood");
    // The server is up, the peer's connection was never dropped, and new requests work.
    for (let i = 0; i < 20; i++) await legitRoundTrip(10_000 + i);
    assert.equal(peer.grid.connection(target.url).state, "up");
    assert.equal(peer.grid.stats().connections[target.url].reconnects, 0);
    assert.equal(handled.wait, 0, "no hostile request reached a handler");
    const s = target.grid.stats();
    assert.equal(s.connections[peer.url].state, "up");
    assert.equal(s.connections[ghost].state, "connecting", "no hostile socket was adopted as a peer");
  });

  it("refuses a hello with a wrong protocol version, or malformed, with welcome code \"protocol\"", TEST, async () => {
    await refusedWith(endpoint, helloFrame(peerHello(ghost, target.url, { v: PROTOCOL_VERSION + 1 })), "protocol");
    // A version 1 hello (time and MAC, no limits) is told the version, not that it is malformed.
    const v1 = { kind: "peer", v: 1, from: ghost, to: target.url, id: randomId(), t: Date.now(), nonce: randomId(), mac: randomId(32) };
    const { raw, welcome } = await handshake(endpoint, helloFrame(v1));
    assert.equal(welcome?.code, "protocol");
    assert.match(welcome!.reason, /version 1 is not supported/);
    await withTimeout(raw.closed, "close after v1 refusal");
    await refusedWith(endpoint, helloFrame({ kind: "peer", v: "1", from: ghost }), "protocol");
    await refusedWith(endpoint, helloFrame({ kind: "robot", v: PROTOCOL_VERSION }), "protocol");
    await refusedWith(endpoint, helloFrame(peerHello(ghost, target.url, { nonce: "00" })), "protocol");
  });

  it("a full handshake by hand works; its hello and proof replayed on a new socket never yield a session", TEST, async () => {
    const hello = peerHello(ghost, target.url);
    const first = await peerHandshake(endpoint, hello);
    assert.equal(first.ready?.ok, true);
    // The welcome proves the target knows the secret, bound to our challenge.
    const key = await importSecret(SECRET);
    assert.equal(await verifyTranscript(key, "acceptor", { v: PROTOCOL_VERSION, hello, welcome: first.welcome }, first.welcome.mac), true);
    assert.equal(first.welcome.from, target.url);
    assert.equal(first.welcome.id, target.grid.instanceId);
    await first.raw.close();
    // The same hello gets a new challenge, so the captured proof no longer verifies.
    const before = target.grid.stats().rejectedHandshakes["bad-mac"] ?? 0;
    const { raw, welcome } = await handshake(endpoint, helloFrame(hello));
    assert.equal(welcome?.ok, true);
    assert.notEqual(welcome!.nonce, first.welcome.nonce);
    raw.send(first.proof);
    const ready = decodeReady((await nextHandshake(raw, OP_READY))!);
    assert.equal(ready.ok, false);
    assert.equal(ready.code, "unauthorized");
    assert.equal((await withTimeout(raw.closed, "close after replay")).code, 1008);
    assert.equal(target.grid.stats().rejectedHandshakes["bad-mac"], before + 1);
    // A proof made with another secret is refused the same way.
    const other = await peerHandshake(endpoint, peerHello(ghost, target.url), "another secret");
    assert.equal(other.ready?.ok, false);
    await withTimeout(other.raw.closed, "close after a foreign proof");
    await legitRoundTrip(1);
  });

  it("refuses wrong names and the wrong dial direction before any challenge", TEST, async () => {
    await refusedWith(endpoint, helloFrame(peerHello(ghost, "ws://127.0.0.1:1")), "unauthorized");
    // A stranger is told it is not in the host list, with its own close code (not a bad secret).
    await refusedWith(endpoint, helloFrame(peerHello("ws://127.0.0.9:9", target.url)), "unknown-host", CLOSE_NOT_MEMBER);
    await refusedWith(endpoint, helloFrame(peerHello(target.url, target.url)), "unauthorized");
    // Known, but the target is the side that dials this host.
    await refusedWith(endpoint, helloFrame(peerHello(dialedGhost, target.url)), "protocol");
    // None of this disturbed the real peer.
    await legitRoundTrip(1);
  });

  it("an authenticated raw peer: the remote deadline aborts the handler and answers \"timeout\"; cancel and duplicate ids", TEST, async () => {
    const { raw, ready } = await peerHandshake(endpoint, peerHello(ghost, target.url));
    assert.equal(ready?.ok, true);
    try {
      const request = (mux: number, handler: string, deadline: number, payload = new Uint8Array(0)) =>
        raw.send(encodeMessage({ op: OP_REQUEST, flags: 0, mux, seq: 0, deadline, route: encodeRoute(handler, ""), payload }));
      /** Next message of `op` for `mux`, skipping pings. */
      const expectMessage = async (op: number, mux: number) => {
        for (;;) {
          const got = await raw.next();
          assert.ok(got !== null, `socket closed while waiting for op ${op} on mux ${mux}`);
          for (const m of decodeFrame(got, MAX_BYTES)) {
            if (m.op === OP_PING) {
              raw.send(encodeMessage({ op: OP_PONG, flags: 0, mux: 0, seq: 0, deadline: 0, route: null, payload: m.payload.slice() }));
              continue;
            }
            if (m.mux === mux && m.op === op) return m;
            assert.fail(`unexpected op ${m.op} on mux ${m.mux}`);
          }
        }
      };
      request(1, "echo", 0, enc.encode("hi"));
      assert.deepEqual([...(await expectMessage(OP_RESPONSE, 1)).payload], [...enc.encode("hi")]);

      // The deadline alone, with no cancel from the caller, aborts the handler.
      const aborts = waitAborts.length;
      request(2, "wait", 150);
      const err = decodeError((await expectMessage(OP_ERROR, 2)).payload);
      assert.ok(err instanceof TimeoutError, `got ${err.name}`);
      assert.equal(err.code, "timeout");
      assert.equal(waitAborts.length, aborts + 1);
      assert.ok(waitAborts[aborts] instanceof TimeoutError);

      // A second request on an id in use is refused; cancel ends the first one.
      request(3, "wait", 0);
      await sleep(20);
      request(3, "wait", 0);
      assert.equal(decodeError((await expectMessage(OP_ERROR, 3)).payload).code, "protocol");
      raw.send(encodeMessage({ op: OP_CANCEL, flags: 0, mux: 3, seq: 0, deadline: 0, route: null, payload: Uint8Array.of(0) }));
      const t0 = Date.now();
      while (waitAborts.length < aborts + 2 && Date.now() - t0 < WAIT_MS) await sleep(5);
      assert.equal(waitAborts.length, aborts + 2, "the cancel aborted the handler");
      assert.equal((waitAborts[aborts + 1] as Error).name, "AbortError");

      // An unknown handler, then garbage: the link is dropped, the real peer is not.
      request(4, "nope", 0);
      assert.equal(decodeError((await expectMessage(OP_ERROR, 4)).payload).code, "unknown-handler");
      raw.send(Uint8Array.of(0xff, 0xff));
      assert.equal((await withTimeout(raw.closed, "close after garbage")).code, 1002);
      await legitRoundTrip(2);
    } finally {
      await raw.close();
    }
  });

  it("a hello answered by silence instead of a proof is closed at helloTimeout (1008) and counted as a timeout", TEST, async () => {
    const before = target.grid.stats().rejectedHandshakes.timeout ?? 0;
    const { raw, welcome } = await handshake(endpoint, helloFrame(peerHello(ghost, target.url)));
    assert.equal(welcome?.ok, true);
    const t0 = performance.now();
    assert.equal((await withTimeout(raw.closed, "closed for want of a proof")).code, 1008);
    assert.ok(performance.now() - t0 >= 400, "not before helloTimeout (500 ms)");
    assert.equal(target.grid.stats().rejectedHandshakes.timeout, before + 1);
    assert.notEqual(target.grid.connection(ghost).state, "up");
    await legitRoundTrip(4);
  });

  it("a second hello, or a proof sent twice, closes the socket with 1002", TEST, async () => {
    // Two hellos in one frame: the second arrives while the first is being checked.
    const hello = helloFrame(peerHello(ghost, target.url));
    const twice = new Uint8Array(2 * hello.length);
    twice.set(hello);
    twice.set(hello, hello.length);
    const raw = await openRaw(endpoint);
    raw.send(twice);
    for (let m = await raw.next(); m !== null; m = await raw.next()) {
      for (const msg of decodeFrame(m, MAX_BYTES)) assert.notEqual(msg.op, OP_READY, "no session from a doubled hello");
    }
    assert.equal((await raw.closed).code, 1002);
    // A handshake message after the handshake completed ends the link as a protocol error.
    const done = await peerHandshake(endpoint, peerHello(ghost, target.url));
    assert.equal(done.ready?.ok, true);
    done.raw.send(done.proof);
    assert.equal((await withTimeout(done.raw.closed, "closed after a second proof")).code, 1002);
    await legitRoundTrip(5);
  });

  it("closes a socket that sends nothing after helloTimeout, and one that pings before its hello", TEST, async () => {
    const t0 = performance.now();
    const raw = await openRaw(endpoint);
    const closed = await withTimeout(raw.closed, "silent socket closed");
    const waited = performance.now() - t0;
    assert.equal(closed.code, 1008);
    assert.ok(waited >= 400, `closed after ${waited} ms; helloTimeout is 500`);
    // A socket that opens and only sends pings is no better: no pong, closed at once.
    const pinger = await openRaw(endpoint);
    pinger.send(encodeMessage({ op: OP_PING, flags: 0, mux: 0, seq: 0, deadline: 0, route: null, payload: new Uint8Array(8) }));
    assert.equal((await withTimeout(pinger.closed, "pinger closed")).code, 1002);
    await legitRoundTrip(3);
  });
});

describe("handshake admission control", () => {
  it("a full pool of silent sockets makes room for newcomers (oldest closed with 1013), and the real peer connects at once", TEST, async () => {
    const taken = new Set<string>();
    const targetUrl = await urlWhere(() => true, taken);
    const peerUrl = await urlWhere((u) => shouldDial(u, targetUrl), taken);
    const hosts = [targetUrl, peerUrl];
    const LIMIT = 4;
    const EXTRA = 8;
    let target: TestNode | undefined;
    let peer: TestNode | undefined;
    const raws: Raw[] = [];
    try {
      target = await startNode(targetUrl, hosts, {
        maxConcurrentHandshakes: LIMIT,
        maxHandshakesPerAddress: 64,
        helloTimeout: 10_000,
        handshakeTimeout: 10_000,
      });
      target.grid.handle("echo", (req) => req);
      // Fill every handshake slot with silent sockets, then open more: each newcomer evicts the oldest.
      for (let i = 0; i < LIMIT + EXTRA; i++) raws.push(await openRaw(targetUrl + PATH));
      const evicted = raws.slice(0, EXTRA);
      const codes = await Promise.all(evicted.map((r) => withTimeout(r.closed, "evicted socket closed")));
      assert.deepEqual(codes.map((c) => c.code), new Array(EXTRA).fill(1013));
      assert.equal(target.grid.stats().rejectedHandshakes.evicted, EXTRA);
      // The peer connects although every slot was held by a silent socket (hello timeout 10 s).
      const t0 = performance.now();
      peer = await startNode(peerUrl, hosts);
      await peer.grid.connection(targetUrl).waitForConnect({ timeout: WAIT_MS });
      assert.ok(performance.now() - t0 < 5_000, "connected long before the silent sockets timed out");
      assert.deepEqual([...await peer.grid.connection(targetUrl).request("echo", Uint8Array.of(1, 2))], [1, 2]);
    } finally {
      await Promise.all(raws.map((r) => r.close().catch(() => {})));
      await stopNode(peer);
      await stopNode(target);
    }
  });

  it("one remote address holds at most maxHandshakesPerAddress slots: more are closed with 1013", TEST, async () => {
    const taken = new Set<string>();
    const targetUrl = await urlWhere(() => true, taken);
    let target: TestNode | undefined;
    const raws: Raw[] = [];
    try {
      target = await startNode(targetUrl, [targetUrl], { maxHandshakesPerAddress: 3, helloTimeout: 10_000 });
      for (let i = 0; i < 3; i++) raws.push(await openRaw(targetUrl + PATH));
      const extra = Array.from({ length: 4 }, () => new Raw(targetUrl + PATH));
      raws.push(...extra);
      const codes = await Promise.all(extra.map((r) => withTimeout(r.closed, "socket over the address cap closed")));
      assert.deepEqual(codes.map((c) => c.code), [1013, 1013, 1013, 1013]);
      assert.equal(target.grid.stats().rejectedHandshakes["address-limit"], 4);
    } finally {
      await Promise.all(raws.map((r) => r.close().catch(() => {})));
      await stopNode(target);
    }
  });
});
