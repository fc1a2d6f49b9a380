/**
 * Dial turns (src/membership/dial_turns.ts): a node runs a bounded number of dials at once, a
 * turn passes on when its dial settles or runs out of time, and a closing dial gives up its
 * place; then, with real sockets, silent hosts listed first do not hold back a real one.
 */
import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { Manager, shouldDial } from "../mod.ts";
import { DialTurns } from "../src/membership/dial_turns.ts";
import { type GridServer, serve } from "../src/adapters/serve.ts";
import { urlWhere } from "./_net.ts";
import { withTimeout } from "./_wait.ts";

const LONG_MS = 60_000;
const tick = () => new Promise((r) => setTimeout(r, 5));

describe("dial turns", () => {
  it("runs `limit` turns at once; the others wait and start in order as turns end", async () => {
    const turns = new DialTurns(2, LONG_MS);
    const signal = new AbortController().signal;
    const a = await turns.take(signal);
    const b = await turns.take(signal);
    const started: string[] = [];
    const c = turns.take(signal).then((end) => (started.push("c"), end));
    const d = turns.take(signal).then((end) => (started.push("d"), end));
    await tick();
    assert.deepEqual(started, []);
    assert.equal(turns.queued, 2);
    a();
    a(); // a second end does nothing: d still waits
    await tick();
    assert.deepEqual(started, ["c"]);
    b();
    (await c)();
    (await d)();
    const e = await withTimeout(turns.take(signal), "a free turn", 1_000);
    e();
    assert.equal(turns.queued, 0);
  });

  it("passes a turn on when its dial holds it past turnMs", async () => {
    const turns = new DialTurns(1, 50);
    const signal = new AbortController().signal;
    const held = await turns.take(signal); // never ended by its dial
    const next = await withTimeout(turns.take(signal), "the turn after one that ran out", 5_000);
    held(); // ending it late gives nothing away: the next turn is still the only one
    let third = false;
    void turns.take(signal).then(() => (third = true));
    await tick();
    assert.equal(third, false);
    next();
  });

  it("a dial that closes while waiting gets no turn and keeps no place", async () => {
    const turns = new DialTurns(1, LONG_MS);
    const open = new AbortController().signal;
    const first = await turns.take(open);
    const closing = new AbortController();
    const gaveUp = turns.take(closing.signal);
    closing.abort();
    (await withTimeout(gaveUp, "a waiter that closed", 1_000))(); // ends nothing
    assert.equal(turns.queued, 0);
    let later = false;
    const after = turns.take(open).then((end) => (later = true, end));
    await tick();
    assert.equal(later, false, "the closed waiter's end() must not free the running turn");
    first();
    (await withTimeout(after, "the turn after the running one", 1_000))();
    const aborted = new AbortController();
    aborted.abort();
    (await turns.take(aborted.signal))();
  });
});

describe("a Manager's dials", () => {
  const servers: Server[] = [];
  const sockets: Socket[] = [];
  const grids: Manager[] = [];
  const served: GridServer[] = [];
  afterEach(async () => {
    for (const g of grids.splice(0)) await g.close();
    for (const s of served.splice(0)) await s.close();
    for (const s of sockets.splice(0)) s.destroy();
    for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  });

  /**
   * A local URL, `n` URLs of hosts it dials that accept TCP and never answer the WebSocket
   * upgrade (listening), and a URL of one more host it dials; `dialed` fills as they are dialed.
   */
  async function withSilentHosts(n: number) {
    const taken = new Set<string>();
    const local = await urlWhere(() => true, taken);
    const silent: string[] = [];
    for (let i = 0; i < n; i++) silent.push(await urlWhere((u) => shouldDial(local, u), taken));
    const real = await urlWhere((u) => shouldDial(local, u), taken);
    const dialed = new Set<string>();
    for (const url of silent) {
      const server = createServer((s) => {
        sockets.push(s);
        s.on("error", () => {});
        dialed.add(url);
      });
      servers.push(server);
      await new Promise<void>((r) => server.listen(Number(new URL(url).port), "127.0.0.1", r));
    }
    return { local, silent, real, dialed };
  }

  it("silent hosts listed first do not hold back a real one beyond their turns", { timeout: 60_000 }, async () => {
    const { local, silent, real, dialed: accepted } = await withSilentHosts(4);
    const hosts = [local, ...silent, real];
    const common = { hosts, secret: "dial turns test", handshakeTimeout: 20_000, backoff: { base: 20, cap: 200 } };
    const a = new Manager({ ...common, local });
    const b = new Manager({ ...common, local: real });
    grids.push(a, b);
    served.push(await serve(a, { port: Number(new URL(local).port), hostname: "127.0.0.1" }));
    served.push(await serve(b, { port: Number(new URL(real).port), hostname: "127.0.0.1" }));
    // With each silent dial keeping its turn until the handshake timeout (20 s), the real host
    // would wait 40 s; turns that run out after 250 ms let it up in about half a second.
    await a.connection(real).waitForConnect({ timeout: 8_000 });
    assert.equal(accepted.size, silent.length, "every silent host was dialed meanwhile");
  });

  it("hosts that stay down do not queue up ahead of a live host added later", { timeout: 60_000 }, async () => {
    // 40 hosts that accept and never answer: each dial fails at the handshake timeout
    // (300 ms, longer than a turn) and is redialed. Were redials to take turns, 40 of them
    // would queue ahead of a host added later (about 40 × 125 ms = 5 s); they do not.
    const { local, silent, real, dialed } = await withSilentHosts(40);
    const secret = "dial turns test";
    const a = new Manager({ local, hosts: [local, ...silent], secret, handshakeTimeout: 300, backoff: { base: 20, cap: 50 } });
    grids.push(a);
    served.push(await serve(a, { port: Number(new URL(local).port), hostname: "127.0.0.1" }));
    // First dials take turns (40 × 125 ms); wait until each silent host was dialed and failed.
    for (let i = 0; i < 200 && dialed.size < silent.length; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(dialed.size, silent.length, "every silent host was dialed within 10 s");
    await new Promise((r) => setTimeout(r, 400));
    const b = new Manager({ local: real, hosts: [local, real], secret });
    grids.push(b);
    served.push(await serve(b, { port: Number(new URL(real).port), hostname: "127.0.0.1" }));
    a.setHosts([local, ...silent, real]);
    await a.connection(real).waitForConnect({ timeout: 2_500 });
  });
});
