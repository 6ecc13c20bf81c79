/**
 * A worker that writes a snapshot's file off the event loop: etcd's backend database for
 * Maintenance.Snapshot, or the store's snapshot a follower is sent. It gets the store's columns as
 * of the snapshot (MvccView.storedColumns), the revision log's segment files and (for etcd's
 * database) the small buckets, plans the file, reads each record from its file, and fills the
 * chunks into a ring of shared memory only as fast as they are taken; for etcd's database it also
 * computes the file's SHA-256 (docs/adr/0010-storage-that-scales.md). Protocol:
 * server/snapshot_protocol.ts.
 */
/// <reference lib="deno.worker" />
import { createHash } from "node:crypto";
import v8 from "node:v8";
import vm from "node:vm";
import { BoltWriter } from "../core/storage/bbolt.ts";
import { segmentFilesReader } from "../core/storage/revision_log.ts";
import { backendSources, columnsKeySource } from "../core/snapshot/key_bucket.ts";
import { columnsSnapshotPieces, columnsSnapshotSize } from "../core/snapshot/store_stream.ts";
import { openReadAt } from "../platform/deno_disk.ts";
import { IdleThread } from "../platform/thread_priority.ts";
import { CHUNK_BYTES, fileChunks } from "./snapshot_chunks.ts";
import {
  ringSlot,
  SNAPSHOT_BATCH_CHUNKS,
  SNAPSHOT_BATCHES_AHEAD,
  type SnapshotFromWorker,
  snapshotMemory,
  type SnapshotStart,
  type SnapshotToWorker,
} from "./snapshot_protocol.ts";

// The event loop first: this thread takes a core only when no other thread wants it (SCHED_IDLE),
// or at nice 10 where it could not leave that policy when starved (platform/thread_priority.ts).
const thread = new IdleThread(10);
thread.enter();

/**
 * V8's collector for this worker's heap, or null. A worker that wrote its file whole may stand by
 * for the next snapshot (server/snapshot_writer.ts), and its heap then still holds the pages of
 * what the file was written from (~50 MB after a 1M-key snapshot; a worker waiting for a message
 * allocates nothing that would collect them). `gc` is a context's global only with --expose-gc,
 * read when a context is made: set for one context of this thread's own, then unset again (V8's
 * flags are the process's: a context another thread made meanwhile would have `gc` too, unused).
 */
const collectGarbage: (() => void) | null = (() => {
  try {
    v8.setFlagsFromString("--expose-gc");
    const gc: unknown = vm.runInNewContext("gc");
    return typeof gc === "function" ? () => gc() : null;
  } catch {
    return null;
  } finally {
    v8.setFlagsFromString("--no-expose-gc");
  }
})();

/** Batches told and not given back yet. */
let outstanding = 0;
let wake: (() => void) | null = null;

function post(message: SnapshotFromWorker): void {
  self.postMessage(message);
}

/** The file's size and its bytes in pieces (each used before the next is asked for). */
function planFile(
  start: SnapshotStart,
  read: (location: number, size: number) => Uint8Array,
): { total: number; pieces: Iterable<Uint8Array> } {
  const { columns, format } = start;
  if (format.kind === "store") {
    return {
      total: columnsSnapshotSize(columns, format),
      pieces: columnsSnapshotPieces(columns, format, read),
    };
  }
  const writer = new BoltWriter(
    backendSources(columnsKeySource(columns, read), format.buckets),
    { txid: format.txid },
  );
  for (const _ of writer.plan()) thread.working();
  return { total: writer.size, pieces: writer.pages() };
}

async function write(start: SnapshotStart): Promise<void> {
  const { columns, ring } = start;
  const files = segmentFilesReader(columns.files, openReadAt);
  try {
    const { total, pieces } = planFile(start, files.read);
    post({ kind: "total", total });
    // etcd's last message of `snapshot save`; a follower's snapshot has none.
    const sha = start.format.kind === "etcd-db" ? createHash("sha256") : null;
    let first = 0;
    let sizes: number[] = [];
    const tell = async () => {
      post({ kind: "chunks", first, sizes });
      first += sizes.length;
      sizes = [];
      // The next batch's slots are free once no more than the batches ahead are untaken.
      outstanding++;
      thread.pause();
      while (outstanding > SNAPSHOT_BATCHES_AHEAD) {
        await new Promise<void>((resolve) => (wake = resolve));
      }
    };
    const slot = (index: number) => ringSlot(ring, index, CHUNK_BYTES);
    for (const chunk of fileChunks(pieces, total, slot)) {
      thread.working();
      if (chunk === null) continue;
      sha?.update(chunk.blob);
      sizes.push(chunk.blob.length);
      if (sizes.length === SNAPSHOT_BATCH_CHUNKS) await tell();
    }
    if (sizes.length > 0) post({ kind: "chunks", first, sizes });
    post({ kind: "end", sha256: sha === null ? null : new Uint8Array(sha.digest()) });
  } finally {
    files.close();
    thread.pause();
  }
}

self.onmessage = (e: MessageEvent<SnapshotToWorker>) => {
  const message = e.data;
  if (message.kind === "memory") {
    // A new snapshot, perhaps not this worker's first (server/snapshot_writer.ts keeps one that
    // wrote its file whole): every credit of the last one came before this message (one more than
    // it counted where its last batch was short: told without waiting), and a worker that left
    // SCHED_IDLE starved then goes back to it.
    outstanding = 0;
    wake = null;
    if (!thread.idle) thread.enter();
    post({ kind: "memory", ...snapshotMemory(message.length, thread) });
    return;
  }
  if (message.kind === "stand-by") {
    // Kept for the next snapshot: what the last file was written from is garbage now (collected
    // on this thread, not the event loop).
    collectGarbage?.();
    return;
  }
  if (message.kind === "credit") {
    outstanding--;
    const resolve = wake;
    wake = null;
    resolve?.();
    return;
  }
  write(message).catch((error) => {
    post({ kind: "error", message: error instanceof Error ? error.message : String(error) });
  });
};
