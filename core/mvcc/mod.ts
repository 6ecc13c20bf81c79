/**
 * Public surface of detcd's MVCC key-value store: etcd 3.4's revisioned key space as a pure
 * in-memory state machine. The node layer applies committed requests through it.
 */
export { MvccStore, noLeases } from "./store.ts";
export type { LeaseHooks, WriteResult } from "./store.ts";
export {
  checkDeleteRequest,
  checkPutRequest,
  checkRangeRequest,
  checkTxnRequest,
  DEFAULT_MAX_TXN_OPS,
} from "./validate.ts";
