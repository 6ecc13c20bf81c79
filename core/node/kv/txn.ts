/**
 * etcd's applierV3backend.Txn (etcdserver/apply.go) over the byte-level store: compares of every
 * (nested) txn decided first against the state before the txn, then the chosen path's puts and
 * ranges checked, then every op applied in one write transaction (one revision), with the
 * headers etcd puts on nested responses.
 */
import { mvccTxns } from "../metrics.ts";
import { create } from "@bufbuild/protobuf";
import { type KeyValue, KeyValueSchema } from "../../../gen/mvccpb/kv_pb.ts";
import {
  type Compare,
  Compare_CompareResult,
  Compare_CompareTarget,
  type RequestOp,
  type ResponseHeader,
  ResponseHeaderSchema,
  type ResponseOp,
  ResponseOpSchema,
  type TxnRequest,
  type TxnResponse,
  TxnResponseSchema,
} from "../../../gen/etcdserverpb/rpc_pb.ts";
import { Errors } from "../../errors.ts";
import { assert } from "../../assert.ts";
import { compareBytes, type MvccStore, type WriteResult, type WriteTxn } from "../../mvcc/mod.ts";
import { range } from "./range.ts";
import { deleteRangeOp, putOp } from "./write.ts";

/** Which branch each (nested) txn takes, decided before anything is applied, as etcd does. */
interface TxnPlan {
  succeeded: boolean;
  /** For ops of the chosen branch that are txns: their plan, by op index. */
  nested: Map<number, TxnPlan>;
}

const EMPTY_BYTES = new Uint8Array(0);
/** What a compare sees for a missing key (VALUE compares fail before looking). */
const ZERO_KV: KeyValue = Object.freeze(create(KeyValueSchema));

/**
 * Txn: at most one new revision for the whole txn (none if nothing changed). Compares of all
 * nested txns are evaluated first against the state before the txn; then the puts of the
 * chosen path are checked (key not found, lease not found), then its ranges (compacted,
 * future revision); only then is anything applied. The top-level header is left unset;
 * nested responses carry the headers etcd puts there.
 */
export function applyTxn(store: MvccStore, req: TxnRequest): WriteResult<TxnResponse> {
  mvccTxns.inc();
  const plan = planTxn(store, req);
  if (!isTxnReadOnly(req)) checkPuts(store, req, plan);
  checkRanges(store, req, plan, store.revision);
  const tx = store.write();
  const response = applyOps(tx, req, plan, false);
  tx.end();
  return { response, events: tx.events, prevKvs: tx.prevKvs };
}

/**
 * etcd's isTxnReadonly: only ranges in both branches (a nested txn counts as a write). etcd
 * serves such a txn on the read path, without raft; applyTxn gives the same answer either way.
 */
export function isTxnReadOnly(req: TxnRequest): boolean {
  const onlyRanges = (ops: RequestOp[]) => ops.every((op) => op.request.case === "requestRange");
  return onlyRanges(req.success) && onlyRanges(req.failure);
}

/**
 * etcd's isTxnSerializable: every op of both branches is a serializable range, so a read-only
 * txn may skip the linearizable-read wait. (An empty txn is serializable.)
 */
export function isTxnSerializable(req: TxnRequest): boolean {
  const serializable = (ops: RequestOp[]) =>
    ops.every((op) => op.request.case === "requestRange" && op.request.value.serializable);
  return serializable(req.success) && serializable(req.failure);
}

/** compareToPath: decide every (nested) branch up front against the store's current state. */
function planTxn(store: MvccStore, req: TxnRequest): TxnPlan {
  const succeeded = req.compare.every((c) => compare(store, c));
  const nested = new Map<number, TxnPlan>();
  const ops = succeeded ? req.success : req.failure;
  ops.forEach((op, i) => {
    if (op.request.case === "requestTxn") nested.set(i, planTxn(store, op.request.value));
  });
  return { succeeded, nested };
}

/** applyCompare: every key in the compare's range must satisfy it. */
function compare(store: MvccStore, c: Compare): boolean {
  const { kvs } = store.range(c.key, c.rangeEnd);
  if (kvs.length === 0) {
    // A missing key has no value to compare ("" is not "absent"), so VALUE always fails.
    if (c.target === Compare_CompareTarget.VALUE) return false;
    return compareKV(c, ZERO_KV);
  }
  return kvs.every((kv) => compareKV(c, kv));
}

/** checkRequestPut over the chosen path. */
function checkPuts(store: MvccStore, req: TxnRequest, plan: TxnPlan): void {
  const ops = plan.succeeded ? req.success : req.failure;
  ops.forEach((op, i) => {
    const r = op.request;
    if (r.case === "requestTxn") {
      checkPuts(store, r.value, plan.nested.get(i)!);
    } else if (r.case === "requestPut") {
      const put = r.value;
      if (put.ignoreValue || put.ignoreLease) {
        if (store.range(put.key, EMPTY_BYTES).count === 0) throw Errors.keyNotFound();
      }
      if (put.lease !== 0n && !store.leaseExists(put.lease)) throw Errors.leaseNotFound();
    }
  });
}

/** checkRequestRange over the chosen path (etcd's quirks: against FirstRev, 0 skipped). */
function checkRanges(store: MvccStore, req: TxnRequest, plan: TxnPlan, readRev: number): void {
  const ops = plan.succeeded ? req.success : req.failure;
  ops.forEach((op, i) => {
    const r = op.request;
    if (r.case === "requestTxn") {
      checkRanges(store, r.value, plan.nested.get(i)!, readRev);
    } else if (r.case === "requestRange") {
      const rev = Number(r.value.revision);
      if (rev === 0) return;
      if (rev > readRev) throw Errors.futureRev();
      if (rev < store.firstRevision) throw Errors.compacted();
    }
  });
}

/** applyTxn: run the chosen branch; nested responses get etcd's headers. */
function applyOps(tx: WriteTxn, req: TxnRequest, plan: TxnPlan, nested: boolean): TxnResponse {
  const ops = plan.succeeded ? req.success : req.failure;
  const responses = ops.map((op, i) => applyOp(tx, op, plan.nested.get(i)));
  const response = create(TxnResponseSchema, { succeeded: plan.succeeded });
  response.responses = responses;
  // etcd allocates an empty header for every nested txn response and never fills it.
  if (nested) response.header = create(ResponseHeaderSchema);
  return response;
}

function applyOp(tx: WriteTxn, op: RequestOp, plan: TxnPlan | undefined): ResponseOp {
  const r = op.request;
  switch (r.case) {
    case "requestRange": {
      const value = range(tx, r.value);
      value.header = revisionHeader(tx.revision);
      return create(ResponseOpSchema, { response: { case: "responseRange", value } });
    }
    case "requestPut": {
      // Validated before (checkPuts, checkIntervals): cannot fail half way through the txn.
      const value = putOp(tx, r.value);
      value.header = revisionHeader(tx.beginRevision + 1);
      return create(ResponseOpSchema, { response: { case: "responsePut", value } });
    }
    case "requestDeleteRange": {
      const value = deleteRangeOp(tx, r.value);
      value.header = revisionHeader(tx.revision);
      return create(ResponseOpSchema, { response: { case: "responseDeleteRange", value } });
    }
    case "requestTxn": {
      assert(plan !== undefined, "nested txn has a plan");
      const value = applyOps(tx, r.value, plan, true);
      return create(ResponseOpSchema, { response: { case: "responseTxn", value } });
    }
    default:
      // Rejected by validation (checkRequestOp); etcd leaves the response empty.
      return create(ResponseOpSchema);
  }
}

function compareKV(c: Compare, kv: KeyValue): boolean {
  let result = 0;
  const u = c.targetUnion;
  switch (c.target) {
    case Compare_CompareTarget.VALUE:
      result = compareBytes(kv.value, u.case === "value" ? u.value : EMPTY_BYTES);
      break;
    case Compare_CompareTarget.CREATE:
      result = compareBigint(kv.createRevision, u.case === "createRevision" ? u.value : 0n);
      break;
    case Compare_CompareTarget.MOD:
      result = compareBigint(kv.modRevision, u.case === "modRevision" ? u.value : 0n);
      break;
    case Compare_CompareTarget.VERSION:
      result = compareBigint(kv.version, u.case === "version" ? u.value : 0n);
      break;
    case Compare_CompareTarget.LEASE:
      result = compareBigint(kv.lease, u.case === "lease" ? u.value : 0n);
      break;
  }
  switch (c.result) {
    case Compare_CompareResult.EQUAL:
      return result === 0;
    case Compare_CompareResult.NOT_EQUAL:
      return result !== 0;
    case Compare_CompareResult.GREATER:
      return result > 0;
    case Compare_CompareResult.LESS:
      return result < 0;
    default:
      return true;
  }
}

function compareBigint(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function revisionHeader(rev: number): ResponseHeader {
  return create(ResponseHeaderSchema, { revision: BigInt(rev) });
}
