/**
 * Messages between the event loop and the worker that writes a snapshot's file
 * (server/snapshot_worker.ts): `snapshot save`'s, or the one a follower is sent. The chunks go
 * through a ring of shared memory, not messages: the worker fills a batch of chunk slots, then
 * tells which; the event loop copies each chunk into the connection's output (or hands the batch
 * to the peer's socket) and gives the batch's slots back with a credit. At most
 * SNAPSHOT_BATCHES_AHEAD batches are told and not yet given back, so the one being filled never
 * overwrites a chunk not yet taken. Nothing of the file is a buffer of the event loop's own: a
 * buffer per chunk was external memory its collector counted, and ran full collections of the
 * member's heap for (15 ms pauses every 300 ms at 1M keys).
 */
import type { BoltBucket } from "../core/storage/bbolt.ts";
import {
  type ColumnArrays,
  newColumnArrays,
  type StoredColumns,
} from "../core/mvcc/snapshot_codec.ts";
import { CHUNK_BYTES } from "./snapshot_chunks.ts";

/** Chunks per batch (512 KiB of the file). */
export const SNAPSHOT_BATCH_CHUNKS = 16;
/** Batches told and not yet given back, at most. */
export const SNAPSHOT_BATCHES_AHEAD = 4;
/** Chunk slots in the ring: the batches ahead and the one being filled. */
export const SNAPSHOT_RING_SLOTS = (SNAPSHOT_BATCHES_AHEAD + 1) * SNAPSHOT_BATCH_CHUNKS;

/** The ring's slot of chunk `index` of the file (its bytes start there). */
export function ringSlot(ring: SharedArrayBuffer, index: number, size: number): Uint8Array {
  return new Uint8Array(ring, (index % SNAPSHOT_RING_SLOTS) * CHUNK_BYTES, size);
}

/**
 * Which file the worker writes of the columns: etcd's backend database (`snapshot save`; the key
 * bucket from the columns, every other bucket given), or the store's own snapshot a follower is
 * sent (core/snapshot/store_stream.ts).
 */
export type SnapshotFormat =
  | { kind: "etcd-db"; buckets: BoltBucket[]; txid: number }
  | { kind: "store"; revision: number; compactMainRev: number };

/** What the worker is to write: the store's columns and files, in which format. */
export interface SnapshotStart {
  kind: "start";
  columns: Omit<StoredColumns, "flushed">;
  format: SnapshotFormat;
  /** SNAPSHOT_RING_SLOTS chunks of CHUNK_BYTES. */
  ring: SharedArrayBuffer;
}

export type SnapshotToWorker =
  /**
   * Memory for a snapshot of `length` revisions first: the columns (the event loop copies the
   * store's into them) and the ring, allocated and paged in by the worker, off the event loop.
   */
  | { kind: "memory"; length: number }
  | SnapshotStart
  | { kind: "credit" }
  /**
   * The file written whole, the worker stands by for the next snapshot: it collects its heap (what
   * the file was written from) first.
   */
  | { kind: "stand-by" };

export type SnapshotFromWorker =
  /** The memory asked for: zeroed, every page touched. */
  | { kind: "memory"; columns: ColumnArrays; ring: SharedArrayBuffer }
  | { kind: "total"; total: number }
  /** Chunks first, first + 1, ... are in their ring slots, `sizes` bytes each. */
  | { kind: "chunks"; first: number; sizes: number[] }
  /** The file's SHA-256 (etcd's last message; only of etcd's database). */
  | { kind: "end"; sha256: Uint8Array | null }
  | { kind: "error"; message: string };

/** Bytes between touches that page a buffer in (a page of 4 KiB; larger pages are touched more). */
const PAGE_BYTES = 4096;

/**
 * The shared memory of a snapshot of `length` revisions (the columns and the ring), every page
 * written once: the kernel zeroes a page and maps it at its first write, ~0.7 ms per MB on this
 * machine, and the columns of 1M revisions are 25 MB, a wait the event loop would otherwise meet
 * when it copies into them. Run by the worker, which tells `thread` it works while it pages them
 * in and pauses at the end: the event loop's copy it waits for next is not its work (counted as
 * work, a copy over 250 ms made the worker judge itself starved and leave SCHED_IDLE).
 */
export function snapshotMemory(
  length: number,
  thread: { working(): void; pause(): void },
): { columns: ColumnArrays; ring: SharedArrayBuffer } {
  const columns = newColumnArrays(length);
  const ring = new SharedArrayBuffer(SNAPSHOT_RING_SLOTS * CHUNK_BYTES);
  for (const buffer of [...Object.values(columns).map((a) => a.buffer), ring]) {
    const bytes = new Uint8Array(buffer);
    for (let at = 0; at < bytes.length; at += PAGE_BYTES) bytes[at] = 0;
    thread.working();
  }
  thread.pause();
  return { columns, ring };
}
