import assert from "node:assert/strict";
import { Event_EventType } from "../../gen/mvccpb/kv_pb.ts";
import { Errors } from "../errors.ts";
import { InvariantError } from "../assert.ts";
import { MvccStore, type PrevKvs } from "./store.ts";
import {
  b,
  del,
  keys,
  kvView,
  put,
  rangeOf,
  RecordingLeases,
  s,
  storeWith,
  throwsEtcd,
  write,
} from "./_testing.ts";

const EMPTY = new Uint8Array(0);

function all(prev: PrevKvs) {
  return Array.from({ length: prev.length }, (_, i) => prev.get(i));
}

Deno.test("range options: revision, limit and countOnly as etcd's RangeOptions", () => {
  const store = storeWith(["a", "1"], ["b", "2"], ["c", "3"], ["a", "4"]); // revisions 2..5
  const table = [
    { name: "all, current", options: {}, want: ["a", "b", "c"], count: 3 },
    { name: "limit 2 still counts all", options: { limit: 2 }, want: ["a", "b"], count: 3 },
    { name: "limit 0 = no limit", options: { limit: 0 }, want: ["a", "b", "c"], count: 3 },
    { name: "negative limit = no limit", options: { limit: -1 }, want: ["a", "b", "c"], count: 3 },
    { name: "countOnly", options: { countOnly: true, limit: 1 }, want: [], count: 3 },
    { name: "at revision 3", options: { revision: 3 }, want: ["a", "b"], count: 2 },
    {
      name: "negative revision = current",
      options: { revision: -7 },
      want: ["a", "b", "c"],
      count: 3,
    },
  ];
  for (const t of table) {
    const r = rangeOf(store, "a", "z", t.options);
    assert.deepEqual(keys(r.kvs), t.want, t.name);
    assert.equal(r.count, t.count, t.name);
    // Like etcd's RangeResult.Rev: the store's current revision, not the one read at.
    assert.equal(r.revision, 5, t.name);
  }
  assert.equal(s(rangeOf(store, "a", undefined, { revision: 4 }).kvs[0].value), "1");
  assert.equal(s(rangeOf(store, "a").kvs[0].value), "4");
  throwsEtcd(() => rangeOf(store, "a", undefined, { revision: 6 }), Errors.futureRev());
  store.compact(3);
  throwsEtcd(() => rangeOf(store, "a", "z", { revision: 2 }), Errors.compacted());
  assert.deepEqual(keys(rangeOf(store, "a", "z", { revision: 3 }).kvs), ["a", "b"]);
});

Deno.test("range end: empty is one key, \\0 is no upper bound, keys ordered bytewise", () => {
  const store = new MvccStore();
  for (const k of [[0xff], [0x7f], [0x41], [0xc3, 0xa9]]) {
    write(store, (tx) => tx.put(new Uint8Array(k), EMPTY, 0n));
  }
  const all = store.range(new Uint8Array([0]), new Uint8Array([0]));
  assert.deepEqual(all.kvs.map((kv) => [...kv.key]), [[0x41], [0x7f], [0xc3, 0xa9], [0xff]]);
  assert.equal(store.range(new Uint8Array([0x7f]), EMPTY).count, 1);
  assert.equal(store.range(new Uint8Array([0x7e]), EMPTY).count, 0);
  assert.equal(store.range(new Uint8Array([0x7f]), new Uint8Array([0xc3])).count, 1);
  // The kvs are the stored, frozen objects.
  assert.ok(Object.isFrozen(all.kvs[0]));
  assert.equal(store.range(new Uint8Array([0x41]), EMPTY).kvs[0], all.kvs[0]);
});

Deno.test("a write txn puts, deletes and reads its own writes, all in one revision", () => {
  const leases = new RecordingLeases(new Set([7n]));
  const store = new MvccStore(leases);
  put(store, "a", "1"); // 2
  put(store, "b", "1", 7n); // 3
  leases.calls = [];
  const tx = store.write();
  assert.equal(tx.beginRevision, 3);
  assert.equal(tx.revision, 3);
  // Reads before the first change see the begin revision; the txn's own revision is not there yet.
  throwsEtcd(() => tx.range(b("a"), EMPTY, { revision: 4 }), Errors.futureRev());
  const prevA = tx.put(b("a"), b("2"), 7n);
  assert.equal(kvView(prevA)?.value, "1");
  assert.equal(tx.put(b("c"), b("new"), 0n), undefined);
  assert.equal(tx.revision, 4);
  assert.equal(s(tx.range(b("a"), EMPTY).kvs[0].value), "2");
  assert.equal(tx.range(b("a"), b("z"), { revision: 4 }).count, 3);
  const deleted = tx.deleteRange(b("b"), b("c"));
  assert.deepEqual(deleted.map(kvView), [
    { key: "b", value: "1", create: 3, mod: 3, version: 1, lease: 7 },
  ]);
  assert.deepEqual(keys(tx.range(b("a"), b("z")).kvs), ["a", "c"]);
  // Nothing is visible outside until end().
  assert.equal(store.revision, 3);
  assert.deepEqual(keys(store.range(b("a"), b("z")).kvs), ["a", "b"]);
  tx.end();
  assert.equal(store.revision, 4);
  assert.deepEqual(
    tx.events.map((e) => [e.type, kvView(e.kv)]),
    [
      [Event_EventType.PUT, { key: "a", value: "2", create: 2, mod: 4, version: 2, lease: 7 }],
      [Event_EventType.PUT, { key: "c", value: "new", create: 4, mod: 4, version: 1, lease: 0 }],
      [Event_EventType.DELETE, { key: "b", value: "", create: 0, mod: 4, version: 0, lease: 0 }],
    ],
  );
  assert.deepEqual(all(tx.prevKvs).map((kv) => kvView(kv)?.value), ["1", undefined, "1"]);
  assert.deepEqual(leases.calls, ["attach 7 a", "detach 7 b"]);
  // One revision, sub-revisions in call order.
  assert.deepEqual(store.eventsBetween(4).map((e) => s(e.kv!.key)), ["a", "c", "b"]);
  assert.deepEqual(keys(rangeOf(store, "a", "z", { revision: 3 }).kvs), ["a", "b"]);
});

Deno.test("a write txn that changes nothing keeps the revision", () => {
  const store = storeWith(["a", "1"]);
  const tx = del(store, "missing");
  assert.deepEqual(tx.events, []);
  assert.equal(store.revision, 2);
  assert.deepEqual(write(store, (t) => t.range(b("a"), EMPTY)).events, []);
  assert.equal(store.revision, 2);
  // One that changed nothing may also be dropped without end().
  store.write().range(b("a"), EMPTY);
  put(store, "a", "2");
  assert.equal(store.revision, 3);
});

Deno.test("a write txn is used once and one at a time", () => {
  const store = new MvccStore();
  const tx = put(store, "a", "1");
  assert.throws(() => tx.end(), InvariantError);
  assert.throws(() => tx.put(b("a"), b("2"), 0n), InvariantError);
  const first = store.write();
  const second = store.write();
  first.put(b("x"), EMPTY, 0n);
  first.end();
  assert.throws(() => second.end(), InvariantError);
});

Deno.test("firstRevision is etcd's FirstRev; leaseExists asks the lessor", () => {
  const store = new MvccStore(new RecordingLeases(new Set([5n])));
  assert.equal(store.firstRevision, -1);
  assert.equal(store.compactRevision, 0);
  put(store, "a", "1");
  store.compact(2);
  assert.equal(store.firstRevision, 2);
  assert.equal(store.write().firstRevision, 2);
  assert.equal(store.leaseExists(5n), true);
  assert.equal(store.leaseExists(6n), false);
});

Deno.test("keyCount follows creations and deletions, in one txn, across compaction and restore", () => {
  const store = new MvccStore();
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648);
  const counted = (st: MvccStore) => rangeOf(st, "\0", "\xff", { countOnly: true }).count;
  for (let i = 0; i < 400; i++) {
    const k = `k${next() % 40}`;
    const op = next() % 10;
    if (op < 6) put(store, k, String(i));
    else if (op < 8) del(store, k);
    else if (op === 8) del(store, "k1", "k3"); // a range delete: several keys at once
    else {
      // One txn that creates, deletes and recreates the same key.
      write(store, (tx) => {
        tx.put(b(k), b("x"), 0n);
        tx.deleteRange(b(k), EMPTY);
        tx.put(b(k), b("y"), 0n);
      });
    }
    if (i % 97 === 96) store.compact(store.revision - 3);
    assert.equal(store.keyCount, counted(store), `after step ${i}`);
  }
  assert.ok(store.keyCount > 0);
  const restored = MvccStore.decodeSnapshot(store.encodeSnapshot());
  assert.equal(restored.keyCount, store.keyCount);
});

Deno.test("stepwise compaction: writes and reads between steps, the same store as compacting at once", () => {
  const stepwise = new MvccStore(undefined, { stepwiseCompaction: true });
  const atOnce = new MvccStore();
  let seed = 3;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648);
  const both = (f: (st: MvccStore) => void) => {
    f(stepwise);
    f(atOnce);
  };
  const key = (n: number) => `k${String(n).padStart(5, "0")}`;
  // Enough keys for several steps; some deleted (their records go), some rewritten.
  for (let i = 0; i < 5000; i++) both((st) => put(st, key(i), "v"));
  for (let i = 0; i < 5000; i += 3) both((st) => put(st, key(i), "w"));
  for (let i = 0; i < 5000; i += 7) both((st) => del(st, key(i)));
  both((st) => del(st, key(1))); // a tombstone at exactly the compact revision
  const rev = stepwise.revision;
  both((st) => st.compact(rev));
  assert.equal(stepwise.compacting, true);
  assert.equal(atOnce.compacting, false);
  assert.equal(stepwise.compactRevisionIncomplete, true);
  assert.equal(stepwise.compactRevisionIncomplete, atOnce.compactRevisionIncomplete);
  let steps = 0;
  while (!stepwise.compactionStep()) {
    steps++;
    // Between steps: writes (to keys compacted already, not yet, deleted and new) and reads.
    for (let j = 0; j < 5; j++) {
      const k = key(next() % 5200);
      if (next() % 4 === 0) both((st) => del(st, k));
      else both((st) => put(st, k, `s${steps}`));
    }
    throwsEtcd(() => rangeOf(stepwise, "k", "l", { revision: rev - 1 }), Errors.compacted());
    const from = key(next() % 5000);
    assert.deepEqual(
      keys(rangeOf(stepwise, from, "l", { limit: 20 }).kvs),
      keys(rangeOf(atOnce, from, "l", { limit: 20 }).kvs),
    );
    assert.equal(stepwise.keyCount, atOnce.keyCount);
  }
  assert.ok(steps >= 3, `${steps} steps`);
  assert.equal(stepwise.compacting, false);
  assert.equal(stepwise.hashKV(0).hash, atOnce.hashKV(0).hash);
  assert.deepEqual(stepwise.storageSizes(), atOnce.storageSizes());
  assert.deepEqual(stepwise.encodeSnapshot(), atOnce.encodeSnapshot());
  // A hash (or a view) asked for mid-compaction finishes it first: the same answer.
  both((st) => st.compact(st.revision - 2));
  assert.equal(stepwise.compacting, true);
  assert.equal(stepwise.hashKV(0).hash, atOnce.hashKV(0).hash);
  assert.equal(stepwise.compacting, false);
});

Deno.test("keyHistory: one key's revisions newest first, deletions included, paged, to the compaction", () => {
  const store = new MvccStore();
  put(store, "k", "v1"); // 2
  put(store, "other", "x"); // 3
  put(store, "k", "v2"); // 4
  del(store, "k"); // 5
  put(store, "k", "v3"); // 6
  const show = (h: ReturnType<MvccStore["keyHistory"]>) =>
    h.events.map((e) =>
      `${e.type === Event_EventType.DELETE ? "DEL" : "PUT"}@${e.kv!.modRevision}` +
      (e.type === Event_EventType.PUT ? `=${s(e.kv!.value)} v${e.kv!.version}` : "")
    );
  const whole = store.keyHistory(b("k"));
  assert.deepEqual(show(whole), ["PUT@6=v3 v1", "DEL@5", "PUT@4=v2 v2", "PUT@2=v1 v1"]);
  assert.equal(whole.more, false);
  assert.equal(s(whole.events[1].kv!.key), "k");
  const page1 = store.keyHistory(b("k"), 0, 2);
  assert.deepEqual(show(page1), ["PUT@6=v3 v1", "DEL@5"]);
  assert.equal(page1.more, true);
  const page2 = store.keyHistory(b("k"), 5, 2);
  assert.deepEqual(show(page2), ["PUT@4=v2 v2", "PUT@2=v1 v1"]);
  assert.equal(page2.more, false);
  assert.deepEqual(show(store.keyHistory(b("missing"))), []);
  // Compacted at 4: the value the key had then is kept, nothing older.
  store.compact(4);
  while (!store.compactionStep()) { /* drop history in steps */ }
  assert.deepEqual(show(store.keyHistory(b("k"))), ["PUT@6=v3 v1", "DEL@5", "PUT@4=v2 v2"]);
  // Compacted at 5, where the key was deleted: the tombstone itself goes too.
  store.compact(5);
  while (!store.compactionStep()) { /* drop history in steps */ }
  assert.deepEqual(show(store.keyHistory(b("k"))), ["PUT@6=v3 v1"]);
});

Deno.test("level: a tree level's keys and folders, each folder once, paged, deleted keys left out", () => {
  const store = new MvccStore();
  for (const k of ["top", "/a/1", "/a/2", "/b/x/y", "/c", "/d/gone", "/e", "/e/f"]) {
    put(store, k, "v");
  }
  del(store, "/d/gone"); // its folder has no key left
  const show = (r: ReturnType<MvccStore["level"]>) => ({
    entries: r.entries.map((e) => (e.folder ? `${s(e.path)}*` : s(e.path))),
    next: r.next === null ? null : s(r.next),
  });
  const slash = "/".charCodeAt(0);
  const none = new Uint8Array(0);
  assert.deepEqual(show(store.level(none, slash, none, 100)), {
    entries: ["/*", "top"],
    next: null,
  });
  assert.deepEqual(show(store.level(b("/"), slash, none, 100)), {
    entries: ["/a/*", "/b/*", "/c", "/e", "/e/*"],
    next: null,
  });
  // Pages of two: each page starts where the last one said.
  const first = store.level(b("/"), slash, none, 2);
  assert.deepEqual(show(first), { entries: ["/a/*", "/b/*"], next: "/b0" });
  const second = store.level(b("/"), slash, first.next!, 2);
  assert.deepEqual(show(second), { entries: ["/c", "/e"], next: "/e\0" });
  assert.deepEqual(show(store.level(b("/"), slash, second.next!, 2)), {
    entries: ["/e/*"],
    next: null,
  });
  // A full page with nothing after it says so.
  assert.deepEqual(show(store.level(b("/a/"), slash, none, 2)), {
    entries: ["/a/1", "/a/2"],
    next: null,
  });
  // A `from` before the prefix starts at the prefix: nothing outside it is listed.
  assert.deepEqual(show(store.level(b("/b/"), slash, b("/a"), 100)), {
    entries: ["/b/x/*"],
    next: null,
  });
  assert.deepEqual(show(store.level(b("/b/"), slash, b("/"), 100)).entries, ["/b/x/*"]);
  // No separator: every key under the prefix.
  assert.deepEqual(show(store.level(b("/"), -1, none, 100)).entries, [
    "/a/1",
    "/a/2",
    "/b/x/y",
    "/c",
    "/e",
    "/e/f",
  ]);
  // Keys of 0xff bytes: a folder at the end of the key space.
  const bytes = new Uint8Array([0xff, slash, 0x78]);
  const w = store.write();
  w.put(bytes, b("v"), 0n);
  w.end();
  assert.deepEqual(store.level(none, slash, none, 100).entries.at(-1)!.path, bytes.subarray(0, 2));
});

Deno.test("range counts from the index's per-chunk counts (at older revisions corrected by the writes since): the same as a walk of every key, through puts, deletes, compactions and a snapshot restore", () => {
  // Deterministic pseudo-random operations over 3,000 keys (many chunks of the index).
  let seed = 12345;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const key = (i: number) => `k/${String(i).padStart(5, "0")}`;
  let store = new MvccStore();
  const check = (label: string) => {
    for (let t = 0; t < 20; t++) {
      const lo = random(3100);
      const hi = lo + random(3100 - lo + 1);
      const from = b(key(lo));
      const to = t % 5 === 0 ? new Uint8Array([0]) : b(key(hi));
      // limit 0, not count-only: every key visited (the walk the fast path must agree with).
      const walked = store.range(from, to).kvs.length;
      assert.equal(store.range(from, to, { countOnly: true }).count, walked, `${label} count-only`);
      const limited = store.range(from, to, { limit: 7 });
      assert.equal(limited.count, walked, `${label} limit`);
      assert.deepEqual(
        limited.kvs.map((kv) => s(kv.key)),
        store.range(from, to).kvs.slice(0, 7).map((kv) => s(kv.key)),
        `${label} the first keys`,
      );
    }
    assert.equal(store.range(b("\0"), b("\0"), { countOnly: true }).count, store.keyCount, label);
    // At older revisions (a paginated list's later pages): from a few writes back (counted from
    // the writes since) to thousands (walked), the same as a walk at that revision.
    for (const back of [1, 3, 40, 900, 4000]) {
      const revision = store.revision - back;
      if (revision <= store.compactRevision || revision < 1) continue;
      const lo = random(3100);
      const from = b(key(lo));
      const to = back % 2 === 0 ? new Uint8Array([0]) : b(key(lo + random(3100 - lo + 1)));
      const walked = store.range(from, to, { revision }).kvs;
      const at = `${label}, ${back} revisions back`;
      assert.equal(store.range(from, to, { revision, countOnly: true }).count, walked.length, at);
      const page = store.range(from, to, { revision, limit: 5 });
      assert.equal(page.count, walked.length, `${at}, limit`);
      assert.deepEqual(
        page.kvs.map((kv) => `${s(kv.key)}@${kv.modRevision}`),
        walked.slice(0, 5).map((kv) => `${s(kv.key)}@${kv.modRevision}`),
        `${at}, the first keys`,
      );
    }
  };
  for (let round = 0; round < 6; round++) {
    for (let op = 0; op < 2500; op++) {
      const i = random(3000);
      if (random(4) === 0) del(store, key(i));
      else if (random(50) === 0) del(store, key(i), key(i + random(40)));
      else put(store, key(i), String(op));
    }
    check(`round ${round}`);
    if (round % 2 === 1) {
      store.compact(Math.max(store.compactRevision + 1, store.revision - random(2000)));
      while (!store.compactionStep()) { /* drop history in steps */ }
      check(`round ${round}, compacted`);
    }
    if (round === 3) {
      store = MvccStore.decodeSnapshot(store.encodeSnapshot());
      check(`round ${round}, restored`);
    }
  }
});
