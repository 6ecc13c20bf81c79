/**
 * CRC-32C (Castagnoli), the checksum etcd's WAL uses too: it detects torn and corrupted records
 * so that recovery never replays garbage.
 */

/** Lookup tables for slicing-by-8: table k maps a byte k positions before the end. */
const TABLES = (() => {
  const tables = Array.from({ length: 8 }, () => new Uint32Array(256));
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    tables[0][n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    for (let t = 1; t < 8; t++) {
      tables[t][n] = (tables[t - 1][n] >>> 8) ^ tables[0][tables[t - 1][n] & 0xff];
    }
  }
  return tables;
})();

/** CRC-32C of `data`, continuing from `seed` (0 to start); eight bytes per step. */
export function crc32c(data: Uint8Array, seed = 0): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES;
  let crc = ~seed >>> 0;
  let i = 0;
  for (const end8 = data.length - 8; i <= end8; i += 8) {
    const a = (crc ^ (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24))) >>>
      0;
    crc = t7[a & 0xff] ^ t6[(a >>> 8) & 0xff] ^ t5[(a >>> 16) & 0xff] ^ t4[a >>> 24] ^
      t3[data[i + 4]] ^ t2[data[i + 5]] ^ t1[data[i + 6]] ^ t0[data[i + 7]];
  }
  for (; i < data.length; i++) crc = t0[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return ~crc >>> 0;
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
