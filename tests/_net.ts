/**
 * Loopback ports for tests. Grid nodes need their URLs before they listen, so
 * a test asks the OS for a free port (bind port 0, read it, close) and uses it.
 */
import { createServer } from "node:net";

/** A port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** `n` distinct free ports as `ws://127.0.0.1:PORT` URLs. */
export async function freeUrls(n: number): Promise<string[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports].map((p) => `ws://127.0.0.1:${p}`);
}
