/**
 * Durable storage for a member: the write-ahead log, state snapshots, and the Disk interface
 * through which core reaches the file system.
 */
export { Crc32c, crc32c } from "./crc32c.ts";
export type { AppendFile, Disk } from "./disk.ts";
export { MemoryDisk } from "./memory_disk.ts";
export {
  decodeRecords,
  encodeRecords,
  maxRecordBytes,
  Wal,
  WalCorruptError,
  walEntry,
  walHardState,
  type WalRecord,
  WalRecordKind,
  type WalRecovery,
  walSnapshotMarker,
} from "./wal.ts";
export { decodeSnapshot, encodeSnapshot, type Snapshot, Snapshotter } from "./snapshot.ts";
export {
  type BoltBucket,
  BoltFormatError,
  type BoltInfo,
  boltInfo,
  decodeBolt,
  encodeBolt,
  type EncodeBoltOptions,
} from "./bbolt.ts";
