/**
 * Which call failures happened before the request left this process: such a
 * call never reached the remote, so `retryOn: "disconnected"` may send it to
 * another peer without running it twice.
 *
 * @module
 */

const unsent = new WeakSet<object>();

/** Marks `err` as the failure of a call whose request was never handed to a socket; returns it. */
export function markUnsent<E>(err: E): E {
  if (typeof err === "object" && err !== null) unsent.add(err);
  return err;
}

/** True when `err` was marked by {@link markUnsent}. */
export function isUnsent(err: unknown): boolean {
  return typeof err === "object" && err !== null && unsent.has(err);
}
