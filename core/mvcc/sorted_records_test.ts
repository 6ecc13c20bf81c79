import assert from "node:assert/strict";
import { SortedRecords } from "./sorted_records.ts";

Deno.test("SortedRecords: inserts, removes and scans agree with a sorted array", () => {
  const set = new SortedRecords<{ id: string }>();
  const model = new Set<string>();
  let seed = 11;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648);
  for (let i = 0; i < 20_000; i++) {
    const id = String(next() % 3000).padStart(4, "0");
    if (next() % 3 === 0) {
      set.remove(id);
      model.delete(id);
    } else if (!model.has(id)) {
      set.insert({ id });
      model.add(id);
    }
    if (i % 1000 === 999) {
      const want = [...model].sort();
      assert.deepEqual([...set].map((r) => r.id), want, `after step ${i}`);
      assert.equal(set.size, want.length);
      const from = String(next() % 3000).padStart(4, "0");
      const scanned: string[] = [];
      set.scan(from, undefined, (r) => {
        scanned.push(r.id);
      });
      assert.deepEqual(scanned, want.filter((id) => id >= from), `scan from ${from}`);
      // Point lookups find exactly the ids present (the store finds its keys this way).
      for (let k = 0; k < 3000; k += 7) {
        const id = String(k).padStart(4, "0");
        assert.equal(set.get(id)?.id, model.has(id) ? id : undefined, `get ${id}`);
      }
      assert.equal(set.get("9999"), undefined);
      assert.equal(set.get(""), undefined);
    }
  }
  // Every record removed: nothing left to scan, and inserts work again.
  for (const id of [...model]) set.remove(id);
  assert.equal(set.size, 0);
  assert.deepEqual([...set], []);
  set.insert({ id: "x" });
  assert.deepEqual([...set].map((r) => r.id), ["x"]);
});
