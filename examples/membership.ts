/**
 * A grid node whose peer list comes from outside and changes while it runs: every
 * `--interval` ms it re-reads the list, from a file (one ws:// URL per line, `#` comments)
 * or from a DNS name (each IPv4 address it resolves to becomes `ws://ADDRESS:PORT`), and hands it to
 * `grid.setHosts`. Added peers are dialed (or waited for) by the dial rule, removed ones are
 * disconnected; a peer whose list does not have this node yet is refused with the documented
 * not-member refusal and retries with backoff, so nodes that pick up a change a few seconds
 * apart simply connect once both lists agree.
 *
 *   deno run -A examples/membership.ts --local ws://127.0.0.1:9201 --peers-file peers.txt
 *   node examples/membership.ts --local ws://10.0.0.5:9000 --dns grid.internal --dns-port 9000
 *   bun examples/membership.ts ... [--interval 1000] [--for 10]
 *
 * It serves `example.whoami`, logs every change of the list and of the connections, and after
 * each change asks every node who it is with `grid.broadcast` (one line per answer or failure).
 * `--for S` exits after S seconds (the examples test uses it); without it, it runs until Ctrl-C.
 *
 * In your project, import from the package instead: `wsgrid` and `wsgrid/serve`.
 *
 * @module
 */
import { readFile } from "node:fs/promises";
import { lookup } from "node:dns/promises";
import process from "node:process";
import { defineSingle, type GridEventDetail, type HostsEventDetail, Manager } from "../mod.ts";
import { serve } from "../src/adapters/serve.ts";

const argv = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const local = flag("local") ?? "ws://127.0.0.1:9201";
const peersFile = flag("peers-file");
const dnsName = flag("dns");
const dnsPort = Number(flag("dns-port") ?? new URL(local).port);
const intervalMs = Number(flag("interval") ?? 1_000);
const forSeconds = flag("for") === undefined ? undefined : Number(flag("for"));
if ((peersFile === undefined) === (dnsName === undefined)) {
  console.error("Cannot start: give exactly one of --peers-file PATH and --dns NAME");
  process.exit(2);
}

/** Where the peer list comes from: the file's URLs, or the DNS name's addresses. */
async function readPeers(): Promise<string[]> {
  if (peersFile !== undefined) {
    const text = await readFile(peersFile, "utf8");
    return text.split("\n").map((l) => l.replace(/#.*/, "").trim()).filter((l) => l !== "");
  }
  // getaddrinfo, as a connect would resolve it: DNS A records, and the hosts file too.
  const addresses = await lookup(dnsName!, { all: true, family: 4 });
  return addresses.map((a) => `ws://${a.address}:${dnsPort}`);
}

const Whoami = defineSingle<null, { local: string; hosts: number }>("example.whoami");
const grid = new Manager({ local, hosts: [local], secret: "example cluster secret", backoff: { base: 50, cap: 1_000 } });
grid.handle(Whoami, () => ({ local, hosts: grid.hosts.length }));
const server = await serve(grid, { port: Number(new URL(local).port), hostname: new URL(local).hostname });
console.log(`node ${local} up; peers from ${peersFile ?? `DNS ${dnsName}`}, every ${intervalMs} ms`);

grid.addEventListener("hosts", (e) => {
  const { added, removed } = (e as CustomEvent<HostsEventDetail>).detail;
  console.log(`hosts ${[...added.map((h) => `+${h}`), ...removed.map((h) => `-${h}`)].join(" ")}`);
});
grid.addEventListener("connect", (e) => {
  const host = (e as CustomEvent<GridEventDetail>).detail.host;
  console.log(`connected ${host}`);
  void askEveryone();
});
grid.addEventListener("disconnect", (e) => console.log(`disconnected ${(e as CustomEvent<GridEventDetail>).detail.host}`));

/** One broadcast: every node in the list answers for itself, or costs its own entry. */
async function askEveryone(): Promise<void> {
  const results = await grid.broadcast(Whoami, null, { timeout: 2_000 });
  for (const r of results) {
    console.log(r.status === "fulfilled" ? `whoami ${r.host}: ${r.value.hosts} hosts` : `whoami ${r.host}: ${(r.reason as Error).message}`);
  }
}

let lastError = "";
/** Re-reads the list and applies it; a list that cannot be read or used is reported once and skipped. */
async function refresh(): Promise<void> {
  try {
    const peers = await readPeers();
    // This node is always in its own list; a source that leaves it out does not remove it.
    grid.setHosts([...new Set([local, ...peers])]);
    lastError = "";
  } catch (e) {
    const message = (e as Error).message;
    if (message !== lastError) console.error(`Cannot refresh the peer list: ${message}`);
    lastError = message;
  }
}

await refresh();
const timer = setInterval(() => void refresh(), intervalMs);

async function shutdown(): Promise<void> {
  clearInterval(timer);
  await grid.close();
  await server.close();
}
process.on("SIGINT", () => void shutdown());
if (forSeconds !== undefined) setTimeout(() => void shutdown(), forSeconds * 1_000);
