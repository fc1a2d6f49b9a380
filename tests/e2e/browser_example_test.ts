/**
 * Runs examples/browser_server.ts under Node and opens its page in a real Chromium: the page's
 * read-only client calls a readOnly handler and grid.stats, and is refused a write handler.
 * Node runner only, and only where Debian's Chromium is installed.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { bin, freePortPair } from "./_subprocess.ts";
import { chromiumSkip, launchChromium } from "./_chromium.ts";

const skip = chromiumSkip();

describe("examples/browser_server.ts in Chromium", () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  after(async () => {
    for (const c of cleanup.reverse()) await c();
  });

  it("shows a read-only call and grid.stats succeed and a write refused", { skip, timeout: 90_000 }, async () => {
    const port = await freePortPair();
    const child = spawn(bin("node"), ["examples/browser_server.ts", "--port", String(port)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    cleanup.push(() => {
      child.kill("SIGKILL");
    });
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("browser_server.ts printed no URL in 30 s")), 30_000);
      let out = "";
      child.stdout!.on("data", (d: Uint8Array) => {
        out += new TextDecoder().decode(d);
        const m = /open (http:\/\/\S+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      child.once("exit", (code) => reject(new Error(`browser_server.ts exited with ${code}: ${out}`)));
    });
    const browser = await launchChromium();
    cleanup.push(() => browser.close());
    const page = await browser.context.newPage();
    await page.goto(url);
    await page.waitForSelector("body[data-state=done], body[data-state=error]", { timeout: 30_000 });
    const text = await page.textContent("#out");
    assert.equal(await page.getAttribute("body", "data-state"), "done", `page says:\n${text}`);
    assert.match(text ?? "", /example\.time: \d{4}-\d\d-\d\dT.* \(served by ws:\/\/127\.0\.0\.1:\d+\)/);
    assert.match(text ?? "", /grid\.stats: ws:\/\/127\.0\.0\.1:\d+, 0 peer\(s\)/);
    assert.match(text ?? "", /example\.write: refused \(unauthorized\)/);
  });
});
