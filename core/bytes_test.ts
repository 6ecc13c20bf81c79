import assert from "node:assert/strict";
import { ByteArena, bytesEqual, compareBytes, idBytes, keyId } from "./bytes.ts";

const b = (...xs: number[]) => new Uint8Array(xs);

Deno.test("compareBytes orders bytewise like Go's bytes.Compare and answers -1, 0 or 1", () => {
  const cases: Array<[Uint8Array, Uint8Array, number]> = [
    [b(), b(), 0],
    [b(), b(0), -1],
    [b(0x61), b(0x61, 0x00), -1],
    [b(0x61, 0x00), b(0x61), 1],
    [b(0x00), b(0xff), -1],
    [b(0xff, 0x00), b(0x01, 0xff), 1],
    [b(1, 2, 3), b(1, 2, 3), 0],
  ];
  for (const [x, y, want] of cases) assert.equal(compareBytes(x, y), want, `${x} vs ${y}`);
});

Deno.test("bytesEqual is true only for the same bytes in the same length", () => {
  assert.ok(bytesEqual(b(), b()));
  assert.ok(bytesEqual(b(1, 2), b(1, 2)));
  assert.ok(!bytesEqual(b(1, 2), b(1, 2, 0)));
  assert.ok(!bytesEqual(b(1, 2), b(1, 3)));
});

Deno.test("keyId keeps bytewise order, tells binary keys apart, and idBytes inverts it", () => {
  const keys = [b(), b(0), b(0, 0), b(0x61), b(0x61, 0xff), b(0x80), b(0xff), b(0xff, 0xff)];
  for (const x of keys) {
    for (const y of keys) {
      const byId = keyId(x) < keyId(y) ? -1 : keyId(x) > keyId(y) ? 1 : 0;
      assert.equal(byId, compareBytes(x, y), `${x} vs ${y}`);
    }
    assert.deepEqual(idBytes(keyId(x)), x);
  }
  assert.equal(new Set(keys.map(keyId)).size, keys.length);
  // Keys longer than one String.fromCharCode chunk come out whole.
  const long = new Uint8Array(20_000).map((_, i) => i & 0xff);
  assert.equal(keyId(long).length, long.length);
  assert.deepEqual(idBytes(keyId(long)), long);
});

Deno.test("ByteArena: copies and allocations are views of shared slabs that never overlap; large ones get their own buffer", () => {
  const arena = new ByteArena(64);
  const a = arena.copy(new Uint8Array([1, 2, 3]));
  const b = arena.alloc(4);
  assert.deepEqual([...b], [0, 0, 0, 0]);
  b.set([9, 9, 9, 9]);
  assert.deepEqual([...a], [1, 2, 3]);
  assert(a.buffer === b.buffer, "one slab");
  const big = arena.alloc(17); // over a quarter of the slab
  assert(big.buffer !== a.buffer && big.byteOffset === 0 && big.length === 17);
  // A full slab gives way to a new one; what was handed out stays.
  const rest = Array.from({ length: 20 }, (_, i) => arena.copy(new Uint8Array([i, i, i, i])));
  assert(rest.some((r) => r.buffer !== a.buffer), "a second slab");
  rest.forEach((r, i) => assert.deepEqual([...r], [i, i, i, i]));
  assert.deepEqual([...a], [1, 2, 3]);
});

Deno.test("ByteArena.keep: a small array is copied into a slab, a large one is kept as it is", () => {
  const arena = new ByteArena(64);
  const small = new Uint8Array([1, 2, 3]);
  const kept = arena.keep(small);
  assert(kept !== small && kept.buffer !== small.buffer, "a copy in a slab");
  assert.deepEqual([...kept], [1, 2, 3]);
  assert(arena.keep(new Uint8Array([4])).buffer === kept.buffer, "the same slab");
  const large = new Uint8Array(17).fill(5);
  assert(arena.keep(large) === large, "over a quarter of a slab: not copied");
});
