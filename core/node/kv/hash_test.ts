import assert from "node:assert/strict";
import { Errors } from "../../errors.ts";
import { MvccStore } from "../../mvcc/mod.ts";
import { applyDeleteRange, applyPut, applyTxn, range } from "./mod.ts";
import { cmp, delReq, kvView, op, putReq, rangeReq, throwsEtcd, txnReq } from "./_testing.ts";

/**
 * A session replayed against etcd 3.4.23 (one fresh member), with the HashKV values
 * `etcdctl endpoint hashkv [--rev N] -w json` printed along the way.
 */
Deno.test("hashKV equals etcd's HashKV through writes, txns and compactions", () => {
  const store = new MvccStore();
  const fresh = store.hashKV(0);
  assert.deepEqual({ revision: fresh.revision, compactRevision: fresh.compactRevision }, {
    revision: 1,
    compactRevision: -1,
  });

  // First session: foo=bar; txn [put a=1, nested]; txn [put k1, del foo].
  const first = new MvccStore();
  applyPut(first, putReq("foo", "bar"));
  applyTxn(
    first,
    txnReq([], [op.put("a", "1"), op.txn(txnReq([], [op.range("a"), op.txn(txnReq([], []))]))]),
  );
  applyTxn(
    first,
    txnReq([cmp("mod", "foo", ">", 0n)], [
      op.put("k1", "v1"),
      op.range("foo"),
      op.del("nokey"),
      op.del("foo", undefined, { prevKv: true }),
      op.range("foo"),
    ]),
  );
  assert.deepEqual(first.hashKV(0), { hash: 3148704608, revision: 4, compactRevision: -1 });
  first.compact(0);
  assert.deepEqual(first.hashKV(0), { hash: 3148704608, revision: 4, compactRevision: 0 });

  // Second session.
  for (let i = 0; i < 30; i++) {
    applyPut(store, putReq(`k${String(i).padStart(2, "0")}`, `v${i % 4}`));
  }
  for (const k of ["k05", "k10", "k03", "k10", "k22", "k07", "k22", "k22", "k29", "k01"]) {
    applyPut(store, putReq(k, "x"));
  }
  assert.equal(store.hash(), 160679258);
  applyTxn(store, txnReq([], [], [op.del("k27", "\0"), op.put("k28", "y")])); // no-op: success is empty
  applyTxn(store, txnReq([], [op.range("k00", undefined, { revision: -1n })]));
  applyTxn(store, txnReq([], [op.del("k27", "\0"), op.put("k28", "y")]));
  assert.equal(store.revision, 42);
  assert.equal(store.hash(), 1398120653);
  assert.equal(store.hashKV(38).hash, 3213185542);

  store.compact(35);
  assert.deepEqual(store.hashKV(0), { hash: 719299636, revision: 42, compactRevision: 35 });
  assert.equal(store.hashKV(38).hash, 1225839078);

  applyPut(store, putReq("k05", "z"));
  applyDeleteRange(store, delReq("k06"));
  assert.equal(store.hash(), 1403077786);

  store.compact(44);
  assert.equal(store.hash(), 596410158);
  assert.equal(range(store, rangeReq("k", "l", { revision: 44n })).count, 27n);
  throwsEtcd(() => range(store, rangeReq("k", "l", { revision: 43n })), Errors.compacted());

  applyPut(store, putReq("ta", "1"));
  applyTxn(
    store,
    txnReq([], [
      op.put("ta", "2"),
      op.txn(
        txnReq([cmp("value", "ta", "=", "2")], [op.put("tb", "x")], [
          op.put("tc", "x"),
          op.range("ta"),
        ]),
      ),
    ]),
  );
  assert.deepEqual(store.hashKV(0), { hash: 3207426921, revision: 46, compactRevision: 44 });
  assert.equal(store.hashKV(45).hash, 3353252098);

  // And the final state etcd listed with `get "" --from-key`.
  const all = range(store, rangeReq("\0", "\0")).kvs.map(kvView);
  assert.equal(all.length, 29);
  assert.deepEqual(all.find((kv) => kv?.key === "k05"), {
    key: "k05",
    value: "z",
    create: 7,
    mod: 43,
    version: 3,
    lease: 0,
  });
  assert.deepEqual(all.find((kv) => kv?.key === "k28"), {
    key: "k28",
    value: "y",
    create: 42,
    mod: 42,
    version: 1,
    lease: 0,
  });
  assert.deepEqual(all.find((kv) => kv?.key === "ta"), {
    key: "ta",
    value: "2",
    create: 45,
    mod: 46,
    version: 2,
    lease: 0,
  });
  assert.deepEqual(all.find((kv) => kv?.key === "tc"), {
    key: "tc",
    value: "x",
    create: 46,
    mod: 46,
    version: 1,
    lease: 0,
  });
});
