/**
 * etcd's request checks done at the API layer (etcdserver/api/v3rpc/key.go), before anything is
 * proposed to raft. A request that fails here never reaches the log, never costs a revision and
 * is answered directly by the member that received it.
 *
 * Where each error is raised in etcd 3.4, and so in detcd:
 * - here, at the API layer: key not provided (empty key in range/put/delete/compare), value
 *   provided (ignore_value with a value), lease provided (ignore_lease with a lease), too many
 *   operations in txn, duplicate key in txn (overlapping put/delete), and "key not found" for an
 *   empty RequestOp inside a txn;
 * - in applyPut/applyTxn at apply time (after raft, on every member): lease not found and key
 *   not found (ignore_value/ignore_lease on a missing key) for puts, also inside txns; compacted
 *   and future revision for ranges inside a txn;
 * - in MvccStore on the read path (no raft): compacted and future revision for a plain Range.
 *
 * One deliberate difference: etcd 3.4 does not check sort_order/sort_target, and an unknown value
 * crashes its range code (nil sorter). detcd rejects it like etcd 3.5 does (Errors.invalidSortOption).
 */
import {
  type DeleteRangeRequest,
  type PutRequest,
  type RangeRequest,
  RangeRequest_SortOrder,
  RangeRequest_SortTarget,
  type RequestOp,
  type TxnRequest,
} from "../../../gen/etcdserverpb/rpc_pb.ts";
import { Errors } from "../../errors.ts";
import { keyId } from "../../bytes.ts";

/** etcd's default --max-txn-ops. */
export const DEFAULT_MAX_TXN_OPS = 128;

const SORT_ORDERS = new Set<number>([
  RangeRequest_SortOrder.NONE,
  RangeRequest_SortOrder.ASCEND,
  RangeRequest_SortOrder.DESCEND,
]);
const SORT_TARGETS = new Set<number>([
  RangeRequest_SortTarget.KEY,
  RangeRequest_SortTarget.VERSION,
  RangeRequest_SortTarget.CREATE,
  RangeRequest_SortTarget.MOD,
  RangeRequest_SortTarget.VALUE,
]);

/** checkRangeRequest: a key is required; sort options must be known values. */
export function checkRangeRequest(req: RangeRequest): void {
  if (req.key.length === 0) throw Errors.emptyKey();
  if (!SORT_ORDERS.has(req.sortOrder)) throw Errors.invalidSortOption();
  if (!SORT_TARGETS.has(req.sortTarget)) throw Errors.invalidSortOption();
}

/** checkPutRequest: a key is required; ignore_value/ignore_lease exclude a value/lease. */
export function checkPutRequest(req: PutRequest): void {
  if (req.key.length === 0) throw Errors.emptyKey();
  if (req.ignoreValue && req.value.length !== 0) throw Errors.valueProvided();
  if (req.ignoreLease && req.lease !== 0n) throw Errors.leaseProvided();
}

/** checkDeleteRequest: a key is required. */
export function checkDeleteRequest(req: DeleteRangeRequest): void {
  if (req.key.length === 0) throw Errors.emptyKey();
}

/**
 * Everything etcd's kvServer.Txn checks before proposing: checkTxnRequest (op counts, keys,
 * each op) and then checkIntervals on the success and failure branches (no put may overlap a
 * delete or another put of the same txn, except in mutually exclusive branches).
 */
export function checkTxnRequest(req: TxnRequest, maxTxnOps: number = DEFAULT_MAX_TXN_OPS): void {
  checkTxnOps(req, maxTxnOps);
  checkIntervals(req.success);
  checkIntervals(req.failure);
}

/**
 * key.go's checkTxnRequest proper: the largest of compare/success/failure counts must not exceed
 * maxTxnOps, compare keys must be set, each op must be valid; nested txns get the budget left
 * over (maxTxnOps minus this level's count), as in etcd.
 */
export function checkTxnOps(req: TxnRequest, maxTxnOps: number): void {
  const opc = Math.max(req.compare.length, req.success.length, req.failure.length);
  if (opc > maxTxnOps) throw Errors.tooManyOps();
  for (const c of req.compare) if (c.key.length === 0) throw Errors.emptyKey();
  for (const op of req.success) checkRequestOp(op, maxTxnOps - opc);
  for (const op of req.failure) checkRequestOp(op, maxTxnOps - opc);
}

function checkRequestOp(op: RequestOp, maxTxnOps: number): void {
  const r = op.request;
  switch (r.case) {
    case "requestRange":
      return checkRangeRequest(r.value);
    case "requestPut":
      return checkPutRequest(r.value);
    case "requestDeleteRange":
      return checkDeleteRequest(r.value);
    case "requestTxn":
      return checkTxnOps(r.value, maxTxnOps);
    default:
      throw Errors.keyNotFound(); // an empty op
  }
}

/**
 * A delete's key interval (ids from keyId()) as etcd's adt package sees it: begin inclusive, end exclusive, with an
 * empty end meaning +infinity. Note that a range_end of "\0" ("to the end of the key space" when
 * deleting) is kept literally here, so such a delete conflicts with no put: an etcd quirk.
 */
export interface KeyInterval {
  begin: string;
  end: string;
}

/** adt.StringAffineComparable: "" is greater than every other string. */
function affineCompare(a: string, b: string): number {
  if (a.length === 0) return b.length === 0 ? 0 : 1;
  if (b.length === 0) return -1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** adt.Interval.Compare(...) === 0: do the two intervals overlap? */
function overlaps(a: KeyInterval, b: KeyInterval): boolean {
  const left = affineCompare(a.begin, b.begin) < 0 && affineCompare(a.end, b.begin) <= 0;
  const right = affineCompare(a.begin, b.end) >= 0;
  return !left && !right;
}

function pointInterval(id: string): KeyInterval {
  return { begin: id, end: id + "\u0000" };
}

function hitsDelete(dels: readonly KeyInterval[], id: string): boolean {
  const p = pointInterval(id);
  return dels.some((d) => overlaps(p, d));
}

/**
 * checkIntervals: throws Errors.duplicateKey() if a put overlaps another put or a delete in the
 * same txn (including nested txns). Returns this level's puts and deletes for the caller's
 * recursion.
 */
export function checkIntervals(
  ops: readonly RequestOp[],
): { puts: Set<string>; dels: KeyInterval[] } {
  const dels: KeyInterval[] = [];
  for (const op of ops) {
    if (op.request.case !== "requestDeleteRange") continue;
    const d = op.request.value;
    dels.push(
      d.rangeEnd.length !== 0
        ? { begin: keyId(d.key), end: keyId(d.rangeEnd) }
        : pointInterval(keyId(d.key)),
    );
  }

  const puts = new Set<string>();
  for (const op of ops) {
    if (op.request.case !== "requestTxn") continue;
    const then = checkIntervals(op.request.value.success);
    const otherwise = checkIntervals(op.request.value.failure);
    for (const k of then.puts) {
      if (puts.has(k) || hitsDelete(dels, k)) throw Errors.duplicateKey();
      puts.add(k);
    }
    for (const k of otherwise.puts) {
      // The same key in then and else is fine: only one of the branches runs.
      if (puts.has(k) && !then.puts.has(k)) throw Errors.duplicateKey();
      if (hitsDelete(dels, k)) throw Errors.duplicateKey();
      puts.add(k);
    }
    // etcd merges the children's deletes through a visit of ["\0", +inf), which skips
    // intervals ending exactly at "\0".
    const all: KeyInterval = { begin: "\u0000", end: "" };
    for (const d of [...then.dels, ...otherwise.dels]) if (overlaps(all, d)) dels.push(d);
  }

  for (const op of ops) {
    if (op.request.case !== "requestPut") continue;
    const k = keyId(op.request.value.key);
    if (puts.has(k) || hitsDelete(dels, k)) throw Errors.duplicateKey();
    puts.add(k);
  }
  return { puts, dels };
}
