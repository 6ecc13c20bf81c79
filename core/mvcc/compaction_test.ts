import assert from "node:assert/strict";
import { Errors } from "../errors.ts";
import { MvccStore } from "./store.ts";
import { del, get, keys, put, rangeOf, storeWith, throwsEtcd } from "./_testing.ts";

Deno.test("compaction keeps the latest revision of each key at or below it", () => {
  const store = new MvccStore();
  put(store, "a", "1"); // 2
  put(store, "b", "1"); // 3
  put(store, "a", "2"); // 4
  put(store, "a", "3"); // 5
  put(store, "b", "2"); // 6
  store.compact(4);
  assert.equal(store.compactRevision, 4);
  // At the compact revision every key still reads as it was.
  assert.equal(get(store, "a", 4)?.value, "2");
  assert.equal(get(store, "b", 4)?.value, "1");
  assert.equal(get(store, "a", 5)?.value, "3");
  throwsEtcd(() => get(store, "a", 3), Errors.compacted());
  // Only superseded revisions at or below 4 are gone from history.
  const revisions = store.eventsBetween(0).map((e) =>
    `${String.fromCharCode(...e.kv!.key)}@${e.kv!.modRevision}`
  );
  assert.deepEqual(revisions, ["b@3", "a@4", "a@5", "b@6"]);
});

Deno.test("compaction drops keys whose latest revision at or below it is a tombstone", () => {
  const store = new MvccStore();
  put(store, "gone", "1"); // 2
  put(store, "back", "1"); // 3
  del(store, "gone"); // 4
  del(store, "back"); // 5
  put(store, "back", "2"); // 6
  put(store, "late", "1"); // 7
  del(store, "late"); // 8
  store.compact(6);
  const history = store.eventsBetween(0).map((e) =>
    `${String.fromCharCode(...e.kv!.key)}@${e.kv!.modRevision}`
  );
  assert.deepEqual(history, ["back@6", "late@7", "late@8"]);
  assert.deepEqual(keys(rangeOf(store, "\0", "\0", { revision: 6 }).kvs), ["back"]);
  assert.deepEqual(keys(rangeOf(store, "\0", "\0", { revision: 7 }).kvs), ["back", "late"]);
  store.compact(8);
  assert.deepEqual(store.eventsBetween(0).map((e) => Number(e.kv!.modRevision)), [6]);
  // The dropped key can come back as a fresh generation.
  put(store, "gone", "new"); // 9
  assert.deepEqual(get(store, "gone"), {
    key: "gone",
    value: "new",
    create: 9,
    mod: 9,
    version: 1,
    lease: 0,
  });
});

Deno.test("compaction keeps version counting within the live generation", () => {
  const store = storeWith(["k", "1"], ["k", "2"], ["k", "3"]); // 2, 3, 4
  store.compact(4);
  put(store, "k", "4");
  assert.deepEqual(get(store, "k"), {
    key: "k",
    value: "4",
    create: 2,
    mod: 5,
    version: 4,
    lease: 0,
  });
});

Deno.test("compact rejects old and future revisions like etcd", () => {
  const store = storeWith(["a", "1"], ["a", "2"]); // 2, 3
  throwsEtcd(() => store.compact(4), Errors.futureRev());
  store.compact(0); // etcd accepts 0 on a never-compacted store
  throwsEtcd(() => store.compact(0), Errors.compacted());
  store.compact(3); // the current revision is allowed
  throwsEtcd(() => store.compact(3), Errors.compacted());
  throwsEtcd(() => store.compact(2), Errors.compacted());
  assert.equal(store.compactRevision, 3);
  assert.equal(get(store, "a")?.value, "2");
});

Deno.test("sizeBytes grows with history and shrinks with compaction", () => {
  const store = new MvccStore();
  const empty = store.sizeBytes();
  for (let i = 0; i < 100; i++) put(store, "key", "x".repeat(100));
  const full = store.sizeBytes();
  assert.ok(full >= empty + 100 * 100);
  store.compact(store.revision);
  assert.ok(store.sizeBytes() < full / 50);
});
