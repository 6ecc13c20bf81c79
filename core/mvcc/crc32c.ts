/**
 * CRC-32C (Castagnoli), the checksum etcd's HashKV uses, so that detcd members report the same
 * hash as etcd for the same history.
 */

const TABLE: Uint32Array = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** Incremental CRC-32C: feed bytes with update(), read the checksum with digest(). */
export class Crc32c {
  #crc = 0xffffffff;

  /** Adds bytes to the checksum. */
  update(bytes: Uint8Array): this {
    let crc = this.#crc;
    for (let i = 0; i < bytes.length; i++) crc = TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
    this.#crc = crc;
    return this;
  }

  /** The checksum of everything fed so far, as an unsigned 32-bit number. */
  digest(): number {
    return (this.#crc ^ 0xffffffff) >>> 0;
  }
}
