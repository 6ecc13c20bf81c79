import { assertEquals, assertThrows } from "../testing.ts";
import { MemoryStorage } from "./memory_storage.ts";
import { Inflights } from "./progress.ts";
import {
  CompactedError,
  type Entry,
  EntryType,
  SnapshotTemporarilyUnavailableError,
  UnavailableError,
} from "./types.ts";

function ents(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) {
    out.push({ term, index: i, type: EntryType.Normal, data: new Uint8Array(10) });
  }
  return out;
}

Deno.test("MemoryStorage.append truncates a conflicting tail", () => {
  const s = new MemoryStorage();
  s.append(ents(1, 5, 1));
  s.append(ents(3, 4, 2));
  assertEquals(s.lastIndex(), 4);
  assertEquals([s.term(2), s.term(3), s.term(4)], [1, 2, 2]);
  assertThrows(() => s.append(ents(7, 8, 2)), Error, "missing log entries");
});

Deno.test("MemoryStorage.entries honours bounds and maxBytes (at least one entry)", () => {
  const s = new MemoryStorage();
  s.append(ents(1, 5, 1));
  assertEquals(s.entries(2, 4, Infinity).map((e) => e.index), [2, 3]);
  assertEquals(s.entries(2, 6, 0).map((e) => e.index), [2]);
  assertEquals(s.entries(2, 6, 35).length, 2);
  assertThrows(() => s.entries(1, 7, Infinity), UnavailableError);
});

Deno.test("MemoryStorage.compact keeps the term of the compacted index as the dummy", () => {
  const s = new MemoryStorage();
  s.append(ents(1, 3, 1));
  s.append(ents(4, 6, 2));
  s.compact(4);
  assertEquals([s.firstIndex(), s.lastIndex(), s.term(4)], [5, 6, 2]);
  assertThrows(() => s.term(3), CompactedError);
  assertThrows(() => s.entries(4, 6, Infinity), CompactedError);
  assertThrows(() => s.compact(4), CompactedError);
  // Appending entries that partly overlap the compacted prefix keeps the rest.
  s.append(ents(3, 8, 2));
  assertEquals(s.lastIndex(), 8);
});

Deno.test("MemoryStorage snapshots: create takes the term from the log; apply replaces all", () => {
  const s = new MemoryStorage();
  s.append(ents(1, 5, 3));
  const snap = s.createSnapshot(4, { voters: [1n], learners: [] }, new Uint8Array([1]));
  assertEquals([snap.metadata.index, snap.metadata.term], [4, 3]);
  assertEquals(s.initialState().confState.voters, [1n]);
  assertThrows(() => s.createSnapshot(3, { voters: [], learners: [] }, new Uint8Array()));
  const other = new MemoryStorage();
  other.append(ents(1, 2, 1));
  other.applySnapshot({ ...snap, metadata: { ...snap.metadata, index: 10 } });
  assertEquals([other.firstIndex(), other.lastIndex(), other.term(10)], [11, 10, 3]);
  other.snapshotUnavailable = true;
  assertThrows(() => other.snapshot(), SnapshotTemporarilyUnavailableError);
});

Deno.test("Inflights is a bounded ring freed by acknowledgements", () => {
  const inf = new Inflights(3);
  inf.add(5);
  inf.add(7);
  inf.add(9);
  assertEquals(inf.full(), true);
  assertThrows(() => inf.add(10));
  inf.freeLE(7);
  assertEquals(inf.count, 1);
  inf.add(11);
  inf.add(13);
  inf.freeFirstOne();
  inf.freeLE(12);
  assertEquals(inf.count, 1);
  inf.freeLE(100);
  assertEquals(inf.count, 0);
});
