/**
 * CRC-32C (Castagnoli), the checksum etcd's WAL uses too: it detects torn and corrupted records
 * so that recovery never replays garbage.
 */

const table = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC-32C of `data`, continuing from `seed` (0 to start). */
export function crc32c(data: Uint8Array, seed = 0): number {
  let c = ~seed >>> 0;
  for (let i = 0; i < data.length; i++) c = table[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** Incremental CRC-32C: feed bytes with update(), read the checksum with digest(). */
export class Crc32c {
  #crc = 0;

  /** Adds bytes to the checksum. */
  update(bytes: Uint8Array): this {
    this.#crc = crc32c(bytes, this.#crc);
    return this;
  }

  /** The checksum of everything fed so far, as an unsigned 32-bit number. */
  digest(): number {
    return this.#crc;
  }
}
