/**
 * One wsgrid lock node of the lock bench (`scripts/bench/locks.ts`): serves the lock
 * handlers with the codec named in its config and prints `READY` once serving. Exits when
 * stdin ends. `node scripts/bench/lock_node.ts '{"local":...,"hosts":[...],"lockHosts":[...],"codec":"binary"}'`
 *
 * @module
 */
import process from "node:process";
import { Manager } from "../../mod.ts";
import { serve } from "../../src/adapters/serve.ts";
import { lockArgsCodec, registerLockHandlers } from "../../src/locks/mod.ts";
import { textLockArgsCodec } from "./lockargs.ts";

const config = JSON.parse(process.argv[2] ?? "") as { local: string; hosts: string[]; lockHosts: string[]; codec: "binary" | "text" };
const grid = new Manager({ local: config.local, hosts: config.hosts, secret: "lock bench secret", backoff: { base: 20, cap: 200 } });
const service = registerLockHandlers(grid, {
  codec: config.codec === "text" ? textLockArgsCodec : lockArgsCodec,
  peers: config.lockHosts.filter((h) => h !== config.local),
});
const server = await serve(grid, { port: Number(new URL(config.local).port), hostname: "127.0.0.1" });
process.stdout.write("READY\n");
// A normal exit, so that `--cpu-prof` (the bench's `--prof`) writes its profile.
process.on("SIGTERM", () => process.exit(0));
process.stdin.on("data", () => {});
process.stdin.on("end", async () => {
  service.stop();
  await grid.close();
  await server.close();
  process.exit(0);
});
