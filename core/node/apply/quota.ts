/**
 * The quota layer (etcd's quotaApplierV3 and backendQuota): a put, a txn that puts, or a lease
 * grant that would take this member's storage to --quota-backend-bytes or past it is still applied
 * (every member applies the same log, whatever its own size), but answers `etcdserver: mvcc:
 * database space exceeded`; the member then raises NOSPACE through the log, after which the capped
 * layer refuses what grows the store. The same check runs before a request is proposed.
 */
import type { TxnRequest } from "../../../gen/etcdserverpb/rpc_pb.ts";
import { Errors } from "../../errors.ts";
import type { ApplyLayer } from "./chain.ts";
import type { Operation } from "./operation.ts";

/** etcd's default --quota-backend-bytes (0 means this) and the largest it recommends. */
export const DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024;
export const MAX_QUOTA_BYTES = 8 * 1024 * 1024 * 1024;
/** etcd's estimates of what a key and a lease add to the backend. */
const KV_OVERHEAD = 256;
const LEASE_OVERHEAD = 64;

/**
 * What an operation may add to the storage, as etcd estimates it: a put its key and value plus
 * 256 bytes; a txn the larger of its branches' top-level puts; a lease grant 64 bytes; anything
 * else nothing.
 */
export function quotaCost(operation: Operation): number {
  switch (operation.case) {
    case "put":
      return KV_OVERHEAD + operation.value.key.length + operation.value.value.length;
    case "txn":
      return txnCost(operation.value);
    case "leaseGrant":
      return LEASE_OVERHEAD;
    default:
      return 0;
  }
}

function txnCost(req: TxnRequest): number {
  const branch = (ops: TxnRequest["success"]) =>
    ops.reduce(
      (n, op) =>
        op.request.case === "requestPut"
          ? n + KV_OVERHEAD + op.request.value.key.length + op.request.value.value.length
          : n,
      0,
    );
  return Math.max(branch(req.success), branch(req.failure));
}

/**
 * A member's quota: `available(cost)` answers whether `cost` more bytes stay under it (always
 * when disabled: a negative --quota-backend-bytes).
 */
export interface Quota {
  available(cost: number): boolean;
}

/** The quota of --quota-backend-bytes over a storage whose size `size()` tells. */
export function backendQuota(quotaBytes: number, size: () => number): Quota {
  if (quotaBytes < 0) return { available: () => true };
  const limit = quotaBytes === 0 ? DEFAULT_QUOTA_BYTES : quotaBytes;
  return { available: (cost) => cost === 0 || size() + cost < limit };
}

/** The quota layer over `quota`. */
export function quotaGuard(quota: Quota): ApplyLayer {
  return {
    name: "quota",
    apply(operation, meta, next) {
      // Measured before the operation changes the storage, as etcd does.
      const ok = quota.available(quotaCost(operation));
      const response = next(operation, meta);
      if (!ok) throw Errors.noSpace();
      return response;
    },
  };
}
