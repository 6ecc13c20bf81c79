/**
 * The store with its revisions on disk (a RevisionLog) against the same store in memory: every
 * read, history read, event replay, hash, compaction and snapshot must agree, whether the
 * KeyValue comes from the cache, from the log's unwritten tail or from the file. The in-memory
 * store's HashKV is checked against etcd's own numbers in hash_test.ts.
 */
import * as assert from "node:assert/strict";
import { seededRandomInt } from "../raft/random.ts";
import { MemoryDisk } from "../storage/memory_disk.ts";
import { RevisionLog } from "../storage/revision_log.ts";
import { b, s } from "./_testing.ts";
import { ByteReader, ByteWriter, readKeyValue } from "./kv_codec.ts";
import { encodeView } from "./snapshot_codec.ts";
import { MvccStore, type RangeEntries, type RangeResult, type RevisionStorage } from "./store.ts";
import { toBinary } from "@bufbuild/protobuf";
import { KeyValueSchema } from "../../gen/mvccpb/kv_pb.ts";

const EMPTY = new Uint8Array(0);
const ALL = new Uint8Array([0]);

async function diskStore(cacheBytes: number): Promise<{ store: MvccStore; log: RevisionLog }> {
  const log = await RevisionLog.open(new MemoryDisk(), "/revs", () => {}, {
    segmentBytes: 4096,
  });
  return { store: new MvccStore(undefined, { revisions: log, cacheBytes }), log };
}

function view(r: RangeResult): string[] {
  return r.kvs.map((kv) =>
    `${s(kv.key)}=${
      s(kv.value)
    } c${kv.createRevision} m${kv.modRevision} v${kv.version} l${kv.lease}`
  );
}

Deno.test("a store on a revision log answers as the store in memory (cache of 0 bytes)", async () => {
  const memory = new MvccStore();
  const { store: disk, log } = await diskStore(0);
  const next = seededRandomInt(7);
  const key = () => `k${next(40).toString().padStart(2, "0")}`;
  for (let step = 0; step < 600; step++) {
    const roll = next(100) / 100;
    const [k1, k2] = [key(), key()];
    for (const store of [memory, disk]) {
      const tx = store.write();
      if (roll < 0.6) tx.put(b(k1), b(`v${step}`.repeat(1 + (step % 7))), 0n);
      else if (roll < 0.75) tx.deleteRange(b(k1), EMPTY);
      else if (roll < 0.8) tx.deleteRange(b("k1"), b("k2"));
      else {
        tx.put(b(k1), b(`a${step}`), 0n);
        tx.put(b(k2), b(`b${step}`), 0n);
      }
      tx.end();
    }
    if (step % 50 === 49) {
      await log.flush(); // some reads now come from the file, others from the buffer
      if (step === 299) {
        memory.compact(200);
        disk.compact(200);
      }
    }
  }
  assert.equal(disk.revision, memory.revision);
  for (let rev = memory.compactRevision; rev <= memory.revision; rev += 7) {
    assert.deepEqual(
      view(disk.range(b("k"), b("l"), { revision: rev })),
      view(memory.range(b("k"), b("l"), { revision: rev })),
      `range at ${rev}`,
    );
  }
  assert.deepEqual(disk.eventsBetween(201), memory.eventsBetween(201));
  assert.equal(disk.hash(), memory.hash());
  assert.deepEqual(disk.hashKV(400), memory.hashKV(400));
  assert.deepEqual(disk.encodeSnapshot(), memory.encodeSnapshot());
  assert.ok(log.sizes.liveBytes < log.sizes.totalBytes, "compacted records are garbage");
});

Deno.test("a snapshot restored onto a revision log keeps history, leases and the hash", async () => {
  const attached: string[] = [];
  const leases = {
    exists: () => true,
    attach: (id: bigint, key: Uint8Array) => attached.push(`${s(key)}:${id}`),
    detach: () => {},
  };
  const source = new MvccStore(leases);
  for (
    const [k, v, lease] of [["a", "1", 5n], ["b", "2", 0n], ["a", "3", 6n], ["c", "4", 7n]] as const
  ) {
    const tx = source.write();
    tx.put(b(k), b(v), lease);
    tx.end();
  }
  const tx = source.write();
  tx.deleteRange(b("c"), EMPTY);
  tx.end();
  attached.length = 0;
  const { log } = await diskStore(0);
  const restored = MvccStore.decodeSnapshot(source.encodeSnapshot(), leases, {
    revisions: log,
    cacheBytes: 0,
  });
  // Only live keys, with their latest lease, are attached again.
  assert.deepEqual(attached, ["a:6"]);
  assert.deepEqual(view(restored.range(b("a"), ALL)), view(source.range(b("a"), ALL)));
  assert.deepEqual(
    view(restored.range(b("a"), ALL, { revision: 2 })),
    ["a=1 c2 m2 v1 l5"],
  );
  assert.deepEqual(restored.eventsBetween(0), source.eventsBetween(0));
  assert.equal(restored.hash(), source.hash());
  assert.equal(restored.keyCount, 2);
  // Replaced by another restore: its records become garbage, and stay readable for open views.
  const before = log.sizes.liveBytes;
  const open = restored.view();
  restored.retire();
  assert.equal(log.sizes.liveBytes, 0);
  assert.ok(before > 0);
  const first = open.entry(0);
  assert.ok(first.data, "a record not cached goes out as stored");
  assert.equal(s(readKeyValue(new ByteReader(first.data), first.data.length).value), "1");
});

Deno.test("the KeyValue cache keeps recent values within its budget", async () => {
  const { store, log } = await diskStore(2000);
  for (let i = 0; i < 100; i++) {
    const tx = store.write();
    tx.put(b(`k${i}`), b("x".repeat(100)), 0n);
    tx.end();
  }
  await log.flush();
  // Every value comes back right, cached or not; the cache did not keep all hundred.
  const all = store.range(b("k"), b("l"));
  assert.equal(all.kvs.length, 100);
  assert.ok(all.kvs.every((kv) => s(kv.value) === "x".repeat(100)));
  // A cached KeyValue is returned as the same object until it is evicted.
  const first = store.range(b("k99"), EMPTY).kvs[0];
  assert.equal(store.range(b("k99"), EMPTY).kvs[0], first);
  const fresh = store.range(b("k0"), EMPTY).kvs[0];
  for (let i = 1; i < 50; i++) store.range(b(`k${i}`), EMPTY);
  assert.notEqual(store.range(b("k0"), EMPTY).kvs[0], fresh, "evicted and read again");
  assert.deepEqual(store.range(b("k0"), EMPTY).kvs[0], fresh);
});

Deno.test("rewriting sparse segments gives space back; a view taken before still reads it all", async () => {
  const disk = new MemoryDisk();
  const log = await RevisionLog.open(disk, "/revs", () => {}, { segmentBytes: 4096 });
  const store = new MvccStore(undefined, { revisions: log, cacheBytes: 0 });
  const memory = new MvccStore();
  for (let i = 0; i < 400; i++) {
    for (const st of [store, memory]) {
      const tx = st.write();
      tx.put(b(`key${i % 10}`), b(`value ${i} `.repeat(4)), 0n);
      tx.end();
    }
  }
  await log.flush();
  assert.equal(store.reclaimable, false, "nothing compacted yet");
  store.compact(390);
  memory.compact(390);
  assert.equal(store.reclaimable, true);
  const segmentsBefore = (await disk.list("/revs")).length;
  const view = store.view();
  const snapshotBefore = memory.encodeSnapshot();
  const steps = store.reclaimSteps();
  let step = steps.next();
  while (!step.done) step = steps.next();
  // Held by the open view: nothing removed yet, and everything it covers still reads.
  assert.ok(step.value > 0);
  assert.equal(store.reclaimable, false, "segments waiting for removal are not rewritten again");
  assert.deepEqual(encodeView(view), snapshotBefore);
  const total = log.sizes.totalBytes;
  view.close!();
  await log.flush();
  assert.ok(log.sizes.totalBytes < total / 4, `${log.sizes.totalBytes} of ${total}`);
  assert.ok((await disk.list("/revs")).length < segmentsBefore / 4);
  // Reads, history and the hash are those of the store in memory.
  assert.deepEqual(view2(store), view2(memory));
  assert.equal(store.hash(), memory.hash());
  assert.deepEqual(store.encodeSnapshot(), memory.encodeSnapshot());
  // And writes go on.
  const tx = store.write();
  tx.put(b("key0"), b("after"), 0n);
  tx.end();
  assert.equal(s(store.range(b("key0"), EMPTY).kvs[0].value), "after");
});

function view2(store: MvccStore): string[] {
  return view(store.range(b("key"), b("kez"), { revision: 395 }));
}

/** A revision log that counts its reads. */
async function countingLog(): Promise<{ log: RevisionStorage; reads: () => number }> {
  const log = await RevisionLog.open(new MemoryDisk(), "/revs", () => {});
  let reads = 0;
  const counting = Object.assign(Object.create(log), {
    read(location: number, size: number) {
      reads++;
      return log.read(location, size);
    },
  });
  for (const method of ["append", "release", "flush", "sparseSegments", "removeSegment", "hold"]) {
    // deno-lint-ignore no-explicit-any
    (counting as any)[method] = (log as any)[method].bind(log);
  }
  Object.defineProperty(counting, "sizes", { get: () => log.sizes });
  return { log: counting, reads: () => reads };
}

Deno.test("keys-only and count-only reads touch no record on disk", async () => {
  const { log: counting, reads: readCount } = await countingLog();
  let reads = 0;
  const store = new MvccStore(undefined, { revisions: counting, cacheBytes: 0 });
  for (const [k, v, lease] of [["a", "1", 0n], ["b", "2", 9n], ["a", "3", 0n]] as const) {
    const tx = store.write();
    tx.put(b(k), b(v), lease);
    tx.end();
  }
  reads = readCount();
  const keys = store.range(b("a"), ALL, { keysOnly: true });
  assert.equal(store.range(b("a"), ALL, { countOnly: true }).count, 2);
  assert.equal(readCount() - reads, 0);
  const full = store.range(b("a"), ALL);
  assert.equal(readCount() - reads, 2);
  assert.deepEqual(
    keys.kvs,
    full.kvs.map((kv) => ({ ...kv, value: new Uint8Array(0) })),
  );
  assert.deepEqual(view(keys), ["a= c2 m4 v2 l0", "b= c3 m3 v1 l9"]);
});

Deno.test("a store on disk caches a KeyValue when it is read, not when it is written", async () => {
  // A cache of recent writes kept every put's KeyValue past the young generation, to die in the
  // old one: a quarter of what the write path promoted (docs/benchmarks.md, session 22).
  const { log: counting, reads: readCount } = await countingLog();
  const store = new MvccStore(undefined, { revisions: counting, cacheBytes: 1 << 20 });
  for (const [k, v] of [["a", "1"], ["b", "2"], ["a", "3"]] as const) {
    const tx = store.write();
    tx.put(b(k), b(v), 0n);
    tx.end();
  }
  const before = readCount();
  const first = store.range(b("a"), ALL);
  assert.equal(readCount() - before, 2, "each live key read back once");
  const again = store.range(b("a"), ALL);
  assert.equal(readCount() - before, 2, "then served from the cache");
  assert.deepEqual(view(again), view(first));
  assert.deepEqual(view(first), ["a=3 c2 m4 v2 l0", "b=2 c3 m3 v1 l0"]);
});

/** Runs a generator of steps to its end. */
function run<T>(steps: Generator<void, T>): T {
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

Deno.test("a checkpoint restores the store over its own log after a crash, written records and rewrites after it notwithstanding", async () => {
  const disk = new MemoryDisk();
  const options = { segmentBytes: 4096, removeAfterCheckpoint: true };
  const log = await RevisionLog.open(disk, "/revs", () => {}, options);
  const attached: string[] = [];
  const leases = {
    exists: () => true,
    attach: (id: bigint, key: Uint8Array) => attached.push(`${s(key)}:${id}`),
    detach: () => {},
  };
  const store = new MvccStore(leases, { revisions: log, cacheBytes: 0 });
  const memory = new MvccStore();
  const next = seededRandomInt(11);
  const write = (step: number) => {
    const k = `k${next(30).toString().padStart(2, "0")}`;
    const roll = next(100);
    for (const st of [store, memory]) {
      const tx = st.write();
      if (roll < 60) tx.put(b(k), b(`v${step} `.repeat(1 + (step % 9))), BigInt(roll % 3));
      else if (roll < 80) tx.deleteRange(b(k), EMPTY);
      else tx.deleteRange(b("k1"), b("k2"));
      tx.end();
    }
  };
  for (let step = 0; step < 500; step++) write(step);
  store.compact(300);
  memory.compact(300);
  await log.flush();
  // Some records moved by a rewrite before the checkpoint: their old segments are retired.
  assert.ok(run(store.reclaimSteps()) > 0);
  const retiredBefore = log.retiredSegments;
  assert.ok(retiredBefore > 0);

  const mark = log.checkpointMark();
  const bytes = run(store.checkpoint(() => new Uint8Array(0)));
  await log.sync();
  assert.ok(MvccStore.isCheckpoint(bytes));
  const atCheckpoint = memory.encodeSnapshot();
  const hashAtCheckpoint = memory.hash();
  const revisionAtCheckpoint = memory.revision;
  const leasedAtCheckpoint = memory.range(b("k"), b("l")).kvs.filter((kv) => kv.lease !== 0n)
    .map((kv) => `${s(kv.key)}:${kv.lease}`);
  const rangesAtCheckpoint = [];
  for (let rev = memory.compactRevision; rev <= memory.revision; rev += 5) {
    rangesAtCheckpoint.push(view(memory.range(b("k"), b("l"), { revision: rev })));
  }
  // No values in it: a fraction of the full snapshot.
  assert.ok(bytes.length * 2 < atCheckpoint.length, `${bytes.length} vs ${atCheckpoint.length}`);

  // After the checkpoint: more writes, a compaction and a rewrite (segments retired after the
  // mark stay), then the checkpoint is saved: only the segments retired before it go.
  for (let step = 500; step < 700; step++) write(step);
  store.compact(store.revision - 20);
  await log.flush();
  run(store.reclaimSteps());
  assert.ok(log.retiredSegments > retiredBefore);
  log.checkpointSaved(mark);
  assert.ok(log.retiredSegments > 0, "retired after the mark: kept");
  await log.sync();
  for (let step = 700; step < 720; step++) write(step); // never synced: lost in the crash
  await log.flush();
  disk.crash();

  const reopened = await RevisionLog.openLocated(disk, "/revs", options);
  attached.length = 0;
  const restored = run(
    MvccStore.restoreCheckpointSteps(bytes, leases, { revisions: reopened, cacheBytes: 0 }),
  );
  assert.ok(reopened.removeUnreferenced() > 0, "segments only written after the checkpoint go");
  assert.deepEqual(restored.encodeSnapshot(), atCheckpoint);
  assert.equal(restored.hash(), hashAtCheckpoint);
  const ranges = [];
  for (let rev = restored.compactRevision; rev <= restored.revision; rev += 5) {
    ranges.push(view(restored.range(b("k"), b("l"), { revision: rev })));
  }
  assert.deepEqual(ranges, rangesAtCheckpoint);
  // Live keys with a lease are attached again, as a full snapshot's restore does.
  assert.ok(leasedAtCheckpoint.length > 0);
  assert.deepEqual(attached, leasedAtCheckpoint);
  // The restored store takes writes, and its reads of old records come from the old segments.
  const tx = restored.write();
  tx.put(b("k00"), b("after"), 0n);
  tx.end();
  assert.equal(s(restored.range(b("k00"), EMPTY).kvs[0].value), "after");
  assert.equal(restored.revision, revisionAtCheckpoint + 1);
});

Deno.test("a checkpoint whose records are gone is refused, not restored without them", async () => {
  const disk = new MemoryDisk();
  const options = { segmentBytes: 4096, removeAfterCheckpoint: true };
  const log = await RevisionLog.open(disk, "/revs", () => {}, options);
  const store = new MvccStore(undefined, { revisions: log, cacheBytes: 0 });
  for (let i = 0; i < 100; i++) {
    const tx = store.write();
    tx.put(b(`k${i}`), b("x".repeat(100)), 0n);
    tx.end();
  }
  const bytes = run(store.checkpoint(() => new Uint8Array(0)));
  await log.sync();
  const segments = (await disk.list("/revs")).sort();
  await disk.remove(`/revs/${segments[1]}`);
  const reopened = await RevisionLog.openLocated(disk, "/revs", options);
  assert.throws(
    () => run(MvccStore.restoreCheckpointSteps(bytes, undefined, { revisions: reopened })),
    /the checkpoint's record at .* is missing/,
  );
});

Deno.test("across many column chunks, with stepwise compactions between writes, the store on a log answers as the one in memory", async () => {
  const memory = new MvccStore();
  const log = await RevisionLog.open(new MemoryDisk(), "/revs", () => {}, {
    segmentBytes: 64 * 1024,
  });
  const disk = new MvccStore(undefined, {
    revisions: log,
    cacheBytes: 64 * 1024,
    stepwiseCompaction: true,
  });
  const next = seededRandomInt(11);
  const key = () => `k${next(3000).toString().padStart(4, "0")}`;
  // ~14,000 revisions: the columns hold 4,096 a chunk, so compaction's rebuilds move positions
  // across chunk boundaries while keys still point at them.
  for (let step = 0; step < 12_000; step++) {
    const roll = next(100);
    const [k1, k2] = [key(), key()];
    for (const store of [memory, disk]) {
      const tx = store.write();
      if (roll < 70) tx.put(b(k1), b(`v${step}`), BigInt(roll % 3));
      else if (roll < 85) tx.deleteRange(b(k1), EMPTY);
      else if (roll < 87) tx.deleteRange(b(k1), b(k2 > k1 ? k2 : k1 + "5"));
      else {
        tx.put(b(k1), b(`a${step}`), 0n);
        tx.put(b(k2), b(`b${step}`), 0n);
      }
      tx.end();
    }
    // The disk store's compaction goes on a step per write, reads and writes in between.
    disk.compactionStep();
    if (step % 2_500 === 2_499) {
      await log.flush();
      const rev = memory.revision - 1_000;
      memory.compact(rev);
      disk.compact(rev);
    }
    if (step % 1_000 === 999) {
      assert.deepEqual(
        view(disk.range(b("k"), b("l"))),
        view(memory.range(b("k"), b("l"))),
        `range after step ${step}`,
      );
    }
  }
  for (let rev = memory.compactRevision; rev <= memory.revision; rev += 997) {
    assert.deepEqual(
      view(disk.range(b("k"), b("l"), { revision: rev })),
      view(memory.range(b("k"), b("l"), { revision: rev })),
      `range at ${rev}`,
    );
    assert.deepEqual(
      view(disk.range(b("k"), b("l"), { revision: rev, keysOnly: true })),
      view(memory.range(b("k"), b("l"), { revision: rev, keysOnly: true })),
      `keys-only range at ${rev}`,
    );
  }
  const from = memory.compactRevision + 1;
  assert.deepEqual(disk.eventsBetween(from), memory.eventsBetween(from));
  assert.deepEqual(disk.hashKV(0), memory.hashKV(0));
  assert.deepEqual(disk.encodeSnapshot(), memory.encodeSnapshot());
  assert.equal(disk.keyCount, memory.keyCount);
});

/** Calls `step` until it reports done; fails, rather than hangs, after `max` calls. */
function untilDone(what: string, step: () => boolean, max = 100_000): void {
  for (let n = 0; n < max; n++) if (step()) return;
  assert.fail(`${what} did not end in ${max} steps`);
}

/**
 * A store on a revision log (8 KiB segments) and the same store in memory, written alike: keys
 * written once ("old…") among keys written again and again ("key…"), so that after a compaction
 * the early segments are mostly garbage with live records to move.
 */
async function twinStores(options: { cacheBytes: number; stepwiseCompaction?: boolean }) {
  const disk = new MemoryDisk();
  const log = await RevisionLog.open(disk, "/revs", () => {}, { segmentBytes: 8192 });
  const store = new MvccStore(undefined, { revisions: log, ...options });
  const memory = new MvccStore();
  const put = (key: string, value: string) => {
    for (const st of [store, memory]) {
      const tx = st.write();
      tx.put(b(key), b(value), 0n);
      tx.end();
    }
  };
  const old = (i: number, digits: number) =>
    put(`old${i.toString().padStart(digits, "0")}`, `kept ${i} `.repeat(3));
  const churn = (i: number) =>
    put(`key${(i % 300).toString().padStart(3, "0")}`, `v${i} `.repeat(3));
  const compact = (rev: number) => {
    store.compact(rev);
    memory.compact(rev);
  };
  const segments = async () => (await disk.list("/revs")).map((name) => parseInt(name, 16));
  /** After the rewrite: old segments gone, and every read, the hash and a snapshot as in memory. */
  const check = async (before: number[], olds: number) => {
    await log.flush();
    assert.ok(
      !(await segments()).includes(before[0]),
      "the first segment was rewritten and removed",
    );
    // Every old key is read from where its record moved.
    const found = view(store.range(b("old"), b("ole")));
    assert.equal(found.length, olds);
    assert.deepEqual(found, view(memory.range(b("old"), b("ole"))));
    assert.deepEqual(view(store.range(b("key"), b("kez"))), view(memory.range(b("key"), b("kez"))));
    assert.equal(store.hash(), memory.hash());
    assert.deepEqual(store.encodeSnapshot(), memory.encodeSnapshot());
  };
  return { log, store, old, churn, compact, segments, check };
}

Deno.test("a defragment that a compaction overtakes between its steps moves every record it must", async () => {
  const { log, store, old, churn, compact, segments, check } = await twinStores({ cacheBytes: 0 });
  for (let i = 0; i < 6_000; i++) {
    if (i % 5 === 0) old(i, 4);
    else churn(i);
  }
  await log.flush();
  compact(5_800);
  const before = await segments();
  const steps = store.defragmentSteps();
  // A step of the rewrite, then a compaction that rebuilds the store's columns (positions shift
  // under the rewrite) and more writes, then the rest of the rewrite.
  assert.equal(steps.next().done, false);
  for (let i = 6_000; i < 6_600; i++) churn(i);
  compact(6_500);
  let rewritten = 0;
  untilDone("the rewrite", () => {
    const step = steps.next();
    if (step.done) rewritten = step.value;
    return step.done === true;
  });
  assert.ok(rewritten > 0, "segments rewritten");
  await check(before, 1_200);
});

Deno.test("a defragment and a stepwise compaction, a step of each in turn, with writes between", async () => {
  const { log, store, old, churn, compact, segments, check } = await twinStores({
    cacheBytes: 4096,
    stepwiseCompaction: true,
  });
  // 50,000 revisions, every other one a key written once: the compaction's rebuild takes more
  // than one step (16,384 revisions each), and the rewrite moves records it has already copied.
  for (let i = 0; i < 50_000; i++) {
    if (i % 2 === 0) old(i, 5);
    else churn(i);
  }
  await log.flush();
  compact(49_000);
  untilDone("the compaction", () => store.compactionStep());
  const before = await segments();
  const rewrite = store.defragmentSteps();
  assert.equal(rewrite.next().done, false, "the rewrite has begun");
  compact(49_500);
  let rewriting = true;
  let compacting = true;
  for (let i = 50_000; rewriting || compacting; i++) {
    assert.ok(i < 100_000, "the rewrite and the compaction end");
    if (rewriting) rewriting = !rewrite.next().done;
    if (compacting) compacting = !store.compactionStep();
    churn(i);
  }
  await check(before, 25_000);
});

Deno.test("an overwrite reads nothing of the old value unless prev_kv asks for it; leases follow from the index", async () => {
  const { log, reads } = await countingLog();
  const attached: string[] = [];
  const leases = {
    exists: () => true,
    attach: (id: bigint, key: Uint8Array) => attached.push(`+${id}:${s(key)}`),
    detach: (id: bigint, key: Uint8Array) => attached.push(`-${id}:${s(key)}`),
  };
  const store = new MvccStore(leases, { revisions: log, cacheBytes: 0 });
  const put = (key: string, value: string, lease: bigint, prevKv: boolean) => {
    const tx = store.write();
    const prev = tx.put(b(key), b(value), lease, prevKv);
    tx.end();
    return { prev, prevKvs: tx.prevKvs };
  };
  put("a", "1", 7n, false);
  const before = reads();
  const second = put("a", "2", 8n, false);
  assert.equal(second.prev, undefined);
  assert.equal(reads() - before, 0, "nothing read for an overwrite");
  assert.deepEqual(attached, ["+7:a", "-7:a", "+8:a"]);
  // A watcher with prev_kv asks: then the old value is read.
  assert.equal(s(second.prevKvs.get(0)!.value), "1");
  assert.equal(reads() - before, 1);
  assert.deepEqual(view(store.range(b("a"), EMPTY)), ["a=2 c2 m3 v2 l8"]);
  // prev_kv on the request reads it at once.
  const third = put("a", "3", 0n, true);
  assert.equal(s(third.prev!.value), "2");
  assert.deepEqual(attached.slice(3), ["-8:a"]);
});

/** Each entry's encoding as the entries write it, and as their KeyValues decode. */
function entryBytes(entries: RangeEntries): { written: Uint8Array[]; decoded: Uint8Array[] } {
  const written: Uint8Array[] = [];
  const decoded: Uint8Array[] = [];
  for (let i = 0; i < entries.length; i++) {
    const w = new ByteWriter(64);
    entries.write(w, i);
    assert.equal(w.length, entries.size(i), `entry ${i}: size() is what write() writes`);
    written.push(w.finish());
    decoded.push(toBinary(KeyValueSchema, entries.kv(i)));
  }
  return { written, decoded };
}

Deno.test("a range's entries encode as its KeyValues do, and read as of the range while the store changes, compacts and defragments", async () => {
  const disk = new MemoryDisk();
  const log = await RevisionLog.open(disk, "/revs", () => {}, { segmentBytes: 4096 });
  // A small cache: some values come from it, the rest from the file.
  const stores = [new MvccStore(), new MvccStore(undefined, { revisions: log, cacheBytes: 2048 })];
  for (const store of stores) {
    for (let i = 0; i < 300; i++) {
      const tx = store.write();
      tx.put(
        b(`k${String(i % 120).padStart(3, "0")}`),
        b(`v${i}`.repeat(1 + i % 9)),
        BigInt(i % 4),
      );
      tx.end();
    }
  }
  await log.flush();
  for (const store of stores) {
    for (const keysOnly of [false, true]) {
      const options = { keysOnly, entries: true };
      const at = store.revision;
      const plain = store.range(b("k010"), b("k100"), { keysOnly });
      const found = store.range(b("k010"), b("k100"), options);
      const entries = found.entries!;
      assert.equal(found.kvs.length, 0);
      assert.equal(found.count, plain.count);
      assert.equal(entries.length, plain.kvs.length);
      assert.ok(entries.length >= 60, `${entries.length} keys`);
      const expected = plain.kvs.map((kv) => toBinary(KeyValueSchema, kv));
      // What the range saw, after overwrites, deletes, a compaction past it and a defragment.
      for (let i = 0; i < 200; i++) {
        const tx = store.write();
        if (i % 3 === 0) tx.deleteRange(b(`k0${i % 90 + 10}`), EMPTY);
        else tx.put(b(`k0${i % 90 + 10}`), b(`new ${i}`), 0n);
        tx.end();
      }
      store.compact(store.revision);
      while (!store.compactionStep());
      run(store.reclaimSteps());
      await log.flush();
      const { written, decoded } = entryBytes(entries);
      assert.deepEqual(written, expected, `${keysOnly ? "keys only" : "values"}, as of ${at}`);
      assert.deepEqual(decoded, expected);
      entries.close();
      // A limit: the first keys, every key counted.
      const limited = store.range(b("k"), b("l"), { keysOnly, entries: true, limit: 5 });
      assert.equal(limited.entries!.length, 5);
      assert.equal(limited.count, store.range(b("k"), b("l"), { countOnly: true }).count);
      limited.entries!.close();
    }
    // A write transaction's range and a single key's are KeyValues.
    const tx = store.write();
    assert.equal(tx.range(b("k"), b("l"), { entries: true }).entries, undefined);
    tx.end();
    assert.equal(store.range(b("k050"), EMPTY, { entries: true }).entries, undefined);
  }
});

Deno.test("a range's entries hold the revision storage until they are closed", async () => {
  const disk = new MemoryDisk();
  const log = await RevisionLog.open(disk, "/revs", () => {}, { segmentBytes: 4096 });
  const store = new MvccStore(undefined, { revisions: log, cacheBytes: 0 });
  for (let i = 0; i < 400; i++) {
    const tx = store.write();
    tx.put(b(`key${i % 10}`), b(`value ${i} `.repeat(4)), 0n);
    tx.end();
  }
  await log.flush();
  const found = store.range(b("key"), b("kez"), { entries: true });
  const keysOnly = store.range(b("key"), b("kez"), { entries: true, keysOnly: true });
  store.compact(store.revision);
  const total = log.sizes.totalBytes;
  run(store.reclaimSteps());
  await log.flush();
  assert.equal(log.sizes.totalBytes, total, "held: nothing removed");
  keysOnly.entries!.close(); // reads no record: holds nothing
  await log.flush();
  assert.equal(log.sizes.totalBytes, total, "still held by the entries with values");
  found.entries!.close();
  found.entries!.close(); // once is enough
  await log.flush();
  assert.ok(log.sizes.totalBytes < total / 4, `${log.sizes.totalBytes} of ${total}`);
});

Deno.test("a range of every key is scanned in steps as of its revision: writes between the steps are not in it, and a compaction finishes it first", async () => {
  const log = await RevisionLog.open(new MemoryDisk(), "/revs", () => {}, { segmentBytes: 65536 });
  const stores = [new MvccStore(), new MvccStore(undefined, { revisions: log, cacheBytes: 4096 })];
  const keys = 20_000; // over two scan steps
  const key = (i: number) => b(`k${String(i).padStart(5, "0")}`);
  for (const store of stores) {
    for (let i = 0; i < keys; i += 500) {
      const tx = store.write();
      for (let j = i; j < i + 500; j++) tx.put(key(j), b(`v${j}`.repeat(1 + j % 5)), 0n);
      tx.end();
    }
  }
  await log.flush();
  for (const store of stores) {
    for (const keysOnly of [false, true]) {
      const plain = store.range(b("k"), b("l"), { keysOnly });
      const expected = plain.kvs.map((kv) => toBinary(KeyValueSchema, kv));
      const found = store.range(b("k"), b("l"), { keysOnly, entries: true });
      const entries = found.entries!;
      assert.equal(found.count, plain.count);
      assert.equal(entries.scanned, false);
      entries.scanSome();
      assert.equal(entries.scanned, false, "one step is not the whole range");
      // Behind the scan and ahead of it: deletes, overwrites, a new key.
      const tx = store.write();
      tx.deleteRange(key(10), EMPTY);
      tx.deleteRange(key(15_000), EMPTY);
      tx.put(key(18_000), b("overwritten"), 0n);
      tx.put(b("k15000x"), b("new"), 0n);
      tx.end();
      entries.scanSome();
      store.compact(store.revision);
      assert.equal(entries.scanned, true, "the compaction finished the scan before it began");
      while (!store.compactionStep());
      run(store.reclaimSteps());
      await log.flush();
      assert.equal(entries.length, plain.kvs.length);
      const { written } = entryBytes(entries);
      assert.deepEqual(written, expected, keysOnly ? "keys only" : "values");
      entries.close();
      // Put the keys back for the next round.
      const again = store.write();
      again.put(key(10), b(`v10`), 0n);
      again.put(key(15_000), b(`v15000`), 0n);
      again.deleteRange(b("k15000x"), EMPTY);
      again.end();
    }
    // Closed before it is scanned: nothing is left to finish.
    const dropped = store.range(b("k"), b("l"), { entries: true }).entries!;
    dropped.close();
    assert.equal(dropped.scanned, true);
    store.compact(store.revision);
  }
});
