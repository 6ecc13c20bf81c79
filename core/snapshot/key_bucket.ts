/**
 * etcd's `key` bucket as the bbolt writer reads it: revision keys (8-byte big-endian main, `_`,
 * 8-byte big-endian sub, a trailing `t` for a tombstone) and the stored KeyValues. Kept apart from
 * etcd_db.ts so that a worker writing a snapshot's file (server/snapshot_worker.ts) loads only
 * this, the bbolt writer and the revision log's reader.
 */
import { compareBytes } from "../bytes.ts";
import { type BoltBucket, type BoltSource, bucketSource } from "../storage/bbolt.ts";
import type { StoredColumns } from "../mvcc/snapshot_codec.ts";
import { revisionDataSize } from "../storage/revision_log.ts";

export const keyBucket = new TextEncoder().encode("key");
export const REV_BYTES_LEN = 17;
const tombstoneMark = 0x74; // 't'

/** etcd's revision key: main and sub as 8-byte big-endian, separated by `_`. */
export function revisionKey(main: number, sub: number, tombstone = false): Uint8Array {
  const out = new Uint8Array(REV_BYTES_LEN + (tombstone ? 1 : 0));
  writeRevisionKey(out, main, sub, tombstone);
  return out;
}

/** Writes revisionKey(main, sub, tombstone) into `out` (REV_BYTES_LEN bytes, one more if dead). */
export function writeRevisionKey(
  out: Uint8Array,
  main: number,
  sub: number,
  tombstone: boolean,
): void {
  // Two 32-bit big-endian halves each, no BigInt: revisions are safe integers (below 2^53).
  putUint32(out, 0, Math.floor(main / 0x1_0000_0000));
  putUint32(out, 4, main >>> 0);
  out[8] = 0x5f; // '_'
  putUint32(out, 9, Math.floor(sub / 0x1_0000_0000));
  putUint32(out, 13, sub >>> 0);
  if (tombstone) out[17] = tombstoneMark;
}

/** Whether a revision key ends with etcd's tombstone mark. */
export function isTombstoneKey(key: Uint8Array): boolean {
  return key.length === REV_BYTES_LEN + 1 && key[REV_BYTES_LEN] === tombstoneMark;
}

function putUint32(out: Uint8Array, at: number, v: number): void {
  out[at] = v >>> 24;
  out[at + 1] = (v >>> 16) & 0xff;
  out[at + 2] = (v >>> 8) & 0xff;
  out[at + 3] = v & 0xff;
}

/**
 * The `key` bucket over a store's columns (MvccView.storedColumns): each value is the record's
 * data as the revision log holds it (etcd's KeyValue encoding), read with `read` when the writer
 * asks for it; its size comes from the record's size, without a read. Keys are written into one
 * buffer (the writer copies what it keeps).
 */
export function columnsKeySource(
  columns: Pick<StoredColumns, "main" | "sub" | "tombstone" | "location" | "size">,
  read: (location: number, size: number) => Uint8Array,
): BoltSource {
  const { main, sub, tombstone, location, size } = columns;
  const putKey = new Uint8Array(REV_BYTES_LEN);
  const tombstoneKey = new Uint8Array(REV_BYTES_LEN + 1);
  return {
    name: keyBucket,
    length: main.length,
    key(i) {
      const dead = tombstone[i] !== 0;
      const out = dead ? tombstoneKey : putKey;
      writeRevisionKey(out, main[i], sub[i], dead);
      return out;
    },
    valueSize(i) {
      return revisionDataSize(main[i], sub[i], size[i]);
    },
    value(i) {
      return read(location[i], size[i]);
    },
  };
}

/** The `key` bucket's source and the other buckets, in bbolt's order (by name). */
export function backendSources(key: BoltSource, others: BoltBucket[]): BoltSource[] {
  return [key, ...others.map(bucketSource)].sort((a, b) => compareBytes(a.name, b.name));
}
