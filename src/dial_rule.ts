/**
 * The dial rule: which of two hosts opens the socket between them. A pure
 * function of the two names, so both sides agree without talking, and about
 * half of each host's peers are dialed by it.
 *
 * @module
 */

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}

/**
 * True when `local` dials `remote`; exactly one of `shouldDial(a, b)` and
 * `shouldDial(b, a)` is true for distinct names.
 *
 * @example
 * ```ts
 * shouldDial("ws://a:9000", "ws://b:9000") !== shouldDial("ws://b:9000", "ws://a:9000"); // true
 * ```
 */
export function shouldDial(local: string, remote: string): boolean {
  if (local === remote) throw new RangeError(`Cannot decide who dials: both hosts are "${local}"`);
  const a = fnv1a(local + "\u0000" + remote);
  const b = fnv1a(remote + "\u0000" + local);
  if (a !== b) return a < b;
  return local < remote;
}
