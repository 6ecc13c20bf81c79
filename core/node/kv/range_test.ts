import assert from "node:assert/strict";
import { Errors } from "../../errors.ts";
import {
  RangeRequest_SortOrder,
  RangeRequest_SortTarget,
} from "../../../gen/etcdserverpb/rpc_pb.ts";
import { MvccStore } from "../../mvcc/mod.ts";
import { applyDeleteRange, applyPut, range } from "./mod.ts";
import {
  b,
  delReq,
  get,
  keys,
  kvView,
  putReq,
  rangeReq,
  storeWith,
  throwsEtcd,
} from "./_testing.ts";

Deno.test("a fresh store is at revision 1, never compacted, and empty", () => {
  const store = new MvccStore();
  assert.equal(store.revision, 1);
  assert.equal(store.compactRevision, 0);
  const resp = range(store, rangeReq("\0", "\0"));
  assert.deepEqual(resp.kvs, []);
  assert.equal(resp.count, 0n);
  assert.equal(resp.header, undefined);
});

Deno.test("range selects keys by key and range_end like etcd", () => {
  const store = storeWith(["a", "1"], ["ab", "2"], ["abc", "3"], ["b", "4"], ["c", "5"], [
    "\u0000x",
    "0",
  ]);
  const table: { name: string; key: string; end?: string; want: string[] }[] = [
    { name: "single key", key: "ab", want: ["ab"] },
    { name: "missing single key", key: "zz", want: [] },
    { name: "half-open interval", key: "a", end: "b", want: ["a", "ab", "abc"] },
    { name: "prefix (end = prefix + 1)", key: "ab", end: "ac", want: ["ab", "abc"] },
    { name: "end \\0 means every key >= key", key: "ab", end: "\0", want: ["ab", "abc", "b", "c"] },
    {
      name: "key \\0 with end \\0 means every key",
      key: "\0",
      end: "\0",
      want: ["\u0000x", "a", "ab", "abc", "b", "c"],
    },
    { name: "end before key selects nothing", key: "c", end: "a", want: [] },
    { name: "end equal to key selects nothing", key: "b", end: "b", want: [] },
    { name: "interval without keys", key: "bb", end: "bz", want: [] },
  ];
  for (const t of table) {
    const resp = range(store, rangeReq(t.key, t.end));
    assert.deepEqual(keys(resp.kvs), t.want, t.name);
    assert.equal(resp.count, BigInt(t.want.length), t.name);
    assert.equal(resp.more, false, t.name);
  }
});

Deno.test("keys are ordered bytewise, not by UTF-16 or locale", () => {
  const store = new MvccStore();
  const raw = [[0xff], [0x7f], [0x80, 0x00], [0x41], [0x61], [0xc3, 0xa9]];
  for (const k of raw) applyPut(store, { ...putReq("x"), key: new Uint8Array(k) });
  const resp = range(store, { ...rangeReq("\0", "\0") });
  assert.deepEqual(
    resp.kvs.map((kv) => [...kv.key]),
    [[0x41], [0x61], [0x7f], [0x80, 0x00], [0xc3, 0xa9], [0xff]],
  );
});

Deno.test("range with limit reports more and the full count", () => {
  const store = storeWith(["a", "1"], ["b", "2"], ["c", "3"], ["d", "4"]);
  const table = [
    { limit: 2n, want: ["a", "b"], more: true },
    { limit: 3n, want: ["a", "b", "c"], more: true },
    { limit: 4n, want: ["a", "b", "c", "d"], more: false },
    { limit: 10n, want: ["a", "b", "c", "d"], more: false },
    { limit: 0n, want: ["a", "b", "c", "d"], more: false },
    { limit: -1n, want: ["a", "b", "c", "d"], more: false },
  ];
  for (const t of table) {
    const resp = range(store, rangeReq("a", "z", { limit: t.limit }));
    assert.deepEqual(keys(resp.kvs), t.want, `limit ${t.limit}`);
    assert.equal(resp.more, t.more, `limit ${t.limit}`);
    assert.equal(resp.count, 4n, `limit ${t.limit}`);
  }
});

Deno.test("count_only returns the count and no kvs", () => {
  const store = storeWith(["a", "1"], ["b", "2"], ["c", "3"]);
  const resp = range(store, rangeReq("a", "z", { countOnly: true, limit: 1n }));
  assert.deepEqual(resp.kvs, []);
  assert.equal(resp.count, 3n);
  assert.equal(resp.more, false);
  assert.equal(range(store, rangeReq("b", undefined, { countOnly: true })).count, 1n);
});

Deno.test("keys_only strips values without touching the stored kvs", () => {
  const store = storeWith(["a", "1"], ["b", "2"]);
  const resp = range(store, rangeReq("a", "z", { keysOnly: true }));
  assert.deepEqual(resp.kvs.map(kvView), [
    { key: "a", value: "", create: 2, mod: 2, version: 1, lease: 0 },
    { key: "b", value: "", create: 3, mod: 3, version: 1, lease: 0 },
  ]);
  assert.equal(get(store, "a")?.value, "1");
});

Deno.test("range reuses the stored KeyValue objects, which are frozen", () => {
  const store = storeWith(["a", "1"]);
  const first = range(store, rangeReq("a")).kvs[0];
  const second = range(store, rangeReq("a", "b")).kvs[0];
  assert.equal(first, second);
  assert.ok(Object.isFrozen(first));
});

Deno.test("min/max mod/create revision filters prune kvs but not count (etcd 3.4.23)", () => {
  // Verified against etcd 3.4.23: keys k00..k29 put at revisions 2..31, then overwrites at 32..41;
  // {min_mod_revision: 30, limit: 2} answered count 30, more true, kvs [k01, k03].
  const store = new MvccStore();
  for (let i = 0; i < 30; i++) {
    applyPut(store, putReq(`k${String(i).padStart(2, "0")}`, `v${i % 4}`));
  }
  for (const k of ["k05", "k10", "k03", "k10", "k22", "k07", "k22", "k22", "k29", "k01"]) {
    applyPut(store, putReq(k, "x"));
  }
  assert.equal(store.revision, 41);
  const resp = range(store, rangeReq("k", "l", { minModRevision: 30n, limit: 2n }));
  assert.deepEqual(keys(resp.kvs), ["k01", "k03"]);
  assert.equal(resp.more, true);
  assert.equal(resp.count, 30n);

  const table = [
    { name: "max_mod 3", opts: { maxModRevision: 3n }, want: ["k00"] },
    { name: "min_create 30", opts: { minCreateRevision: 30n }, want: ["k28", "k29"] },
    { name: "max_create 3", opts: { maxCreateRevision: 3n }, want: ["k00", "k01"] },
    {
      name: "min_mod 38 and max_mod 40",
      opts: { minModRevision: 38n, maxModRevision: 40n },
      want: ["k22", "k29"],
    },
  ];
  for (const t of table) {
    const r = range(store, rangeReq("k", "l", t.opts));
    assert.deepEqual(keys(r.kvs), t.want, t.name);
    assert.equal(r.count, 30n, t.name);
  }
  // count_only ignores the filters entirely (etcd answered count 30 for max_create 5).
  assert.equal(
    range(store, rangeReq("k", "l", { maxCreateRevision: 5n, countOnly: true })).count,
    30n,
  );
});

Deno.test("historical range reads each key as of that revision", () => {
  const store = new MvccStore();
  applyPut(store, putReq("a", "1")); // 2
  applyPut(store, putReq("b", "1")); // 3
  applyPut(store, putReq("a", "2")); // 4
  applyDeleteRange(store, delReq("b")); // 5
  applyPut(store, putReq("b", "new")); // 6
  const table = [
    { rev: 1, want: [] as string[] },
    { rev: 2, want: ["a=1 v1"] },
    { rev: 3, want: ["a=1 v1", "b=1 v1"] },
    { rev: 4, want: ["a=2 v2", "b=1 v1"] },
    { rev: 5, want: ["a=2 v2"] },
    { rev: 6, want: ["a=2 v2", "b=new v1"] },
    { rev: 0, want: ["a=2 v2", "b=new v1"] },
    { rev: -3, want: ["a=2 v2", "b=new v1"] },
  ];
  for (const t of table) {
    const resp = range(store, rangeReq("a", "z", { revision: BigInt(t.rev) }));
    const got = resp.kvs.map((kv) => `${kvView(kv)!.key}=${kvView(kv)!.value} v${kv.version}`);
    assert.deepEqual(got, t.want, `rev ${t.rev}`);
  }
});

Deno.test("range above the current revision fails with future revision", () => {
  const store = storeWith(["a", "1"]);
  throwsEtcd(() => range(store, rangeReq("a", undefined, { revision: 3n })), Errors.futureRev());
  assert.equal(range(store, rangeReq("a", undefined, { revision: 2n })).kvs.length, 1);
});

Deno.test("range below the compact revision fails; at it, it works", () => {
  const store = storeWith(["a", "1"], ["a", "2"], ["a", "3"]); // revisions 2, 3, 4
  store.compact(3);
  throwsEtcd(() => range(store, rangeReq("a", undefined, { revision: 2n })), Errors.compacted());
  assert.equal(get(store, "a", 3)?.value, "2");
  assert.equal(get(store, "a", 4)?.value, "3");
});

Deno.test("sorting: KEY with NONE or ASCEND is the natural order, DESCEND reverses", () => {
  const store = storeWith(["b", "1"], ["a", "3"], ["c", "2"]);
  const order = (o: RangeRequest_SortOrder, limit = 0n) =>
    keys(
      range(
        store,
        rangeReq("a", "z", { sortTarget: RangeRequest_SortTarget.KEY, sortOrder: o, limit }),
      ).kvs,
    );
  assert.deepEqual(order(RangeRequest_SortOrder.NONE), ["a", "b", "c"]);
  assert.deepEqual(order(RangeRequest_SortOrder.ASCEND), ["a", "b", "c"]);
  assert.deepEqual(order(RangeRequest_SortOrder.DESCEND), ["c", "b", "a"]);
  // With an explicit order everything is fetched, sorted, then limited.
  assert.deepEqual(order(RangeRequest_SortOrder.DESCEND, 1n), ["c"]);
});

Deno.test("sorting by a non-key target with order NONE sorts ascending", () => {
  const store = storeWith(["b", "1"], ["a", "3"], ["c", "2"]);
  const resp = range(store, rangeReq("a", "z", { sortTarget: RangeRequest_SortTarget.VALUE }));
  assert.deepEqual(keys(resp.kvs), ["b", "c", "a"]);
});

Deno.test("keys_only sorted by value: in the values' order, without them", () => {
  const store = storeWith(["b", "1"], ["a", "3"], ["c", "2"]);
  for (const [key, end] of [["a", "z"], ["a", undefined]] as const) {
    const resp = range(
      store,
      rangeReq(key, end, { keysOnly: true, sortTarget: RangeRequest_SortTarget.VALUE }),
    );
    assert.deepEqual(keys(resp.kvs), end ? ["b", "c", "a"] : ["a"]);
    assert.ok(resp.kvs.every((kv) => kv.value.length === 0));
  }
  assert.equal(get(store, "a")?.value, "3");
});

Deno.test("delete does not disturb ranges of other keys", () => {
  const store = storeWith(["a", "1"], ["b", "2"], ["c", "3"]);
  applyDeleteRange(store, delReq("b"));
  assert.deepEqual(keys(range(store, rangeReq("a", "z")).kvs), ["a", "c"]);
  assert.equal(range(store, rangeReq("b")).count, 0n);
  assert.deepEqual(keys(range(store, rangeReq("a", "z", { revision: 4n })).kvs), ["a", "b", "c"]);
});

Deno.test("many keys inserted out of order stay sorted across chunk splits", () => {
  const store = new MvccStore();
  const n = 5000;
  const ids = Array.from({ length: n }, (_, i) => (i * 7919) % n);
  for (const i of ids) applyPut(store, { ...putReq(""), key: b(`k${String(i).padStart(5, "0")}`) });
  const all = keys(range(store, rangeReq("k", "l")).kvs);
  assert.equal(all.length, n);
  assert.deepEqual(all, [...all].sort());
  const window = keys(range(store, rangeReq("k01000", "k01010")).kvs);
  assert.deepEqual(window, Array.from({ length: 10 }, (_, i) => `k0${1000 + i}`));
});
