/**
 * Protobuf varints: their size and writing them into a buffer, for the hand-written codecs
 * (Raft messages, WAL records, MVCC key-values) and the server's message-size arithmetic. One
 * copy, so every encoder agrees byte for byte with protobuf (and with each other).
 *
 * Hot paths call these per field: nothing here allocates, and numbers below 2^53 never touch a
 * bigint. Readers stay with their codecs, because each rejects bad input with its own error.
 *
 * A pure leaf: this module imports nothing, so `core/raft` may use it (like `core/bytes.ts`, an
 * allowed exception to "core/raft imports nothing but its own types").
 *
 * @example
 * ```ts
 * import { int64Size, putInt64, putUvarint, uvarintSize } from "./varint.ts";
 *
 * const out = new Uint8Array(uvarintSize(300) + int64Size(-1n));
 * let offset = putUvarint(out, 0, 300); // [0xac, 0x02]
 * offset = putInt64(out, offset, -1n); // ten bytes: 0xff x 9, 0x01
 * ```
 *
 * @module
 */

const TWO_32 = 4294967296;
const TWO_64 = 1n << 64n;
const TWO_56 = 1n << 56n;
const TWO_63 = 1n << 63n;
const LOW_32 = 0xffffffffn;
const MAX_SAFE = 0x1fffffffffffffn;

/** Bytes of the unsigned varint of `n`, a non-negative safe integer (1 for anything below 128). */
export function uvarintSize(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  if (n < 0x10000000) return 4;
  let size = 4;
  n = Math.floor(n / 0x10000000);
  while (n > 0) {
    size++;
    n = Math.floor(n / 0x80);
  }
  return size;
}

/**
 * Writes the unsigned varint of `n` (a non-negative safe integer; callers check) at
 * `out[offset]` and returns the offset after it. `out` must have room (see uvarintSize()).
 */
export function putUvarint(out: Uint8Array, offset: number, n: number): number {
  while (n >= TWO_32) {
    out[offset++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  let low = n >>> 0;
  while (low >= 0x80) {
    out[offset++] = (low & 0x7f) | 0x80;
    low >>>= 7;
  }
  out[offset++] = low;
  return offset;
}

/** Bytes of the unsigned varint of a uint64 held as a bigint (1 for anything below 128). */
export function uvarint64Size(v: bigint): number {
  if (v <= MAX_SAFE) return uvarintSize(Number(v));
  // 2^53 and above (member and lease IDs are random 64-bit numbers): compared, never shifted,
  // so that no bigint is made per call.
  if (v < TWO_56) return 8;
  if (v < TWO_63) return 9;
  if (v < TWO_64) return 10;
  let size = 1;
  while (v >= 0x80n) {
    v >>= 7n;
    size++;
  }
  return size;
}

/**
 * Writes the unsigned varint of a uint64 held as a bigint at `out[offset]` and returns the offset
 * after it; values below 2^53 take the number path. A negative value (which callers never pass)
 * writes its low byte only, as uvarint64Size() counts it.
 */
export function putUvarint64(out: Uint8Array, offset: number, v: bigint): number {
  if (v >= 0n && v <= MAX_SAFE) return putUvarint(out, offset, Number(v));
  if (v > 0n && v < TWO_64) {
    // Two 32-bit halves, then seven bits at a time in numbers: two bigints made, not twenty.
    let lo = Number(v & LOW_32);
    let hi = Number(v >> 32n);
    while (hi > 0 || lo >= 0x80) {
      out[offset++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | ((hi & 0x7f) << 25)) >>> 0;
      hi >>>= 7;
    }
    out[offset++] = lo;
    return offset;
  }
  while (v >= 0x80n) {
    out[offset++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  out[offset++] = Number(v);
  return offset;
}

/** Bytes of protobuf's int64 varint: a negative value is its two's complement, ten bytes. */
export function int64Size(v: bigint): number {
  return v < 0n ? 10 : uvarint64Size(v);
}

/** Writes protobuf's int64 varint (negative values as their 64-bit two's complement). */
export function putInt64(out: Uint8Array, offset: number, v: bigint): number {
  return putUvarint64(out, offset, v < 0n ? v + TWO_64 : v);
}
