/**
 * Public surface of detcd's MVCC key-value store: etcd 3.4's revisioned key space as a pure
 * in-memory state machine. The node layer validates requests with the check* functions before
 * proposing them, then applies committed ones through MvccStore; WatchableStore streams the
 * changes to watchers.
 *
 * @example
 * ```ts
 * import { create } from "@bufbuild/protobuf";
 * import { PutRequestSchema, RangeRequestSchema } from "../../gen/etcdserverpb/rpc_pb.ts";
 * import { MvccStore } from "./mod.ts";
 *
 * const enc = new TextEncoder();
 * const store = new MvccStore();
 * store.put(create(PutRequestSchema, { key: enc.encode("foo"), value: enc.encode("bar") }));
 * store.range(create(RangeRequestSchema, { key: enc.encode("foo") })).kvs[0].modRevision; // 2n
 * ```
 *
 * @module
 */
export { isTxnReadOnly, isTxnSerializable, MvccStore, noLeases } from "./store.ts";
export type { HashKVResult, LeaseHooks, WriteResult } from "./store.ts";
export {
  checkDeleteRequest,
  checkIntervals,
  checkPutRequest,
  checkRangeRequest,
  checkTxnOps,
  checkTxnRequest,
  DEFAULT_MAX_TXN_OPS,
} from "./validate.ts";
export type { KeyInterval } from "./validate.ts";
/** Byte order and byte keys as the store uses them (one copy, in core/bytes.ts). */
export { compareBytes, keyId } from "../bytes.ts";
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
