/**
 * Dynamic membership in one process: `setHosts`, `grid.hosts`, the `hosts` event, the
 * not-member refusal, `broadcast`, `pick` and `retryOn: "disconnected"`, with Managers served
 * on loopback and talking over real WebSockets.
 */
import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  type CallOptions,
  defineSingle,
  DisconnectedError,
  GridError,
  type HostsEventDetail,
  Manager,
  type ManagerOptions,
  RemoteError,
  shouldDial,
  TimeoutError,
  UnknownHandlerError,
} from "../mod.ts";
import { type GridServer, serve } from "../src/adapters/serve.ts";
import { freeUrls } from "./_net.ts";
import { withTimeout } from "./_wait.ts";

const SECRET = "membership test secret";
const WAIT_MS = 10_000;
const TEST = { timeout: 60_000 };
const enc = new TextEncoder();
const dec = new TextDecoder();

interface TestNode {
  url: string;
  grid: Manager;
  server: GridServer;
}

const BASE: Partial<ManagerOptions> = {
  pingInterval: 300,
  backoff: { base: 20, cap: 300 },
  handshakeTimeout: 3_000,
  requestTimeout: 8_000,
};

const started: TestNode[] = [];

async function startNode(url: string, hosts: string[], over: Partial<ManagerOptions> = {}): Promise<TestNode> {
  const grid = new Manager({ secret: SECRET, ...BASE, ...over, local: url, hosts });
  grid.handle("whoami", () => enc.encode(url));
  // Answers with its URL after the number of ms in the request.
  grid.handle("slow", async (req) => {
    await new Promise((r) => setTimeout(r, Number(dec.decode(req))));
    return enc.encode(url);
  });
  grid.handle("hold", (_req, ctx) =>
    new Promise<Uint8Array>((_resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("held too long")), 20_000);
      ctx.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        reject(ctx.signal.reason);
      }, { once: true });
    }));
  const server = await serve(grid, { port: Number(new URL(url).port), hostname: "127.0.0.1" });
  const node = { url, grid, server };
  started.push(node);
  return node;
}

/** Stops `n` (its grid, then its server); a node stopped by a test is no longer stopped after it. */
async function stopNode(n: TestNode): Promise<void> {
  const i = started.indexOf(n);
  if (i >= 0) started.splice(i, 1);
  await n.grid.close();
  await n.server.close();
}

/**
 * Three nodes a, b, c with every pair up, and a's call of `handler` in service on b (b counts
 * it as served); `call` settles with its result or error.
 */
async function callInServiceOnB(handler: string, payload: Uint8Array, options: CallOptions) {
  const urls = await freeUrls(3);
  const nodes = await Promise.all(urls.map((u) => startNode(u, urls)));
  await waitUntil(() => allUp(nodes), "every pair up");
  const [na, nb] = nodes;
  const toB = na.grid.connection(urls[1]);
  const call = settled(toB.request(handler, payload, options));
  await waitUntil(() => nb.grid.stats().connections[urls[0]].serving.requests === 1, `the ${handler} call reached b`);
  return { urls, nodes, na, nb, toB, call };
}

afterEach(async () => {
  for (const n of started.splice(0)) await stopNode(n);
});

async function waitUntil(cond: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > ms) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function allUp(nodes: TestNode[]): boolean {
  return nodes.every((n) => nodes.every((m) => m === n || n.grid.stats().connections[m.url]?.state === "up"));
}

/** Resolves with the next "hosts" event's detail. */
function nextHosts(grid: Manager): Promise<HostsEventDetail> {
  return withTimeout(
    new Promise((resolve) => grid.addEventListener("hosts", (e) => resolve((e as CustomEvent<HostsEventDetail>).detail), { once: true })),
    "a hosts event",
  );
}

/** The value or the rejection reason of `p`, which is handled at once (no unhandled rejection meanwhile). */
function settled<T>(p: Promise<T>): Promise<T | unknown> {
  return p.then((v) => v, (e: unknown) => e);
}

function isDisconnected(pattern: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof DisconnectedError, `expected DisconnectedError, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  };
}

describe("setHosts: validation", () => {
  it("setHosts() refuses a list without local, non-URLs, duplicates and non-arrays with TypeError, and keeps the old list", TEST, async () => {
    const [a, b] = await freeUrls(2);
    const grid = new Manager({ local: a, hosts: [a], secret: SECRET });
    try {
      const bad: unknown[] = [[b], [a, "http://127.0.0.1:1"], [a, "not a url"], [a, b, b], "a string", undefined, [a, 42]];
      for (const hosts of bad) {
        assert.throws(() => grid.setHosts(hosts as string[]), TypeError, `refused: ${JSON.stringify(hosts)}`);
      }
      assert.throws(() => grid.setHosts([b]), /"local" .* is not in "hosts"/);
      assert.deepEqual([...grid.hosts], [a]);
      grid.setHosts([a, b]);
      assert.deepEqual([...grid.hosts], [a, b]);
      assert.equal(grid.connection(b).remote, b);
      assert.throws(() => (grid.hosts as string[]).push("ws://x:1"), TypeError, "grid.hosts is read-only");
    } finally {
      await grid.close();
    }
    assert.throws(() => grid.setHosts([a]), (e: unknown) => e instanceof GridError && e.code === "closed");
  });

  it("setHosts() with the same list changes nothing and dispatches no event", TEST, async () => {
    const [a, b] = await freeUrls(2);
    const grid = new Manager({ local: a, hosts: [a, b], secret: SECRET });
    try {
      const conn = grid.connection(b);
      let events = 0;
      grid.addEventListener("hosts", () => events++);
      grid.setHosts([b, a]);
      assert.equal(grid.connection(b), conn, "the connection keeps its identity");
      assert.equal(events, 0);
    } finally {
      await grid.close();
    }
  });
});

describe("setHosts: a running grid", () => {
  it("a host added to every list comes up with every pair, and the hosts event names it", TEST, async () => {
    const [a, b, c] = await freeUrls(3);
    const na = await startNode(a, [a, b]);
    const nb = await startNode(b, [a, b]);
    await waitUntil(() => allUp([na, nb]), "a and b up");
    const nc = await startNode(c, [a, b, c]);
    const ev = nextHosts(na.grid);
    na.grid.setHosts([a, b, c]);
    assert.deepEqual(await ev, { added: [c], removed: [] });
    nb.grid.setHosts([a, b, c]);
    await waitUntil(() => allUp([na, nb, nc]), "every pair of a, b, c up");
    assert.equal(dec.decode(await na.grid.connection(c).request("whoami", new Uint8Array())), c);
    assert.equal(dec.decode(await nc.grid.connection(b).request("whoami", new Uint8Array())), b);
  });

  it("removing a host rejects its calls in flight on both sides with DisconnectedError saying so; the others are untouched", TEST, async () => {
    const [a, b, c] = await freeUrls(3);
    const all = [a, b, c];
    const [na, nb, nc] = [await startNode(a, all), await startNode(b, all), await startNode(c, all)];
    await waitUntil(() => allUp([na, nb, nc]), "every pair up");
    const mine = na.grid.connection(b).request("hold", new Uint8Array(), { timeout: 15_000 });
    const theirs = nb.grid.connection(a).request("hold", new Uint8Array(), { timeout: 15_000 });
    const ac = settled(na.grid.connection(c).request("hold", new Uint8Array(), { timeout: 15_000 }));
    await waitUntil(
      () => na.grid.stats().connections[b].serving.requests === 1 && nb.grid.stats().connections[a].serving.requests === 1,
      "both holds served",
    );
    const ev = nextHosts(na.grid);
    na.grid.setHosts([a, c]);
    assert.deepEqual(await ev, { added: [], removed: [b] });
    await assert.rejects(withTimeout(mine, "a's call to b"), isDisconnected(/removed from the host list/));
    await assert.rejects(withTimeout(theirs, "b's call to a"), isDisconnected(/removed from the host list/));
    assert.throws(() => na.grid.connection(b), (e: unknown) => e instanceof GridError && e.code === "unknown-host");
    assert.deepEqual([...na.grid.hosts], [a, c]);
    assert.equal(na.grid.stats().connections[b], undefined);
    // a <-> c is untouched: the held call is still in flight, and new calls work.
    assert.equal(na.grid.stats().connections[c].state, "up");
    assert.equal(na.grid.stats().connections[c].inFlight.requests, 1);
    assert.equal(dec.decode(await na.grid.connection(c).request("whoami", new Uint8Array())), c);
    // b, whose list still has a, keeps failing fast and is refused as not a member when it dials.
    await assert.rejects(nb.grid.connection(a).request("whoami", new Uint8Array()), DisconnectedError);
    if (shouldDial(b, a)) {
      await waitUntil(() => (nb.grid.stats().rejectedHandshakes["dial-refused-unknown-host"] ?? 0) > 0, "b's dials refused");
      assert.ok((na.grid.stats().rejectedHandshakes["not-member"] ?? 0) > 0);
      assert.equal(na.grid.stats().rejectedHandshakes["bad-mac"], undefined, "not counted as a bad secret");
    }
    await stopNode(nc);
    assert.ok((await ac) instanceof DisconnectedError);
  });

  it("two sides that update their lists a second apart connect once both agree; calls made meanwhile wait and succeed", TEST, async () => {
    for (const dialerFirst of [true, false]) {
      const urls = await freeUrls(2);
      // `early` adds the other first; whether it is the dialing side decides who sees refusals.
      const [early, late] = shouldDial(urls[0], urls[1]) === dialerFirst ? urls : [urls[1], urls[0]];
      const ne = await startNode(early, [early]);
      const nl = await startNode(late, [late]);
      ne.grid.setHosts([early, late]);
      const call = ne.grid.connection(late).request("whoami", new Uint8Array(), { timeout: 8_000 });
      await new Promise((r) => setTimeout(r, 1_000));
      assert.equal(ne.grid.stats().connections[late].state, "connecting");
      nl.grid.setHosts([early, late]);
      assert.equal(dec.decode(await call), late, "the call made before both agreed succeeded");
      await waitUntil(() => allUp([ne, nl]), "the pair up");
      const rejected = { ...ne.grid.stats().rejectedHandshakes, ...nl.grid.stats().rejectedHandshakes };
      for (const reason of Object.keys(rejected)) {
        assert.ok(["not-member", "dial-refused-unknown-host"].includes(reason), `only the documented refusal, got ${reason}`);
      }
      if (dialerFirst) {
        assert.ok((ne.grid.stats().rejectedHandshakes["dial-refused-unknown-host"] ?? 0) > 0, "the early dialer was refused");
        assert.ok((nl.grid.stats().rejectedHandshakes["not-member"] ?? 0) > 0, "and the late side counted it");
      }
      await stopNode(ne);
      await stopNode(nl);
      started.length = 0;
    }
  });

  it("a grid of 3 grown to 32 in one process has every pair up, and shrunk back to 3 has every other connection closed", TEST, async () => {
    const urls = await freeUrls(32);
    const three = urls.slice(0, 3);
    const nodes = await Promise.all(urls.map((u, i) => startNode(u, i < 3 ? three : [u])));
    await waitUntil(() => allUp(nodes.slice(0, 3)), "the 3 up");
    for (const n of nodes) n.grid.setHosts(urls);
    await waitUntil(() => allUp(nodes), "all 496 pairs up", 30_000);
    const toRemoved = nodes.slice(3).map((n) => nodes[0].grid.connection(n.url));
    for (const [i, n] of nodes.entries()) n.grid.setHosts(i < 3 ? three : [n.url]);
    assert.ok(toRemoved.every((c) => c.state === "closed"), "connections to removed hosts are closed at once");
    for (const n of nodes) {
      const conns = Object.values(n.grid.stats().connections);
      assert.equal(conns.length, nodes.indexOf(n) < 3 ? 2 : 0);
    }
    await waitUntil(() => allUp(nodes.slice(0, 3)), "the 3 still up");
    assert.equal(dec.decode(await nodes[0].grid.connection(three[2]).request("whoami", new Uint8Array())), three[2]);
  });

  it("a removed host can be added again and comes back up", TEST, async () => {
    const [a, b] = await freeUrls(2);
    const na = await startNode(a, [a, b]);
    const nb = await startNode(b, [a, b]);
    await waitUntil(() => allUp([na, nb]), "pair up");
    na.grid.setHosts([a]);
    await waitUntil(() => nb.grid.stats().connections[a].state !== "up", "b sees the pair go down");
    na.grid.setHosts([a, b]);
    await waitUntil(() => allUp([na, nb]), "pair up again");
    assert.equal(dec.decode(await na.grid.connection(b).request("whoami", new Uint8Array())), b);
  });
});

describe("broadcast", () => {
  const Who = defineSingle<{ tag: string }, { host: string; tag: string; remote: string }>("membership.who");

  it("broadcast() returns one settled entry per host, the local one in-process, and a dead node costs only its entry", TEST, async () => {
    const urls = await freeUrls(3);
    const nodes = await Promise.all(urls.map((u) => startNode(u, urls)));
    for (const n of nodes) n.grid.handle(Who, ({ tag }, ctx) => ({ host: n.url, tag, remote: ctx.remote }));
    await waitUntil(() => allUp(nodes), "every pair up");
    const [na] = nodes;
    const ok = await na.grid.broadcast(Who, { tag: "t" }, { timeout: 3_000 });
    assert.deepEqual(ok.map((r) => r.host), urls);
    for (const r of ok) {
      assert.equal(r.status, "fulfilled");
      if (r.status === "fulfilled") assert.deepEqual(r.value, { host: r.host, tag: "t", remote: urls[0] });
    }
    const withoutLocal = await na.grid.broadcast(Who, { tag: "x" }, { includeLocal: false });
    assert.deepEqual(withoutLocal.map((r) => r.host), urls.slice(1));
    await stopNode(nodes[2]);
    const t0 = performance.now();
    const some = await na.grid.broadcast(Who, { tag: "y" }, { timeout: 2_000 });
    assert.ok(performance.now() - t0 < 2_000 + 1_000, "settled within the timeout");
    assert.deepEqual(some.map((r) => r.status), ["fulfilled", "fulfilled", "rejected"]);
    const dead = some[2];
    assert.ok(dead.status === "rejected" && dead.reason instanceof DisconnectedError);
  });

  it("broadcast() to given hosts: an unknown host, a missing handler and a throwing handler are entries, not failures", TEST, async () => {
    const urls = await freeUrls(2);
    const [na, nb] = await Promise.all(urls.map((u) => startNode(u, urls)));
    na.grid.handle("boom", () => {
      throw Object.assign(new Error("local boom"), { code: "EBOOM" });
    });
    await waitUntil(() => allUp([na, nb]), "pair up");
    const r = await na.grid.broadcast("boom", new Uint8Array(), { hosts: [urls[0], urls[1], "ws://127.0.0.1:1", urls[1]] });
    assert.deepEqual(r.map((e) => e.host), [urls[0], urls[1], "ws://127.0.0.1:1"]);
    const [local, remote, unknown] = r.map((e) => e.status === "rejected" ? e.reason : undefined);
    assert.ok(local instanceof RemoteError && local.remoteCode === "EBOOM", "the local handler's error, as a RemoteError");
    assert.ok(remote instanceof UnknownHandlerError);
    assert.ok(unknown instanceof GridError && unknown.code === "unknown-host");
    const held = await na.grid.broadcast("hold", new Uint8Array(), { timeout: 300 });
    assert.deepEqual(held.map((e) => e.status === "rejected" && e.reason instanceof TimeoutError), [true, true]);
    await assert.rejects(na.grid.broadcast("boom", "not bytes" as unknown as Uint8Array), TypeError);
    await assert.rejects(na.grid.broadcast("boom", new Uint8Array(), { timeout: 0 }), RangeError);
  });
});

describe("pick and retryOn", () => {
  it("pick() returns an up connection with the fewest calls in flight, and throws DisconnectedError when none is up", TEST, async () => {
    const urls = await freeUrls(3);
    const nodes = await Promise.all(urls.map((u) => startNode(u, urls)));
    await waitUntil(() => allUp(nodes), "every pair up");
    const [na, , nc] = nodes;
    const held = settled(na.grid.connection(urls[1]).request("hold", new Uint8Array(), { timeout: 10_000 }));
    await waitUntil(() => na.grid.stats().connections[urls[1]].inFlight.requests === 1, "one call held on b");
    assert.equal(na.grid.pick().remote, urls[2], "c has fewer calls in flight");
    assert.equal(na.grid.pick({ exclude: [urls[2]] }).remote, urls[1]);
    await stopNode(nc);
    await waitUntil(() => na.grid.connection(urls[2]).state !== "up", "c down");
    for (let i = 0; i < 20; i++) assert.equal(na.grid.pick().state, "up");
    assert.throws(() => na.grid.pick({ exclude: [urls[1]] }), DisconnectedError);
    await stopNode(nodes[1]);
    assert.ok((await held) instanceof DisconnectedError);
    assert.throws(() => na.grid.pick(), DisconnectedError);
  });

  it("retryOn: \"disconnected\" sends a call that could not be sent to another peer; a call that was sent is not retried", TEST, async () => {
    const { urls, nodes, na, nb, toB, call: sent } = await callInServiceOnB(
      "hold",
      new Uint8Array(),
      { timeout: 10_000, retryOn: "disconnected" },
    );
    await stopNode(nb);
    assert.ok((await sent) instanceof DisconnectedError, "a call that reached b is not retried");
    await waitUntil(() => toB.state !== "up", "b down");
    await assert.rejects(toB.request("whoami", new Uint8Array()), DisconnectedError, "without retryOn it fails");
    const before = na.grid.stats().retried ?? 0;
    const res = await toB.request("whoami", new Uint8Array(), { retryOn: "disconnected", timeout: 3_000 });
    assert.equal(dec.decode(res), urls[2], "retried on c");
    assert.equal(na.grid.stats().retried, before + 1);
    // The retry is bounded: with every peer down it fails with DisconnectedError, not a hang.
    await stopNode(nodes[2]);
    await waitUntil(() => na.grid.connection(urls[2]).state !== "up", "c down");
    await assert.rejects(toB.request("whoami", new Uint8Array(), { retryOn: "disconnected", timeout: 3_000 }), DisconnectedError);
  });

  it("a closing grid answers the requests it serves first; a call that reaches it meanwhile fails as unsent and retryOn sends it elsewhere", TEST, async () => {
    const { urls, nb, toB, call: served } = await callInServiceOnB("slow", enc.encode("300"), { timeout: 5_000 });
    started.splice(started.indexOf(nb), 1);
    const closed = nb.grid.close();
    assert.equal(toB.state, "up", "b keeps the connection while it drains");
    const during = settled(toB.request("whoami", new Uint8Array(), { retryOn: "disconnected", timeout: 5_000 }));
    const answer = await withTimeout(served, "the call b was serving");
    assert.ok(answer instanceof Uint8Array, `b answered the call it was serving, got ${answer}`);
    assert.equal(dec.decode(answer), urls[1]);
    const moved = await withTimeout(during, "the call sent while b drained");
    assert.ok(moved instanceof Uint8Array, `the call sent during the drain was retried, got ${moved}`);
    assert.equal(dec.decode(moved), urls[2], "it never ran on b and went to c");
    await withTimeout(closed, "b's close()");
    assert.equal(nb.grid.close(), nb.grid.close(), "close() called again returns the same promise");
    await nb.server.close();
    await waitUntil(() => toB.state !== "up", "b down at a");
  });

  it("pick({ handler }) skips a peer that answered a retryOn call of it with unknown-handler until it reconnects", TEST, async () => {
    const urls = await freeUrls(3);
    const nodes = await Promise.all(urls.map((u) => startNode(u, urls)));
    nodes[2].grid.handle("only-c", () => enc.encode("c"));
    await waitUntil(() => allUp(nodes), "every pair up");
    const na = nodes[0].grid;
    await assert.rejects(
      na.connection(urls[1]).request("only-c", new Uint8Array(), { retryOn: "disconnected" }),
      UnknownHandlerError,
    );
    for (let i = 0; i < 10; i++) assert.equal(na.pick({ handler: "only-c" }).remote, urls[2]);
    assert.ok([urls[1], urls[2]].includes(na.pick({ handler: "whoami" }).remote));
    assert.throws(() => na.pick({ handler: 42 as unknown as string }), TypeError);
  });
});
