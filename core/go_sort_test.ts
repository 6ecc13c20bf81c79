import assert from "node:assert/strict";
import { goSort } from "./go_sort.ts";
import { Crc32c } from "./storage/crc32c.ts";

interface GoSortCase {
  name: string;
  reverse: boolean;
  crc: number;
}

const cases: GoSortCase[] = JSON.parse(
  await Deno.readTextFile(new URL("./testdata/go_sort_cases.json", import.meta.url)),
);

/** Same inputs as testdata/go_sort_cases_gen.go (uint32 LCG arithmetic). */
function generate(kind: string, n: number, distinct: number, seed: number): number[] {
  const out: number[] = [];
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    switch (kind) {
      case "random":
        out.push((x >>> 16) % distinct);
        break;
      case "ascending":
        out.push(Math.floor(i / distinct));
        break;
      case "descending":
        out.push(Math.floor((n - i) / distinct));
        break;
      case "sawtooth":
        out.push(i % distinct);
        break;
      case "organ":
        out.push(i < Math.floor(n / 2) ? Math.floor(i / distinct) : Math.floor((n - i) / distinct));
        break;
      default:
        throw new Error(`unknown kind ${kind}`);
    }
  }
  return out;
}

Deno.test("goSort orders ties exactly like Go 1.19 sort.Sort", () => {
  assert.ok(cases.length > 400);
  const encoder = new TextEncoder();
  for (const c of cases) {
    const m = /^(\w+) n=(\d+) distinct=(\d+) reverse=(true|false)$/.exec(c.name);
    assert.ok(m, c.name);
    const n = Number(m[2]);
    const distinct = Number(m[3]);
    const values = generate(m[1], n, distinct, n * 31 + distinct);
    const items = values.map((v, id) => ({ v, id }));
    goSort(items, c.reverse ? (a, b) => b.v < a.v : (a, b) => a.v < b.v);
    const crc = new Crc32c().update(encoder.encode(items.map((i) => i.id).join(","))).digest();
    assert.equal(crc, c.crc, c.name);
  }
});

Deno.test("goSort sorts (any input order, any size)", () => {
  for (const n of [0, 1, 5, 13, 64, 500]) {
    const values = generate("random", n, 50, 7 + n);
    const items = [...values];
    goSort(items, (a, b) => a < b);
    assert.deepEqual(items, [...values].sort((a, b) => a - b));
  }
});
