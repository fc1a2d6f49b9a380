/**
 * The host list of a Manager: its checks, shared by the constructor and
 * `setHosts`, and the close code of a connection to a host that left it.
 *
 * @module
 */

/** WebSocket close code of a connection closed because its host was removed from the list (private range). */
export const CLOSE_REMOVED = 4004;

function checkUrl(action: string, host: unknown): void {
  if (typeof host !== "string") throw new TypeError(`Cannot ${action}: host ${String(host)} is not a string`);
  let u: URL;
  try {
    u = new URL(host);
  } catch {
    throw new TypeError(`Cannot ${action}: host "${host}" is not a URL`);
  }
  if (u.protocol !== "ws:" && u.protocol !== "wss:") {
    throw new TypeError(`Cannot ${action}: host "${host}" must be a ws:// or wss:// URL`);
  }
}

/**
 * Checks a host list and returns a copy of it: an array of distinct ws:// or wss:// URLs
 * that has `local` in it.
 *
 * @param action what is being done, for the messages ("create Manager", "set hosts")
 * @throws {TypeError} not an array, a host that is not a ws:// URL, duplicates, `local` missing
 */
export function checkHosts(action: string, local: string, hosts: unknown): string[] {
  if (!Array.isArray(hosts)) throw new TypeError(`Cannot ${action}: option "hosts" must be an array`);
  for (const h of hosts) checkUrl(action, h);
  if (new Set(hosts).size !== hosts.length) throw new TypeError(`Cannot ${action}: "hosts" has duplicates`);
  if (!hosts.includes(local)) throw new TypeError(`Cannot ${action}: "local" ${local} is not in "hosts"`);
  return [...hosts as string[]];
}

/** The message of a call to a host that was removed from `local`'s host list. */
export function removedMessage(host: string, local: string): string {
  return `Host "${host}" was removed from the host list of "${local}"`;
}
