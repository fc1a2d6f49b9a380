/**
 * A slab allocator for small encoded messages (the idea of Node's `Buffer`
 * pool, on web standards only).
 *
 * Why: on V8 (Deno, Node) `new Uint8Array(200)` costs ~340 ns because every
 * typed array gets its own backing store, while a view on a shared slab costs
 * ~35 ns (measured on Deno 2.9 and Node 24). Bun allocates a fresh one in
 * ~10 ns, so there the pool costs ~25 ns; on V8 it saves ~300 ns, about as
 * much as the whole rest of a ~170-byte lock message's round trip.
 *
 * The price, as with Node's `Buffer`: a returned array is a view into a
 * shared `ArrayBuffer`. Read it through the view (`byteOffset`/`byteLength`),
 * never through `.buffer`, and never transfer its buffer. A live view keeps
 * its whole slab (16 KiB) alive.
 *
 * @module
 */

/** Slab size, bytes. */
const SLAB_BYTES = 16 * 1024;
/** Larger requests get their own buffer: they are rare and would waste slabs. */
const MAX_POOLED_BYTES = 2 * 1024;

let slab = new ArrayBuffer(SLAB_BYTES);
let offset = 0;
let lastStart = -1;

/**
 * Returns `size` zero-or-garbage bytes, from the current slab when small.
 * The caller must overwrite every byte.
 */
export function takeBytes(size: number): Uint8Array {
  if (size > MAX_POOLED_BYTES) return new Uint8Array(size);
  if (offset + size > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    offset = 0;
  }
  const view = new Uint8Array(slab, offset, size);
  lastStart = offset;
  // Keep views 8-byte aligned so a later consumer can lay a DataView or a
  // wider typed array over its own copy without surprises.
  offset = (offset + size + 7) & ~7;
  return view;
}

/**
 * Gives back the most recent {@link takeBytes} result when it turned out to be
 * unneeded (the caller must drop every reference to it). Anything else is a
 * no-op.
 */
export function giveBackBytes(view: Uint8Array): void {
  if (view.buffer === slab && view.byteOffset === lastStart) {
    offset = lastStart;
    lastStart = -1;
  }
}
