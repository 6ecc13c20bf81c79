/**
 * Public surface of detcd's MVCC key-value store: etcd 3.4's revisioned key space as a pure
 * in-memory state machine, in bytes and options (etcd's mvcc.KV): range(key, end, options),
 * write transactions, compaction, HashKV, snapshots, and the watchable store over it. The
 * request semantics of the KV API (sort, filters, compares, prev_kv, ...) live in core/node/kv.
 *
 * @example One write transaction, then a range at its revision
 * ```ts
 * import { MvccStore } from "./mod.ts";
 *
 * const enc = new TextEncoder();
 * const store = new MvccStore();
 * const txn = store.write();
 * txn.put(enc.encode("a"), enc.encode("1"), 0n);
 * txn.put(enc.encode("b"), enc.encode("2"), 0n);
 * txn.end(); // one revision for both puts: 2
 * store.range(enc.encode("a"), enc.encode("c"), {}).kvs.length; // 2
 * ```
 *
 * @module
 */
export { DEFAULT_KV_CACHE_BYTES, MvccStore, noLeases } from "./store.ts";
export type {
  HashKVResult,
  LeaseHooks,
  MvccStoreOptions,
  PrevKvs,
  RangeEntries,
  RangeOptions,
  RangeResult,
  ReadView,
  RevisionStorage,
  WriteResult,
  WriteTxn,
} from "./store.ts";
export {
  type ChunkedBytes,
  encodeView,
  encodeViewSteps,
  type MvccView,
  type SnapshotEntry,
  sourceRange,
  STREAM_CHUNK_BYTES,
  streamViewSteps,
  tombstoneValueSize,
  viewEntries,
  viewOfEntries,
} from "./snapshot_codec.ts";
/** Byte order and byte keys as the store uses them (one copy, in core/bytes.ts). */
export { type ByteSource, bytesSource, compareBytes, keyId, readSource } from "../bytes.ts";
export {
  MAX_WATCHERS_PER_SYNC,
  WATCH_BATCH_MAX_REVS,
  WATCH_STREAM_CAPACITY,
  WatchableStore,
  WatchError,
  WatchErrors,
  WatchStream,
} from "./watch.ts";
export type { WatchBatch, WatchOptions, WatchSource } from "./watch.ts";
