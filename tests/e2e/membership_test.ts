/**
 * Dynamic membership across runtimes: real Deno, Bun and Node processes (tests/e2e/_node.ts)
 * on 127.0.0.1, whichever runner runs this file. A node joins a running grid, one is
 * removed, two sides change their lists a second apart, `broadcast` meets a killed node and
 * `pick` runs through a kill and a restart.
 */
import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Cluster, type NodeProc, type Runtime, sleep } from "./_cluster.ts";
import type { NodeEvent, WireError } from "./_node.ts";

const RUNTIMES: Runtime[] = ["deno", "bun", "node"];
const TEST = { timeout: 60_000 };

interface StatsReply {
  stats: {
    connections: Record<string, { state: string }>;
    rejectedHandshakes: Record<string, number>;
  };
}

interface InflightResult {
  ok: boolean;
  error?: WireError;
}

let cluster: Cluster | undefined;

afterEach(async () => {
  await cluster?.destroy();
  cluster = undefined;
});

async function stats(n: NodeProc): Promise<StatsReply["stats"]> {
  return (await n.command<StatsReply>({ cmd: "stats" })).stats;
}

/** Waits until `n` reports each of `to` connected. */
function waitFor(n: NodeProc, to: string[], timeout = 15_000): Promise<unknown> {
  return n.command({ cmd: "wait", to, timeout }, timeout + 2_000);
}

/** Handshake refusals other than the documented not-member refusal, on every node. */
async function otherRefusals(nodes: NodeProc[]): Promise<string[]> {
  const out: string[] = [];
  for (const n of nodes) {
    for (const [reason, count] of Object.entries((await stats(n)).rejectedHandshakes)) {
      if (reason !== "not-member" && reason !== "dial-refused-unknown-host") out.push(`${n.name}: ${reason} x${count}`);
    }
  }
  return out;
}

describe("membership across runtimes", () => {
  it("a node added to a running 3-node grid connects to every node; removed again, its calls fail with DisconnectedError saying so while the others are untouched", TEST, async () => {
    cluster = await Cluster.start(RUNTIMES);
    await cluster.waitConnected();
    const all = [...cluster.urls];
    const extra = await cluster.spawnExtra("node", (url) => [...all, url]);
    const four = [...all, extra.url];
    for (const n of cluster.nodes) assert.deepEqual(await n.command({ cmd: "setHosts", hosts: four }), four);
    await Promise.all([...cluster.nodes, extra].map((n) => waitFor(n, four.filter((u) => u !== n.url))));
    for (const n of cluster.nodes) {
      const reply = await extra.command<{ text: string }>({ cmd: "request", to: n.url, handler: "whoami" });
      assert.equal(JSON.parse(reply.text).local, n.url);
      const back = await n.command<{ text: string }>({ cmd: "request", to: extra.url, handler: "echo", payload: "hi" });
      assert.equal(back.text, "hi");
    }
    assert.deepEqual(await otherRefusals([...cluster.nodes, extra]), []);

    // Calls in flight both ways to the node about to be removed, and between two that stay.
    const [n0, n1, n2] = cluster.nodes;
    const toExtra = n0.post({ cmd: "inflight", to: extra.url, n: 2, ms: 20_000 });
    const fromExtra = extra.post({ cmd: "inflight", to: n1.url, n: 2, ms: 20_000 });
    const staying = n0.post({ cmd: "inflight", to: n2.url, n: 2, ms: 1_500 });
    await n0.answer(toExtra);
    await extra.answer(fromExtra);
    await n0.answer(staying);
    await sleep(300);
    for (const n of cluster.nodes) await n.command({ cmd: "setHosts", hosts: all });
    const mine = await n0.waitEvent(toExtra, "inflight-done");
    const theirs = await extra.waitEvent(fromExtra, "inflight-done");
    for (const r of [...(mine.results as InflightResult[]), ...(theirs.results as InflightResult[])]) {
      assert.equal(r.ok, false);
      assert.equal(r.error?.name, "DisconnectedError");
      assert.match(r.error!.message, /removed from the host list/);
    }
    const kept = await n0.waitEvent(staying, "inflight-done");
    assert.deepEqual((kept.results as InflightResult[]).map((r) => r.ok), [true, true], "calls between staying nodes are untouched");
    const refused = await n0.commandLine({ cmd: "request", to: extra.url, handler: "echo" });
    assert.equal(refused.error?.code, "unknown-host");
    const events = await n0.events();
    assert.ok(events.some((e: NodeEvent) => e.type === "host-added" && e.host === extra.url));
    assert.ok(events.some((e: NodeEvent) => e.type === "host-removed" && e.host === extra.url));
    for (const n of cluster.nodes) assert.equal((await stats(n)).connections[extra.url], undefined);
    await Promise.all(cluster.nodes.map((n) => waitFor(n, all.filter((u) => u !== n.url))));
  });

  it("two sides that add each other a second apart connect with no refusal but the documented one", TEST, async () => {
    cluster = await Cluster.start(RUNTIMES);
    await cluster.waitConnected();
    const all = [...cluster.urls];
    const extra = await cluster.spawnExtra("deno", (url) => [...all, url]);
    // The new node lists everyone from the start; the others learn of it one by one, a second apart.
    const early = extra.post({ cmd: "request", to: all[0], handler: "echo", payload: "early", timeout: 15_000 });
    for (const n of cluster.nodes) {
      await sleep(1_000);
      await n.command({ cmd: "setHosts", hosts: [...all, extra.url] });
    }
    assert.equal((await extra.answer(early, 20_000)).ok, true, "a call made before both lists agreed waited and succeeded");
    await waitFor(extra, all);
    await Promise.all(cluster.nodes.map((n) => waitFor(n, [extra.url])));
    assert.deepEqual(await otherRefusals([...cluster.nodes, extra]), [], "no refusal beyond not-member");
    const rejected = [...cluster.nodes, extra].map(async (n) => (await stats(n)).rejectedHandshakes);
    const total = (await Promise.all(rejected)).reduce((s, r) => s + (r["not-member"] ?? 0), 0);
    console.log(`# ${total} not-member refusals while the lists disagreed (backoff cap 200 ms)`);
  });

  it("broadcast with one node killed returns two fulfilled and one rejected within its timeout; pick never returns a down connection", TEST, async () => {
    cluster = await Cluster.start(RUNTIMES);
    await cluster.waitConnected();
    const [n0, n1, n2] = cluster.nodes;
    const ok = await n0.command<{ entries: { host: string; status: string; text?: string }[] }>({
      cmd: "broadcast",
      handler: "echo",
      payload: "all",
      timeout: 2_000,
    });
    assert.deepEqual(ok.entries.map((e) => [e.host, e.status, e.text]), cluster.urls.map((u) => [u, "fulfilled", "all"]));
    const picking = n0.post({ cmd: "pick", ms: 4_000 });
    await sleep(300);
    n2.kill9();
    const timeout = 2_000;
    const some = await n0.command<{ entries: { host: string; status: string; error?: WireError }[]; ms: number }>({
      cmd: "broadcast",
      handler: "echo",
      timeout,
    });
    assert.deepEqual(some.entries.map((e) => e.status), ["fulfilled", "fulfilled", "rejected"]);
    assert.ok(["DisconnectedError", "TimeoutError"].includes(some.entries[2].error!.name), some.entries[2].error!.name);
    assert.ok(some.ms <= timeout + 500, `settled in ${some.ms} ms, timeout ${timeout} ms`);
    await cluster.restart(2);
    await waitFor(n0, [cluster.urls[2]]);
    const picks = (await n0.answer(picking, 15_000)).value as { picks: number; notUp: number; noneUp: number; hosts: Record<string, number> };
    assert.ok(picks.picks > 100, `picked ${picks.picks} times`);
    assert.equal(picks.notUp, 0, "pick never returned a connection that was not up");
    assert.equal(picks.noneUp, 0, "one peer was up throughout");
    assert.ok((picks.hosts[n1.url] ?? 0) > 0);
  });
});
