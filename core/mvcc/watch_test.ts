import { Event_EventType } from "../../gen/mvccpb/kv_pb.ts";
import { assert, assertEquals, assertThrows } from "../testing.ts";
import { MvccStore } from "./store.ts";
import { write } from "./_testing.ts";
import {
  WATCH_BATCH_MAX_REVS,
  WatchableStore,
  type WatchBatch,
  WatchError,
  WatchErrors,
  type WatchStream,
} from "./watch.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const b = (s: string) => enc.encode(s);
const NONE = new Uint8Array(0);
const FROM_KEY = new Uint8Array([0]);

function setup() {
  let store = new MvccStore();
  const watchable = new WatchableStore(() => store);
  const put = (key: string, value: string) => {
    const r = write(store, (tx) => tx.put(b(key), b(value), 0n));
    watchable.notify(r.events, r.prevKvs);
  };
  const del = (key: string, end = "") => {
    const r = write(store, (tx) => tx.deleteRange(b(key), b(end)));
    watchable.notify(r.events, r.prevKvs);
  };
  const txnPuts = (pairs: [string, string][]) => {
    const r = write(store, (tx) => {
      for (const [k, v] of pairs) tx.put(b(k), b(v), 0n);
    });
    watchable.notify(r.events, r.prevKvs);
  };
  return {
    get store() {
      return store;
    },
    replaceStore(s: MvccStore) {
      store = s;
    },
    watchable,
    put,
    del,
    txnPuts,
  };
}

function drain(ws: WatchStream): WatchBatch[] {
  const out: WatchBatch[] = [];
  for (let x = ws.take(); x !== undefined; x = ws.take()) out.push(x);
  return out;
}

/** "PUT key=value@rev" / "DELETE key@rev" lines of the event batches. */
function lines(batches: WatchBatch[]): string[] {
  return batches.flatMap((x) =>
    x.events.map((e) => {
      const kv = e.kv!;
      const rev = kv.modRevision;
      return e.type === Event_EventType.PUT
        ? `PUT ${dec.decode(kv.key)}=${dec.decode(kv.value)}@${rev}`
        : `DELETE ${dec.decode(kv.key)}@${rev}`;
    })
  );
}

Deno.test("a synced watcher on a key sees only that key's events, each with its revision", () => {
  const t = setup();
  const ws = t.watchable.newStream();
  ws.watch(0n, b("foo"), NONE, 0, {});
  t.put("foo", "1");
  t.put("foo2", "x");
  t.del("foo");
  const got = drain(ws);
  assertEquals(lines(got), ["PUT foo=1@2", "DELETE foo@4"]);
  assertEquals(got.map((x) => x.revision), [2, 4]);
});

Deno.test("several watchers on one key each get its events, and keep getting them as others leave", () => {
  const t = setup();
  const [s1, s2] = [t.watchable.newStream(), t.watchable.newStream()];
  const a = s1.watch(0n, b("k"), NONE, 0, {});
  const b2 = s1.watch(0n, b("k"), NONE, 0, { prevKv: true });
  const c = s2.watch(0n, b("k"), NONE, 0, {});
  t.put("k", "1");
  const first = [...drain(s1), ...drain(s2)];
  assertEquals(first.map((x) => x.watchId), [a, b2, c]);
  assertEquals(first.map((x) => lines([x])[0]), ["PUT k=1@2", "PUT k=1@2", "PUT k=1@2"]);
  assertEquals(t.watchable.counts.synced, 3);
  // Down to one watcher on the key, then to none, then one again.
  s1.cancel(a);
  t.put("k", "2");
  s2.cancel(c);
  t.put("k", "3");
  const left = drain(s1);
  assertEquals(left.map((x) => x.watchId), [b2, b2]);
  assertEquals(lines(left), ["PUT k=2@3", "PUT k=3@4"]);
  assertEquals(dec.decode(left[1].events[0].prevKv!.value), "2");
  assertEquals(drain(s2), []);
  s1.cancel(b2);
  assertEquals(t.watchable.counts.synced, 0);
  t.put("k", "4");
  const again = s2.watch(0n, b("k"), NONE, 0, {});
  t.put("k", "5");
  assertEquals(drain(s1), []);
  assertEquals(drain(s2).map((x) => [x.watchId, lines([x])[0]]), [[again, "PUT k=5@6"]]);
});

Deno.test("range, prefix and from-key watchers match as etcd's intervals do", () => {
  const t = setup();
  const ws = t.watchable.newStream();
  const range = ws.watch(0n, b("b"), b("d"), 0, {});
  const fromKey = ws.watch(0n, b("c"), FROM_KEY, 0, {});
  for (const k of ["a", "b", "c", "d", "z"]) t.put(k, "v");
  const got = drain(ws);
  const of = (id: bigint) => lines(got.filter((x) => x.watchId === id));
  assertEquals(of(range), ["PUT b=v@3", "PUT c=v@4"]);
  assertEquals(of(fromKey), ["PUT c=v@4", "PUT d=v@5", "PUT z=v@6"]);
});

Deno.test("#11496: start_revision 0 means after the current revision", () => {
  const t = setup();
  t.put("k", "old");
  const ws = t.watchable.newStream();
  ws.watch(0n, b("k"), NONE, 0, {});
  t.watchable.sync();
  t.put("k", "new");
  assertEquals(lines(drain(ws)), ["PUT k=new@3"]);
});

Deno.test("#20221: a future start revision delivers only events at or after it", () => {
  const t = setup();
  const ws = t.watchable.newStream();
  ws.watch(0n, b("k"), NONE, 4, {});
  for (let i = 0; i < 5; i++) t.put("k", `v${i}`);
  t.watchable.sync();
  assertEquals(lines(drain(ws)), ["PUT k=v2@4", "PUT k=v3@5", "PUT k=v4@6"]);
});

Deno.test("a past start revision replays history (header revision = current), then goes synced", () => {
  const t = setup();
  for (let i = 0; i < 3; i++) t.put("k", `v${i}`);
  const ws = t.watchable.newStream();
  ws.watch(0n, b("k"), NONE, 3, {});
  assertEquals(t.watchable.counts, { synced: 0, unsynced: 1, victims: 0 });
  t.watchable.sync();
  const replay = drain(ws);
  assertEquals(lines(replay), ["PUT k=v1@3", "PUT k=v2@4"]);
  assertEquals(replay[0].revision, 4);
  assertEquals(t.watchable.counts, { synced: 1, unsynced: 0, victims: 0 });
  t.put("k", "v3");
  assertEquals(lines(drain(ws)), ["PUT k=v3@5"]);
});

Deno.test("a compacted start revision is answered with compact_revision and the watcher is gone", () => {
  const t = setup();
  for (let i = 0; i < 5; i++) t.put("k", `v${i}`);
  t.store.compact(4);
  const ws = t.watchable.newStream();
  const id = ws.watch(0n, b("k"), NONE, 2, {});
  t.watchable.sync();
  const got = drain(ws);
  assertEquals(got.length, 1);
  assertEquals(got[0].kind, "compacted");
  assertEquals(got[0].watchId, id);
  assertEquals(got[0].compactRevision, 4);
  assertEquals(ws.ids, []);
  assertEquals(t.watchable.counts, { synced: 0, unsynced: 0, victims: 0 });
});

Deno.test("#18089/#19179: a watch from just before a compaction sees every delete", () => {
  // The delete is at revision 3 and compaction at 3 drops that tombstone: a watch from 3 must not
  // silently miss it (it is told compacted), a watch from 2 taken before the compaction sees it.
  const t = setup();
  t.put("k", "v"); // 2
  const early = t.watchable.newStream();
  early.watch(0n, b("k"), NONE, 2, {});
  t.del("k"); // 3
  t.put("other", "x"); // 4
  t.watchable.sync();
  assertEquals(lines(drain(early)), ["PUT k=v@2", "DELETE k@3"]);
  t.store.compact(3);
  const late = t.watchable.newStream();
  late.watch(0n, b("k"), NONE, 3, {});
  t.watchable.sync();
  const got = drain(late);
  assertEquals(got.map((x) => [x.kind, x.compactRevision]), [["compacted", 3]]);
  // A compact revision whose own events are intact (a put) can still be watched from, as in etcd.
  const u = setup();
  u.put("a", "1"); // 2
  u.put("a", "2"); // 3
  u.store.compact(3);
  const ws = u.watchable.newStream();
  ws.watch(0n, b("a"), NONE, 3, {});
  u.watchable.sync();
  assertEquals(lines(drain(ws)), ["PUT a=2@3"]);
});

Deno.test("prev_kv is filled live and in replay; NOPUT/NODELETE filter events", () => {
  const t = setup();
  t.put("k", "a"); // 2
  const ws = t.watchable.newStream();
  const live = ws.watch(0n, b("k"), NONE, 0, { prevKv: true });
  const noPut = ws.watch(0n, b("k"), NONE, 0, { noPut: true });
  const noDelete = ws.watch(0n, b("k"), NONE, 0, { noDelete: true });
  t.put("k", "b"); // 3
  t.del("k"); // 4
  const replay = ws.watch(0n, b("k"), NONE, 2, { prevKv: true });
  t.watchable.sync();
  const got = drain(ws);
  const prevs = (id: bigint) =>
    got.filter((x) => x.watchId === id).flatMap((x) =>
      x.events.map((e) => e.prevKv ? dec.decode(e.prevKv.value) : "-")
    );
  assertEquals(prevs(live), ["a", "b"]);
  assertEquals(prevs(replay), ["-", "a", "b"]);
  assertEquals(lines(got.filter((x) => x.watchId === noPut)), ["DELETE k@4"]);
  assertEquals(lines(got.filter((x) => x.watchId === noDelete)), ["PUT k=b@3"]);
});

Deno.test("a txn's events of one revision arrive in one response", () => {
  const t = setup();
  const ws = t.watchable.newStream();
  ws.watch(0n, b("t/"), b("t0"), 0, {});
  t.txnPuts([["t/a", "1"], ["t/b", "2"], ["t/c", "3"]]);
  const got = drain(ws);
  assertEquals(got.length, 1);
  assertEquals(lines(got), ["PUT t/a=1@2", "PUT t/b=2@2", "PUT t/c=3@2"]);
});

Deno.test("#17529/#15271: a slow watcher stays bounded, never stalls others, and later gets every revision once, in order", () => {
  const t = setup();
  const slow = t.watchable.newStream(4);
  const fast = t.watchable.newStream(4);
  slow.watch(0n, b("k"), NONE, 0, {});
  fast.watch(0n, b("k"), NONE, 0, {});
  const fastSeen: string[] = [];
  const total = 3 * WATCH_BATCH_MAX_REVS + 17;
  for (let i = 0; i < total; i++) {
    t.put("k", `v${i}`);
    fastSeen.push(...lines(drain(fast)));
    assert(slow.queued <= 4, `slow queue bounded, was ${slow.queued}`);
    if (i % 97 === 0) t.watchable.sync();
  }
  assertEquals(fastSeen.length, total);
  assertEquals(t.watchable.counts.victims, 1);
  const slowSeen: string[] = [];
  const revs: number[] = [];
  for (let round = 0; round < 10_000 && slowSeen.length < total; round++) {
    const got = drain(slow);
    slowSeen.push(...lines(got));
    for (const x of got) for (const e of x.events) revs.push(Number(e.kv!.modRevision));
    t.watchable.sync();
  }
  assertEquals(slowSeen, fastSeen);
  for (let i = 1; i < revs.length; i++) assert(revs[i] === revs[i - 1] + 1, "no gap, no repeat");
  assertEquals(t.watchable.counts, { synced: 2, unsynced: 0, victims: 0 });
});

Deno.test("history is replayed in batches of at most WATCH_BATCH_MAX_REVS revisions", () => {
  const t = setup();
  for (let i = 0; i < 2 * WATCH_BATCH_MAX_REVS + 5; i++) t.put("k", `v${i}`);
  const ws = t.watchable.newStream(1000);
  ws.watch(0n, b("k"), NONE, 2, {});
  const sizes: number[] = [];
  for (let i = 0; i < 5; i++) {
    t.watchable.sync();
    sizes.push(...drain(ws).map((x) => x.events.length));
  }
  assertEquals(sizes, [WATCH_BATCH_MAX_REVS, WATCH_BATCH_MAX_REVS, 5]);
});

Deno.test("#15220: a progress request waits until every watcher is synced, after their events", () => {
  const t = setup();
  for (let i = 0; i < 3; i++) t.put("k", `v${i}`);
  const ws = t.watchable.newStream();
  ws.watch(0n, b("k"), NONE, 2, {});
  ws.requestProgress();
  assertEquals(ws.queued, 0);
  t.watchable.sync();
  const got = drain(ws);
  assertEquals(got.map((x) => x.kind), ["events", "control"]);
  assertEquals(got[1].watchId, -1n);
  assertEquals(got[1].revision, 4);
  // Synced: answered at once.
  ws.requestProgress();
  assertEquals(drain(ws).map((x) => [x.kind, x.revision]), [["control", 4]]);
});

Deno.test("watch IDs: auto from 0 skipping used ones; etcd's errors for duplicates and empty ranges", () => {
  const t = setup();
  const ws = t.watchable.newStream();
  assertEquals(ws.watch(1n, b("a"), NONE, 0, {}), 1n);
  assertEquals(ws.watch(0n, b("a"), NONE, 0, {}), 0n);
  assertEquals(ws.watch(0n, b("a"), NONE, 0, {}), 2n);
  const dup = assertThrows(() => ws.watch(2n, b("a"), NONE, 0, {}), WatchError);
  assertEquals(dup.message, WatchErrors.duplicateId);
  const empty = assertThrows(() => ws.watch(0n, b("b"), b("a"), 0, {}), WatchError);
  assertEquals(empty.message, "mvcc: watcher range is empty");
  const gone = assertThrows(() => ws.cancel(9n), WatchError);
  assertEquals(gone.message, "mvcc: watcher does not exist");
});

Deno.test("cancel drops the watcher's queued events; close removes every watcher", () => {
  const t = setup();
  const ws = t.watchable.newStream();
  const a = ws.watch(0n, b("a"), NONE, 0, {});
  ws.watch(0n, b("b"), NONE, 0, {});
  t.put("a", "1");
  t.put("b", "1");
  ws.cancel(a);
  assertEquals(lines(drain(ws)), ["PUT b=1@3"]);
  ws.close();
  assertEquals(t.watchable.counts, { synced: 0, unsynced: 0, victims: 0 });
});

Deno.test("after a snapshot replaces the store, synced watchers catch up from the new history", () => {
  const t = setup();
  const ws = t.watchable.newStream();
  ws.watch(0n, b("k"), NONE, 0, {});
  t.put("k", "1"); // 2
  drain(ws);
  const other = new MvccStore();
  for (let i = 0; i < 4; i++) {
    write(other, (tx) => tx.put(b("k"), b(`s${i}`), 0n));
  }
  t.replaceStore(MvccStore.decodeSnapshot(other.encodeSnapshot()));
  t.watchable.restored();
  t.watchable.sync();
  assertEquals(lines(drain(ws)), ["PUT k=s1@3", "PUT k=s2@4", "PUT k=s3@5"]);
});
