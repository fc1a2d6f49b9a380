/**
 * The admin page's script (browser only). It reads the token from the URL
 * fragment (`#token=...`) or the form, connects a read-only {@link Client} to
 * the node that served the page and to every other node, follows each one's
 * `grid.watch` stream and renders nodes, the connection matrix and handlers.
 * The node that served the page is the reference: a node it sees as down is
 * shown down even when the browser cannot reach that node itself, and its host
 * list is the page's: hosts that join it (`setHosts`) get a row, and hosts that
 * leave it lose theirs, live, with a line in the membership log.
 *
 * Built by `scripts/build_client.ts`; the Client comes from the separate
 * client bundle (`<path>/client.js`), loaded at run time.
 *
 * @example
 * ```ts
 * // Served by adminPageHandler(grid, { path: "/admin" }); open
 * // http://127.0.0.1:9000/admin#token=read-only-token
 * ```
 *
 * @module
 */
import type { Client } from "../client.ts";
import type { ConnectionStats, GridStats } from "../types.ts";

type BrowserModule = typeof import("./browser.ts");

/** What the server writes into the page (see serve_page.ts). */
interface PageConfig {
  local: string;
  hosts: string[];
  gridPath: string;
  pingInterval: number;
  watchIntervalMs: number;
  clientUrl: string;
}

type ViewState = "connecting" | "live" | "reconnecting" | "unauthorized" | "closed";

/** One node as the page follows it. */
interface NodeView {
  host: string;
  url: string;
  client: Client | null;
  state: ViewState;
  stats: GridStats | null;
  error: string;
  /** The host left the serving node's list: its follower stops. */
  removed: boolean;
}

const config = JSON.parse(document.getElementById("wsgrid-config")!.textContent!) as PageConfig;
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const views = new Map<string, NodeView>();
let lib: BrowserModule | null = null;
let session = 0;
/** The token of the current session, for the followers of hosts that join later. */
let sessionToken = "";
/** Membership changes shown, newest first. */
const MAX_LOG = 20;

function gridUrl(host: string): string {
  if (host === config.local) {
    // Reach the serving node the way the browser reached the page (a proxy may sit in front).
    return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${config.gridPath}`;
  }
  return host.replace(/\/+$/, "") + config.gridPath;
}

function errorCode(e: unknown): string {
  return typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : "error";
}

function errorText(e: unknown): string {
  return e instanceof Error ? `${errorCode(e)}: ${e.message}` : String(e);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Follows one node's grid.watch until the session changes; reconnects forever otherwise. */
async function follow(view: NodeView, token: string, mine: number): Promise<void> {
  const client = new lib!.Client(view.url, {
    token,
    pingInterval: config.pingInterval,
    backoff: { base: 100, cap: 2_000 },
    requestTimeout: 10_000,
  });
  view.client = client;
  const stale = () => mine !== session || view.removed;
  client.addEventListener("disconnect", () => {
    if (stale()) return;
    view.state = "reconnecting";
    render();
  });
  while (!stale()) {
    try {
      await client.waitForConnect({ timeout: 60_000 });
      if (stale()) break;
      const st = await client.newStream(lib!.GridWatchHandler, { intervalMs: config.watchIntervalMs });
      const reader = st.responses.getReader();
      for (;;) {
        const r = await reader.read();
        if (r.done || stale()) break;
        view.stats = r.value;
        view.state = "live";
        view.error = "";
        if (view.host === config.local) syncHosts(r.value, mine);
        render();
      }
    } catch (e) {
      if (stale()) break;
      view.error = errorText(e);
      if (errorCode(e) === "unauthorized") {
        view.state = "unauthorized";
        render();
        if (view.host === config.local) return refused(view.error);
      } else {
        view.state = "reconnecting";
        render();
      }
    }
    await sleep(250);
  }
  await client.close();
}

/** Makes the views follow the serving node's current host list. */
function syncHosts(stats: GridStats, mine: number): void {
  const current = new Set([config.local, ...Object.keys(stats.connections)]);
  for (const host of current) {
    if (views.has(host)) continue;
    addView(host, mine);
    logChange(host, "joined");
  }
  for (const [host, view] of views) {
    if (current.has(host)) continue;
    view.removed = true;
    void view.client?.close();
    views.delete(host);
    logChange(host, "left");
  }
}

function addView(host: string, mine: number): void {
  const view: NodeView = { host, url: gridUrl(host), client: null, state: "connecting", stats: null, error: "", removed: false };
  views.set(host, view);
  void follow(view, sessionToken, mine);
}

function logChange(host: string, change: "joined" | "left"): void {
  const list = $("membership");
  const li = document.createElement("li");
  li.dataset.host = host;
  li.dataset.change = change;
  li.className = "mono";
  li.textContent = `${new Date().toLocaleTimeString()} ${change}: ${host}`;
  list.prepend(li);
  while (list.children.length > MAX_LOG) list.lastElementChild!.remove();
}

function refused(message: string): void {
  stop();
  showError(`Token refused (unauthorized): ${message}`);
  $("login").hidden = false;
  render();
}

function stop(): void {
  session++;
  for (const v of views.values()) {
    void v.client?.close();
    v.client = null;
  }
}

function showError(text: string): void {
  const el = $("error");
  el.textContent = text;
  el.hidden = text === "";
}

async function connect(token: string): Promise<void> {
  stop();
  showError("");
  $("login").hidden = true;
  try {
    lib ??= await import(config.clientUrl) as BrowserModule;
  } catch (e) {
    showError(`Cannot load the client bundle: ${errorText(e)}`);
    return;
  }
  const mine = session;
  sessionToken = token;
  views.clear();
  for (const host of config.hosts) addView(host, mine);
  render();
}

// --- rendering --------------------------------------------------------------

function cell(tr: HTMLTableRowElement, text: string, cls = ""): HTMLTableCellElement {
  const td = tr.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function ms(v: number | null | undefined): string {
  return v === null || v === undefined ? "–" : v < 10 ? v.toFixed(2) : v.toFixed(0);
}

function duration(msValue: number): string {
  const s = Math.floor(msValue / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

/** The serving node's view of `host` when that node is live, else undefined. */
function seenFromServer(host: string): ConnectionStats | undefined {
  const me = views.get(config.local);
  return me?.state === "live" ? me.stats?.connections[host] : undefined;
}

/** "up" | "down" | "connecting" | "unknown" for a node. */
function nodeStatus(v: NodeView): string {
  if (v.host === config.local) return v.state === "live" ? "up" : "down";
  const seen = seenFromServer(v.host)?.state;
  if (v.state === "live" && seen !== "down") return "up";
  if (seen === "up") return "up";
  if (seen === "down" || seen === "closed") return "down";
  if (v.state === "reconnecting" || v.state === "unauthorized") return "down";
  return seen ?? "unknown";
}

function sum(s: GridStats, pick: (c: ConnectionStats) => number): number {
  return Object.values(s.connections).reduce((n, c) => n + pick(c), 0);
}

function renderBanner(): void {
  const me = views.get(config.local);
  const banner = $("banner");
  const state = me === undefined ? "idle" : me.state === "closed" ? "disconnected" : me.state;
  const text: Record<string, string> = {
    idle: "Not connected",
    connecting: "Connecting…",
    live: "Live",
    reconnecting: "Disconnected — reconnecting…",
    unauthorized: "Token refused",
    disconnected: "Disconnected",
  };
  banner.dataset.state = state;
  banner.textContent = text[state] ?? state;
}

function renderNodes(): void {
  const body = ($("nodes") as HTMLTableElement).tBodies[0];
  body.replaceChildren();
  for (const v of views.values()) {
    const tr = body.insertRow();
    const status = nodeStatus(v);
    tr.dataset.node = v.host;
    tr.dataset.status = status;
    tr.title = v.error;
    cell(tr, v.host + (v.host === config.local ? " (this node)" : ""), "mono");
    cell(tr, v.state === "live" || status !== "up" ? status : `${status} (seen by ${config.local})`, "status");
    const s = v.state === "live" ? v.stats : null;
    if (s === null) {
      for (let i = 0; i < 5; i++) cell(tr, "–", "num");
      continue;
    }
    cell(tr, duration(s.uptimeMs), "num");
    cell(tr, `${sum(s, (c) => c.inFlight.requests)} / ${sum(s, (c) => c.inFlight.streams)}`, "num");
    cell(tr, `${sum(s, (c) => c.serving.requests)} / ${sum(s, (c) => c.serving.streams)}`, "num");
    cell(tr, String(sum(s, (c) => c.reconnects)), "num");
    cell(tr, String(s.admin.connections), "num");
  }
}

function renderMatrix(): void {
  const table = $("matrix") as HTMLTableElement;
  const hosts = [...views.keys()];
  const head = table.tHead!;
  head.replaceChildren();
  const hr = head.insertRow();
  cell(hr, "from \\ to");
  for (const h of hosts) cell(hr, h, "mono");
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const from of hosts) {
    const v = views.get(from)!;
    const tr = body.insertRow();
    tr.dataset.from = from;
    cell(tr, from, "mono");
    for (const to of hosts) {
      if (to === from) {
        cell(tr, "·");
        continue;
      }
      const c = v.state === "live" ? v.stats?.connections[to] : undefined;
      const rtt = c?.rttMs === null || c?.rttMs === undefined ? "" : ` · ${ms(c.rttMs)} ms`;
      const td = cell(tr, c === undefined ? "–" : c.state === "up" ? `up${rtt}` : c.state);
      td.dataset.to = to;
      td.dataset.state = c?.state ?? "unknown";
      if (c?.lastError) td.title = c.lastError;
    }
  }
}

function renderHandlers(): void {
  const body = ($("handlers") as HTMLTableElement).tBodies[0];
  body.replaceChildren();
  for (const v of views.values()) {
    if (v.state !== "live" || v.stats === null) continue;
    for (const [name, h] of Object.entries(v.stats.handlers).sort(([a], [b]) => a.localeCompare(b))) {
      const tr = body.insertRow();
      tr.dataset.node = v.host;
      tr.dataset.handler = name;
      cell(tr, v.host, "mono");
      cell(tr, name, "mono");
      cell(tr, String(h.calls), "num");
      cell(tr, String(h.errors), "num");
      cell(tr, String(h.inFlight), "num");
      cell(tr, ms(h.latencyMs.p50), "num");
      cell(tr, ms(h.latencyMs.p99), "num");
    }
  }
}

let frame = 0;
/** Renders at most once per animation frame. */
function render(): void {
  if (frame !== 0) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    renderBanner();
    renderNodes();
    renderMatrix();
    renderHandlers();
  });
}

// --- calls --------------------------------------------------------------------

async function call(ev: SubmitEvent): Promise<void> {
  ev.preventDefault();
  const out = $("call-result");
  const client = views.get(config.local)?.client;
  const handler = ($("call-handler") as HTMLInputElement).value.trim();
  const text = ($("call-payload") as HTMLInputElement).value.trim();
  out.dataset.outcome = "pending";
  out.textContent = "…";
  try {
    if (!client) throw new Error("Cannot call: not connected");
    const payload: unknown = text === "" ? null : JSON.parse(text);
    const result = await client.request(handler, payload, { timeout: 10_000 });
    out.dataset.outcome = "ok";
    delete out.dataset.code;
    out.textContent = JSON.stringify(result, null, 2) ?? "undefined";
  } catch (e) {
    out.dataset.outcome = "error";
    out.dataset.code = errorCode(e);
    out.textContent = errorText(e);
  }
}

function start(): void {
  $("served").textContent = config.local;
  $("call").addEventListener("submit", (ev) => void call(ev as SubmitEvent));
  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = ($("token") as HTMLInputElement).value;
    if (token !== "") void connect(token);
  });
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token");
  if (token) {
    // Keep the token out of the address bar and history once read.
    history.replaceState(null, "", location.pathname + location.search);
    void connect(token);
  } else {
    $("login").hidden = false;
  }
  render();
}

start();
