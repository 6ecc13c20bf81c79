/**
 * A store's snapshot as a follower is sent it (the format of core/mvcc/snapshot_codec.ts), written
 * from the store's columns (MvccView.storedColumns) with each record read from the revision log's
 * files: what a worker streams (server/snapshot_worker.ts) while the event loop only passes the
 * chunks on. Byte for byte what encodeView writes of the same view.
 */
import { ByteWriter } from "../mvcc/kv_codec.ts";
import {
  snapshotEntrySize,
  type StoredColumns,
  writeSnapshotEntryHead,
  writeSnapshotHeader,
} from "../mvcc/snapshot_codec.ts";
import { revisionDataSize } from "../storage/revision_log.ts";

/** The columns a store snapshot is written from. */
export type SnapshotColumns = Pick<
  StoredColumns,
  "main" | "sub" | "tombstone" | "location" | "size"
>;

/** Where the columns stand in the store's history. */
export interface SnapshotPoint {
  revision: number;
  /** -1 when never compacted. */
  compactMainRev: number;
}

/** Bytes of the snapshot of `columns` (sizes come from the columns: nothing is read). */
export function columnsSnapshotSize(columns: SnapshotColumns, point: SnapshotPoint): number {
  const { main, sub, size } = columns;
  const head = new ByteWriter(32);
  writeSnapshotHeader(head, point.revision, point.compactMainRev, main.length);
  let total = head.length;
  for (let i = 0; i < main.length; i++) {
    total += snapshotEntrySize(main[i], sub[i], revisionDataSize(main[i], sub[i], size[i]));
  }
  return total;
}

/**
 * The snapshot of `columns` in pieces, in order (each valid until the next is asked for): the
 * header, then per revision its head and its record's data, read with `read`.
 */
export function* columnsSnapshotPieces(
  columns: SnapshotColumns,
  point: SnapshotPoint,
  read: (location: number, size: number) => Uint8Array,
): Generator<Uint8Array> {
  const { main, sub, tombstone, location, size } = columns;
  const w = new ByteWriter(64);
  writeSnapshotHeader(w, point.revision, point.compactMainRev, main.length);
  yield w.view();
  for (let i = 0; i < main.length; i++) {
    const data = read(location[i], size[i]);
    w.reset();
    writeSnapshotEntryHead(w, main[i], sub[i], tombstone[i] !== 0, data.length);
    yield w.view();
    yield data;
  }
}
