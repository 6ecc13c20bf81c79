import assert from "node:assert/strict";
import { Errors } from "../errors.ts";
import { InvariantError } from "../assert.ts";
import { MvccStore } from "./store.ts";
import type { ByteSource } from "../bytes.ts";
import { encodeViewSteps, SnapshotReader, streamViewSteps } from "./snapshot_codec.ts";
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

/** Bytes as a ByteSource that answers at most `most` bytes per read (as a file may). */
function shortReads(bytes: Uint8Array, most: number): ByteSource & { reads: number } {
  const source = {
    size: bytes.length,
    reads: 0,
    readAt(buf: Uint8Array, position: number): number {
      source.reads++;
      const n = Math.max(0, Math.min(buf.length, most, bytes.length - position));
      buf.set(bytes.subarray(position, position + n));
      return n;
    },
  };
  return source;
}

/** Every entry a reader visits, copied out. */
function visited(reader: SnapshotReader): string[] {
  const out: string[] = [];
  while (
    reader.next(100, (main, sub, tombstone, data) => {
      out.push(`${main}.${sub}.${tombstone}.${data.length}.${data.join(",")}`);
    })
  );
  return out;
}

/** A store whose snapshot is several MiB, with one value larger than a reader's window. */
function largeStore(): MvccStore {
  const store = new MvccStore();
  const value = "v".repeat(1000);
  for (let i = 0; i < 4000; i++) put(store, `key/${i % 1500}`, `${i}${value}`);
  del(store, "key/7");
  put(store, "huge", "h".repeat(1500 * 1024));
  store.compact(1200);
  put(store, "last", "1");
  return store;
}

Deno.test("a snapshot read from a source a window at a time visits what reading it whole does", () => {
  const bytes = largeStore().encodeSnapshot();
  assert.ok(bytes.length > 5 * 1024 * 1024);
  const whole = visited(new SnapshotReader(bytes));
  const source = shortReads(bytes, 100_000);
  const windowed = new SnapshotReader(source);
  assert.deepEqual(visited(windowed), whole);
  assert.ok(source.reads > 50, `read in pieces (${source.reads} reads)`);
  // And a store restored from the source is the one restored from the bytes.
  const fromSource = MvccStore.decodeSnapshot(source);
  assert.deepEqual(fromSource.encodeSnapshot(), bytes);
  // Cut short: refused.
  const cut = shortReads(bytes.subarray(0, bytes.length - 10), 1 << 20);
  assert.throws(() => visited(new SnapshotReader(cut)), InvariantError);
});

Deno.test("a view streamed in chunks is byte for byte what encoding it whole gives, after its frame", () => {
  const store = largeStore();
  const frame = (size: number) => new TextEncoder().encode(`frame:${size}:`);
  const steps = encodeViewSteps(store.view(), frame);
  let step = steps.next();
  while (!step.done) step = steps.next();
  const whole = step.value;
  const plan = streamViewSteps(store.view(), frame);
  let planned = plan.next();
  while (!planned.done) planned = plan.next();
  const stream = planned.value;
  assert.equal(stream.size, whole.length);
  const chunks: Uint8Array[] = [];
  for (let c = stream.next(); c !== null; c = stream.next()) chunks.push(c.slice());
  assert.ok(chunks.length > 10, `${chunks.length} chunks`);
  const largest = Math.max(...chunks.map((c) => c.length));
  assert.ok(largest < 2 * 1024 * 1024, `chunks stay small but for one large value (${largest})`);
  const joined = new Uint8Array(stream.size);
  let at = 0;
  for (const c of chunks) {
    joined.set(c, at);
    at += c.length;
  }
  assert.deepEqual(joined, whole);
  assert.equal(stream.next(), null);
});
