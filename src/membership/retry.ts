/**
 * `retryOn: "disconnected"`: a request that failed with DisconnectedError
 * before it was handed to a socket is sent to another peer chosen by
 * `grid.pick`, within the same deadline and signal, each peer tried once.
 *
 * @module
 */
import type { Connection } from "../connection.ts";
import { DisconnectedError, UnknownHandlerError } from "../errors.ts";
import { callTimeout, timeLeft } from "../mux/wire.ts";
import type { CallOptions } from "../types.ts";
import type { PickOptions } from "./pick.ts";
import { isUnsent } from "./unsent.ts";

/** What the retry needs from its Manager. */
export interface RetryHost {
  readonly settings: { readonly requestTimeout: number };
  pick(options: PickOptions): Connection;
  /** `host` answered `handler` with unknown-handler. */
  lacksHandler(host: string, handler: string): void;
  /** A call was sent again to another peer. */
  countRetry(): void;
}

/** Runs the request on `first`, then on other picked peers while it fails before being sent. */
export async function requestWithRetry(
  host: RetryHost,
  first: Connection,
  name: string,
  payload: Uint8Array,
  options: CallOptions,
): Promise<Uint8Array> {
  const timeout = callTimeout(options.timeout, host.settings.requestTimeout);
  const started = performance.now();
  const tried = new Set<string>();
  let conn = first;
  for (;;) {
    tried.add(conn.remote);
    try {
      return await conn.requestOnce(name, payload, { ...options, timeout: timeLeft(timeout, performance.now() - started) }, true);
    } catch (e) {
      if (e instanceof UnknownHandlerError) host.lacksHandler(conn.remote, name);
      if (!(e instanceof DisconnectedError) || !isUnsent(e) || options.signal?.aborted) throw e;
      if (performance.now() - started >= timeout) throw e;
      try {
        conn = host.pick({ handler: name, exclude: tried });
      } catch {
        throw e;
      }
      host.countRetry();
    }
  }
}
