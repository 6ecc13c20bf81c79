/**
 * Keys are arbitrary bytes ordered bytewise (Go's bytes.Compare). We map each key to a "binary
 * string" (one UTF-16 code unit per byte, 0..255) because JavaScript compares such strings code
 * unit by code unit, which is exactly bytewise order, and because strings make cheap Map keys.
 */

const CHUNK_BYTES = 8192;

/** The order-preserving string form of a byte key. */
export function keyId(key: Uint8Array): string {
  if (key.length <= CHUNK_BYTES) {
    return String.fromCharCode.apply(null, key as unknown as number[]);
  }
  let out = "";
  for (let offset = 0; offset < key.length; offset += CHUNK_BYTES) {
    const part = key.subarray(offset, offset + CHUNK_BYTES);
    out += String.fromCharCode.apply(null, part as unknown as number[]);
  }
  return out;
}

/** Bytes back from keyId(); used only where the original array is not at hand. */
export function idBytes(id: string): Uint8Array {
  const out = new Uint8Array(id.length);
  for (let i = 0; i < id.length; i++) out[i] = id.charCodeAt(i);
  return out;
}

/** Go's bytes.Compare: -1, 0 or 1. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) {
    const d = a[i] - b[i];
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}
