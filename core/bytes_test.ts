import assert from "node:assert/strict";
import { ByteArena, bytesEqual, compareBytes, idBytes, IdMap, keyId } from "./bytes.ts";

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

Deno.test("IdMap answers as a Map would through random sets, deletes and lookups, also when ids collide", () => {
  for (const hash of [undefined, (id: string) => id.length % 3]) {
    const map = new IdMap<number>(hash);
    const reference = new Map<string, number>();
    let seed = 7;
    const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % 64;
    for (let step = 0; step < 5000; step++) {
      const id = keyId(b(next(), next() % 4));
      const op = next() % 4;
      if (op === 0) assert.equal(map.delete(id), reference.delete(id), `delete ${step}`);
      else if (op === 1) {
        map.set(id, step);
        reference.set(id, step);
      } else {
        assert.equal(map.get(id), reference.get(id), `get ${step}`);
        assert.equal(map.has(id), reference.has(id), `has ${step}`);
      }
      assert.equal(map.size, reference.size, `size ${step}`);
    }
    assert.deepEqual(
      [...map.values()].sort((x, y) => x - y),
      [...reference.values()].sort((x, y) => x - y),
    );
    map.clear();
    assert.equal(map.size, 0);
    assert.deepEqual([...map.values()], []);
  }
});

Deno.test("IdMap leaves its ids out of V8's string table, where a Map of as many ids puts them", async () => {
  // Counted in a child with natives syntax: how many of 20,000 ids are internalized strings after
  // they were a map's keys and a full collection ran. The Map's count shows the measure works; an
  // IdMap internalizes only the ids that share a hash (kept in a Map of their own).
  const code = `
    import { idHash, IdMap, keyId } from ${
    JSON.stringify(new URL("./bytes.ts", import.meta.url).href)
  };
    const internalized = new Function("s", "return %IsInternalizedString(s)");
    const count = (make) => {
      const ids = [];
      for (let i = 0; i < 20000; i++) ids.push(keyId(new TextEncoder().encode("/registry/pods/" + i)));
      const map = make();
      for (const id of ids) map.set(id, 1);
      gc();
      return ids.filter((id) => internalized(id)).length;
    };
    // Ids whose hash another id shares are kept in a Map of their own, so internalized.
    const hashes = new Map();
    for (let i = 0; i < 20000; i++) {
      const h = idHash(keyId(new TextEncoder().encode("/registry/pods/" + i)));
      hashes.set(h, (hashes.get(h) ?? 0) + 1);
    }
    const shared = [...hashes.values()].filter((n) => n > 1).reduce((a, n) => a + n, 0);
    console.log(JSON.stringify({ idMap: count(() => new IdMap()), map: count(() => new Map()), shared }));
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--v8-flags=--allow-natives-syntax,--expose-gc", code],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const counts = JSON.parse(new TextDecoder().decode(out.stdout));
  // V8 internalizes a Map's keys as the Map grows and in its collections: most of them by now,
  // not always every one (19,329 and 20,000 in runs here).
  assert.ok(counts.map > 10000, `a Map's ids are internalized (the measure works): ${counts.map}`);
  assert.ok(counts.shared < 20, `few ids share a hash (${counts.shared})`);
  assert.equal(counts.idMap, counts.shared, "only ids sharing a hash are internalized");
});
