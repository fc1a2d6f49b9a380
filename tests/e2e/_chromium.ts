/**
 * Debian's Chromium driven by playwright-core, for the browser tests: the skip
 * reason where it cannot run, and a headless launch with a throwaway profile.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext } from "playwright-core";
import { detectRuntime } from "../../src/adapters/serve.ts";

/** Where `apt-get install -y chromium` puts it. */
export const CHROMIUM = "/usr/bin/chromium";

/** Why browser tests skip here, or false when they run (Node runner with Chromium installed). */
export function chromiumSkip(): string | false {
  const runtime = detectRuntime();
  if (runtime !== "node") {
    return `runs under the Node runner only (playwright-core drives Chromium with Node APIs; this is ${runtime})`;
  }
  if (!existsSync(CHROMIUM)) {
    return `${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) to run the browser tests`;
  }
  return false;
}

/** A headless Chromium with a fresh profile; `close()` removes the profile. */
export async function launchChromium(viewport = { width: 1280, height: 900 }): Promise<{
  context: BrowserContext;
  close(): Promise<void>;
}> {
  const { chromium } = await import("playwright-core");
  const userDataDir = mkdtempSync(join(tmpdir(), "wsgrid-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    // Without the background-networking flags Chromium keeps dialing Google's hosts, which this
    // closed network refuses.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}
