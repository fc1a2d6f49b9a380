/**
 * Runs the LockArgs codec benchmark (`runLockArgsBench` of lockargs.ts) under
 * the current runtime and prints its results as one JSON line, for the
 * harness. `--rounds`, `--round-ms`, `--warmup-ms` tune its length.
 *
 * ```sh
 * node scripts/bench/lockargs_json.ts --rounds 5
 * ```
 *
 * @module
 */

import process from "node:process";
import { isNativeAccelerationEnabled } from "msgpackr";
import { numberFlag, parseFlags } from "./_load.ts";
import { runLockArgsBench } from "./lockargs.ts";

const flags = parseFlags(process.argv.slice(2));
const results = await runLockArgsBench({
  rounds: numberFlag(flags, "rounds", 9),
  roundMs: numberFlag(flags, "round-ms", 40),
  warmupMs: numberFlag(flags, "warmup-ms", 200),
});
process.stdout.write(JSON.stringify({ msgpackrNative: isNativeAccelerationEnabled, results }) + "\n");
process.exit(0);
