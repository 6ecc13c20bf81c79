import assert from "node:assert/strict";
import { Errors } from "../errors.ts";
import { InvariantError } from "../assert.ts";
import { MvccStore } from "./store.ts";
import {
  b,
  del,
  get,
  keys,
  kvView,
  put,
  rangeOf,
  RecordingLeases,
  throwsEtcd,
  write,
} from "./_testing.ts";

function busyStore(leases = new RecordingLeases(new Set([5n, 6n]))): MvccStore {
  const store = new MvccStore(leases);
  put(store, "a", "1"); // 2
  put(store, "b", "1", 5n); // 3
  put(store, "a", "2"); // 4
  del(store, "a"); // 5
  write(store, (tx) => { // 6
    tx.put(b("c"), b("x"), 6n);
    tx.put(b("\u0000bin"), b("\u00ff"), 0n);
  });
  put(store, "a", "3"); // 7
  store.compact(4);
  put(store, "d", ""); // 8
  return store;
}

Deno.test("snapshot round-trip preserves history, tombstones and compact revision", () => {
  const original = busyStore();
  const restored = MvccStore.decodeSnapshot(original.encodeSnapshot());
  assert.equal(restored.revision, 8);
  assert.equal(restored.compactRevision, 4);
  assert.deepEqual(restored.hashKV(0), original.hashKV(0));
  assert.equal(restored.hashKV(6).hash, original.hashKV(6).hash);
  assert.equal(restored.sizeBytes(), original.sizeBytes());
  for (const rev of [4, 5, 6, 7, 8]) {
    const r = (s: MvccStore) => rangeOf(s, "\0", "\0", { revision: rev }).kvs.map(kvView);
    assert.deepEqual(r(restored), r(original), `rev ${rev}`);
  }
  assert.deepEqual(
    restored.eventsBetween(0).map((e) => [e.type, kvView(e.kv)]),
    original.eventsBetween(0).map((e) => [e.type, kvView(e.kv)]),
  );
  throwsEtcd(() => get(restored, "a", 3), Errors.compacted());
  throwsEtcd(() => restored.compact(4), Errors.compacted());
  // The restored store keeps going exactly like the original.
  put(original, "a", "4");
  put(restored, "a", "4");
  assert.deepEqual(get(restored, "a"), get(original, "a"));
  assert.equal(restored.hash(), original.hash());
});

Deno.test("snapshot of a never-compacted store restores compactRevision -1 semantics", () => {
  const store = new MvccStore();
  put(store, "k", "v");
  const restored = MvccStore.decodeSnapshot(store.encodeSnapshot());
  assert.equal(restored.hashKV(0).compactRevision, -1);
  restored.compact(0); // still allowed, as on a fresh etcd
  const empty = MvccStore.decodeSnapshot(new MvccStore().encodeSnapshot());
  assert.equal(empty.revision, 1);
  assert.deepEqual(keys(rangeOf(empty, "\0", "\0").kvs), []);
});

Deno.test("snapshot restore re-attaches live keys to their leases in key order", () => {
  const original = busyStore();
  const leases = new RecordingLeases(new Set([5n, 6n]));
  MvccStore.decodeSnapshot(original.encodeSnapshot(), leases);
  assert.deepEqual(leases.calls, ["attach 5 b", "attach 6 c"]);
});

Deno.test("snapshot decoding rejects foreign or damaged bytes", () => {
  const bytes = busyStore().encodeSnapshot();
  const table = [
    { name: "empty", bytes: new Uint8Array() },
    { name: "wrong magic", bytes: new Uint8Array([1, 2, 3, 4, 1, 0, 0, 0]) },
    { name: "truncated", bytes: bytes.subarray(0, bytes.length - 3) },
    { name: "trailing garbage", bytes: new Uint8Array([...bytes, 0]) },
  ];
  for (const t of table) {
    assert.throws(() => MvccStore.decodeSnapshot(t.bytes), (e) => e instanceof Error, t.name);
  }
  const wrongVersion = bytes.slice();
  wrongVersion[4] = 99;
  assert.throws(() => MvccStore.decodeSnapshot(wrongVersion), InvariantError);
});
