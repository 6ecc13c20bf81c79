/**
 * Skeleton of etcd's v3rpc request checks.
 */
import type {
  DeleteRangeRequest,
  PutRequest,
  RangeRequest,
  TxnRequest,
} from "../../gen/etcdserverpb/rpc_pb.ts";

/** etcd's default --max-txn-ops. */
export const DEFAULT_MAX_TXN_OPS = 128;

/** Checks a RangeRequest. */
export function checkRangeRequest(_req: RangeRequest): void {}
/** Checks a PutRequest. */
export function checkPutRequest(_req: PutRequest): void {}
/** Checks a DeleteRangeRequest. */
export function checkDeleteRequest(_req: DeleteRangeRequest): void {}
/** Checks a TxnRequest. */
export function checkTxnRequest(_req: TxnRequest, _maxTxnOps = DEFAULT_MAX_TXN_OPS): void {}
