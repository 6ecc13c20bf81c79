/**
 * Durable storage for a member: the write-ahead log, state snapshots, the Disk interface
 * through which core reaches the file system, and the bbolt page format of etcd's backend file.
 *
 * @example
 * ```ts
 * import { decodeRecords, encodeRecords, MemoryDisk, walEntry } from "./mod.ts";
 *
 * const disk = new MemoryDisk(); // the server passes platform/'s DenoDisk instead
 * const bytes = encodeRecords([walEntry(1, 1, new TextEncoder().encode("put foo"))]);
 * await disk.writeFileAtomic("records", bytes);
 * decodeRecords((await disk.readFile("records"))!).entries[0].index; // 1
 * ```
 *
 * @module
 */
export { Crc32c, crc32c } from "./crc32c.ts";
export type { AppendFile, Disk, ReadAtFile } from "./disk.ts";
export { PACED_SYNC_BYTES } from "./disk.ts";
export {
  DEFAULT_REVISION_SEGMENT_BYTES,
  RevisionLog,
  RevisionLogCorruptError,
  type RevisionRecord,
} from "./revision_log.ts";
export { MemoryDisk } from "./memory_disk.ts";
export {
  decodeRecords,
  encodeRecords,
  MAX_RECORD_BYTES,
  Wal,
  WalCorruptError,
  walEntry,
  walHardState,
  type WalRecord,
  WalRecordKind,
  type WalRecovery,
  walSnapshotMarker,
} from "./wal.ts";
export {
  decodeSnapshot,
  encodeSnapshot,
  type ReceivingSnapshot,
  sealSnapshot,
  type Snapshot,
  SNAPSHOT_HEADER_BYTES,
  type SnapshotFile,
  Snapshotter,
} from "./snapshot.ts";
export {
  type BoltBucket,
  BoltFormatError,
  type BoltInfo,
  boltInfo,
  type BoltSource,
  BoltWriter,
  bucketSource,
  decodeBolt,
  encodeBolt,
  type EncodeBoltOptions,
} from "./bbolt.ts";
