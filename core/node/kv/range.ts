/**
 * etcd's applierV3backend.Range (etcdserver/apply.go) over the byte-level store: the limit, sort
 * and min/max revision filters of a RangeRequest, in etcd's order and with its quirks, on top of
 * a ReadView (the store at its revision, or a write transaction inside a Txn).
 */
import { mvccRanges } from "../metrics.ts";
import { create } from "@bufbuild/protobuf";
import { type KeyValue, KeyValueSchema } from "../../../gen/mvccpb/kv_pb.ts";
import {
  type RangeRequest,
  RangeRequest_SortOrder,
  RangeRequest_SortTarget,
  type RangeResponse,
  RangeResponseSchema,
} from "../../../gen/etcdserverpb/rpc_pb.ts";
import { compareBytes, type RangeEntries, type ReadView } from "../../mvcc/mod.ts";
import { goSort } from "../../go_sort.ts";

/**
 * Answers a RangeRequest from `view` with etcd's semantics: limit/sort/filter exactly as etcd
 * orders them, Errors.compacted()/Errors.futureRev() for out-of-bounds revisions. The header is
 * left unset: the caller fills it. The kvs are the store's own (frozen) unless keys_only. With
 * `streamed` (a Range call's own range, not a Txn's), a large plain range over the store keeps
 * its result as entries to be encoded as it is sent (rangeEntries()).
 */
export function range(view: ReadView, req: RangeRequest, streamed = false): RangeResponse {
  mvccRanges.inc();
  const limit = Number(req.limit);
  let fetchLimit = limit;
  const filtered = req.minModRevision !== 0n || req.maxModRevision !== 0n ||
    req.minCreateRevision !== 0n || req.maxCreateRevision !== 0n;
  if (req.sortOrder !== RangeRequest_SortOrder.NONE || filtered) {
    fetchLimit = 0; // fetch everything; sort and truncate afterwards
  }
  if (fetchLimit > 0) fetchLimit++; // one extra for `more`

  const found = view.range(req.key, req.rangeEnd, {
    revision: Number(req.revision),
    limit: fetchLimit,
    countOnly: req.countOnly,
    // Sorting by value needs the values; otherwise a keys-only range reads none.
    keysOnly: req.keysOnly && req.sortTarget !== RangeRequest_SortTarget.VALUE,
    // In key order as it comes: no sort (a target other than the key sorts), no filter.
    entries: streamed && !filtered && req.sortOrder === RangeRequest_SortOrder.NONE &&
      req.sortTarget === RangeRequest_SortTarget.KEY,
  });
  if (found.entries !== undefined) return entriesResponse(found.entries, limit, found.count);
  let kvs = found.kvs;
  if (req.maxModRevision !== 0n) kvs = kvs.filter((kv) => kv.modRevision <= req.maxModRevision);
  if (req.minModRevision !== 0n) kvs = kvs.filter((kv) => kv.modRevision >= req.minModRevision);
  if (req.maxCreateRevision !== 0n) {
    kvs = kvs.filter((kv) => kv.createRevision <= req.maxCreateRevision);
  }
  if (req.minCreateRevision !== 0n) {
    kvs = kvs.filter((kv) => kv.createRevision >= req.minCreateRevision);
  }

  let sortOrder = req.sortOrder;
  if (
    req.sortTarget !== RangeRequest_SortTarget.KEY && sortOrder === RangeRequest_SortOrder.NONE
  ) {
    // etcd: results come key-ascending; only non-key targets default to ASCEND.
    sortOrder = RangeRequest_SortOrder.ASCEND;
  }
  if (sortOrder !== RangeRequest_SortOrder.NONE) sortKvs(kvs, req.sortTarget, sortOrder);

  let more = false;
  if (limit > 0 && kvs.length > limit) {
    kvs = kvs.slice(0, limit);
    more = true;
  }
  // The store read keys only unless the values were needed to sort by.
  if (req.keysOnly && req.sortTarget === RangeRequest_SortTarget.VALUE) {
    kvs = kvs.map(withoutValue);
  }
  // create() then assign: noticeably cheaper than create(schema, init) on this hot path.
  const response = create(RangeResponseSchema);
  response.kvs = kvs;
  response.more = more;
  response.count = BigInt(found.count);
  return response;
}

/** Ranges of fewer KeyValues than this are answered with KeyValue objects at once. */
export const STREAMED_MIN_KVS = 1024;

/** Responses whose kvs are still entries (see rangeEntries()). */
const unmaterialised = new WeakMap<RangeResponse, RangeEntries>();

/**
 * A response of a range's entries: when they are many, its kvs are made only if something reads
 * them (a Connect or JSON client, a test), while the gRPC server takes the entries and encodes
 * them in slices (rangeEntries()).
 */
function entriesResponse(entries: RangeEntries, limit: number, count: number): RangeResponse {
  const response = create(RangeResponseSchema);
  if (limit > 0 && entries.length > limit) {
    entries.truncate(limit);
    response.more = true;
  }
  response.count = BigInt(count);
  // Entries still being scanned are every key of the range: `count` of them.
  if ((entries.scanned ? entries.length : count) < STREAMED_MIN_KVS) {
    response.kvs = materialise(entries);
    return response;
  }
  unmaterialised.set(response, entries);
  let kvs: KeyValue[] | null = null;
  Object.defineProperty(response, "kvs", {
    enumerable: true,
    configurable: true,
    get(): KeyValue[] {
      if (kvs === null) {
        unmaterialised.delete(response);
        kvs = materialise(entries);
      }
      return kvs;
    },
    set(value: KeyValue[]) {
      if (unmaterialised.delete(response)) entries.close();
      kvs = value;
    },
  });
  return response;
}

function materialise(entries: RangeEntries): KeyValue[] {
  try {
    const kvs = new Array<KeyValue>(entries.length);
    for (let i = 0; i < kvs.length; i++) kvs[i] = entries.kv(i);
    return kvs;
  } finally {
    entries.close();
  }
}

/**
 * The entries of a range response whose kvs were not made yet, handed over to be encoded as they
 * are sent (the taker closes them); undefined for any other response. Taken once: reading the
 * response's kvs afterwards is not supported.
 */
export function rangeEntries(response: RangeResponse): RangeEntries | undefined {
  const entries = unmaterialised.get(response);
  if (entries !== undefined) unmaterialised.delete(response);
  return entries;
}

/** Sorts as applyRange does (Go's unstable sort.Sort, sort.Reverse for DESCEND). */
function sortKvs(kvs: KeyValue[], target: RangeRequest_SortTarget, order: RangeRequest_SortOrder) {
  let less: ((a: KeyValue, b: KeyValue) => boolean) | undefined;
  switch (target) {
    case RangeRequest_SortTarget.KEY:
      less = (a, b) => compareBytes(a.key, b.key) < 0;
      break;
    case RangeRequest_SortTarget.VERSION:
      less = (a, b) => a.version < b.version;
      break;
    case RangeRequest_SortTarget.CREATE:
      less = (a, b) => a.createRevision < b.createRevision;
      break;
    case RangeRequest_SortTarget.MOD:
      less = (a, b) => a.modRevision < b.modRevision;
      break;
    case RangeRequest_SortTarget.VALUE:
      less = (a, b) => compareBytes(a.value, b.value) < 0;
      break;
  }
  if (!less) return; // unknown target: rejected by validation (etcd 3.4 would crash)
  const by = less;
  if (order === RangeRequest_SortOrder.ASCEND) goSort(kvs, by);
  else if (order === RangeRequest_SortOrder.DESCEND) goSort(kvs, (a, b) => by(b, a));
}

function withoutValue(kv: KeyValue): KeyValue {
  return create(KeyValueSchema, {
    key: kv.key,
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
    lease: kv.lease,
  });
}
