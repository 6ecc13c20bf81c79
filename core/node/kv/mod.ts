/**
 * The KV API's request semantics at the node's edge, over the byte-level MVCC store: what etcd
 * does in etcdserver/apply.go (Range's limit/sort/filters, Put's prev_kv/ignore_value/
 * ignore_lease, DeleteRange's prev_kv, Txn's compares, nested ops and response headers) and the
 * request checks of its API layer (etcdserver/api/v3rpc/key.go). The store stays free of gRPC
 * messages, so anything that holds a store can reuse it; everything that answers KV requests
 * goes through here.
 *
 * @module
 *
 * @example
 * ```ts
 * import { create } from "@bufbuild/protobuf";
 * import { PutRequestSchema, RangeRequestSchema } from "../../../gen/etcdserverpb/rpc_pb.ts";
 * import { MvccStore } from "../../mvcc/mod.ts";
 * import { applyPut, checkPutRequest, range } from "./mod.ts";
 *
 * const store = new MvccStore();
 * const put = create(PutRequestSchema, { key: new TextEncoder().encode("k") });
 * checkPutRequest(put);
 * const { response, events } = applyPut(store, put); // one revision, one PUT event
 * const got = range(store, create(RangeRequestSchema, { key: put.key }));
 * ```
 */
export { range, rangeEntries, STREAMED_MIN_KVS } from "./range.ts";
export { applyDeleteRange, applyPut, deleteRangeOp, putOp } from "./write.ts";
export { applyTxn, isTxnReadOnly, isTxnSerializable } from "./txn.ts";
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
