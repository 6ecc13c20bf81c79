import assert from "node:assert/strict";
import { Errors } from "../errors.ts";
import { InvariantError } from "../assert.ts";
import { MvccStore } from "./store.ts";
import {
  delReq,
  get,
  keys,
  kvView,
  op,
  putReq,
  rangeReq,
  RecordingLeases,
  throwsEtcd,
  txnReq,
} from "./_testing.ts";

function busyStore(leases = new RecordingLeases(new Set([5n, 6n]))): MvccStore {
  const store = new MvccStore(leases);
  store.put(putReq("a", "1")); // 2
  store.put(putReq("b", "1", { lease: 5n })); // 3
  store.put(putReq("a", "2")); // 4
  store.deleteRange(delReq("a")); // 5
  store.txn(txnReq([], [op.put("c", "x", { lease: 6n }), op.put("\u0000bin", "\u00ff")])); // 6
  store.put(putReq("a", "3")); // 7
  store.compact(4);
  store.put(putReq("d", "")); // 8
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
    const r = (s: MvccStore) =>
      s.range(rangeReq("\0", "\0", { revision: BigInt(rev) })).kvs.map(kvView);
    assert.deepEqual(r(restored), r(original), `rev ${rev}`);
  }
  assert.deepEqual(
    restored.eventsBetween(0).map((e) => [e.type, kvView(e.kv)]),
    original.eventsBetween(0).map((e) => [e.type, kvView(e.kv)]),
  );
  throwsEtcd(() => get(restored, "a", 3), Errors.compacted());
  throwsEtcd(() => restored.compact(4), Errors.compacted());
  // The restored store keeps going exactly like the original.
  original.put(putReq("a", "4"));
  restored.put(putReq("a", "4"));
  assert.deepEqual(get(restored, "a"), get(original, "a"));
  assert.equal(restored.hash(), original.hash());
});

Deno.test("snapshot of a never-compacted store restores compactRevision -1 semantics", () => {
  const store = new MvccStore();
  store.put(putReq("k", "v"));
  const restored = MvccStore.decodeSnapshot(store.encodeSnapshot());
  assert.equal(restored.hashKV(0).compactRevision, -1);
  restored.compact(0); // still allowed, as on a fresh etcd
  const empty = MvccStore.decodeSnapshot(new MvccStore().encodeSnapshot());
  assert.equal(empty.revision, 1);
  assert.deepEqual(keys(empty.range(rangeReq("\0", "\0")).kvs), []);
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
