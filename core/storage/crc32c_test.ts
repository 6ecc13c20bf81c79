import { assertEquals } from "../testing.ts";
import { Crc32c, crc32c } from "./crc32c.ts";

/** The definition, one bit at a time (reflected polynomial 0x82f63b78). */
function bitwise(data: Uint8Array, seed = 0): number {
  let c = ~seed >>> 0;
  for (const byte of data) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
  }
  return ~c >>> 0;
}

Deno.test("crc32c: the standard check value and RFC 3720's test vectors", () => {
  assertEquals(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
  assertEquals(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assertEquals(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assertEquals(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
});

Deno.test("crc32c: eight bytes at a time equals the bitwise definition, at every length and seed", () => {
  for (let n = 0; n < 200; n++) {
    const data = Uint8Array.from({ length: n }, (_, i) => (i * 131 + n * 7) & 0xff);
    const seed = (n * 2654435761) >>> 0;
    assertEquals(crc32c(data, seed), bitwise(data, seed), `length ${n}`);
    // Of a range of a larger array, without a view.
    const padded = new Uint8Array(n + 11).fill(0x5a);
    padded.set(data, 3);
    assertEquals(crc32c(padded, seed, 3, 3 + n), bitwise(data, seed), `range of length ${n}`);
    // In pieces, as the incremental form feeds it.
    const cut = n >> 1;
    assertEquals(
      new Crc32c().update(data.subarray(0, cut)).update(data.subarray(cut)).digest(),
      bitwise(data),
    );
  }
});
