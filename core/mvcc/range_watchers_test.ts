import { Buffer } from "node:buffer";
import { assert, assertEquals } from "../testing.ts";
import { compareBytes, prefixRangeEnd as prefixEnd } from "../bytes.ts";
import { type RangeWatcher, RangeWatchers } from "./range_watchers.ts";

/** A range watcher with etcd's semantics: [key, end), end [0] meaning every key from `key`. */
class W implements RangeWatcher {
  constructor(readonly name: string, readonly key: Uint8Array, readonly end: Uint8Array) {}
  matches(k: Uint8Array): boolean {
    if (compareBytes(k, this.key) < 0) return false;
    if (this.end.length === 1 && this.end[0] === 0) return true;
    return compareBytes(k, this.end) < 0;
  }
}

const bytes = (...b: number[]) => new Uint8Array(b);

Deno.test("prefixRangeEnd: the last byte below 0xff incremented, trailing 0xff bytes dropped", () => {
  assertEquals(prefixEnd(bytes(0x61, 0x62)), bytes(0x61, 0x63));
  assertEquals(prefixEnd(bytes(0x61, 0xff, 0xff)), bytes(0x62));
  assertEquals(prefixEnd(bytes(0xff, 0xff)), bytes(0));
  // A Node Buffer's slice() is a view: the key itself must not change.
  const key = Buffer.from([0x61, 0x62]);
  assertEquals(prefixEnd(key), bytes(0x61, 0x63));
  assertEquals([...key], [0x61, 0x62]);
});

Deno.test("RangeWatchers answers exactly what a scan of every watcher answers", () => {
  // A small alphabet with the edge bytes, so prefixes, 0xff runs and empty ranges all occur.
  let seed = 12345;
  const rand = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const alphabet = [0x00, 0x01, 0x61, 0x62, 0xfe, 0xff];
  const randomKey = (max: number) =>
    Uint8Array.from({ length: rand(max + 1) }, () => alphabet[rand(alphabet.length)]);
  const index = new RangeWatchers<W>();
  const live: W[] = [];
  const kinds = { prefix: 0, from: 0, range: 0 };
  for (let round = 0; round < 3000; round++) {
    const roll = rand(10);
    if (roll < 4 || live.length === 0) {
      const key = randomKey(3);
      const kind = rand(3);
      let w: W;
      if (kind === 0 && key.length > 0) {
        w = new W(`p${round}`, key, prefixEnd(key));
        kinds.prefix++;
      } else if (kind === 1) {
        w = new W(`f${round}`, key, bytes(0));
        kinds.from++;
      } else {
        w = new W(`r${round}`, key, randomKey(3));
        kinds.range++;
      }
      index.add(w);
      live.push(w);
    } else if (roll < 6) {
      const w = live.splice(rand(live.length), 1)[0];
      assert(index.delete(w), `${w.name} was indexed`);
      assert(!index.delete(w), `${w.name} deleted twice`);
    } else {
      const key = randomKey(4);
      const got: string[] = [];
      index.forEachMatch(key, (w) => got.push(w.name));
      const want = live.filter((w) => w.matches(key)).map((w) => w.name);
      assertEquals(got.sort(), want.sort(), `key ${key}`);
    }
    assertEquals(index.size, live.length);
  }
  assertEquals([...index].map((w) => w.name).sort(), live.map((w) => w.name).sort());
  assert(kinds.prefix > 100 && kinds.from > 100 && kinds.range > 100, JSON.stringify(kinds));
  index.clear();
  assertEquals(index.size, 0);
});
