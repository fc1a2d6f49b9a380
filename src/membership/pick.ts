/**
 * `grid.pick()`: the `up` connection with the fewest calls in flight, ties
 * broken by the lower round-trip time.
 *
 * @module
 */
import type { Connection } from "../connection.ts";
import { DisconnectedError } from "../errors.ts";
import type { SingleDefinition, StreamDefinition } from "../handlers/define.ts";

/** Options of `grid.pick`. */
export interface PickOptions {
  /**
   * The handler the connection is for: peers that answered a `retryOn` call of it with
   * `unknown-handler` since they last connected (not upgraded yet, in a rolling deploy) are
   * skipped.
   */
  handler?: string | SingleDefinition<unknown, unknown, unknown, unknown> | StreamDefinition<unknown, unknown, unknown>;
  /** Hosts not to pick. */
  exclude?: Iterable<string>;
}

/** The name of `handler` (a name or a definition), or undefined. */
export function handlerName(handler: PickOptions["handler"]): string | undefined {
  if (handler === undefined) return undefined;
  if (typeof handler === "string") return handler;
  if (typeof handler === "object" && handler !== null && typeof handler.name === "string") return handler.name;
  throw new TypeError("Cannot pick a peer: option \"handler\" must be a name or a definition");
}

/**
 * Picks among `conns` the `up` one with the fewest calls in flight, then the lowest RTT (a
 * connection without one yet counts as slowest).
 *
 * @param lacks true when `host` is known not to serve `handler`
 * @throws {DisconnectedError} no connection is up (after the exclusions)
 */
export function pickConnection(
  conns: Iterable<Connection>,
  options: PickOptions,
  lacks: (host: string, handler: string) => boolean,
): Connection {
  const name = handlerName(options.handler);
  const exclude = options.exclude === undefined ? undefined : new Set(options.exclude);
  let best: Connection | undefined;
  let bestLoad = Infinity;
  let bestRtt = Infinity;
  let seen = 0;
  for (const c of conns) {
    seen++;
    if (c.state !== "up" || exclude?.has(c.remote) || (name !== undefined && lacks(c.remote, name))) continue;
    const load = c.callsInFlight;
    const rtt = c.rttMs ?? Infinity;
    if (load < bestLoad || (load === bestLoad && rtt < bestRtt) || best === undefined) {
      best = c;
      bestLoad = load;
      bestRtt = rtt;
    }
  }
  if (best === undefined) {
    const ex = exclude === undefined ? "" : `, ${exclude.size} excluded`;
    throw new DisconnectedError(`Cannot pick a peer: none of ${seen} is up${ex}`);
  }
  return best;
}
