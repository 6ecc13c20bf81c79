import assert from "node:assert/strict";
import { Event_EventType } from "../../../gen/mvccpb/kv_pb.ts";
import { Errors } from "../../errors.ts";
import { MvccStore } from "../../mvcc/mod.ts";
import { applyDeleteRange, applyPut, range } from "./mod.ts";
import {
  delReq,
  get,
  keys,
  kvView,
  putReq,
  rangeReq,
  RecordingLeases,
  s,
  storeWith,
  throwsEtcd,
} from "./_testing.ts";

Deno.test("put creates a key with create = mod = the new revision and version 1", () => {
  const store = new MvccStore();
  const { response, events } = applyPut(store, putReq("foo", "bar"));
  assert.equal(store.revision, 2);
  assert.equal(response.header, undefined);
  assert.equal(response.prevKv, undefined);
  assert.deepEqual(get(store, "foo"), {
    key: "foo",
    value: "bar",
    create: 2,
    mod: 2,
    version: 1,
    lease: 0,
  });
  assert.equal(events.length, 1);
  assert.equal(events[0].type, Event_EventType.PUT);
  assert.deepEqual(kvView(events[0].kv), get(store, "foo"));
});

Deno.test("overwriting a key bumps version and mod_revision, keeps create_revision", () => {
  const store = storeWith(["foo", "1"], ["other", "x"], ["foo", "2"], ["foo", "3"]);
  assert.deepEqual(get(store, "foo"), {
    key: "foo",
    value: "3",
    create: 2,
    mod: 5,
    version: 3,
    lease: 0,
  });
});

Deno.test("version resets after delete; a new generation starts", () => {
  const store = storeWith(["foo", "1"], ["foo", "2"]); // 2, 3
  applyDeleteRange(store, delReq("foo")); // 4
  assert.equal(get(store, "foo"), undefined);
  applyPut(store, putReq("foo", "again")); // 5
  assert.deepEqual(get(store, "foo"), {
    key: "foo",
    value: "again",
    create: 5,
    mod: 5,
    version: 1,
    lease: 0,
  });
  assert.equal(get(store, "foo", 3)?.version, 2);
  assert.equal(get(store, "foo", 4), undefined);
});

Deno.test("put with prev_kv returns the previous value, none for a new key", () => {
  const store = new MvccStore();
  assert.equal(applyPut(store, putReq("k", "1", { prevKv: true })).response.prevKv, undefined);
  const { response } = applyPut(store, putReq("k", "2", { prevKv: true }));
  assert.deepEqual(kvView(response.prevKv), {
    key: "k",
    value: "1",
    create: 2,
    mod: 2,
    version: 1,
    lease: 0,
  });
  assert.equal(applyPut(store, putReq("k", "3")).response.prevKv, undefined);
});

Deno.test("put with ignore_value keeps the value; ignore_lease keeps the lease", () => {
  const leases = new RecordingLeases(new Set([7n, 8n]));
  const store = new MvccStore(leases);
  applyPut(store, putReq("k", "v1", { lease: 7n }));
  applyPut(store, putReq("k", "", { ignoreValue: true, lease: 8n }));
  assert.deepEqual(get(store, "k"), {
    key: "k",
    value: "v1",
    create: 2,
    mod: 3,
    version: 2,
    lease: 8,
  });
  applyPut(store, putReq("k", "v2", { ignoreLease: true }));
  assert.deepEqual(get(store, "k"), {
    key: "k",
    value: "v2",
    create: 2,
    mod: 4,
    version: 3,
    lease: 8,
  });
  assert.deepEqual(leases.calls, [
    "attach 7 k",
    "detach 7 k",
    "attach 8 k",
    "detach 8 k",
    "attach 8 k",
  ]);
});

Deno.test("put with ignore_value or ignore_lease on a missing key fails and changes nothing", () => {
  for (const opts of [{ ignoreValue: true }, { ignoreLease: true }]) {
    const store = storeWith(["other", "x"]);
    applyPut(store, putReq("gone", "x"));
    applyDeleteRange(store, delReq("gone"));
    const before = store.hash();
    throwsEtcd(() => applyPut(store, putReq("gone", "", opts)), Errors.keyNotFound());
    throwsEtcd(() => applyPut(store, putReq("never", "", opts)), Errors.keyNotFound());
    assert.equal(store.revision, 4);
    assert.equal(store.hash(), before);
  }
});

Deno.test("put with an unknown lease fails with lease not found, checked before the key", () => {
  const store = new MvccStore();
  throwsEtcd(() => applyPut(store, putReq("k", "v", { lease: 5n })), Errors.leaseNotFound());
  // etcd's Put looks the lease up first: lease not found wins over key not found.
  throwsEtcd(
    () => applyPut(store, putReq("missing", "", { lease: 5n, ignoreValue: true })),
    Errors.leaseNotFound(),
  );
  assert.equal(store.revision, 1);
});

Deno.test("put with a lease attaches it and detaches the previous one; delete detaches", () => {
  const leases = new RecordingLeases(new Set([1n, 2n]));
  const store = new MvccStore(leases);
  applyPut(store, putReq("a", "1", { lease: 1n }));
  applyPut(store, putReq("a", "2", { lease: 2n }));
  applyPut(store, putReq("a", "3"));
  applyPut(store, putReq("b", "1", { lease: 1n }));
  applyDeleteRange(store, delReq("a", "z"));
  assert.deepEqual(leases.calls, [
    "attach 1 a",
    "detach 1 a",
    "attach 2 a",
    "detach 2 a",
    "attach 1 b",
    "detach 1 b",
  ]);
});

Deno.test("put copies keys and values: the caller's buffers are neither kept nor pinned", () => {
  const store = new MvccStore();
  const own = putReq("own", "value");
  applyPut(store, own);
  own.value.fill(0x7a);
  const stored = range(store, rangeReq("own")).kvs[0];
  assert.equal(s(stored.value), "value");
  assert.notEqual(stored.value.buffer, own.value.buffer);

  const big = new Uint8Array(4096);
  big.set(new TextEncoder().encode("keyvalue"), 1000);
  applyPut(store, {
    ...putReq(""),
    key: big.subarray(1000, 1003),
    value: big.subarray(1003, 1008),
  });
  big.fill(0x7a);
  const kv = range(store, rangeReq("key")).kvs[0];
  assert.equal(s(kv.key), "key");
  assert.equal(s(kv.value), "value");
  assert.notEqual(kv.value.buffer, big.buffer);
  assert.notEqual(kv.key.buffer, big.buffer);
  // Small copies share slabs rather than each having a buffer of its own.
  assert.equal(kv.value.buffer, stored.value.buffer);
});

Deno.test("delete range reports the deleted count and prev_kvs", () => {
  const store = storeWith(["a", "1"], ["b", "2"], ["c", "3"], ["d", "4"]);
  const { response, events } = applyDeleteRange(store, delReq("b", "d", { prevKv: true }));
  assert.equal(response.deleted, 2n);
  assert.deepEqual(keys(response.prevKvs), ["b", "c"]);
  assert.equal(store.revision, 6);
  assert.deepEqual(
    events.map((e) => [e.type, s(e.kv!.key), Number(e.kv!.modRevision), e.kv!.value.length]),
    [[Event_EventType.DELETE, "b", 6, 0], [Event_EventType.DELETE, "c", 6, 0]],
  );
  assert.deepEqual(keys(range(store, rangeReq("a", "z")).kvs), ["a", "d"]);
  const noPrev = applyDeleteRange(store, delReq("a"));
  assert.equal(noPrev.response.deleted, 1n);
  assert.deepEqual(noPrev.response.prevKvs, []);
});

Deno.test("delete range follows range_end rules (single key, \\0, from key)", () => {
  const table = [
    { key: "b", end: undefined, want: ["a", "c", "d"] },
    { key: "b", end: "\0", want: ["a"] },
    { key: "\0", end: "\0", want: [] },
    { key: "c", end: "a", want: ["a", "b", "c", "d"] },
    { key: "bb", end: undefined, want: ["a", "b", "c", "d"] },
  ];
  for (const t of table) {
    const store = storeWith(["a", "1"], ["b", "2"], ["c", "3"], ["d", "4"]);
    applyDeleteRange(store, delReq(t.key, t.end));
    assert.deepEqual(keys(range(store, rangeReq("\0", "\0")).kvs), t.want, `${t.key}..${t.end}`);
  }
});

Deno.test("delete that matches nothing keeps the revision and emits no events", () => {
  const store = storeWith(["a", "1"]);
  applyDeleteRange(store, delReq("a"));
  const { response, events } = applyDeleteRange(store, delReq("a", "z", { prevKv: true }));
  assert.equal(response.deleted, 0n);
  assert.deepEqual(events, []);
  assert.equal(store.revision, 3);
});

Deno.test("write results carry each key's previous value for watchers' prev_kv", () => {
  const store = storeWith(["a", "1"]);
  const put = applyPut(store, putReq("a", "2"));
  assert.equal(kvView(put.prevKvs.get(0))?.value, "1");
  assert.equal(applyPut(store, putReq("new", "x")).prevKvs.get(0), undefined);
  const del = applyDeleteRange(store, delReq("a", "z"));
  assert.deepEqual(
    Array.from({ length: del.prevKvs.length }, (_, i) => kvView(del.prevKvs.get(i))?.value),
    ["2", "x"],
  );
});

Deno.test("events are frozen; history reads share their KeyValues", () => {
  const store = new MvccStore();
  const { events } = applyPut(store, putReq("a", "1"));
  assert.ok(Object.isFrozen(events[0]));
  assert.ok(Object.isFrozen(events[0].kv));
  const replayed = store.eventsBetween(2)[0];
  assert.ok(Object.isFrozen(replayed));
  assert.deepEqual(replayed, events[0]);
  assert.equal(replayed.kv, events[0].kv);
});

Deno.test("eventsBetween returns every stored revision in order within bounds", () => {
  const store = storeWith(["a", "1"], ["b", "1"], ["a", "2"]); // 2, 3, 4
  applyDeleteRange(store, delReq("a", "c")); // 5 (two events)
  const view = (from: number, to?: number) =>
    store.eventsBetween(from, to).map((e) =>
      `${e.type === Event_EventType.PUT ? "put" : "del"} ${s(e.kv!.key)}@${e.kv!.modRevision}`
    );
  assert.deepEqual(view(0), ["put a@2", "put b@3", "put a@4", "del a@5", "del b@5"]);
  assert.deepEqual(view(3, 4), ["put b@3", "put a@4"]);
  assert.deepEqual(view(5), ["del a@5", "del b@5"]);
  assert.deepEqual(view(6), []);
});
