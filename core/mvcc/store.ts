/**
 * etcd 3.4's multi-version key-value store as a pure, in-memory state machine.
 *
 * What it reproduces (mvcc/kvstore*.go, mvcc/key_index.go, etcdserver/apply.go):
 * - one main revision per write request, sub-revisions inside it, a read-only or no-op request
 *   leaves the revision alone;
 * - per-key history with generations: create_revision/version restart after a delete;
 * - historical reads, compaction (keep each key's latest revision <= the compact revision unless
 *   it is a tombstone), and etcd's error for every out-of-bounds revision;
 * - applyRange's limit/sort/filter quirks, Txn's compare/check/apply phases and the headers of
 *   responses nested in a TxnResponse;
 * - HashKV's CRC-32C over the revision-ordered history, bit for bit.
 *
 * Where etcd raises each error (and so where detcd must): see validate.ts for the checks done by
 * the API layer before proposing; this file raises the apply-time ones (lease not found and
 * key not found on put, compacted/future revision on reads and on ranges inside a txn).
 */
import { create } from "@bufbuild/protobuf";
import {
  type Event,
  Event_EventType,
  EventSchema,
  type KeyValue,
  KeyValueSchema,
} from "../../gen/mvccpb/kv_pb.ts";
import {
  type Compare,
  Compare_CompareResult,
  Compare_CompareTarget,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  DeleteRangeResponseSchema,
  type PutRequest,
  type PutResponse,
  PutResponseSchema,
  type RangeRequest,
  RangeRequest_SortOrder,
  RangeRequest_SortTarget,
  type RangeResponse,
  RangeResponseSchema,
  type RequestOp,
  type ResponseHeader,
  ResponseHeaderSchema,
  type ResponseOp,
  ResponseOpSchema,
  type TxnRequest,
  type TxnResponse,
  TxnResponseSchema,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { Errors } from "../errors.ts";
import { assert } from "../assert.ts";
import { compareBytes, keyId } from "../bytes.ts";
import { SortedRecords } from "./sorted_records.ts";
import { goSort } from "./go_sort.ts";
import { Crc32c } from "../storage/crc32c.ts";
import { ByteWriter, writeKeyValue } from "./kv_codec.ts";
import { decodeSnapshotBytes, encodeSnapshotBytes, type SnapshotEntry } from "./snapshot_codec.ts";

/** Narrow view of the lessor that mvcc needs (lease package will implement it later). */
export interface LeaseHooks {
  /** true if the lease exists (a put with lease != 0 on an unknown lease fails with Errors.leaseNotFound()). */
  exists(id: bigint): boolean;
  /** A key now carries this lease (put with a lease; snapshot restore re-attaches live keys). */
  attach(id: bigint, key: Uint8Array): void;
  /** A key no longer carries this lease (overwritten with another lease or none, or deleted). */
  detach(id: bigint, key: Uint8Array): void;
}

/** Default hooks: no lease exists. */
export const noLeases: LeaseHooks = {
  exists: () => false,
  attach: () => {},
  detach: () => {},
};

/**
 * A write's response plus the events it produced, in order, for watchers. Events and the
 * KeyValues in them are shared with the store and frozen: copy before changing.
 */
export interface WriteResult<R> {
  response: R;
  /** One event per changed key, in sub-revision order (a DELETE's kv has key and mod_revision). */
  events: Event[];
  /**
   * For each event, the key's value before this request (what etcd's watch fills into prev_kv,
   * read at revision - 1), or undefined when the key did not exist.
   */
  prevKvs: (KeyValue | undefined)[];
}

/** HashKV's answer: etcd reports the compact revision as -1 when there never was one. */
export interface HashKVResult {
  hash: number;
  /** Current revision of the store when hashed. */
  revision: number;
  /** Last compaction revision, -1 if never compacted. */
  compactRevision: number;
}

/** One revision of one key: a put or a tombstone. */
class Entry {
  /** Set when physical compaction drops this revision. */
  compacted = false;
  constructor(
    readonly main: number,
    readonly sub: number,
    readonly event: Event,
    readonly record: KeyRecord,
  ) {}

  get tombstone(): boolean {
    return this.event.type === Event_EventType.DELETE;
  }
}

/** A key and its history (revision-ordered; generations are separated by tombstones). */
class KeyRecord {
  history: Entry[] = [];
  /**
   * Cached from the last history entry so that reads at the current revision touch only this
   * object and the KeyValue (point reads are bound by memory latency, not by computation).
   */
  #latestMain = 0;
  #latest: KeyValue | undefined = undefined;

  constructor(readonly id: string, readonly key: Uint8Array) {}

  /** Appends a revision (in revision order). */
  push(entry: Entry): void {
    this.history.push(entry);
    this.#latestMain = entry.main;
    this.#latest = entry.tombstone ? undefined : entry.event.kv;
  }

  /** Drops the first `count` entries (compaction). */
  dropOldest(count: number): void {
    this.history = this.history.slice(count);
    if (this.history.length === 0) {
      this.#latestMain = 0;
      this.#latest = undefined;
    }
  }

  /** The live value as of `rev`, or undefined when the key did not exist then. */
  at(rev: number): KeyValue | undefined {
    if (rev >= this.#latestMain) return this.#latest;
    const h = this.history;
    const i = lastAtOrBefore(h, rev);
    if (i < 0) return undefined;
    const e = h[i];
    return e.tombstone ? undefined : e.event.kv;
  }

  /** The current live value (the latest entry unless it is a tombstone). */
  live(): KeyValue | undefined {
    return this.#latest;
  }
}

/** Index of the last entry with main <= rev, or -1. */
function lastAtOrBefore(h: readonly Entry[], rev: number): number {
  let lo = 0;
  let hi = h.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (h[mid].main <= rev) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** The state of one write request while it applies (etcd's storeTxnWrite). */
class WriteBatch {
  changes = 0;
  readonly events: Event[] = [];
  readonly prevKvs: (KeyValue | undefined)[] = [];
  constructor(readonly beginRev: number) {}

  /** The revision reads inside the request see: the new one once something changed. */
  get readRev(): number {
    return this.changes > 0 ? this.beginRev + 1 : this.beginRev;
  }
}

/** Which branch each (nested) txn takes, decided before anything is applied, as etcd does. */
interface TxnPlan {
  succeeded: boolean;
  /** For ops of the chosen branch that are txns: their plan, by op index. */
  nested: Map<number, TxnPlan>;
}

const EMPTY_BYTES = new Uint8Array(0);
const ZERO_KV: KeyValue = Object.freeze(create(KeyValueSchema));
/** Rough per-revision bookkeeping overhead, for sizeBytes(). */
const ENTRY_OVERHEAD_BYTES = 64;
const KEY_BUCKET = new TextEncoder().encode("key");
/** A view may waste this much of its buffer (plus its own size) before retainBytes() copies it. */
const RETAIN_SLACK_BYTES = 64;

/**
 * etcd's MVCC store. All methods are synchronous and deterministic; a method that throws an
 * EtcdError has changed nothing.
 *
 * Ownership: the store may keep the key and value arrays of the requests it applies (see
 * retainBytes), and hands out its stored KeyValue and Event objects frozen. Treat requests as
 * immutable once passed in, and copy a KeyValue before changing it.
 */
export class MvccStore {
  readonly #leases: LeaseHooks;
  #records = new Map<string, KeyRecord>();
  #index = new SortedRecords<KeyRecord>();
  /** Every stored revision in (main, sub) order, like etcd's key bucket. */
  #log: Entry[] = [];
  #revision = 1;
  /** etcd's compactMainRev: -1 until the first compaction. */
  #compactMainRev = -1;
  /** Compaction dropped a tombstone of the compact revision itself (its events are incomplete). */
  #compactRevIncomplete = false;
  #bytes = 0;

  constructor(leases: LeaseHooks = noLeases) {
    this.#leases = leases;
  }

  /** Current revision (1 on a fresh store, like etcd). */
  get revision(): number {
    return this.#revision;
  }

  /** Compacted revision (0 if never compacted). */
  get compactRevision(): number {
    return this.#compactMainRev < 0 ? 0 : this.#compactMainRev;
  }

  /**
   * True when the compact revision's own events are no longer all stored (a delete at exactly the
   * compact revision is dropped with the history): a watch from there would miss it (etcd #18089),
   * so the watchable store answers such a watch as compacted. Unknown after a snapshot restore,
   * so then true whenever there was a compaction.
   */
  get compactRevisionIncomplete(): boolean {
    return this.#compactRevIncomplete;
  }

  /** Number of keys that currently exist (O(keys): for status and metrics, not hot paths). */
  get keyCount(): number {
    let n = 0;
    for (const record of this.#index) if (record.live()) n++;
    return n;
  }

  /**
   * Read. Serves req.revision (0 or negative = current) with etcd's errors: Errors.compacted()
   * when it is below the compact revision, Errors.futureRev() when above the current one.
   * The header is left unset: the caller fills it, with revision = this.revision.
   */
  range(req: RangeRequest): RangeResponse {
    return this.#applyRange(req, this.#revision);
  }

  /**
   * Put: one new revision. Throws Errors.leaseNotFound() for an unknown lease, then
   * Errors.keyNotFound() for ignore_value/ignore_lease on a missing key (etcd's order).
   */
  put(req: PutRequest): WriteResult<PutResponse> {
    if (req.lease !== 0n && !this.#leases.exists(req.lease)) throw Errors.leaseNotFound();
    const tx = new WriteBatch(this.#revision);
    const response = this.#applyPut(tx, req);
    this.#commit(tx);
    return { response, events: tx.events, prevKvs: tx.prevKvs };
  }

  /** Delete: a new revision only if something was deleted. */
  deleteRange(req: DeleteRangeRequest): WriteResult<DeleteRangeResponse> {
    const tx = new WriteBatch(this.#revision);
    const response = this.#applyDelete(tx, req);
    this.#commit(tx);
    return { response, events: tx.events, prevKvs: tx.prevKvs };
  }

  /**
   * Txn: at most one new revision for the whole txn (none if nothing changed). Compares of all
   * nested txns are evaluated first against the state before the txn; then the puts of the
   * chosen path are checked (key not found, lease not found), then its ranges (compacted,
   * future revision); only then is anything applied. The top-level header is left unset;
   * nested responses carry the headers etcd puts there.
   */
  txn(req: TxnRequest): WriteResult<TxnResponse> {
    const readRev = this.#revision;
    const plan = this.#plan(req, readRev);
    if (!isTxnReadOnly(req)) this.#checkPuts(req, plan, readRev);
    this.#checkRanges(req, plan, readRev);
    const tx = new WriteBatch(readRev);
    const response = this.#applyTxn(tx, req, plan, false);
    this.#commit(tx);
    return { response, events: tx.events, prevKvs: tx.prevKvs };
  }

  /**
   * Physical compaction up to rev; throws Errors.compacted() if rev <= the last compaction
   * (on a fresh store, compact(0) succeeds as in etcd), Errors.futureRev() if rev > revision.
   */
  compact(rev: number): void {
    if (rev <= this.#compactMainRev) throw Errors.compacted();
    if (rev > this.#revision) throw Errors.futureRev();
    this.#compactMainRev = rev;
    this.#compactRevIncomplete = false;
    let emptied = false;
    for (const record of this.#index) {
      const h = record.history;
      const i = lastAtOrBefore(h, rev);
      if (i < 0) continue;
      const cut = h[i].tombstone ? i + 1 : i;
      if (cut === 0) continue;
      for (let j = 0; j < cut; j++) {
        if (h[j].main === rev) this.#compactRevIncomplete = true;
        h[j].compacted = true;
        this.#bytes -= entryBytes(h[j]);
      }
      record.dropOldest(cut);
      if (record.history.length === 0) {
        this.#records.delete(record.id);
        emptied = true;
      }
    }
    if (emptied) this.#index.retain((record) => record.history.length > 0);
    // Compacted entries all have main <= rev, and the log is revision-ordered.
    const log = this.#log;
    const end = lastAtOrBefore(log, rev) + 1;
    const kept: Entry[] = [];
    for (let i = 0; i < end; i++) if (!log[i].compacted) kept.push(log[i]);
    for (let i = end; i < log.length; i++) kept.push(log[i]);
    this.#log = kept;
  }

  /** Deterministic hash of the store's state: etcd's HashKV at the current revision. */
  hash(): number {
    return this.hashKV(0).hash;
  }

  /**
   * etcd's HashKV(rev): CRC-32C over the "key" bucket name and every stored (revision, KeyValue)
   * pair up to rev, skipping pairs at or below the compact revision that a compaction at rev
   * would drop. Same history, same number as etcd. rev 0 = current.
   */
  hashKV(rev: number): HashKVResult {
    const compactRev = this.#compactMainRev;
    const currentRev = this.#revision;
    if (rev > 0 && rev <= compactRev) throw Errors.compacted();
    if (rev > 0 && rev > currentRev) throw Errors.futureRev();
    if (rev <= 0) rev = currentRev;
    const keep = new Set<Entry>();
    for (const record of this.#index) {
      const h = record.history;
      const i = lastAtOrBefore(h, rev);
      if (i >= 0 && !h[i].tombstone) keep.add(h[i]);
    }
    const crc = new Crc32c().update(KEY_BUCKET);
    const w = new ByteWriter(4096);
    const revBytes = new Uint8Array(18);
    const view = new DataView(revBytes.buffer);
    revBytes[8] = 0x5f; // '_'
    for (const e of this.#log) {
      if (e.main > rev) break;
      if (e.main <= compactRev && keep.size > 0 && !keep.has(e)) continue;
      view.setBigUint64(0, BigInt(e.main));
      view.setBigUint64(9, BigInt(e.sub));
      w.reset();
      if (e.tombstone) {
        revBytes[17] = 0x74; // 't'
        crc.update(revBytes);
        // etcd stores a tombstone as a KeyValue holding only the key.
        w.byte(0x0a);
        w.bytes(e.record.key);
      } else {
        crc.update(revBytes.subarray(0, 17));
        writeKeyValue(w, e.event.kv ?? ZERO_KV);
      }
      crc.update(w.view());
    }
    return { hash: crc.digest(), revision: currentRev, compactRevision: compactRev };
  }

  /** Approximate size in bytes of live data + history (for Status db_size). */
  sizeBytes(): number {
    return this.#bytes;
  }

  /**
   * Events of every stored revision with fromRev <= main revision <= toRev (toRev defaults to
   * the current revision), in revision order: what a watcher catching up needs. Revisions at or
   * below the compact revision may be gone: check compactRevision first, as etcd's watch does.
   */
  eventsBetween(fromRev: number, toRev: number = this.#revision): Event[] {
    const log = this.#log;
    const out: Event[] = [];
    for (let i = lastAtOrBefore(log, fromRev - 1) + 1; i < log.length; i++) {
      const e = log[i];
      if (e.main > toRev) break;
      out.push(e.event);
    }
    return out;
  }

  /** Full state, including history, tombstones, revision and compact revision. */
  encodeSnapshot(): Uint8Array {
    const entries: SnapshotEntry[] = this.#log.map((e) => ({
      main: e.main,
      sub: e.sub,
      tombstone: e.tombstone,
      kv: e.event.kv ?? ZERO_KV,
    }));
    return encodeSnapshotBytes(this.#revision, this.#compactMainRev, entries);
  }

  /**
   * Restores a store from encodeSnapshot() bytes. Live keys with a lease are re-attached
   * through `leases` (in key order), so restore the lessor first, as etcd does.
   */
  static decodeSnapshot(bytes: Uint8Array, leases?: LeaseHooks): MvccStore {
    const decoded = decodeSnapshotBytes(bytes);
    const store = new MvccStore(leases);
    store.#revision = decoded.revision;
    store.#compactMainRev = decoded.compactMainRev;
    store.#compactRevIncomplete = decoded.compactMainRev > 0;
    let prevMain = 0;
    let prevSub = -1;
    for (const s of decoded.entries) {
      assert(
        s.main > prevMain || (s.main === prevMain && s.sub > prevSub),
        "snapshot revisions are strictly increasing",
      );
      assert(s.main <= decoded.revision, "snapshot entry beyond the snapshot revision");
      prevMain = s.main;
      prevSub = s.sub;
      const id = keyId(s.kv.key);
      let record = store.#records.get(id);
      if (!record) {
        record = new KeyRecord(id, s.kv.key);
        store.#records.set(id, record);
      }
      let kv: KeyValue;
      if (s.tombstone) {
        kv = create(KeyValueSchema, { key: record.key, modRevision: BigInt(s.main) });
      } else {
        kv = s.kv; // freshly decoded and copied out of the snapshot: ours to keep
        kv.key = record.key; // one key array per record
      }
      Object.freeze(kv);
      assert(s.tombstone || kv.modRevision === BigInt(s.main), "snapshot kv mod_revision");
      const type = s.tombstone ? Event_EventType.DELETE : Event_EventType.PUT;
      const entry = new Entry(s.main, s.sub, freezeEvent(type, kv), record);
      record.push(entry);
      store.#log.push(entry);
      store.#bytes += entryBytes(entry);
    }
    const sorted = [...store.#records.values()].sort((a, b) =>
      a.id < b.id ? -1 : a.id > b.id ? 1 : 0
    );
    store.#index = SortedRecords.fromSorted(sorted);
    for (const record of sorted) {
      const kv = record.live();
      if (kv && kv.lease !== 0n) store.#leases.attach(kv.lease, record.key);
    }
    return store;
  }

  // ---- apply steps (etcdserver/apply.go) ----

  #commit(tx: WriteBatch): void {
    assert(tx.beginRev === this.#revision, "one write at a time");
    if (tx.changes > 0) this.#revision = tx.beginRev + 1;
  }

  /** applyRange: limit/sort/filter exactly as etcd orders them. */
  #applyRange(req: RangeRequest, curRev: number): RangeResponse {
    const limit = Number(req.limit);
    let fetchLimit = limit;
    if (
      req.sortOrder !== RangeRequest_SortOrder.NONE ||
      req.minModRevision !== 0n || req.maxModRevision !== 0n ||
      req.minCreateRevision !== 0n || req.maxCreateRevision !== 0n
    ) {
      fetchLimit = 0; // fetch everything; sort and truncate afterwards
    }
    if (fetchLimit > 0) fetchLimit++; // one extra for `more`

    let rev = Number(req.revision);
    if (rev > curRev) throw Errors.futureRev();
    if (rev <= 0) rev = curRev;
    if (rev < this.#compactMainRev) throw Errors.compacted();

    const found = this.#rangeKeys(req.key, req.rangeEnd, rev, fetchLimit, req.countOnly);
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
    if (req.keysOnly) kvs = kvs.map(withoutValue);
    // create() then assign: noticeably cheaper than create(schema, init) on this hot path.
    const response = create(RangeResponseSchema);
    response.kvs = kvs;
    response.more = more;
    response.count = BigInt(found.count);
    return response;
  }

  /**
   * The live KeyValues in [key, rangeEnd) at rev (rangeEnd empty: just key; "\0": no upper
   * bound) and how many there are; at most `limit` kvs (0 = all), none when countOnly.
   */
  #rangeKeys(
    key: Uint8Array,
    rangeEnd: Uint8Array,
    rev: number,
    limit: number,
    countOnly: boolean,
  ): { kvs: KeyValue[]; count: number } {
    const kvs: KeyValue[] = [];
    if (rangeEnd.length === 0) {
      const kv = this.#records.get(keyId(key))?.at(rev);
      if (!kv) return { kvs, count: 0 };
      if (!countOnly) kvs.push(kv);
      return { kvs, count: 1 };
    }
    let count = 0;
    this.#index.scan(keyId(key), endId(rangeEnd), (record) => {
      const kv = record.at(rev);
      if (!kv) return;
      count++;
      if (!countOnly && (limit <= 0 || kvs.length < limit)) kvs.push(kv);
    });
    return { kvs, count };
  }

  /** applierV3backend.Put inside a write batch (checks done; lease existence checked by caller). */
  #applyPut(tx: WriteBatch, req: PutRequest): PutResponse {
    const id = keyId(req.key);
    let record = this.#records.get(id);
    const prev = record?.live();
    if ((req.ignoreValue || req.ignoreLease) && !prev) throw Errors.keyNotFound();
    const value = req.ignoreValue && prev ? prev.value : retainBytes(req.value);
    const lease = req.ignoreLease && prev ? prev.lease : req.lease;
    const response = create(PutResponseSchema);
    if (req.prevKv && prev) response.prevKv = prev;

    const rev = tx.beginRev + 1;
    if (!record) {
      record = new KeyRecord(id, retainBytes(req.key));
      this.#records.set(id, record);
      this.#index.insert(record);
    }
    const modRevision = BigInt(rev);
    const kv = create(KeyValueSchema);
    kv.key = record.key;
    kv.value = value;
    kv.createRevision = prev ? prev.createRevision : modRevision;
    kv.modRevision = modRevision;
    kv.version = prev ? prev.version + 1n : 1n;
    kv.lease = lease;
    Object.freeze(kv);
    this.#append(tx, record, freezeEvent(Event_EventType.PUT, kv));
    if (prev && prev.lease !== 0n) this.#leases.detach(prev.lease, record.key);
    if (lease !== 0n) this.#leases.attach(lease, record.key);
    return response;
  }

  /** applierV3backend.DeleteRange inside a write batch. */
  #applyDelete(tx: WriteBatch, req: DeleteRangeRequest): DeleteRangeResponse {
    const readRev = tx.readRev;
    const records: KeyRecord[] = [];
    const prevKvs: KeyValue[] = [];
    const collect = (record: KeyRecord) => {
      const kv = record.at(readRev);
      if (!kv) return;
      records.push(record);
      prevKvs.push(kv);
    };
    if (req.rangeEnd.length === 0) {
      const record = this.#records.get(keyId(req.key));
      if (record) collect(record);
    } else {
      this.#index.scan(keyId(req.key), endId(req.rangeEnd), collect);
    }
    const response = create(DeleteRangeResponseSchema, { deleted: BigInt(records.length) });
    if (req.prevKv) response.prevKvs = prevKvs;
    const rev = BigInt(tx.beginRev + 1);
    for (let i = 0; i < records.length; i++) {
      const record = records[i];
      const tomb = Object.freeze(create(KeyValueSchema, { key: record.key, modRevision: rev }));
      this.#append(tx, record, freezeEvent(Event_EventType.DELETE, tomb));
      const lease = prevKvs[i].lease;
      if (lease !== 0n) this.#leases.detach(lease, record.key);
    }
    return response;
  }

  #append(tx: WriteBatch, record: KeyRecord, event: Event): void {
    const entry = new Entry(tx.beginRev + 1, tx.changes, event, record);
    tx.prevKvs.push(record.at(tx.beginRev));
    record.push(entry);
    this.#log.push(entry);
    this.#bytes += entryBytes(entry);
    tx.changes++;
    tx.events.push(event);
  }

  /** compareToPath: decide every (nested) branch up front against the state at readRev. */
  #plan(req: TxnRequest, readRev: number): TxnPlan {
    const succeeded = req.compare.every((c) => this.#compare(c, readRev));
    const nested = new Map<number, TxnPlan>();
    const ops = succeeded ? req.success : req.failure;
    ops.forEach((op, i) => {
      if (op.request.case === "requestTxn") nested.set(i, this.#plan(op.request.value, readRev));
    });
    return { succeeded, nested };
  }

  /** applyCompare: every key in the compare's range must satisfy it. */
  #compare(c: Compare, readRev: number): boolean {
    const { kvs } = this.#rangeKeys(c.key, c.rangeEnd, readRev, 0, false);
    if (kvs.length === 0) {
      // A missing key has no value to compare ("" is not "absent"), so VALUE always fails.
      if (c.target === Compare_CompareTarget.VALUE) return false;
      return compareKV(c, ZERO_KV);
    }
    return kvs.every((kv) => compareKV(c, kv));
  }

  /** checkRequestPut over the chosen path. */
  #checkPuts(req: TxnRequest, plan: TxnPlan, readRev: number): void {
    const ops = plan.succeeded ? req.success : req.failure;
    ops.forEach((op, i) => {
      const r = op.request;
      if (r.case === "requestTxn") {
        this.#checkPuts(r.value, plan.nested.get(i)!, readRev);
      } else if (r.case === "requestPut") {
        const put = r.value;
        if (put.ignoreValue || put.ignoreLease) {
          if (!this.#records.get(keyId(put.key))?.at(readRev)) throw Errors.keyNotFound();
        }
        if (put.lease !== 0n && !this.#leases.exists(put.lease)) throw Errors.leaseNotFound();
      }
    });
  }

  /** checkRequestRange over the chosen path. */
  #checkRanges(req: TxnRequest, plan: TxnPlan, readRev: number): void {
    const ops = plan.succeeded ? req.success : req.failure;
    ops.forEach((op, i) => {
      const r = op.request;
      if (r.case === "requestTxn") {
        this.#checkRanges(r.value, plan.nested.get(i)!, readRev);
      } else if (r.case === "requestRange") {
        const rev = Number(r.value.revision);
        if (rev === 0) return;
        if (rev > readRev) throw Errors.futureRev();
        if (rev < this.#compactMainRev) throw Errors.compacted();
      }
    });
  }

  /** applyTxn: run the chosen branch; nested responses get etcd's headers. */
  #applyTxn(tx: WriteBatch, req: TxnRequest, plan: TxnPlan, nested: boolean): TxnResponse {
    const ops = plan.succeeded ? req.success : req.failure;
    const responses = ops.map((op, i) => this.#applyOp(tx, op, plan.nested.get(i)));
    const response = create(TxnResponseSchema, { succeeded: plan.succeeded });
    response.responses = responses;
    // etcd allocates an empty header for every nested txn response and never fills it.
    if (nested) response.header = create(ResponseHeaderSchema);
    return response;
  }

  #applyOp(tx: WriteBatch, op: RequestOp, plan: TxnPlan | undefined): ResponseOp {
    const r = op.request;
    switch (r.case) {
      case "requestRange": {
        const value = this.#applyRange(r.value, tx.readRev);
        value.header = revisionHeader(tx.readRev);
        return create(ResponseOpSchema, { response: { case: "responseRange", value } });
      }
      case "requestPut": {
        // Validated before (checkPuts, checkIntervals): cannot fail half way through the txn.
        const value = this.#applyPut(tx, r.value);
        value.header = revisionHeader(tx.beginRev + 1);
        return create(ResponseOpSchema, { response: { case: "responsePut", value } });
      }
      case "requestDeleteRange": {
        const value = this.#applyDelete(tx, r.value);
        value.header = revisionHeader(tx.readRev);
        return create(ResponseOpSchema, { response: { case: "responseDeleteRange", value } });
      }
      case "requestTxn": {
        assert(plan !== undefined, "nested txn has a plan");
        const value = this.#applyTxn(tx, r.value, plan, true);
        return create(ResponseOpSchema, { response: { case: "responseTxn", value } });
      }
      default:
        // Rejected by validation (checkRequestOp); etcd leaves the response empty.
        return create(ResponseOpSchema);
    }
  }
}

/**
 * etcd's isTxnReadonly: only ranges in both branches (a nested txn counts as a write). etcd
 * serves such a txn on the read path, without raft; MvccStore.txn gives the same answer either way.
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

/**
 * Bytes the store keeps from a request. A view that (nearly) spans its buffer is kept as is:
 * copying every value costs more than the whole rest of a put. A small view of a large buffer
 * (a batch, a socket read) is copied so it does not pin that buffer for the key's lifetime.
 */
function retainBytes(bytes: Uint8Array): Uint8Array {
  return bytes.buffer.byteLength <= 2 * bytes.byteLength + RETAIN_SLACK_BYTES
    ? bytes
    : bytes.slice();
}

function revisionHeader(rev: number): ResponseHeader {
  return create(ResponseHeaderSchema, { revision: BigInt(rev) });
}

/** mkGteRange: "\0" means no upper bound. */
function endId(rangeEnd: Uint8Array): string | undefined {
  return rangeEnd.length === 1 && rangeEnd[0] === 0 ? undefined : keyId(rangeEnd);
}

function freezeEvent(type: Event_EventType, kv: KeyValue): Event {
  return Object.freeze(create(EventSchema, { type, kv }));
}

function entryBytes(e: Entry): number {
  const kv = e.event.kv;
  return ENTRY_OVERHEAD_BYTES + e.record.key.length + (kv ? kv.value.length : 0);
}
