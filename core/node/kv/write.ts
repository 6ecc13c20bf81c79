/**
 * etcd's applierV3backend.Put and DeleteRange (etcdserver/apply.go) over the byte-level store:
 * lease and ignore_value/ignore_lease checks, prev_kv, and the response of each. Each function
 * applies one request as one write transaction; the *Op forms run inside a Txn's transaction.
 */
import { mvccDeletes, mvccPuts, totalPutBytes } from "../metrics.ts";
import { create } from "@bufbuild/protobuf";
import {
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  DeleteRangeResponseSchema,
  type PutRequest,
  type PutResponse,
  PutResponseSchema,
} from "../../../gen/etcdserverpb/rpc_pb.ts";
import { Errors } from "../../errors.ts";
import type { MvccStore, WriteResult, WriteTxn } from "../../mvcc/mod.ts";

const EMPTY_END = new Uint8Array(0);

/**
 * Put: one new revision. Throws Errors.leaseNotFound() for an unknown lease, then
 * Errors.keyNotFound() for ignore_value/ignore_lease on a missing key (etcd's order); a put that
 * throws has changed nothing. The header is left unset: the caller fills it.
 */
export function applyPut(store: MvccStore, req: PutRequest): WriteResult<PutResponse> {
  if (req.lease !== 0n && !store.leaseExists(req.lease)) throw Errors.leaseNotFound();
  const tx = store.write();
  const response = putOp(tx, req); // throws before writing anything, if at all
  tx.end();
  return { response, events: tx.events, prevKvs: tx.prevKvs };
}

/** Delete: a new revision only if something was deleted. The header is left unset. */
export function applyDeleteRange(
  store: MvccStore,
  req: DeleteRangeRequest,
): WriteResult<DeleteRangeResponse> {
  const tx = store.write();
  const response = deleteRangeOp(tx, req);
  tx.end();
  return { response, events: tx.events, prevKvs: tx.prevKvs };
}

/**
 * A put inside `tx` (lease existence checked by the caller). ignore_value/ignore_lease take the
 * key's current value/lease and throw Errors.keyNotFound() before writing when it is missing.
 */
export function putOp(tx: WriteTxn, req: PutRequest): PutResponse {
  mvccPuts.inc();
  totalPutBytes.inc(req.key.length + req.value.length);
  let value = req.value;
  let lease = req.lease;
  if (req.ignoreValue || req.ignoreLease) {
    const current = tx.range(req.key, EMPTY_END).kvs[0];
    if (!current) throw Errors.keyNotFound();
    if (req.ignoreValue) value = current.value;
    if (req.ignoreLease) lease = current.lease;
  }
  const prev = tx.put(req.key, value, lease, req.prevKv);
  const response = create(PutResponseSchema);
  if (req.prevKv && prev) response.prevKv = prev;
  return response;
}

/** A delete inside `tx`: the deleted count, and the deleted kvs when prev_kv is set. */
export function deleteRangeOp(tx: WriteTxn, req: DeleteRangeRequest): DeleteRangeResponse {
  mvccDeletes.inc();
  const deleted = tx.deleteRange(req.key, req.rangeEnd);
  const response = create(DeleteRangeResponseSchema, { deleted: BigInt(deleted.length) });
  if (req.prevKv) response.prevKvs = deleted;
  return response;
}
