// The browser side of examples/browser_server.ts: a read-only Client that calls a readOnly
// handler and the built-in grid.stats, and is refused a write handler. In your own page,
// bundle `wsgrid/client` or load the bundle the admin page handler serves (as here).
import { Client } from "/admin/client.js";

const out = document.getElementById("out");
const token = new URLSearchParams(location.hash.slice(1)).get("token") ?? "";
const client = new Client(`ws://${location.host}/grid/v1`, { token });
const lines = [];
try {
  const time = await client.request("example.time", { zone: "UTC" }, { waitForConnect: true, timeout: 5000 });
  lines.push(`example.time: ${time.iso} (served by ${time.servedBy})`);
  const stats = await client.request("grid.stats", undefined);
  lines.push(`grid.stats: ${stats.local}, ${Object.keys(stats.connections).length} peer(s)`);
  try {
    await client.request("example.write", { key: "x" });
    lines.push("example.write: allowed (unexpected)");
  } catch (e) {
    lines.push(`example.write: refused (${e.code})`);
  }
  document.body.dataset.state = "done";
} catch (e) {
  lines.push(`error: ${e.code ?? ""} ${e.message}`);
  document.body.dataset.state = "error";
}
out.textContent = lines.join("\n");
await client.close();
