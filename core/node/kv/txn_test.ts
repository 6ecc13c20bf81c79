import assert from "node:assert/strict";
import { toJson } from "@bufbuild/protobuf";
import { Event_EventType } from "../../../gen/mvccpb/kv_pb.ts";
import {
  Compare_CompareResult,
  Compare_CompareTarget,
  CompareSchema,
  TxnResponseSchema,
} from "../../../gen/etcdserverpb/rpc_pb.ts";
import { create } from "@bufbuild/protobuf";
import { Errors } from "../../errors.ts";
import { MvccStore } from "../../mvcc/mod.ts";
import { applyPut, applyTxn, isTxnReadOnly, isTxnSerializable, range } from "./mod.ts";
import {
  b,
  cmp,
  get,
  keys,
  op,
  putReq,
  rangeReq,
  RecordingLeases,
  s,
  storeWith,
  throwsEtcd,
  txnReq,
} from "./_testing.ts";

Deno.test("txn compares every target with every result", () => {
  const leases = new RecordingLeases(new Set([9n]));
  const store = new MvccStore(leases);
  applyPut(store, putReq("other", "x")); // 2
  applyPut(store, putReq("k", "mid", { lease: 9n })); // 3: create 3
  applyPut(store, putReq("k", "mid")); // 4: mod 4, version 2, lease 0
  const table: [ReturnType<typeof cmp>, boolean][] = [
    [cmp("version", "k", "=", 2n), true],
    [cmp("version", "k", "!=", 2n), false],
    [cmp("version", "k", ">", 1n), true],
    [cmp("version", "k", "<", 2n), false],
    [cmp("create", "k", "=", 3n), true],
    [cmp("create", "k", "<", 4n), true],
    [cmp("mod", "k", "=", 4n), true],
    [cmp("mod", "k", ">", 4n), false],
    [cmp("value", "k", "=", "mid"), true],
    [cmp("value", "k", ">", "lo"), true],
    [cmp("value", "k", "<", "mida"), true],
    [cmp("value", "k", "!=", "mid"), false],
    [cmp("lease", "k", "=", 0n), true],
    [cmp("lease", "k", "=", 9n), false],
    // a missing key compares as version/create/mod/lease 0 ...
    [cmp("version", "missing", "=", 0n), true],
    [cmp("create", "missing", "<", 1n), true],
    [cmp("mod", "missing", "=", 0n), true],
    [cmp("lease", "missing", "=", 0n), true],
    // ... but any VALUE compare on a missing key fails, even against "" (etcd 3.4.23).
    [cmp("value", "missing", "=", ""), false],
    [cmp("value", "missing", "!=", "x"), false],
  ];
  for (const [c, want] of table) {
    const { response } = applyTxn(store, txnReq([c], []));
    assert.equal(response.succeeded, want, JSON.stringify(toJson(CompareSchema, c)));
  }
  assert.equal(store.revision, 4);
});

Deno.test("txn compare with range_end requires every key in the range to satisfy it", () => {
  const store = storeWith(["a", "1"], ["b", "1"], ["b", "2"], ["c", "1"]);
  const table: [ReturnType<typeof cmp>, boolean][] = [
    [cmp("version", "a", ">", 0n, "d"), true],
    [cmp("version", "a", ">", 1n, "d"), false],
    [cmp("version", "b", ">", 1n, "c"), true],
    [cmp("value", "a", "=", "1", "\0"), false],
    [cmp("value", "c", "=", "1", "\0"), true],
    // An empty range behaves like a missing key.
    [cmp("version", "x", "=", 0n, "z"), true],
    [cmp("value", "x", "=", "", "z"), false],
  ];
  for (const [c, want] of table) {
    assert.equal(applyTxn(store, txnReq([c], [])).response.succeeded, want);
  }
});

Deno.test("txn with no compares succeeds; unknown result or target behave like etcd", () => {
  const store = storeWith(["k", "v"]);
  assert.equal(applyTxn(store, txnReq([], [])).response.succeeded, true);
  // Unknown result: etcd's switch falls through to true.
  const oddResult = create(CompareSchema, {
    key: b("k"),
    target: Compare_CompareTarget.VERSION,
    result: 42 as Compare_CompareResult,
    targetUnion: { case: "version", value: 100n },
  });
  assert.equal(applyTxn(store, txnReq([oddResult], [])).response.succeeded, true);
  // Target and union disagree: the operand reads as 0.
  const mismatch = create(CompareSchema, {
    key: b("k"),
    target: Compare_CompareTarget.MOD,
    result: Compare_CompareResult.GREATER,
    targetUnion: { case: "version", value: 100n },
  });
  assert.equal(applyTxn(store, txnReq([mismatch], [])).response.succeeded, true);
});

Deno.test("txn runs success or failure ops and uses one revision with sub-revisions", () => {
  const store = storeWith(["a", "1"]); // 2
  const { response, events } = applyTxn(
    store,
    txnReq(
      [cmp("value", "a", "=", "1")],
      [op.put("b", "x"), op.put("c", "y"), op.del("a")],
      [op.put("never", "z")],
    ),
  );
  assert.equal(response.succeeded, true);
  assert.equal(store.revision, 3);
  assert.deepEqual(
    events.map((e) => `${e.type === Event_EventType.PUT ? "put" : "del"} ${s(e.kv!.key)}`),
    ["put b", "put c", "del a"],
  );
  assert.ok(events.every((e) => e.kv!.modRevision === 3n));
  assert.deepEqual(keys(range(store, rangeReq("\0", "\0")).kvs), ["b", "c"]);

  const failed = applyTxn(
    store,
    txnReq([cmp("value", "a", "=", "1")], [op.put("x")], [op.put("f")]),
  );
  assert.equal(failed.response.succeeded, false);
  assert.equal(get(store, "f")?.mod, 4);
  assert.equal(get(store, "x"), undefined);
});

Deno.test("txn range sees the txn's own puts and deletes", () => {
  const store = storeWith(["a", "1"], ["b", "1"]); // 2, 3
  const { response } = applyTxn(
    store,
    txnReq([], [
      op.range("a", "z"),
      op.put("a", "2"),
      op.range("a", "z"),
      op.del("b"),
      op.range("a", "z"),
      op.range("a", undefined, { revision: 3n }),
    ]),
  );
  const ranges = response.responses
    .filter((r) => r.response.case === "responseRange")
    .map((r) => r.response.value as { kvs: { key: Uint8Array; value: Uint8Array }[] })
    .map((r) => r.kvs.map((kv) => `${s(kv.key)}=${s(kv.value)}`).join(","));
  assert.deepEqual(ranges, ["a=1,b=1", "a=2,b=1", "a=2", "a=1"]);
});

Deno.test("nested responses carry etcd's headers (verified with etcdctl txn -w json)", () => {
  // etcd 3.4.23, revision 3 with foo=bar at 2:
  //   put k1 v1; get foo; del nokey; del foo --prev-kv; get foo  ->  every nested header is
  //   {revision: 4}; a nested txn's header is present but empty; the top header is the caller's.
  const store = storeWith(["x", "1"], ["foo", "bar"]); // 2, 3
  const { response } = applyTxn(
    store,
    txnReq([cmp("mod", "foo", ">", 0n)], [
      op.put("k1", "v1"),
      op.range("foo"),
      op.del("nokey"),
      op.del("foo", undefined, { prevKv: true }),
      op.range("foo"),
      op.txn(txnReq([], [op.range("k1"), op.txn(txnReq([], []))])),
    ]),
  );
  assert.deepEqual(toJson(TxnResponseSchema, response), {
    succeeded: true,
    responses: [
      { responsePut: { header: { revision: "4" } } },
      {
        responseRange: {
          header: { revision: "4" },
          kvs: [{
            key: "Zm9v",
            createRevision: "3",
            modRevision: "3",
            version: "1",
            value: "YmFy",
          }],
          count: "1",
        },
      },
      { responseDeleteRange: { header: { revision: "4" } } },
      {
        responseDeleteRange: {
          header: { revision: "4" },
          deleted: "1",
          prevKvs: [{
            key: "Zm9v",
            createRevision: "3",
            modRevision: "3",
            version: "1",
            value: "YmFy",
          }],
        },
      },
      { responseRange: { header: { revision: "4" } } },
      {
        responseTxn: {
          header: {},
          succeeded: true,
          responses: [
            {
              responseRange: {
                header: { revision: "4" },
                kvs: [{
                  key: "azE=",
                  createRevision: "4",
                  modRevision: "4",
                  version: "1",
                  value: "djE=",
                }],
                count: "1",
              },
            },
            { responseTxn: { header: {}, succeeded: true } },
          ],
        },
      },
    ],
  });
});

Deno.test("nested headers show the old revision until the txn's first change", () => {
  // etcd 3.4.23: failure branch [get foo, del nokey] of a txn whose success has a put: both
  // nested headers carry the current revision, and the revision does not move.
  const store = storeWith(["foo", "bar"]); // 2
  const { response } = applyTxn(
    store,
    txnReq(
      [cmp("mod", "zzz", ">", 0n)],
      [op.put("k1", "v1")],
      [op.range("foo"), op.del("nokey"), op.put("p", "q"), op.range("foo")],
    ),
  );
  const revisions = response.responses.map((r) =>
    (r.response.value as { header?: { revision: bigint } }).header?.revision
  );
  assert.deepEqual(revisions, [2n, 2n, 3n, 3n]);
  assert.equal(store.revision, 3);
});

Deno.test("a read-only txn, or one whose writes change nothing, keeps the revision", () => {
  const store = storeWith(["a", "1"]);
  applyTxn(store, txnReq([], [op.range("a")], [op.range("b")]));
  assert.equal(store.revision, 2);
  const { events } = applyTxn(store, txnReq([], [op.del("missing"), op.del("x", "y")]));
  assert.equal(store.revision, 2);
  assert.deepEqual(events, []);
});

Deno.test("nested txn compares are decided before the txn writes anything", () => {
  // etcd 3.4.23: with ta=1, success [put ta=2, txn{value(ta)="2" ? put tb : put tc, get ta}]
  // took the nested failure branch, and the nested get saw ta=2.
  const store = storeWith(["ta", "1"]);
  const { response } = applyTxn(
    store,
    txnReq([], [
      op.put("ta", "2"),
      op.txn(txnReq([cmp("value", "ta", "=", "2")], [op.put("tb", "x")], [
        op.put("tc", "x"),
        op.range("ta"),
      ])),
    ]),
  );
  const nested = response.responses[1].response;
  assert.equal(nested.case, "responseTxn");
  assert.equal(nested.value!.succeeded, false);
  assert.equal(get(store, "tb"), undefined);
  assert.equal(get(store, "tc")?.mod, 3);
  const inner = nested.value!.responses[1].response;
  assert.equal(inner.case, "responseRange");
  assert.equal(s(inner.value!.kvs[0].value), "2");
});

Deno.test("txn put/range checks fail the whole txn before anything is applied", () => {
  const table = [
    {
      name: "ignore_value on a missing key",
      req: txnReq([], [op.put("new", "1"), op.put("missing", "", { ignoreValue: true })]),
      err: Errors.keyNotFound(),
    },
    {
      name: "ignore_lease on a missing key in a nested txn",
      req: txnReq([], [
        op.put("new"),
        op.txn(txnReq([], [op.put("m", "", { ignoreLease: true })])),
      ]),
      err: Errors.keyNotFound(),
    },
    {
      name: "unknown lease",
      req: txnReq([], [op.put("new"), op.put("x", "1", { lease: 77n })]),
      err: Errors.leaseNotFound(),
    },
    {
      name: "key not found is checked before lease not found (etcd 3.4.23)",
      req: txnReq([], [op.put("missing", "", { lease: 77n, ignoreValue: true })]),
      err: Errors.keyNotFound(),
    },
    {
      name: "puts are checked before ranges, whatever their order (etcd 3.4.23)",
      req: txnReq([], [
        op.range("a", undefined, { revision: 9999n }),
        op.put("missing", "", { ignoreValue: true }),
      ]),
      err: Errors.keyNotFound(),
    },
    {
      name: "range at a future revision",
      req: txnReq([], [op.put("new"), op.range("a", undefined, { revision: 5n })]),
      err: Errors.futureRev(),
    },
    {
      name: "etcd #18667: a range below the compact revision fails like a plain range",
      req: txnReq([], [op.put("new"), op.range("a", undefined, { revision: 2n })]),
      err: Errors.compacted(),
    },
    {
      name: "read-only txn range at a future revision",
      req: txnReq([], [op.range("a", undefined, { revision: 5n })]),
      err: Errors.futureRev(),
    },
  ];
  for (const t of table) {
    const store = storeWith(["a", "1"], ["a", "2"], ["a", "3"]); // 2, 3, 4
    store.compact(3);
    const before = store.hash();
    throwsEtcd(() => applyTxn(store, t.req), t.err);
    assert.equal(store.revision, 4, t.name);
    assert.equal(store.hash(), before, t.name);
    assert.equal(get(store, "new"), undefined, t.name);
  }
});

Deno.test("checks only look at the branch the compares choose", () => {
  const store = storeWith(["a", "1"]);
  const { response } = applyTxn(
    store,
    txnReq(
      [cmp("value", "a", "=", "1")],
      [op.put("b", "ok")],
      [op.put("missing", "", { ignoreValue: true }), op.range("a", undefined, { revision: 99n })],
    ),
  );
  assert.equal(response.succeeded, true);
  assert.equal(get(store, "b")?.value, "ok");
});

Deno.test("txn range revision quirks: negative is current until a compaction", () => {
  const store = storeWith(["a", "1"], ["a", "2"]); // 2, 3
  const read = () => applyTxn(store, txnReq([], [op.range("a", undefined, { revision: -1n })]));
  const first = read().response.responses[0].response;
  assert.equal(first.case === "responseRange" && s(first.value.kvs[0].value), "2");
  store.compact(2);
  // etcd checks revision < compact revision before treating <= 0 as current.
  throwsEtcd(read, Errors.compacted());
  const plain = range(store, rangeReq("a", undefined, { revision: -1n }));
  assert.equal(s(plain.kvs[0].value), "2");
});

Deno.test("txn leases: attach and detach in op order; checked against the pre-txn state", () => {
  const leases = new RecordingLeases(new Set([1n, 2n]));
  const store = new MvccStore(leases);
  applyPut(store, putReq("a", "1", { lease: 1n }));
  applyTxn(store, txnReq([], [op.put("a", "2", { lease: 2n }), op.put("b", "x", { lease: 1n })]));
  applyTxn(store, txnReq([], [op.del("a", "c")]));
  assert.deepEqual(leases.calls, [
    "attach 1 a",
    "detach 1 a",
    "attach 2 a",
    "attach 1 b",
    "detach 2 a",
    "detach 1 b",
  ]);
});

Deno.test("a put and a delete of the same key in one txn both land, in order", () => {
  // etcd 3.4.23 allows `del k27 --from-key` with `put k28` (checkIntervals ignores "\0" ends):
  // k28 is deleted at sub-revision 0 and recreated with version 1 at sub-revision 1.
  const store = storeWith(["k27", "a"], ["k28", "b"], ["k28", "c"], ["k29", "d"]); // 2..5
  const { response, events } = applyTxn(
    store,
    txnReq([], [op.del("k27", "\0"), op.put("k28", "y")]),
  );
  assert.equal(response.responses[0].response.value?.$typeName, "etcdserverpb.DeleteRangeResponse");
  assert.equal(events.length, 4);
  assert.equal(store.revision, 6);
  assert.deepEqual(get(store, "k28"), {
    key: "k28",
    value: "y",
    create: 6,
    mod: 6,
    version: 1,
    lease: 0,
  });
  assert.deepEqual(keys(range(store, rangeReq("\0", "\0")).kvs), ["k28"]);
});

Deno.test("txn classification: read-only and serializable like etcd", () => {
  const table = [
    { req: txnReq([], []), readOnly: true, serializable: true },
    { req: txnReq([], [op.range("a")]), readOnly: true, serializable: false },
    {
      req: txnReq([], [op.range("a", undefined, { serializable: true })], [
        op.range("b", undefined, { serializable: true }),
      ]),
      readOnly: true,
      serializable: true,
    },
    { req: txnReq([], [op.range("a")], [op.del("a")]), readOnly: false, serializable: false },
    { req: txnReq([], [op.txn(txnReq([], []))]), readOnly: false, serializable: false },
  ];
  for (const t of table) {
    assert.equal(isTxnReadOnly(t.req), t.readOnly);
    assert.equal(isTxnSerializable(t.req), t.serializable);
  }
});
