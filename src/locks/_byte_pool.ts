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
 * An encoder writes through one persistent `Uint8Array` over the whole slab
 * ({@link slabBytes}) and makes one view per message ({@link slabView}) once
 * the message is written; where it copies text itself instead of calling
 * `encodeInto` (JavaScriptCore), that view is the only typed array it makes.
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
let bytes = new Uint8Array(slab);
let offset = 0;
let lastStart = -1;

/**
 * Reserves `size` bytes of the current slab and returns their offset in
 * {@link slabBytes}, or -1 when `size` is too large to pool. The caller must
 * overwrite every byte, then take {@link slabView} or {@link giveBack}.
 */
export function reserveBytes(size: number): number {
  if (size > MAX_POOLED_BYTES) return -1;
  if (offset + size > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    bytes = new Uint8Array(slab);
    offset = 0;
  }
  const start = offset;
  lastStart = start;
  // Keep views 8-byte aligned so a later consumer can lay a DataView or a
  // wider typed array over its own copy without surprises.
  offset = (start + size + 7) & ~7;
  return start;
}

/** The persistent array over the slab of the last {@link reserveBytes}. */
export function slabBytes(): Uint8Array {
  return bytes;
}

/** The message at `start` of the current slab, as its own view. */
export function slabView(start: number, size: number): Uint8Array {
  return new Uint8Array(slab, start, size);
}

/**
 * Returns `size` zero-or-garbage bytes, a view on the current slab when
 * small. The caller must overwrite every byte.
 */
export function takeBytes(size: number): Uint8Array {
  const start = reserveBytes(size);
  return start < 0 ? new Uint8Array(size) : slabView(start, size);
}

/**
 * Gives back the most recent {@link reserveBytes} when it turned out to be
 * unneeded (the caller must drop every reference to it). Anything else is a
 * no-op.
 */
export function giveBack(start: number): void {
  if (start === lastStart) {
    offset = lastStart;
    lastStart = -1;
  }
}
