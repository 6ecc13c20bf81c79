/**
 * Messages between the event loop and the worker that writes a snapshot's file
 * (server/snapshot_worker.ts). The worker sends the file's size, then batches of chunks (their
 * buffers transferred), then the end; the event loop gives back a credit for each batch it has
 * taken, and the worker keeps at most SNAPSHOT_BATCHES_AHEAD batches untaken.
 */
import type { BoltBucket } from "../core/storage/bbolt.ts";
import type { StoredColumns } from "../core/mvcc/snapshot_codec.ts";

/** Chunks per message (512 KiB of the file). */
export const SNAPSHOT_BATCH_CHUNKS = 16;
/** Batches the worker may have written before the first is taken (2 MiB of the file). */
export const SNAPSHOT_BATCHES_AHEAD = 4;

/** What the worker is to write: the key bucket's columns and files, and every other bucket. */
export interface SnapshotStart {
  kind: "start";
  columns: Omit<StoredColumns, "flushed">;
  buckets: BoltBucket[];
  txid: number;
  /** Each chunk as its SnapshotResponse's gRPC frame (else the file's bytes alone). */
  framed: boolean;
}

export type SnapshotToWorker = SnapshotStart | { kind: "credit" };

export type SnapshotFromWorker =
  | { kind: "total"; total: number }
  /** Each chunk's buffer, and how many of the file's bytes it holds (its tail). */
  | { kind: "chunks"; outs: Uint8Array[]; sizes: number[] }
  | { kind: "end" }
  | { kind: "error"; message: string };
