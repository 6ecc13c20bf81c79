import { create, toBinary } from "@bufbuild/protobuf";
import { createHash } from "node:crypto";
import {
  CompactionRequestSchema,
  DeleteRangeRequestSchema,
  LeaseGrantRequestSchema,
  PutRequestSchema,
  SnapshotResponseSchema,
} from "../gen/etcdserverpb/rpc_pb.ts";
import { encodeGrpcFrame } from "../core/wire/mod.ts";
import { assert, assertEquals } from "../core/testing.ts";
import { silentLogger } from "../core/log.ts";
import { type Disk, MemoryDisk } from "../core/storage/mod.ts";
import { DenoDisk } from "../platform/mod.ts";
import { boltInfo, decodeBolt } from "../core/storage/bbolt.ts";
import { dbStatus, fromEtcdBuckets } from "../core/snapshot/etcd_db.ts";
import { EtcdNode } from "../core/node/etcd_node.ts";
import { testConfig } from "../core/node/_testing.ts";
import { encodeView } from "../core/mvcc/snapshot_codec.ts";
import {
  hashResponse,
  snapshotDbChunks,
  type SnapshotPart,
  snapshotWorkers,
} from "./snapshot_service.ts";
import {
  chunksOf,
  snapshotResponseFrameSize,
  writeSnapshotResponseFrame,
} from "./snapshot_chunks.ts";
import {
  dismissSnapshotWorker,
  keepFinishedWorkers,
  SnapshotWorker,
  snapshotWorkerStandingBy,
  standBySnapshotWorker,
  workerSnapshotBody,
} from "./snapshot_writer.ts";
import type { SnapshotBody } from "../core/node/mod.ts";
import { inTime } from "./_testing.ts";
import { SNAPSHOT_RING_SLOTS, snapshotMemory } from "./snapshot_protocol.ts";

const enc = new TextEncoder();

async function node(
  keys: number,
  disk: Disk = new MemoryDisk(),
  dataDir = "data",
): Promise<EtcdNode> {
  const n = await EtcdNode.open(testConfig({ dataDir }), disk, silentLogger);
  const value = enc.encode("v".repeat(256));
  const puts: Promise<unknown>[] = [];
  for (let i = 0; i < keys; i++) {
    puts.push(n.put(create(PutRequestSchema, { key: enc.encode(`key-${i}`), value })));
  }
  await Promise.all(puts);
  return n;
}

async function collect(
  chunks: AsyncGenerator<SnapshotPart>,
  /** A slow consumer: true waits 1 ms before taking each batch, a number that many. */
  slow: boolean | number = false,
  /** The size, when its part was taken before. */
  total = -1,
): Promise<{ total: number; file: Uint8Array; chunkSizes: number[]; inWorker: boolean }> {
  let inWorker = false;
  let digest: Uint8Array | null = null;
  const parts: Uint8Array[] = [];
  for await (const part of chunks) {
    assertEquals(digest, null, "the digest comes last");
    if ("total" in part) ({ total, inWorker } = part);
    else if ("sha256" in part) digest = part.sha256;
    else {
      // A slow consumer: a writer that ran ahead would have overwritten what is not taken yet.
      if (slow) await new Promise((resolve) => setTimeout(resolve, slow === true ? 1 : slow));
      for (const { blob, remaining } of chunksOf(part)) {
        parts.push(blob.slice()); // a chunk's buffer is reused
        const sent = parts.reduce((n, p) => n + p.length, 0);
        assertEquals(remaining, total - sent, "the bytes after each chunk");
      }
    }
  }
  const file = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    file.set(p, at);
    at += p.length;
  }
  assertEquals(digest, new Uint8Array(createHash("sha256").update(file).digest()), "its SHA-256");
  return { total, file, chunkSizes: parts.map((p) => p.length), inWorker };
}

Deno.test("a snapshot streams the state of the moment it starts: later writes and a compaction are not in it", async () => {
  const n = await node(2000);
  const before = n.backendState();
  const revision = before.mvcc.revision;
  const stream = snapshotDbChunks(n);
  // The first step takes the view and plans the file: its size is known before any byte.
  const first = await stream.next();
  assert(!first.done && "total" in first.value, "the size comes first");
  // Meanwhile the member goes on: more writes, a delete, a compaction that drops history.
  await n.put(create(PutRequestSchema, { key: enc.encode("key-1"), value: enc.encode("new") }));
  await n.deleteRange(create(DeleteRangeRequestSchema, { key: enc.encode("key-2") }));
  await n.compact(create(CompactionRequestSchema, { revision: BigInt(revision + 2) }));
  const rest = await collect(stream, false, first.value.total);
  assertEquals(rest.file.length, first.value.total, "the planned size is the file's size");
  // etcd's chunking: 32 KiB blobs, the last one shorter.
  assert(rest.chunkSizes.slice(0, -1).every((s) => s === 32 * 1024));
  const buckets = decodeBolt(rest.file);
  assertEquals(dbStatus(buckets).revision, revision);
  assertEquals(boltInfo(rest.file).pageSize, 4096);
  const restored = fromEtcdBuckets(buckets);
  assertEquals(restored.revision, revision);
  assertEquals(restored.mvcc, encodeView(before.mvcc), "every revision as of the start");
  assertEquals(n.backendState().mvcc.revision, revision + 2, "the member moved on meanwhile");
  await n.stop();
});

Deno.test("the member's timers run while a large snapshot is written", async () => {
  const n = await node(20000);
  let fired = false;
  setTimeout(() => (fired = true), 0);
  let chunks = 0;
  let firedBeforeEnd = false;
  for await (const part of snapshotDbChunks(n)) {
    if (!("total" in part)) chunks++;
    if (fired) firedBeforeEnd = true;
  }
  assert(chunks > 100, `a large file (${chunks} chunks)`);
  assert(firedBeforeEnd, "a timer due at the start ran before the stream ended");
  await n.stop();
});

Deno.test("Maintenance.Hash covers every bucket but the consistent index", async () => {
  const n = await node(50);
  const a = await hashResponse(n);
  // A read moves nothing but the consistent index... which Hash leaves out: same hash.
  const b = await hashResponse(n);
  assertEquals(a.hash, b.hash);
  await n.put(create(PutRequestSchema, { key: enc.encode("key-1"), value: enc.encode("x") }));
  const c = await hashResponse(n);
  assert(c.hash !== a.hash, "a write changes the hash");
  await n.stop();
});

Deno.test("a chunk written as its gRPC frame is the SnapshotResponse protobuf-es encodes, for every size and remainder", () => {
  for (const size of [1, 127, 128, 16383, 16384, 32768]) {
    for (const remaining of [0, 1, 127, 128, 300_000, 2 ** 32 + 5, 2 ** 40]) {
      const blob = new Uint8Array(size);
      for (let i = 0; i < size; i++) blob[i] = (i * 7 + size) & 0xff;
      const frameSize = snapshotResponseFrameSize(size, remaining);
      const out = new Uint8Array(frameSize + 10).fill(0xee);
      writeSnapshotResponseFrame(out, 3, blob, remaining);
      const expected = encodeGrpcFrame(
        toBinary(
          SnapshotResponseSchema,
          create(SnapshotResponseSchema, { remainingBytes: BigInt(remaining), blob }),
        ),
      );
      assertEquals(
        out.subarray(3, 3 + frameSize),
        expected,
        `size ${size}, remaining ${remaining}`,
      );
      assert(out.subarray(0, 3).every((b) => b === 0xee), "nothing before it");
      assert(out.subarray(3 + frameSize).every((b) => b === 0xee), "nothing after it");
    }
  }
});

/** Runs `body` on a member on the real file system (its records in revision log files). */
async function withDiskNode(keys: number, body: (n: EtcdNode) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "detcd-snapshot-" });
  const n = await node(keys, new DenoDisk(), `${dir}/data`);
  try {
    await body(n);
  } finally {
    await n.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

/** A key under a lease, 500 overwrites, a delete, a compaction, then a range delete. */
async function mixedHistory(n: EtcdNode): Promise<void> {
  const lease = await n.leaseGrant(create(LeaseGrantRequestSchema, { TTL: 60n }));
  await n.put(
    create(PutRequestSchema, {
      key: enc.encode("leased"),
      value: enc.encode("x"),
      lease: lease.ID,
    }),
  );
  for (let i = 0; i < 500; i++) {
    await n.put(
      create(PutRequestSchema, { key: enc.encode(`key-${i}`), value: enc.encode(`v${i}`) }),
    );
  }
  await n.deleteRange(create(DeleteRangeRequestSchema, { key: enc.encode("key-7") }));
  const mid = n.backendState().mvcc.revision;
  await n.compact(create(CompactionRequestSchema, { revision: BigInt(mid - 100) }));
  await n.deleteRange(
    create(DeleteRangeRequestSchema, { key: enc.encode("key-2"), rangeEnd: enc.encode("key-3") }),
  );
}

Deno.test("a snapshot written by the worker is the file the event loop writes: puts, overwrites, deletes, a compaction, leases", async () => {
  await withDiskNode(20000, async (n) => {
    await mixedHistory(n);
    const byWorker = await collect(snapshotDbChunks(n), true);
    const inThread = await collect(snapshotDbChunks(n, { inThread: true }));
    assert(byWorker.inWorker && !inThread.inWorker, "one each way");
    assertEquals(byWorker.total, inThread.total);
    // More chunks than the ring has slots: every slot is filled again after it was taken.
    assert(byWorker.chunkSizes.length > 2 * 80, `many chunks (${byWorker.chunkSizes.length})`);
    assertSameBytes(byWorker.file, inThread.file, "the same bytes");
    assertEquals(byWorker.chunkSizes, inThread.chunkSizes);
  });
});

Deno.test("a snapshot takes the worker standing by: the same file; the next one starts its own", async () => {
  await withDiskNode(3000, async (n) => {
    await mixedHistory(n);
    const inThread = await collect(snapshotDbChunks(n, { inThread: true }));
    standBySnapshotWorker();
    standBySnapshotWorker(); // one at a time
    assert(snapshotWorkerStandingBy());
    await new Promise((resolve) => setTimeout(resolve, 200)); // loaded, waiting for work
    const stream = snapshotDbChunks(n);
    const first = await inTime(stream.next(), "no size from the standing-by worker in 10 s");
    assert(!first.done && "total" in first.value && first.value.inWorker, "a worker writes it");
    assert(!snapshotWorkerStandingBy(), "the snapshot took the one standing by");
    assertEquals(snapshotWorkers(), 1);
    await stream.return(undefined);
    assertEquals(snapshotWorkers(), 0);
    standBySnapshotWorker();
    const taken = await inTime(collect(snapshotDbChunks(n)), "standing-by worker stuck");
    assert(taken.inWorker);
    assertSameBytes(taken.file, inThread.file, "the standing-by worker's file");
    const own = await collect(snapshotDbChunks(n)); // none standing by: started for it
    assert(own.inWorker && !snapshotWorkerStandingBy());
    assertSameBytes(own.file, inThread.file, "a worker of its own writes the same");
    standBySnapshotWorker();
    dismissSnapshotWorker();
    assert(!snapshotWorkerStandingBy(), "dismissed");
  });
});

Deno.test("a worker that wrote its file whole stands by for the next snapshot where one is kept; one cut short ends", async () => {
  await withDiskNode(20000, async (n) => {
    await mixedHistory(n);
    keepFinishedWorkers(() => true);
    try {
      const expected = await collect(snapshotDbChunks(n, { inThread: true }));
      assert(!snapshotWorkerStandingBy());
      const first = await inTime(collect(snapshotDbChunks(n), true), "first snapshot stuck");
      assert(first.inWorker);
      assertSameBytes(first.file, expected.file, "the first worker's file");
      assert(snapshotWorkerStandingBy(), "the worker stands by once its file is written");
      assertEquals(snapshotWorkers(), 0);
      // Another file from the same worker, after more writes: a slow consumer again, so the ring
      // is filled round more than twice (the last snapshot's credits must not count for this one).
      for (let i = 0; i < 2000; i++) {
        await n.put(
          create(PutRequestSchema, { key: enc.encode(`more-${i}`), value: enc.encode("w") }),
        );
      }
      const later = await collect(snapshotDbChunks(n, { inThread: true }));
      const second = await inTime(collect(snapshotDbChunks(n), 10), "the kept worker stuck");
      assert(second.inWorker && second.chunkSizes.length > 2 * SNAPSHOT_RING_SLOTS);
      assertSameBytes(second.file, later.file, "the kept worker's second file");
      assert(snapshotWorkerStandingBy(), "stands by again");
      // A consumer gone after the size: the worker has more to write and ends.
      const cut = snapshotDbChunks(n);
      const size = await inTime(cut.next(), "no size");
      assert(!size.done && "total" in size.value && size.value.inWorker);
      assert(!snapshotWorkerStandingBy(), "taken");
      await cut.return(undefined);
      assertEquals(snapshotWorkers(), 0);
      assert(!snapshotWorkerStandingBy(), "a worker cut short does not stand by");
      // Where none is kept, a finished worker ends.
      keepFinishedWorkers(null);
      const own = await collect(snapshotDbChunks(n));
      assert(own.inWorker && !snapshotWorkerStandingBy());
      assertSameBytes(own.file, later.file, "a worker of its own");
    } finally {
      keepFinishedWorkers(null);
      dismissSnapshotWorker();
    }
  });
});

Deno.test("the snapshot's worker gives the columns' memory; the store's columns are copied into it", async () => {
  const worker = new SnapshotWorker();
  try {
    const length = 1_000_000;
    const columns = await inTime(worker.memory(length), "no memory from the worker in 10 s");
    assert(columns !== null, "the worker answered with memory");
    for (const column of Object.values(columns)) {
      assertEquals(column.length, length);
      assert(column.buffer instanceof SharedArrayBuffer, "shared with the worker");
      assert(column.every((x: number) => x === 0), "zeroed");
    }
  } finally {
    worker.end();
  }
  assertEquals(snapshotWorkers(), 0);
  await withDiskNode(3000, async (n) => {
    const view = n.backendState().mvcc;
    const worker = new SnapshotWorker();
    try {
      const memory = await inTime(worker.memory(view.length), "no memory in 10 s");
      assert(memory !== null);
      const into = runSteps(view.storedColumns!(memory))!;
      const own = runSteps(view.storedColumns!())!;
      assert(
        into.main === memory.main && into.size === memory.size,
        "copied into the memory given",
      );
      assert(own.main !== memory.main, "without memory given: its own");
      for (const column of ["main", "sub", "tombstone", "location", "size"] as const) {
        assertEquals([...into[column]], [...own[column]], column);
      }
    } finally {
      worker.end();
      view.close?.();
    }
  });
});

Deno.test("a snapshot's memory is paged in as work, and the wait for the event loop's copy after it is not", () => {
  const calls: string[] = [];
  const thread = { working: () => calls.push("working"), pause: () => calls.push("pause") };
  const { columns, ring } = snapshotMemory(100_000, thread);
  for (const column of Object.values(columns)) {
    assertEquals(column.length, 100_000);
    assert(column.buffer instanceof SharedArrayBuffer && column.every((x: number) => x === 0));
  }
  assertEquals(ring.byteLength, SNAPSHOT_RING_SLOTS * 32 * 1024);
  // Work while paging in (a worker starved of the CPU meanwhile leaves SCHED_IDLE); then a pause:
  // counted as work, the event loop's copy (over 250 ms at 1M keys) made the worker judge itself
  // starved and leave SCHED_IDLE for nice 10 before it wrote a byte.
  assertEquals(calls.at(-1), "pause");
  assert(calls.slice(0, -1).every((c) => c === "working") && calls.length > 1);
});

/** A generator's result, its steps run at once. */
function runSteps<T>(steps: Generator<void, T>): T {
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

Deno.test("a worker standing by that could not load: the event loop writes the snapshot", async () => {
  await withDiskNode(2000, async (n) => {
    const inThread = await collect(snapshotDbChunks(n, { inThread: true }));
    // Failed before the snapshot took it, and failing after it did.
    for (const wait of [500, 0]) {
      standBySnapshotWorker(
        `data:application/javascript,throw new Error("no snapshot worker here")`,
      );
      await new Promise((resolve) => setTimeout(resolve, wait));
      // A failure nobody hears of would leave the snapshot waiting for the worker forever.
      const fallback = await inTime(collect(snapshotDbChunks(n)), `stuck (waited ${wait} ms)`);
      assert(!fallback.inWorker, `the event loop wrote it (waited ${wait} ms)`);
      assertSameBytes(fallback.file, inThread.file, "the event loop's file");
      assertEquals(snapshotWorkers(), 0);
      assert(!snapshotWorkerStandingBy());
    }
  });
});

Deno.test("a snapshot written by the worker streams the state of the moment it starts", async () => {
  await withDiskNode(2000, async (n) => {
    const before = n.backendState();
    const revision = before.mvcc.revision;
    const expected = encodeView(before.mvcc);
    before.mvcc.close?.();
    const stream = snapshotDbChunks(n);
    const first = await stream.next();
    assert(!first.done && "total" in first.value, "the size comes first");
    assert(first.value.inWorker, "written by the worker");
    await n.put(create(PutRequestSchema, { key: enc.encode("key-1"), value: enc.encode("new") }));
    await n.deleteRange(create(DeleteRangeRequestSchema, { key: enc.encode("key-2") }));
    await n.compact(create(CompactionRequestSchema, { revision: BigInt(revision + 2) }));
    let total = 0;
    const parts: Uint8Array[] = [];
    for await (const part of stream) {
      if ("total" in part || "sha256" in part) continue;
      for (const { blob, remaining } of chunksOf(part)) {
        total += blob.length;
        assertEquals(remaining, first.value.total - total);
        parts.push(blob.slice());
      }
    }
    const file = new Uint8Array(total);
    let at = 0;
    for (const p of parts) (file.set(p, at), at += p.length);
    const restored = fromEtcdBuckets(decodeBolt(file));
    assertEquals(restored.revision, revision);
    assertEquals(restored.mvcc, expected, "every revision as of the start");
  });
});

Deno.test("a client that goes away mid-snapshot ends the worker and lets go of the revision storage", async () => {
  await withDiskNode(5000, async (n) => {
    const stream = snapshotDbChunks(n);
    const first = await stream.next(); // the size
    assert(!first.done && "total" in first.value && first.value.inWorker, "a worker writes it");
    await stream.next(); // a first chunk
    assertEquals(n.openReads, 1, "the snapshot's view holds the revision storage");
    await stream.return(undefined); // as the gRPC handler does when its client is gone
    assertEquals(n.openReads, 0, "let go of once the client is gone");
    assertEquals(snapshotWorkers(), 0, "the worker ended with the stream");
    // Gone right after the size, before any chunk.
    const early = snapshotDbChunks(n);
    await early.next();
    assertEquals(snapshotWorkers(), 1);
    await early.return(undefined);
    assertEquals(n.openReads, 0);
    assertEquals(snapshotWorkers(), 0, "the worker ended with the stream");
    const again = await collect(snapshotDbChunks(n));
    assert(again.inWorker && again.file.length === again.total, "the next snapshot is whole");
    assertEquals(n.openReads, 0);
  });
});

/** The body's next chunk; fails rather than waits when none comes within 10 s (a stuck worker). */
async function nextChunk(body: SnapshotBody): Promise<Uint8Array | null> {
  return await inTime(body.next(), "no chunk from the worker within 10 s");
}

/** Every chunk of a follower's snapshot body, joined (a chunk's buffer is reused). */
async function drain(body: SnapshotBody, slow = false): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (let chunk = await nextChunk(body); chunk !== null; chunk = await nextChunk(body)) {
    // A slow socket: a worker that ran ahead would overwrite what is not sent yet.
    if (slow) await new Promise((resolve) => setTimeout(resolve, 1));
    parts.push(chunk.slice());
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) (out.set(p, at), at += p.length);
  return out;
}

/** Fails at the first byte that differs (a diff of megabytes would not be readable). */
function assertSameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const n = Math.min(actual.length, expected.length);
  let at = 0;
  while (at < n && actual[at] === expected[at]) at++;
  assert(
    at === n && actual.length === expected.length,
    `${what}: ${actual.length} bytes against ${expected.length}, first difference at ${at}`,
  );
}

/** The bytes a follower's snapshot starts with, ahead of the store's (as the node's frame). */
const followerHead = (size: number) => enc.encode(`other state, then a store of ${size} bytes:`);

Deno.test("a follower's snapshot written by the worker is the bytes the member encodes itself: puts, overwrites, deletes, a compaction, leases", async () => {
  await withDiskNode(20000, async (n) => {
    await mixedHistory(n);
    const view = n.backendState().mvcc;
    try {
      const body = await workerSnapshotBody(view, followerHead);
      assert(body !== null, "a worker writes it");
      assertEquals(snapshotWorkers(), 1);
      const sent = await drain(body, true);
      body.close();
      const store = encodeView(view);
      const head = followerHead(store.length);
      assertEquals(body.size, head.length + store.length, "the size known before any byte");
      // More than the ring holds (80 chunks of 32 KiB): every slot is filled again after it went.
      assert(store.length > 2 * 80 * 32 * 1024, `a large store (${store.length} bytes)`);
      assertSameBytes(sent.subarray(0, head.length), head, "the head");
      assertSameBytes(sent.subarray(head.length), store, "the same bytes as encodeView");
    } finally {
      view.close?.();
    }
    await new Promise((resolve) => setTimeout(resolve, 0));
    assertEquals(snapshotWorkers(), 0, "the worker ended with the body");
  });
});

Deno.test("a follower's snapshot by the worker holds the moment it starts; closed early, the worker ends", async () => {
  await withDiskNode(2000, async (n) => {
    const view = n.backendState().mvcc;
    const expected = encodeView(view);
    try {
      const body = await workerSnapshotBody(view, () => new Uint8Array(0));
      assert(body !== null, "a worker writes it");
      await n.put(create(PutRequestSchema, { key: enc.encode("key-1"), value: enc.encode("new") }));
      await n.deleteRange(create(DeleteRangeRequestSchema, { key: enc.encode("key-2") }));
      await n.compact(create(CompactionRequestSchema, { revision: BigInt(view.revision + 2) }));
      assertSameBytes(await drain(body), expected, "every revision as of the start, none after");
      body.close();
      const early = await workerSnapshotBody(view, () => new Uint8Array(0));
      assert(early !== null && (await nextChunk(early)) !== null, "a first chunk");
      assertEquals(snapshotWorkers(), 1);
      early.close(); // the follower went away
      await new Promise((resolve) => setTimeout(resolve, 0));
      assertEquals(snapshotWorkers(), 0, "the worker ended with the body");
    } finally {
      view.close?.();
    }
  });
});

Deno.test("a store in memory has no follower's snapshot by a worker: the member encodes it", async () => {
  const n = await node(100);
  try {
    const view = n.backendState().mvcc;
    assertEquals(await workerSnapshotBody(view, followerHead), null);
    view.close?.();
    assertEquals(snapshotWorkers(), 0);
  } finally {
    await n.stop();
  }
});
