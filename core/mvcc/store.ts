/**
 * etcd 3.4's multi-version key-value store (mvcc.KV) as a pure, in-memory state machine that
 * speaks bytes and options, not API requests: range(key, end, {revision, limit, countOnly}),
 * write transactions (put, deleteRange and range at the transaction's revision, all of one
 * transaction in one revision), compact, hashKV and snapshots. The request semantics on top
 * (sort, filters, compares, nested txns, response headers) live at the node's edge, as etcd keeps
 * them in etcdserver/apply.go.
 *
 * What it reproduces (mvcc/kv.go, mvcc/kvstore*.go, mvcc/key_index.go):
 * - one main revision per write transaction, sub-revisions inside it, a transaction that changes
 *   nothing leaves the revision alone;
 * - per-key history with generations: create_revision/version restart after a delete;
 * - historical reads, compaction (keep each key's latest revision <= the compact revision unless
 *   it is a tombstone), and etcd's error for every out-of-bounds revision;
 * - HashKV's CRC-32C over the revision-ordered history, bit for bit.
 *
 * Errors raised here: compacted/future revision on reads and compactions. The request checks
 * (lease not found, key not found for ignore_value/ignore_lease, ...) are the caller's.
 */
import {
  compactionKeys,
  compactionMilliseconds,
  dbCompactionPauseMilliseconds,
  indexCompactionPauseMilliseconds,
} from "./metrics.ts";
import { create } from "@bufbuild/protobuf";
import {
  type Event,
  Event_EventType,
  EventSchema,
  type KeyValue,
  KeyValueSchema,
} from "../../gen/mvccpb/kv_pb.ts";
import { Errors } from "../errors.ts";
import { assert } from "../assert.ts";
import { ByteArena, compareBytes, idBytes, IdMap, keyId, prefixRangeEnd } from "../bytes.ts";
import { SortedRecords } from "./sorted_records.ts";
import { Crc32c } from "../storage/crc32c.ts";
import { REV_BYTES_LEN, writeRevisionKey } from "../snapshot/key_bucket.ts";
import { int64Size, putInt64, uvarintSize } from "../varint.ts";
import {
  ByteReader,
  ByteWriter,
  keyOnlyKeyValueSize,
  keyValueSize,
  readKeyValue,
  writeKeyOnlyKeyValue,
  writeKeyValue,
} from "./kv_codec.ts";
import type { ByteSource } from "../bytes.ts";
import {
  type ColumnArrays,
  encodeView,
  type MvccView,
  newColumnArrays,
  type SnapshotEntry,
  SnapshotReader,
  type StoredColumns,
} from "./snapshot_codec.ts";

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
 * A write's response plus the events it produced, in order, for watchers (what the request layer
 * returns for each applied write). Events and the KeyValues in them are shared with the store and
 * frozen: copy before changing.
 */
export interface WriteResult<R> {
  response: R;
  /** One event per changed key, in sub-revision order (a DELETE's kv has key and mod_revision). */
  events: Event[];
  /**
   * For each event, the key's value before this request (what etcd's watch fills into prev_kv,
   * read at revision - 1), or undefined when the key did not exist.
   */
  prevKvs: PrevKvs;
}

/**
 * The values keys had before a write, one per event, read only when asked for (only watchers
 * with prev_kv ask; a put that overwrites a key reads nothing of its old value, as etcd's).
 * Ask while the write is being applied: the store may move its revisions afterwards.
 */
export interface PrevKvs {
  readonly length: number;
  /** The value before event i, or undefined when the key did not exist. */
  get(i: number): KeyValue | undefined;
}

/** etcd's mvcc.RangeOptions: which revision to read and how much to return. */
export interface RangeOptions {
  /** The revision to read at; 0 or negative (or absent) = the current one. */
  revision?: number;
  /** At most this many kvs (0 or absent = all); count still counts every key. */
  limit?: number;
  /** Only count: return no kvs. */
  countOnly?: boolean;
  /** KeyValues without their values (then nothing is read from the revision storage). */
  keysOnly?: boolean;
  /**
   * The result as RangeEntries (`entries`, kvs left empty) when it is over a span of keys: sized
   * and encoded later, entry by entry, without a KeyValue object per key. Only the store itself
   * honours it (a write transaction's range returns kvs).
   */
  entries?: boolean;
}

/** etcd's mvcc.RangeResult. The kvs are the store's own, frozen: copy before changing. */
export interface RangeResult {
  /** Live KeyValues in key order (at most the limit; none when countOnly). */
  kvs: KeyValue[];
  /** How many keys are live in the range at the revision read, regardless of the limit. */
  count: number;
  /** The current revision of the view that answered (not the revision read at), as etcd's. */
  revision: number;
  /** With RangeOptions.entries, over a span of keys: the kvs, as entries (kvs is then empty). */
  entries?: RangeEntries;
}

/**
 * A range's KeyValues as positions in the store's columns at the range's moment (etcd #12342: a
 * range over a large key space is sent as it is encoded): sized, written or decoded one by one,
 * in key order, while the store goes on changing. A compaction's rebuild makes new columns and
 * leaves these as they were, and the revision storage is held until close(), so every entry
 * reads as it was when the range ran. close() once done (or the hold ends when the entries are
 * collected as garbage).
 */
export interface RangeEntries {
  /** How many entries (finishes the scan first: see scanned). */
  readonly length: number;
  /** Whether the KeyValues are without their values. */
  readonly keysOnly: boolean;
  /**
   * False while the range's keys are still being found: a range of every key of a large key
   * space is scanned in steps (scanSome()), each reading the index as of the range's revision, so
   * that the member may serve between them. Anything that needs the entries first finishes it.
   */
  readonly scanned: boolean;
  /** Scans the next few thousand keys of the range (nothing once scanned). */
  scanSome(): void;
  /** Keeps the first `length` entries. */
  truncate(length: number): void;
  /** The size of entry i's KeyValue encoding (writeKeyValue()'s, toBinary's). */
  size(i: number): number;
  /** Writes entry i's KeyValue encoding: size(i) bytes. */
  write(w: ByteWriter, i: number): void;
  /** Entry i as a KeyValue (frozen). */
  kv(i: number): KeyValue;
  /** Lets go of the revision storage (idempotent). */
  close(): void;
}

/**
 * Something to read from: the store at its current revision, or a write transaction at its own
 * (etcd's mvcc.ReadView). The request layer's range and compare work on either.
 */
export interface ReadView {
  /** etcd's FirstRev: the compact revision, -1 until the first compaction. */
  readonly firstRevision: number;
  /** The revision reads see (for a write transaction: its new one once it changed something). */
  readonly revision: number;
  /**
   * Live keys in [key, end) (end empty: just key; end "\0": no upper bound) at
   * options.revision, with etcd's errors: Errors.futureRev() above this view's revision,
   * Errors.compacted() below the compact revision.
   */
  range(key: Uint8Array, end: Uint8Array, options?: RangeOptions): RangeResult;
}

/**
 * A write transaction (etcd's mvcc.TxnWrite): every put and delete in it share one new revision,
 * with sub-revisions in call order; reads see the transaction's own writes. Nothing is visible
 * outside until end(). One at a time per store; a transaction that changed nothing may be dropped
 * without end(). The store copies the keys and values it is given.
 */
export interface WriteTxn extends ReadView {
  /** The store's revision when the transaction began; its writes land at beginRevision + 1. */
  readonly beginRevision: number;
  /** The events written so far, in sub-revision order (shared and frozen). */
  readonly events: Event[];
  /** For each event, the key's live value before this transaction, or undefined. */
  readonly prevKvs: PrevKvs;
  /**
   * Puts key = value with `lease` (0n = none; the caller has checked that it exists). With
   * `prevKv`, returns the key's previous live value, if any (else nothing is read for it).
   */
  put(key: Uint8Array, value: Uint8Array, lease: bigint, prevKv?: boolean): KeyValue | undefined;
  /** Deletes the live keys in [key, end) (range rules as range()); returns their last values. */
  deleteRange(key: Uint8Array, end: Uint8Array): KeyValue[];
  /** Commits: the store's revision becomes beginRevision + 1 if anything changed. */
  end(): void;
}

/** HashKV's answer: etcd reports the compact revision as -1 when there never was one. */
export interface HashKVResult {
  hash: number;
  /** Current revision of the store when hashed. */
  revision: number;
  /** Last compaction revision, -1 if never compacted. */
  compactRevision: number;
}

/**
 * Where a store keeps the bytes of its revisions when they do not stay in memory: etcd's `key`
 * bucket, a revision and its KeyValue's protobuf encoding (a tombstone's holds only the key).
 * `RevisionLog` (core/storage/revision_log.ts) is the one on disk. Reads are synchronous; a record
 * stays readable after release() (released records are garbage for a later rewrite, never reused
 * while a view may read them).
 */
export interface RevisionStorage {
  /** Stores a record; returns where it is and its size there (what read() and release() take). */
  append(main: number, sub: number, tombstone: boolean, data: Uint8Array): {
    location: number;
    size: number;
  };
  /**
   * The data of the record at `location`: a new array, or with `scratch` (when large enough) a
   * view of it, valid until the scratch is reused.
   */
  read(location: number, size: number, scratch?: Uint8Array): Uint8Array;
  /** The data size of a record of revision (main, sub) that is `size` bytes where stored. */
  dataSize(main: number, sub: number, size: number): number;
  /**
   * A reader for records visited mostly in storage order, each result valid until its next
   * read (reads ahead in blocks).
   */
  sequentialReader(): (location: number, size: number) => Uint8Array;
  /** The record is no longer part of the store (compacted, or its store was replaced). */
  release(location: number, size: number): void;
  /** Writes what was appended (a restore waits for it between its steps). */
  flush(): Promise<void>;
  /** Closed segments whose live records are under `fraction` of their bytes. */
  sparseSegments(fraction: number): number[];
  /** Closes the segment appended to, so that a rewrite may take every record written so far. */
  seal(): void;
  /**
   * Removes a segment all of whose records were released: at once, or while something holds the
   * storage (see hold()), when the last hold ends.
   */
  removeSegment(sequence: number): void;
  /** Keeps every segment until the returned function is called (a view is reading). */
  hold(): () => void;
  /**
   * The storage's files by the names another thread of this process opens them by (see
   * RevisionLog.segmentFiles), or null; absent where records live only in memory.
   */
  segmentFiles?(): { sequence: number; path: string }[] | null;
  /**
   * The record at `location` (stored before a restart) belongs to the store being restored from
   * a checkpoint; throws when the storage does not hold it. Only storage that outlives a restart
   * has it.
   */
  adopt?(location: number, size: number): void;
  /** Total bytes stored, and of those the records not released. */
  readonly sizes: { totalBytes: number; liveBytes: number };
}

/** The segment of a revision storage a location is in (2^32 locations per segment). */
function segmentOf(location: number): number {
  return Math.floor(location / 2 ** 32);
}

/** "DMVC" and the version byte of a checkpoint (snapshot_codec.ts's format is version 1). */
const CHECKPOINT_MAGIC = [0x44, 0x4d, 0x56, 0x43];
const CHECKPOINT_VERSION = 2;
/** Entries encoded (or restored) between two pauses of a checkpoint. */
const CHECKPOINT_STEP_ENTRIES = 4096;
const CHECKPOINT_TOMBSTONE = 1;
const CHECKPOINT_LEASE = 2;

/** A segment is rewritten once less than this fraction of its bytes is live. */
const SPARSE_SEGMENT_FRACTION = 0.5;
/** Keys whose history one compaction step drops. */
const COMPACTION_STEP_KEYS = 1024;
/** Revisions a compaction's rebuild copies per step (about a millisecond). */
const REBUILD_STEP_REVISIONS = 16_384;
/** Revisions visited between two pauses of a rewrite. */
const RECLAIM_STEP_ENTRIES = 512;

/** How a store keeps its revisions. */
export interface MvccStoreOptions {
  /**
   * Where the revisions' bytes live. Absent: in memory, every KeyValue kept decoded (tests, the
   * simulation, tools). Present: memory holds the index and a cache of recently read KeyValues.
   */
  revisions?: RevisionStorage;
  /** Bytes of decoded KeyValues kept when `revisions` is given (default 8 MiB). */
  cacheBytes?: number;
  /**
   * compact() only marks the compaction; its history is dropped by compactionStep() calls (the
   * node's, between which it serves). Default: all at once.
   */
  stepwiseCompaction?: boolean;
}

/** Default size of the decoded-KeyValue cache of a store whose revisions are on disk. */
export const DEFAULT_KV_CACHE_BYTES = 8 * 1024 * 1024;
/**
 * What a cached KeyValue costs beyond its value: the message, its BigInts, the arrays, and the
 * old-generation garbage it becomes once evicted (measured: a 64 MiB budget counted at 200 bytes
 * each grew a 200k-key store's RSS by 240 MB).
 */
const CACHED_KV_OVERHEAD_BYTES = 1024;

/** Flags of a stored revision. */
const TOMBSTONE = 1;
/** Set when physical compaction drops the revision (it leaves the columns at the next rebuild). */
const COMPACTED = 2;

/** Revisions per chunk of the columns (a power of two). */
const CHUNK_BITS = 12;
const CHUNK_SIZE = 1 << CHUNK_BITS;
const CHUNK_MASK = CHUNK_SIZE - 1;
/** A first chunk starts this small (a store in a test holds a handful of revisions). */
const FIRST_CHUNK_CAPACITY = 16;

const NO_LEASE = 0n;

/** Up to CHUNK_SIZE consecutive revisions of the columns; its arrays grow until they hold that many. */
class ColumnChunk {
  main: Float64Array;
  sub: Int32Array;
  flags: Uint8Array;
  createRevision: Float64Array;
  version: Float64Array;
  lease: BigInt64Array;
  /** Where the record is in the store's revision storage (-1: nowhere, in memory only). */
  location: Float64Array;
  size: Uint32Array;
  /** The key of each revision. */
  readonly records: KeyRecord[] = [];
  /** KeyValues in memory (every put's, for a store in memory; the cached ones otherwise). */
  kvs: (KeyValue | undefined)[] | undefined = undefined;

  constructor(capacity: number) {
    // One buffer for all columns (one allocation per chunk, not eight): the 8-byte columns
    // first, then the 4-byte ones, then the flags; capacity is a multiple of 8.
    const buffer = new ArrayBuffer(capacity * COLUMN_BYTES);
    let at = 0;
    const next = (bytes: number) => (at += capacity * bytes) - capacity * bytes;
    this.main = new Float64Array(buffer, next(8), capacity);
    this.createRevision = new Float64Array(buffer, next(8), capacity);
    this.version = new Float64Array(buffer, next(8), capacity);
    this.location = new Float64Array(buffer, next(8), capacity);
    this.lease = new BigInt64Array(buffer, next(8), capacity);
    this.sub = new Int32Array(buffer, next(4), capacity);
    this.size = new Uint32Array(buffer, next(4), capacity);
    this.flags = new Uint8Array(buffer, next(1), capacity);
  }

  /** Room for `count` revisions (at most CHUNK_SIZE): the columns move to a larger buffer. */
  ensure(count: number): void {
    if (count <= this.main.length) return;
    const capacity = Math.min(CHUNK_SIZE, Math.ceil(Math.max(count, this.main.length * 4) / 8) * 8);
    const to = new ColumnChunk(capacity);
    to.main.set(this.main);
    to.createRevision.set(this.createRevision);
    to.version.set(this.version);
    to.location.set(this.location);
    to.lease.set(this.lease);
    to.sub.set(this.sub);
    to.size.set(this.size);
    to.flags.set(this.flags);
    this.main = to.main;
    this.createRevision = to.createRevision;
    this.version = to.version;
    this.location = to.location;
    this.lease = to.lease;
    this.sub = to.sub;
    this.size = to.size;
    this.flags = to.flags;
  }
}

/**
 * A chunk's KeyValue slots, sized at once: slots written far past the end of an empty array would
 * turn it into a dictionary.
 */
function newKvs(): (KeyValue | undefined)[] {
  return new Array<KeyValue | undefined>(CHUNK_SIZE).fill(undefined);
}

/** Bytes per revision in a chunk's buffer: five 8-byte columns, two of 4 bytes, one of 1. */
const COLUMN_BYTES = 5 * 8 + 2 * 4 + 1;

/**
 * Every stored revision in (main, sub) order, like etcd's key bucket, as columns of typed arrays
 * in chunks (ADR 0010, phase 4): a revision is a position, not an object — what the collector
 * has to visit per revision is one slot of a chunk's array of keys. Append-only: compaction
 * builds new columns (views keep the old ones); a rewrite changes a revision's location in place.
 */
class RevisionColumns {
  #chunks: ColumnChunk[] = [];
  #length = 0;

  get length(): number {
    return this.#length;
  }

  /** The chunk position i (the next one appended) goes into, made when i starts one. */
  #chunkAt(i: number): ColumnChunk {
    if ((i & CHUNK_MASK) !== 0) return this.#chunks[i >>> CHUNK_BITS];
    const c = new ColumnChunk(this.#chunks.length === 0 ? FIRST_CHUNK_CAPACITY : CHUNK_SIZE);
    this.#chunks.push(c);
    return c;
  }

  /** Appends a revision; returns its position. */
  push(
    main: number,
    sub: number,
    flags: number,
    record: KeyRecord,
    createRevision: number,
    version: number,
    lease: bigint,
    location: number,
    size: number,
  ): number {
    const i = this.#length;
    const o = i & CHUNK_MASK;
    const c = this.#chunkAt(i);
    c.ensure(o + 1);
    c.main[o] = main;
    c.sub[o] = sub;
    c.flags[o] = flags;
    c.createRevision[o] = createRevision;
    c.version[o] = version;
    if (lease !== NO_LEASE) c.lease[o] = lease;
    c.location[o] = location;
    c.size[o] = size;
    c.records.push(record);
    this.#length = i + 1;
    return i;
  }

  /**
   * Compaction's rebuild, a range at a time: appends the revisions of positions [start, end) of
   * `from` that are not marked compacted, writing where each went into `to` (left -1 for the
   * dropped ones). Runs of kept revisions are copied column by column; KeyValues too when
   * `withKvs` (a store in memory, whose KeyValues never change).
   */
  appendKept(
    from: RevisionColumns,
    start: number,
    end: number,
    to: Int32Array,
    withKvs: boolean,
  ): void {
    while (start < end) {
      const ci = start >>> CHUNK_BITS;
      const c = from.#chunks[ci];
      const base = ci << CHUNK_BITS;
      const n = Math.min(CHUNK_SIZE, end - base);
      const flags = c.flags;
      let o = start - base;
      while (o < n) {
        if ((flags[o] & COMPACTED) !== 0) {
          o++;
          continue;
        }
        let runEnd = o + 1;
        while (runEnd < n && (flags[runEnd] & COMPACTED) === 0) runEnd++;
        this.#appendRun(c, o, runEnd - o, to, base, withKvs);
        o = runEnd;
      }
      start = base + n;
    }
  }

  /** Appends `count` revisions of chunk `src` from slot `from` (`base`: that chunk's position). */
  #appendRun(
    src: ColumnChunk,
    from: number,
    count: number,
    to: Int32Array,
    base: number,
    withKvs: boolean,
  ): void {
    while (count > 0) {
      const i = this.#length;
      const o = i & CHUNK_MASK;
      const c = this.#chunkAt(i);
      const k = Math.min(count, CHUNK_SIZE - o);
      c.ensure(o + k);
      const end = from + k;
      for (let j = from, d = o; j < end; j++, d++) {
        c.main[d] = src.main[j];
        c.sub[d] = src.sub[j];
        c.flags[d] = src.flags[j];
        c.createRevision[d] = src.createRevision[j];
        c.version[d] = src.version[j];
        c.lease[d] = src.lease[j];
        c.location[d] = src.location[j];
        c.size[d] = src.size[j];
      }
      const records = c.records;
      const srcRecords = src.records;
      for (let j = from; j < end; j++) records.push(srcRecords[j]);
      for (let j = 0, at = base + from; j < k; j++) to[at + j] = i + j;
      const kvs = withKvs ? src.kvs : undefined;
      if (kvs !== undefined) {
        for (let j = 0; j < k; j++) {
          const kv = kvs[from + j];
          if (kv !== undefined) (c.kvs ??= newKvs())[o + j] = kv;
        }
      }
      this.#length = i + k;
      from = end;
      count -= k;
    }
  }

  main(i: number): number {
    return this.#chunks[i >>> CHUNK_BITS].main[i & CHUNK_MASK];
  }
  sub(i: number): number {
    return this.#chunks[i >>> CHUNK_BITS].sub[i & CHUNK_MASK];
  }
  tombstone(i: number): boolean {
    return (this.#chunks[i >>> CHUNK_BITS].flags[i & CHUNK_MASK] & TOMBSTONE) !== 0;
  }
  compacted(i: number): boolean {
    return (this.#chunks[i >>> CHUNK_BITS].flags[i & CHUNK_MASK] & COMPACTED) !== 0;
  }
  markCompacted(i: number): void {
    this.#chunks[i >>> CHUNK_BITS].flags[i & CHUNK_MASK] |= COMPACTED;
  }
  record(i: number): KeyRecord {
    return this.#chunks[i >>> CHUNK_BITS].records[i & CHUNK_MASK];
  }
  createRevision(i: number): number {
    return this.#chunks[i >>> CHUNK_BITS].createRevision[i & CHUNK_MASK];
  }
  version(i: number): number {
    return this.#chunks[i >>> CHUNK_BITS].version[i & CHUNK_MASK];
  }
  lease(i: number): bigint {
    return this.#chunks[i >>> CHUNK_BITS].lease[i & CHUNK_MASK];
  }
  location(i: number): number {
    return this.#chunks[i >>> CHUNK_BITS].location[i & CHUNK_MASK];
  }
  size(i: number): number {
    return this.#chunks[i >>> CHUNK_BITS].size[i & CHUNK_MASK];
  }
  /** The record of revision i moved (a rewrite). */
  relocate(i: number, location: number, size: number): void {
    const c = this.#chunks[i >>> CHUNK_BITS];
    c.location[i & CHUNK_MASK] = location;
    c.size[i & CHUNK_MASK] = size;
  }
  /** The put's KeyValue, when in memory. */
  kv(i: number): KeyValue | undefined {
    return this.#chunks[i >>> CHUNK_BITS].kvs?.[i & CHUNK_MASK];
  }
  setKv(i: number, kv: KeyValue | undefined): void {
    const c = this.#chunks[i >>> CHUNK_BITS];
    if (c.kvs === undefined) {
      if (kv === undefined) return;
      c.kvs = newKvs();
    }
    c.kvs[i & CHUNK_MASK] = kv;
  }

  /**
   * Copies positions [start, start + n) (one chunk's, start a multiple of CHUNK_SIZE) into
   * `out`'s columns at the same positions; false when one of them has no stored record.
   */
  copyChunk(start: number, n: number, out: StoredColumns): boolean {
    const c = this.#chunks[start >>> CHUNK_BITS];
    const location = c.location.subarray(0, n);
    for (let o = 0; o < n; o++) if (location[o] < 0) return false;
    out.location.set(location, start);
    out.main.set(c.main.subarray(0, n), start);
    out.sub.set(c.sub.subarray(0, n), start);
    out.size.set(c.size.subarray(0, n), start);
    const flags = c.flags;
    const tombstone = out.tombstone;
    for (let o = 0; o < n; o++) tombstone[start + o] = flags[o] & TOMBSTONE;
    return true;
  }

  /** Position of the last revision with main <= rev, or -1. */
  lastAtOrBefore(rev: number): number {
    const chunks = this.#chunks;
    // The chunk first (its first main), then inside it.
    let lo = 0;
    let hi = chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (chunks[mid].main[0] <= rev) lo = mid + 1;
      else hi = mid;
    }
    if (lo === 0) return -1;
    const ci = lo - 1;
    const main = chunks[ci].main;
    const base = ci << CHUNK_BITS;
    lo = 0;
    hi = Math.min(CHUNK_SIZE, this.#length - base);
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (main[mid] <= rev) lo = mid + 1;
      else hi = mid;
    }
    return base + lo - 1;
  }

  /** Moves every key with a revision here to these positions (`to`: old position -> new). */
  remapKeys(to: Int32Array): void {
    for (let ci = 0; ci < this.#chunks.length; ci++) {
      const records = this.#chunks[ci].records;
      const base = ci << CHUNK_BITS;
      for (let o = 0; o < records.length; o++) records[o].remapAt(base + o, to);
    }
  }

  /** Position of revision (main, sub), or of the first one after it. */
  lowerBound(main: number, sub: number): number {
    let i = this.lastAtOrBefore(main - 1) + 1;
    while (i < this.#length && this.main(i) === main && this.sub(i) < sub) i++;
    return i;
  }
}

/**
 * A key and its history: positions in the store's columns, oldest first (generations are
 * separated by tombstones). Positions change when compaction rebuilds the columns (remap()).
 */
class KeyRecord {
  /**
   * The revisions: most keys have one, kept alone as a number (an array costs ~56 bytes more per
   * key); an array from the second on; -1 once compaction dropped them all.
   */
  #h: number | number[] = -1;
  /**
   * The latest revision's main revision, negative when it is a tombstone, 0 when there is none:
   * what a read at the current revision (and a count over many keys) needs without looking in the
   * columns, whose positions for keys in key order are scattered in memory.
   */
  #latest = 0;

  constructor(readonly id: string) {}

  /** The key (a new array each time: a store on disk keeps only the id). */
  get key(): Uint8Array {
    return idBytes(this.id);
  }

  /** The revisions' positions, oldest first (a new array when there is one: not for hot paths). */
  get history(): readonly number[] {
    const h = this.#h;
    return typeof h === "number" ? (h < 0 ? [] : [h]) : h;
  }

  /** Whether any revision is left. */
  get empty(): boolean {
    return this.#h === -1;
  }

  /** The latest revision's position, -1 when none is left. */
  last(): number {
    const h = this.#h;
    return typeof h === "number" ? h : h[h.length - 1];
  }

  /**
   * Appends revision `i` of `log` (in revision order); returns how the number of live keys
   * changed.
   */
  push(log: RevisionColumns, i: number): number {
    const wasLive = this.#latest > 0 ? 1 : 0;
    const h = this.#h;
    // A two-element literal holds two slots; push() onto an empty array reserves seventeen.
    if (typeof h === "number") this.#h = h < 0 ? i : [h, i];
    else h.push(i);
    const tombstone = log.tombstone(i);
    this.#latest = tombstone ? -log.main(i) : log.main(i);
    return (tombstone ? 0 : 1) - wasLive;
  }

  /** Drops the first `count` revisions (compaction). */
  dropOldest(count: number): void {
    const rest = this.history.slice(count);
    this.#h = rest.length === 0 ? -1 : rest.length === 1 ? rest[0] : rest;
    if (rest.length === 0) this.#latest = 0;
  }

  /**
   * The columns were rebuilt and revision `at` of the new ones is this key's: when it is the
   * latest (each key is remapped once), every position moves (`to[i]`: where position i went).
   */
  remapAt(at: number, to: Int32Array): void {
    if (to[this.last()] === at) this.remap(to);
  }

  /** The columns were rebuilt: every position moves (`to[i]`: where position i went). */
  remap(to: Int32Array): void {
    const h = this.#h;
    if (typeof h === "number") {
      if (h >= 0) this.#h = to[h];
    } else {
      for (let j = 0; j < h.length; j++) h[j] = to[h[j]];
    }
  }

  /** The live revision as of `rev`, or -1 when the key did not exist then. */
  at(log: RevisionColumns, rev: number): number {
    const latest = this.#latest;
    if (rev >= (latest < 0 ? -latest : latest)) return latest > 0 ? this.last() : -1;
    const h = this.#h;
    // One revision, newer than rev: the key did not exist then.
    if (typeof h === "number") return -1;
    const j = lastAtOrBefore(log, h, rev);
    if (j < 0) return -1;
    const i = h[j];
    return log.tombstone(i) ? -1 : i;
  }

  /** The current live revision (the latest unless it is a tombstone), or -1. */
  live(): number {
    return this.#latest > 0 ? this.last() : -1;
  }
}

/** A key of a store in memory, which keeps its bytes (one array shared by its KeyValues). */
class KeptKeyRecord extends KeyRecord {
  readonly #key: Uint8Array;

  constructor(id: string, key: Uint8Array) {
    super(id);
    this.#key = key;
  }

  override get key(): Uint8Array {
    return this.#key;
  }
}

/**
 * A view's entry whose record is in revision storage: its data read when asked for (a class, so
 * that the getter is the prototype's rather than a closure and accessor made for every entry).
 */
class StoredEntry implements SnapshotEntry {
  readonly main: number;
  readonly sub: number;
  readonly tombstone: boolean;
  readonly #location: number;
  readonly #size: number;
  readonly #read: (location: number, size: number) => Uint8Array;

  constructor(
    log: RevisionColumns,
    i: number,
    readonly dataSize: number,
    read: (location: number, size: number) => Uint8Array,
  ) {
    this.main = log.main(i);
    this.sub = log.sub(i);
    this.tombstone = log.tombstone(i);
    this.#location = log.location(i);
    this.#size = log.size(i);
    this.#read = read;
  }

  get data(): Uint8Array {
    return this.#read(this.#location, this.#size);
  }
}

/** Chunks of columns copied per step of storedColumns (65,536 revisions, 1.6 MB). */
const COPY_STEP_CHUNKS = 16;

/**
 * MvccView.storedColumns of a view of `log`'s first `length` revisions, copied into `into` when
 * given (its columns `length` long), else into new shared memory.
 */
function* storedColumns(
  log: RevisionColumns,
  length: number,
  revisions: RevisionStorage | null,
  into: ColumnArrays | undefined,
): Generator<void, StoredColumns | null> {
  const files = revisions?.segmentFiles?.() ?? null;
  if (files === null) return null;
  // In shared memory: the worker that writes the snapshot reads them where they are, and V8 does
  // not count shared buffers as the isolate's external memory. A copy in ArrayBuffers (25 MB at
  // 1M revisions) was, at the snapshot's start, enough to push a large member quiet since its
  // last collection over V8's limit: a full collection of its heap, a 30-50 ms pause, every time.
  // The snapshot's worker allocates them (server/snapshot_writer.ts): zeroing and paging in 25 MB
  // held this thread 15-30 ms.
  const arrays = into !== undefined && into.main.length === length ? into : newColumnArrays(length);
  const out: StoredColumns = { ...arrays, files, flushed: Promise.resolve() };
  for (let start = 0, copied = 0; start < length; start += CHUNK_SIZE) {
    const n = Math.min(CHUNK_SIZE, length - start);
    if (!log.copyChunk(start, n, out)) return null;
    if (++copied % COPY_STEP_CHUNKS === 0) yield;
  }
  // Every record copied was appended before now (before the view, or by a rewrite that moved it
  // since): this flush writes them all to their files.
  out.flushed = revisions!.flush();
  return out;
}

const asPosition = (e: number): number => e;

/** Revisions a step of hashKVSteps visits. */
const HASH_STEP_REVISIONS = 8192;

/** Keys a scan visits in one step (about 0.3 ms at a million keys). */
const SCAN_STEP_KEYS = 8192;

/** A range's scan of the index in steps (see RangeEntries.scanned). */
interface PendingScan {
  /** Scans the next SCAN_STEP_KEYS keys; true once the range is done. */
  step(): boolean;
  /** Whether the range is done (or cancelled). */
  done(): boolean;
  /** Stops it, unfinished. */
  cancel(): void;
}

/**
 * What a range's entries hold (the revision storage, a scan the store would finish at its next
 * compaction) is let go when they are closed, or when they are collected as garbage unclosed.
 */
const heldEntries = new FinalizationRegistry<() => void>((letGo) => letGo());

/** RangeEntries over the store's columns (see RangeEntries). */
class ColumnEntries implements RangeEntries {
  readonly #log: RevisionColumns;
  readonly #positions: number[];
  readonly #revisions: RevisionStorage | null;
  #release: (() => void) | null;
  /** The rest of the range's keys to find, or null once found. */
  #scan: PendingScan | null;
  /** Where records read from the revision storage land, one at a time. */
  #scratch = new Uint8Array(0);

  constructor(
    log: RevisionColumns,
    positions: number[],
    readonly keysOnly: boolean,
    revisions: RevisionStorage | null,
    scan: PendingScan | null = null,
  ) {
    this.#log = log;
    this.#positions = positions;
    this.#revisions = keysOnly ? null : revisions;
    this.#scan = scan;
    const release = this.#revisions?.hold() ?? null;
    this.#release = release;
    if (release !== null || scan !== null) {
      heldEntries.register(this, () => {
        scan?.cancel();
        release?.();
      }, this);
    }
  }

  get scanned(): boolean {
    // A compaction may have finished it.
    if (this.#scan?.done()) this.#scan = null;
    return this.#scan === null;
  }

  scanSome(): void {
    if (this.#scan?.step()) this.#scan = null;
  }

  get length(): number {
    while (this.#scan !== null) this.scanSome();
    return this.#positions.length;
  }

  truncate(length: number): void {
    if (length < this.length) this.#positions.length = length;
  }

  size(i: number): number {
    const log = this.#log;
    const e = this.#positions[i];
    if (this.keysOnly) {
      // A key's id has a character per byte of the key.
      const keyBytes = log.record(e).id.length;
      return keyOnlyKeyValueSize(
        keyBytes,
        log.createRevision(e),
        log.main(e),
        log.version(e),
        log.lease(e),
      );
    }
    const kv = log.kv(e);
    if (kv !== undefined) return keyValueSize(kv);
    return this.#revisions!.dataSize(log.main(e), log.sub(e), log.size(e));
  }

  write(w: ByteWriter, i: number): void {
    const log = this.#log;
    const e = this.#positions[i];
    if (this.keysOnly) {
      // A key in memory as its bytes, else as its id: no array per key of a large listing.
      const key = log.kv(e)?.key ?? log.record(e).id;
      writeKeyOnlyKeyValue(
        w,
        key,
        log.createRevision(e),
        log.main(e),
        log.version(e),
        log.lease(e),
      );
      return;
    }
    const kv = log.kv(e);
    if (kv !== undefined) {
      writeKeyValue(w, kv);
      return;
    }
    const size = log.size(e);
    if (this.#scratch.length < size) this.#scratch = new Uint8Array(Math.max(size, 64 * 1024));
    w.raw(this.#revisions!.read(log.location(e), size, this.#scratch));
  }

  kv(i: number): KeyValue {
    const e = this.#positions[i];
    return this.keysOnly ? keyOnlyKv(this.#log, e) : uncachedKv(this.#revisions, this.#log, e);
  }

  close(): void {
    heldEntries.unregister(this);
    this.#scan?.cancel();
    this.#scan = null;
    const release = this.#release;
    this.#release = null;
    release?.();
  }
}

/** Index in `h` (positions in `log`) of the last revision with main <= rev, or -1. */
function lastAtOrBefore(log: RevisionColumns, h: readonly number[], rev: number): number {
  let lo = 0;
  let hi = h.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (log.main(h[mid]) <= rev) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}
/** A compaction's rebuild of the columns under way (see MvccStore.#rebuildStep). */
interface Rebuild {
  readonly kept: RevisionColumns;
  /** Where each position of the old columns went (-1: dropped, or not copied yet). */
  to: Int32Array;
  /** Positions below this are copied. */
  next: number;
  /** Copied positions whose record a rewrite moved since. */
  readonly relocated: number[];
}

/** The state of one write transaction while it applies (etcd's storeTxnWrite). */
interface WriteBatch {
  /** Keys changed so far (each change takes the next sub-revision). */
  changes: number;
  readonly beginRevision: number;
  readonly events: Event[];
  readonly prevKvs: PrevValues;
}

/** PrevKvs of a write transaction: positions of the previous revisions, decoded when asked. */
class PrevValues implements PrevKvs {
  /** Position of each event's previous revision in `log`, -1 for none. */
  readonly #positions: number[] = [];
  #log: RevisionColumns | null = null;
  #decoded: (KeyValue | undefined)[] | null = null;

  constructor(readonly read: (log: RevisionColumns, e: number) => KeyValue) {}

  get length(): number {
    return this.#positions.length;
  }

  add(log: RevisionColumns, e: number): void {
    this.#log = log; // one write transaction sees one set of columns
    this.#positions.push(e);
  }

  get(i: number): KeyValue | undefined {
    const e = this.#positions[i];
    if (e === undefined || e < 0) return undefined;
    const decoded = this.#decoded ??= [];
    return decoded[i] ??= this.read(this.#log!, e);
  }
}

const NO_RANGE_OPTIONS: RangeOptions = Object.freeze({});
const ZERO_KV: KeyValue = Object.freeze(create(KeyValueSchema));
/** Revisions restored between two chances for the revision storage to write (~1 MiB). */
const RESTORE_STEP_ENTRIES = 4096;
/** Rough per-revision bookkeeping overhead, for sizeBytes(). */
const ENTRY_OVERHEAD_BYTES = 64;
const KEY_BUCKET = new TextEncoder().encode("key");

/**
 * etcd's MVCC store. All methods are synchronous and deterministic; a method that throws an
 * EtcdError has changed nothing.
 *
 * Ownership: the store copies the keys and values it is given (into its arena or its revision
 * storage), and hands out KeyValue and Event objects frozen: copy a KeyValue before changing it.
 */
export class MvccStore implements ReadView {
  readonly #leases: LeaseHooks;
  /**
   * A restore's keys by id while it runs (revisions arrive in revision order, not key order);
   * afterwards keys are found in #index (a Map costs ~40 bytes a key and a long pause each time it
   * grows at a million keys). An IdMap: a Map keyed by the ids would leave every one of them in
   * V8's string table, and every full collection's pause ~30 ms longer at 1M keys.
   */
  #restoring: IdMap<KeyRecord> | null = null;
  /**
   * Where stored keys (and, without revision storage, values) are copied, and where the cached
   * KeyValues of a store on disk live: slabs, not one buffer each, and never a view that pins a
   * request's (or a Raft entry's) whole buffer. The cache lets go of its oldest first, so its
   * slabs are freed in turn.
   */
  readonly #arena = new ByteArena();
  #index = new SortedRecords<KeyRecord>(liveWeight);
  /** Every stored revision in (main, sub) order, like etcd's key bucket. */
  #log = new RevisionColumns();
  #revision = 1;
  /** etcd's compactMainRev: -1 until the first compaction. */
  #compactMainRev = -1;
  /** Compaction dropped a tombstone of the compact revision itself (its events are incomplete). */
  #compactRevIncomplete = false;
  /** A compaction whose history is still being dropped: its revision and where it got to. */
  #compaction:
    | {
      rev: number;
      after: string | undefined;
      removed: number;
      timer: () => void;
      /** Once every key is done: the columns being rebuilt without the compacted revisions. */
      rebuild: Rebuild | null;
    }
    | null = null;
  readonly #stepwiseCompaction: boolean;
  /**
   * Ranges whose keys are still being found in steps (at their revision, in these columns): a
   * compaction finishes them before it drops history or rebuilds the columns.
   */
  readonly #openScans = new Set<PendingScan>();
  #bytes = 0;
  /** Keys whose latest revision is not a tombstone (etcd_debugging_mvcc_keys_total). */
  #liveKeys = 0;
  /** Where revisions live when not (only) in memory; null keeps every KeyValue in memory. */
  readonly #revisions: RevisionStorage | null;
  /** Positions whose kv is cached, oldest first from #cacheHead (with revision storage only). */
  #cached: number[] = [];
  #cacheHead = 0;
  #cacheBytes = 0;
  readonly #cacheLimit: number;
  /** Scratch encoder for records appended to the revision storage. */
  readonly #encoder = new ByteWriter(1024);

  constructor(leases: LeaseHooks = noLeases, options: MvccStoreOptions = {}) {
    this.#leases = leases;
    this.#revisions = options.revisions ?? null;
    this.#cacheLimit = options.cacheBytes ?? DEFAULT_KV_CACHE_BYTES;
    this.#stepwiseCompaction = options.stepwiseCompaction ?? false;
  }

  /** Whether the revisions are in revision storage (else all in memory). */
  get onRevisionStorage(): boolean {
    return this.#revisions !== null;
  }

  /** Current revision (1 on a fresh store, like etcd). */
  get revision(): number {
    return this.#revision;
  }

  /**
   * etcd's FirstRev: the compact revision, -1 until the first compaction (what etcd's
   * checkRequestRange holds a txn's range revisions against, quirks included).
   */
  get firstRevision(): number {
    return this.#compactMainRev;
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

  /** Number of keys that currently exist (kept as keys are created and deleted). */
  get keyCount(): number {
    return this.#liveKeys;
  }

  /**
   * Read at options.revision (0 or negative = current) with etcd's errors: Errors.compacted()
   * when it is below the compact revision, Errors.futureRev() when above the current one.
   */
  range(key: Uint8Array, end: Uint8Array, options: RangeOptions = NO_RANGE_OPTIONS): RangeResult {
    return this.#range(key, end, this.#revision, options, options.entries === true);
  }

  /**
   * Whether a lease exists: the request layer refuses a put with an unknown lease
   * (Errors.leaseNotFound()) before writing, as etcd's applier looks the lease up first.
   */
  leaseExists(id: bigint): boolean {
    return this.#leases.exists(id);
  }

  /** Begins a write transaction at the current revision (etcd's KV.Write). */
  write(): WriteTxn {
    return new MvccStore.#Txn(this);
  }

  /**
   * Compaction up to rev; throws Errors.compacted() if rev <= the last compaction (on a fresh
   * store, compact(0) succeeds as in etcd), Errors.futureRev() if rev > revision. Reads below rev
   * fail from now on. The history it drops goes at once, or, with `stepwiseCompaction`, in steps
   * of compactionStep() (etcd also compacts its index key by key, letting writes in between);
   * anything that looks at stored history as a whole (a view, a hash, a rewrite) finishes it
   * first.
   */
  compact(rev: number): void {
    if (rev <= this.#compactMainRev) throw Errors.compacted();
    if (rev > this.#revision) throw Errors.futureRev();
    this.#finishScans();
    this.#finishCompaction();
    this.#compactMainRev = rev;
    // A tombstone at exactly rev is dropped with the history (a put there is kept): known now,
    // for the watches created before the last step.
    const log = this.#log;
    let incomplete = false;
    for (let i = log.lastAtOrBefore(rev); i >= 0 && log.main(i) === rev; i--) {
      if (log.tombstone(i)) incomplete = true;
    }
    this.#compactRevIncomplete = incomplete;
    this.#compaction = {
      rev,
      after: undefined,
      removed: 0,
      timer: compactionMilliseconds.startTimer(),
      rebuild: null,
    };
    if (!this.#stepwiseCompaction) this.#finishCompaction();
  }

  /** Whether a compaction's dropping of history is under way (see compactionStep()). */
  get compacting(): boolean {
    return this.#compaction !== null;
  }

  /**
   * Drops the compacted history of the next few thousand keys; returns true once the compaction
   * is complete (at once when none is under way). Writes and reads may run between steps.
   */
  compactionStep(): boolean {
    const job = this.#compaction;
    if (job === null) return true;
    this.#finishScans();
    if (job.rebuild !== null) return this.#rebuildStep();
    const indexPause = indexCompactionPauseMilliseconds.startTimer();
    const batch: KeyRecord[] = [];
    // Keys inserted since the compaction have only newer revisions: passing them is harmless.
    const start = job.after === undefined ? "" : job.after + "\0";
    this.#index.scan(start, undefined, (record) => {
      batch.push(record);
      return batch.length < COMPACTION_STEP_KEYS;
    });
    const log = this.#log;
    for (const record of batch) {
      const h = record.history;
      const i = lastAtOrBefore(log, h, job.rev);
      if (i < 0) continue;
      const cut = log.tombstone(h[i]) ? i + 1 : i;
      if (cut === 0) continue;
      for (let j = 0; j < cut; j++) {
        const e = h[j];
        log.markCompacted(e);
        this.#bytes -= this.#entryBytes(e);
        const location = log.location(e);
        if (location >= 0) this.#revisions!.release(location, log.size(e));
      }
      job.removed += cut;
      record.dropOldest(cut);
      if (record.empty) {
        // Gone from the index: a later put of the key makes a new record.
        this.#index.remove(record.id);
      }
    }
    indexPause();
    if (batch.length === COMPACTION_STEP_KEYS) {
      job.after = batch[batch.length - 1].id;
      return false;
    }
    job.rebuild = {
      kept: new RevisionColumns(),
      to: new Int32Array(this.#log.length).fill(-1),
      next: 0,
      relocated: [],
    };
    return false;
  }

  /**
   * A step of a compaction's rebuild: the next revisions copied to the new columns (writes append
   * to the old ones meanwhile, and keys point there), or, once the rest fits in a step, the last
   * of them copied and the store switched over: new columns (views hold the old ones), every
   * key's positions and the cache's moved to them.
   */
  #rebuildStep(): boolean {
    const job = this.#compaction!;
    const r = job.rebuild!;
    const log = this.#log;
    const dbPause = dbCompactionPauseMilliseconds.startTimer();
    if (r.to.length < log.length) {
      // With room for the writes of the next steps (not a copy of the whole map every step).
      const to = new Int32Array(Math.ceil(log.length * 1.25)).fill(-1);
      to.set(r.to);
      r.to = to;
    }
    const last = log.length - r.next <= REBUILD_STEP_REVISIONS;
    const end = last ? log.length : r.next + REBUILD_STEP_REVISIONS;
    r.kept.appendKept(log, r.next, end, r.to, this.#revisions === null);
    r.next = end;
    if (!last) {
      dbPause();
      return false;
    }
    const { kept, to } = r;
    // Records a rewrite moved after they were copied.
    for (const i of r.relocated) if (to[i] >= 0) kept.relocate(to[i], log.location(i), log.size(i));
    // Every key once, at its latest revision, in revision order: the order keys were mostly
    // created in, so mostly the order they are in memory (key order is scattered there).
    kept.remapKeys(to);
    const cached: number[] = [];
    for (let j = this.#cacheHead; j < this.#cached.length; j++) {
      const i = this.#cached[j];
      const kv = log.kv(i)!;
      if (to[i] >= 0) {
        kept.setKv(to[i], kv);
        cached.push(to[i]);
      } else {
        this.#cacheBytes -= cachedBytes(kv);
      }
    }
    this.#cached = cached;
    this.#cacheHead = 0;
    this.#log = kept;
    compactionKeys.inc(job.removed);
    dbPause();
    job.timer();
    this.#compaction = null;
    return true;
  }

  /** Finds the rest of the keys of every range still being scanned. */
  #finishScans(): void {
    for (const scan of this.#openScans) while (!scan.step());
  }

  /**
   * The scan, in steps, of the live keys of [start, stop) at `rev` (this store's current columns
   * and revision when it starts), their positions appended to `positions`.
   */
  #scanInSteps(start: string, stop: string | undefined, rev: number, positions: number[]) {
    const log = this.#log;
    const index = this.#index;
    const open = this.#openScans;
    let from: string | null = start;
    const scan: PendingScan = {
      step: () => {
        if (from === null) return true;
        let visited = 0;
        let last = "";
        index.scan(from, stop, (record) => {
          const e = record.at(log, rev);
          if (e >= 0) positions.push(e);
          last = record.id;
          return ++visited < SCAN_STEP_KEYS;
        });
        // The next key after `last` in string order.
        from = visited < SCAN_STEP_KEYS ? null : last + "\0";
        if (from === null) open.delete(scan);
        return from === null;
      },
      done: () => from === null,
      cancel: () => {
        from = null;
        open.delete(scan);
      },
    };
    open.add(scan);
    return scan;
  }

  /** Runs what is left of a compaction under way. */
  #finishCompaction(): void {
    while (!this.compactionStep());
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
    const steps = this.hashKVSteps(rev);
    for (;;) {
      const step = steps.next();
      if (step.done) return step.value;
    }
  }

  /**
   * hashKV in steps of HASH_STEP_REVISIONS revisions, so that a member hashing a million keys
   * keeps answering (it held the event loop 1.1-1.3 s at 1M keys). The revisions hashed are the
   * store's when it is called (later writes are past `rev`); a compaction finishes the steps
   * first, as it does a range's scan. A compacted or future revision throws at once.
   */
  hashKVSteps(rev: number): Generator<void, HashKVResult> {
    this.#finishCompaction();
    const compactRev = this.#compactMainRev;
    const currentRev = this.#revision;
    if (rev > 0 && rev <= compactRev) throw Errors.compacted();
    if (rev > 0 && rev > currentRev) throw Errors.futureRev();
    if (rev <= 0) rev = currentRev;
    const job = this.#hashInSteps(rev, compactRev);
    return (function* () {
      while (!job.step()) yield;
      return { hash: job.hash(), revision: currentRev, compactRevision: compactRev };
    })();
  }

  /**
   * etcd's hash over the key bucket up to `rev`, in steps: first which revisions at or below the
   * compact revision a compaction at `rev` keeps (each key's latest at or below `rev`, unless a
   * tombstone; none skipped when no key has one, as etcd), then the CRC over the kept ones.
   */
  #hashInSteps(rev: number, compactRev: number): PendingScan & { hash(): number } {
    const log = this.#log;
    const open = this.#openScans;
    const end = log.lastAtOrBefore(rev) + 1;
    const compacted = log.lastAtOrBefore(compactRev) + 1;
    const kept = new Uint8Array(compacted);
    let anyKept = false;
    let hashing = false;
    let finished = false;
    let e = 0;
    const crc = new Crc32c().update(KEY_BUCKET);
    const read = this.#revisions?.sequentialReader();
    const w = new ByteWriter(4096);
    const revBytes = new Uint8Array(REV_BYTES_LEN + 1);
    const finish = () => {
      finished = true;
      open.delete(job);
    };
    const job = {
      step: (): boolean => {
        if (finished) return true;
        const stop = Math.min(end, e + HASH_STEP_REVISIONS);
        if (!hashing) {
          for (; e < stop; e++) {
            if (log.tombstone(e)) continue;
            const h = log.record(e).history;
            const i = lastAtOrBefore(log, h, rev);
            if (i < 0 || h[i] !== e) continue;
            anyKept = true;
            if (e < compacted) kept[e] = 1;
          }
          if (e === end) {
            hashing = true;
            e = 0;
          }
          return false;
        }
        for (; e < stop; e++) {
          if (e < compacted && anyKept && kept[e] === 0) continue;
          const dead = log.tombstone(e);
          writeRevisionKey(revBytes, log.main(e), log.sub(e), dead);
          crc.update(dead ? revBytes : revBytes.subarray(0, REV_BYTES_LEN));
          crc.update(this.#recordData(e, w, read));
        }
        if (e === end) finish();
        return finished;
      },
      done: () => finished,
      cancel: finish,
      hash: () => crc.digest(),
    };
    open.add(job);
    return job;
  }

  /** Approximate size in bytes of live data + history (a store in memory). */
  sizeBytes(): number {
    return this.#bytes;
  }

  /**
   * What the store occupies, and of that what its revisions use: the revision storage's own
   * bytes (segments, and the records not yet compacted away) when there is one, else the
   * in-memory estimate for both. Status's db_size and db_size_in_use.
   */
  storageSizes(): { totalBytes: number; liveBytes: number } {
    if (this.#revisions === null) return { totalBytes: this.#bytes, liveBytes: this.#bytes };
    return this.#revisions.sizes;
  }

  /**
   * Events of every stored revision with fromRev <= main revision <= toRev (toRev defaults to
   * the current revision), in revision order: what a watcher catching up needs. Revisions at or
   * below the compact revision may be gone: check compactRevision first, as etcd's watch does.
   */
  eventsBetween(fromRev: number, toRev: number = this.#revision): Event[] {
    const log = this.#log;
    const out: Event[] = [];
    for (let i = log.lastAtOrBefore(fromRev - 1) + 1; i < log.length; i++) {
      if (log.main(i) > toRev) break;
      out.push(
        log.tombstone(i)
          ? freezeEvent(Event_EventType.DELETE, tombstoneKv(log, i))
          : freezeEvent(Event_EventType.PUT, this.#kvOf(i)),
      );
    }
    return out;
  }

  /**
   * One page of a key tree's level (the web console's Level call): the keys that exist now
   * directly under `prefix`, and its folders (`prefix` + text + `separator`, -1: none), in key
   * order, each folder once: the scan jumps past a folder's keys, so a page costs its entries, not
   * the keys under them. Starts at `from` (empty: at the prefix); `next` is where the following
   * page starts, null when nothing follows.
   */
  level(
    prefix: Uint8Array,
    separator: number,
    from: Uint8Array,
    limit: number,
  ): { entries: { path: Uint8Array; folder: boolean }[]; next: Uint8Array | null } {
    const endBytes = prefixRangeEnd(prefix);
    const end = prefix.length === 0 ? undefined : endId(endBytes);
    const entries: { path: Uint8Array; folder: boolean }[] = [];
    // A page starts inside the prefix whatever `from` says: the caller was allowed that range only.
    let start: string | undefined = keyId(compareBytes(from, prefix) > 0 ? from : prefix);
    // Where the scan goes on after the entry just listed (undefined: past the key space's end).
    const after = (path: Uint8Array, folder: boolean): string | undefined => {
      if (!folder) return keyId(path) + "\0";
      const e = prefixRangeEnd(path);
      return e.length === 1 && e[0] === 0 ? undefined : keyId(e);
    };
    while (start !== undefined) {
      let found: { path: Uint8Array; folder: boolean } | undefined;
      this.#index.scan(start, end, (record) => {
        if (record.live() < 0) return; // deleted (its history not compacted yet): not listed
        const key = record.key;
        const at = separator < 0 ? -1 : key.indexOf(separator, prefix.length);
        found = at < 0
          ? { path: key, folder: false }
          : { path: key.slice(0, at + 1), folder: true };
        return false;
      });
      if (found === undefined) return { entries, next: null };
      if (entries.length === limit) return { entries, next: idBytes(start) };
      entries.push(found);
      start = after(found.path, found.folder);
    }
    return { entries, next: null };
  }

  /**
   * The stored revisions of one key, newest first: PUT events with their KeyValue, DELETE events
   * for tombstones. Only revisions below `before` (0: all) and at most `limit` of them (0: all);
   * `more` tells that older ones are stored. A compaction in progress may not have dropped every
   * revision it removes yet: those at or below the compact revision are left out except the
   * newest, when it is a put (the value the key had at the compaction, which etcd keeps too).
   */
  keyHistory(key: Uint8Array, before = 0, limit = 0): { events: Event[]; more: boolean } {
    const events: Event[] = [];
    const record = this.#index.get(keyId(key));
    if (record === undefined) return { events, more: false };
    const log = this.#log;
    const h = record.history;
    for (let j = h.length - 1; j >= 0; j--) {
      const i = h[j];
      const main = log.main(i);
      if (before > 0 && main >= before) continue;
      if (limit > 0 && events.length === limit) return { events, more: true };
      const kept = main > this.#compactMainRev;
      if (kept || !log.tombstone(i)) {
        events.push(
          log.tombstone(i)
            ? freezeEvent(Event_EventType.DELETE, tombstoneKv(log, i))
            : freezeEvent(Event_EventType.PUT, this.#kvOf(i)),
        );
      }
      if (!kept) break;
    }
    return { events, more: false };
  }

  /**
   * Every stored revision as of now, without copying: later writes append past the view's end
   * and a compaction replaces the log array, so the captured array and length stay as they are.
   */
  view(): MvccView {
    this.#finishCompaction();
    const log = this.#log;
    const revisions = this.#revisions;
    const release = revisions?.hold();
    // The data of an entry is read when asked for, ahead in blocks (a view is read in revision
    // order, which is mostly file order): each entry's data is used before the next is read.
    let reader: ((location: number, size: number) => Uint8Array) | null = null;
    const readData = (location: number, size: number): Uint8Array => {
      reader ??= revisions!.sequentialReader();
      return reader(location, size);
    };
    const length = log.length;
    return {
      close: () => release?.(),
      revision: this.#revision,
      compactMainRev: this.#compactMainRev,
      length,
      storedColumns: (into?: ColumnArrays) => storedColumns(log, length, revisions, into),
      entry: (i: number): SnapshotEntry => {
        const kv = log.kv(i);
        // A record on disk goes out as it is stored: neither decoded nor encoded again, and its
        // size is known without reading it.
        if (kv === undefined && log.location(i) >= 0) {
          const dataSize = revisions!.dataSize(log.main(i), log.sub(i), log.size(i));
          return new StoredEntry(log, i, dataSize, readData);
        }
        const tombstone = log.tombstone(i);
        return {
          main: log.main(i),
          sub: log.sub(i),
          tombstone,
          kv: tombstone ? tombstoneKv(log, i) : kv!,
        };
      },
    };
  }

  /** Full state, including history, tombstones, revision and compact revision. */
  encodeSnapshot(): Uint8Array {
    const view = this.view();
    try {
      return encodeView(view);
    } finally {
      view.close?.();
    }
  }

  /**
   * The store as a checkpoint (ADR 0010, phase 3): its revision, compact revision and, for every
   * stored revision, the key, create revision, version, lease and where its record is in the
   * revision storage, but no value. With the storage's records it is the whole state, in a
   * fraction of a full snapshot's size and read from nothing. What is captured is this moment's
   * set of revisions (later writes and compactions do not change it); the encoding runs in steps
   * (the caller may let other work run between them) into one buffer after `frame(size)` bytes.
   * Every location written was appended before the steps end: sync the storage after them.
   *
   *   "DMVC" 2 | uvarint revision | uvarint (compactMainRev + 1) | u8 compact-rev-incomplete |
   *   uvarint count | count x ( uvarint main | uvarint sub | u8 flags (1 tombstone, 2 lease) |
   *   uvarint key length | key | put: uvarint create revision | uvarint version | lease: int64 |
   *   uvarint location | uvarint size )
   */
  checkpoint(frame: (size: number) => Uint8Array): Generator<void, Uint8Array> {
    this.#finishCompaction();
    assert(this.#revisions !== null, "a checkpoint needs revision storage");
    return checkpointSteps(
      this.#log,
      this.#log.length,
      this.#revision,
      this.#compactMainRev,
      this.#compactRevIncomplete,
      frame,
    );
  }

  /**
   * Whether snapshot bytes (in memory, or where a source holds them) are a checkpoint (see
   * checkpoint()) rather than a full snapshot.
   */
  static isCheckpoint(input: Uint8Array | ByteSource): boolean {
    let bytes: Uint8Array;
    if (input instanceof Uint8Array) {
      bytes = input;
    } else {
      bytes = new Uint8Array(Math.min(5, input.size));
      input.readAt(bytes, 0);
    }
    return bytes.length > 4 && CHECKPOINT_MAGIC.every((b, i) => bytes[i] === b) &&
      bytes[4] === CHECKPOINT_VERSION;
  }

  /**
   * Restores a store from checkpoint() bytes over the revision storage that holds its records
   * (each one adopted: a missing record throws). Live keys with a lease are re-attached through
   * `leases` (restore the lessor first). In steps, like restoreSteps.
   */
  static *restoreCheckpointSteps(
    bytes: Uint8Array,
    leases: LeaseHooks | undefined,
    options: MvccStoreOptions,
  ): Generator<void, MvccStore> {
    const revisions = options.revisions;
    assert(revisions?.adopt !== undefined, "a checkpoint is restored over its revision storage");
    const store = new MvccStore(leases, options);
    const r = new ByteReader(bytes);
    assert(MvccStore.isCheckpoint(bytes), "not an mvcc checkpoint");
    r.pos = 5;
    const revision = r.uvarint();
    const compactMainRev = r.uvarint() - 1;
    const incomplete = r.byte() === 1;
    const count = r.uvarint();
    const leaseOf = new Map<KeyRecord, bigint>();
    let prevMain = 0;
    let prevSub = -1;
    for (let i = 0; i < count; i++) {
      const main = r.uvarint();
      const sub = r.uvarint();
      assert(
        main > prevMain || (main === prevMain && sub > prevSub),
        "checkpoint revisions are strictly increasing",
      );
      assert(main <= revision, "checkpoint entry beyond its revision");
      prevMain = main;
      prevSub = sub;
      const flags = r.byte();
      const tombstone = (flags & CHECKPOINT_TOMBSTONE) !== 0;
      const keyLength = r.uvarint();
      assert(r.pos + keyLength <= bytes.length, "checkpoint truncated");
      const id = keyId(bytes.subarray(r.pos, r.pos + keyLength));
      r.pos += keyLength;
      let createRevision = 0;
      let version = 0;
      let lease = NO_LEASE;
      if (!tombstone) {
        createRevision = r.uvarint();
        version = r.uvarint();
        if ((flags & CHECKPOINT_LEASE) !== 0) lease = r.int64();
      }
      const location = r.uvarint();
      const size = r.uvarint();
      revisions.adopt(location, size);
      const record = store.#recordFor(id, undefined);
      keepLease(leaseOf, record, tombstone, lease);
      store.#add(
        main,
        sub,
        tombstone,
        record,
        createRevision,
        version,
        lease,
        location,
        size,
        undefined,
      );
      if (i % CHECKPOINT_STEP_ENTRIES === CHECKPOINT_STEP_ENTRIES - 1) yield;
    }
    assert(r.pos === bytes.length, "trailing bytes after an mvcc checkpoint");
    store.#finishRestore(revision, compactMainRev, incomplete, leaseOf);
    return store;
  }

  /**
   * Whether rewriting the revision storage would give space back: some closed segment is mostly
   * garbage (compacted revisions, or a replaced store's).
   */
  get reclaimable(): boolean {
    return this.#revisions !== null &&
      this.#revisions.sparseSegments(SPARSE_SEGMENT_FRACTION).length > 0;
  }

  /**
   * The defragment that never stops the world: the live revisions of mostly-garbage segments are
   * appended again (in steps; the caller may let other work run between them, writes and reads
   * included), then those segments are removed, at once or, while a view is open, when the last
   * one closes. Returns how many segments were rewritten.
   */
  *reclaimSteps(): Generator<void, number> {
    return yield* this.#rewriteSteps(SPARSE_SEGMENT_FRACTION);
  }

  /**
   * Maintenance.Defragment: reclaimSteps for every segment with any garbage, the one appended to
   * included (it is closed first). Once the steps end and no view is open, the revision storage
   * holds only live records (db_size = db_size_in_use).
   */
  *defragmentSteps(): Generator<void, number> {
    this.#revisions?.seal();
    return yield* this.#rewriteSteps(1);
  }

  *#rewriteSteps(fraction: number): Generator<void, number> {
    this.#finishCompaction();
    const revisions = this.#revisions;
    if (revisions === null) return 0;
    const sparse = new Set(revisions.sparseSegments(fraction));
    if (sparse.size === 0) return 0;
    // Revisions appended later go to the head segment, never a sparse one. One compacted
    // meanwhile has released its record (wherever it is by then); when a compaction rebuilt the
    // columns between two steps, the walk goes on in the new ones after the last revision seen.
    let log = this.#log;
    for (let i = 0; i < log.length; i++) {
      const location = log.location(i);
      if (!log.compacted(i) && location >= 0 && sparse.has(segmentOf(location))) {
        const size = log.size(i);
        const data = revisions.read(location, size);
        const at = revisions.append(log.main(i), log.sub(i), log.tombstone(i), data);
        revisions.release(location, size);
        log.relocate(i, at.location, at.size);
        // Already copied by a compaction's rebuild under way: moved there too when it ends.
        const rebuild = this.#compaction?.rebuild;
        if (rebuild && log === this.#log && i < rebuild.next) rebuild.relocated.push(i);
      }
      if (i % RECLAIM_STEP_ENTRIES === RECLAIM_STEP_ENTRIES - 1) {
        const main = log.main(i);
        const sub = log.sub(i);
        yield;
        if (this.#log !== log) {
          log = this.#log;
          i = log.lowerBound(main, sub + 1) - 1;
        }
      }
    }
    // What else these segments held was released: a replaced store's records, compacted ones.
    for (const sequence of sparse) revisions.removeSegment(sequence);
    return sparse.size;
  }

  /**
   * Releases every record of this store from its revision storage (the store was replaced by a
   * restored one). Views already taken stay readable: released records are not reused.
   */
  retire(): void {
    this.#finishCompaction();
    const revisions = this.#revisions;
    if (revisions === null) return;
    const log = this.#log;
    for (let i = 0; i < log.length; i++) {
      const location = log.location(i);
      if (location >= 0) revisions.release(location, log.size(i));
    }
  }

  /**
   * Restores a store from encodeSnapshot() bytes. Live keys with a lease are re-attached
   * through `leases` (in key order), so restore the lessor first, as etcd does. With revision
   * storage, the records are appended to it as they are read (the snapshot's bytes are not kept).
   */
  static decodeSnapshot(
    bytes: Uint8Array | ByteSource,
    leases?: LeaseHooks,
    options?: MvccStoreOptions,
  ): MvccStore {
    const steps = MvccStore.restoreSteps(bytes, leases, options);
    for (;;) {
      const step = steps.next();
      if (step.done) return step.value;
    }
  }

  /**
   * decodeSnapshot in steps of a few thousand revisions: between them the caller lets the
   * revision storage write what was appended (a large store is not buffered whole). From a
   * ByteSource (a snapshot file) the encoding is read a window at a time, never whole.
   */
  static *restoreSteps(
    bytes: Uint8Array | ByteSource,
    leases?: LeaseHooks,
    options?: MvccStoreOptions,
  ): Generator<void, MvccStore> {
    const store = new MvccStore(leases, options);
    const revisions = store.#revisions;
    const reader = new SnapshotReader(bytes);
    /** The lease of each record's latest put, when not 0 (tombstones clear it). */
    const leaseOf = new Map<KeyRecord, bigint>();
    let prevMain = 0;
    let prevSub = -1;
    const visit = (main: number, sub: number, tombstone: boolean, data: Uint8Array) => {
      assert(
        main > prevMain || (main === prevMain && sub > prevSub),
        "snapshot revisions are strictly increasing",
      );
      assert(main <= reader.revision, "snapshot entry beyond the snapshot revision");
      prevMain = main;
      prevSub = sub;
      const r = new ByteReader(data);
      const kv = readKeyValue(r, data.length, revisions ? viewOf : (v) => store.#arena.copy(v));
      const id = keyId(kv.key);
      // A store on disk keeps the id only: a key array costs ~140 bytes more per key.
      const record = store.#recordFor(id, revisions ? undefined : kv.key);
      assert(tombstone || kv.modRevision === BigInt(main), "snapshot kv mod_revision");
      let location = -1;
      let size = 0;
      let inMemory: KeyValue | undefined = undefined;
      if (revisions) {
        const at = revisions.append(main, sub, tombstone, data);
        location = at.location;
        size = at.size;
      } else if (!tombstone) {
        kv.key = record.key; // one key array per record
        inMemory = Object.freeze(kv);
      }
      const lease = tombstone ? NO_LEASE : kv.lease;
      keepLease(leaseOf, record, tombstone, lease);
      store.#add(
        main,
        sub,
        tombstone,
        record,
        tombstone ? 0 : Number(kv.createRevision),
        tombstone ? 0 : Number(kv.version),
        lease,
        location,
        size,
        inMemory,
      );
    };
    while (reader.next(RESTORE_STEP_ENTRIES, visit)) yield;
    store.#finishRestore(
      reader.revision,
      reader.compactMainRev,
      reader.compactMainRev > 0,
      leaseOf,
    );
    return store;
  }

  /** A restore's record of the key `id`, made on first sight. */
  #recordFor(id: string, key: Uint8Array | undefined): KeyRecord {
    const records = this.#restoring ??= new IdMap();
    let record = records.get(id);
    if (!record) {
      record = key === undefined ? new KeyRecord(id) : new KeptKeyRecord(id, key);
      records.set(id, record);
    }
    return record;
  }

  /**
   * Appends a revision to the columns and to its key, and counts it; returns its position. A
   * put's KeyValue is given only to a store in memory, which keeps it: on disk, a put is read back
   * (and cached) when it is first asked for.
   */
  #add(
    main: number,
    sub: number,
    tombstone: boolean,
    record: KeyRecord,
    createRevision: number,
    version: number,
    lease: bigint,
    location: number,
    size: number,
    kv: KeyValue | undefined,
  ): number {
    const log = this.#log;
    const e = log.push(
      main,
      sub,
      tombstone ? TOMBSTONE : 0,
      record,
      createRevision,
      version,
      lease,
      location,
      size,
    );
    if (kv !== undefined) {
      assert(this.#revisions === null, "a store on disk keeps no put's KeyValue when it writes it");
      log.setKv(e, kv);
    }
    const live = record.push(log, e);
    this.#liveKeys += live;
    // The index counts live keys chunk by chunk (a restore builds its index at the end).
    if (live !== 0 && this.#restoring === null) this.#index.reweigh(record.id, live);
    this.#bytes += this.#entryBytes(e);
    return e;
  }

  /** Ends a restore: the revisions, the key index, and live keys attached to their leases again. */
  #finishRestore(
    revision: number,
    compactMainRev: number,
    compactRevIncomplete: boolean,
    leaseOf: Map<KeyRecord, bigint>,
  ): void {
    this.#revision = revision;
    this.#compactMainRev = compactMainRev;
    this.#compactRevIncomplete = compactRevIncomplete;
    const sorted = [...(this.#restoring?.values() ?? [])].sort((a, b) =>
      a.id < b.id ? -1 : a.id > b.id ? 1 : 0
    );
    this.#index = SortedRecords.fromSorted(sorted, liveWeight);
    this.#restoring = null;
    for (const record of sorted) {
      const lease = leaseOf.get(record);
      if (lease !== undefined && record.live() >= 0) {
        this.#leases.attach(lease, record.key);
      }
    }
  }

  // ---- the write transaction and its steps (mvcc/kvstore_txn.go) ----

  /** WriteTxn over this store: a WriteBatch plus the store it writes to. */
  static readonly #Txn = class implements WriteTxn, WriteBatch {
    changes = 0;
    readonly events: Event[] = [];
    readonly prevKvs: PrevValues;
    readonly beginRevision: number;
    readonly #store: MvccStore;
    #ended = false;

    constructor(store: MvccStore) {
      this.beginRevision = store.#revision;
      this.#store = store;
      this.prevKvs = new PrevValues(store.#kvAt);
    }

    get revision(): number {
      return this.changes > 0 ? this.beginRevision + 1 : this.beginRevision;
    }

    get firstRevision(): number {
      return this.#store.#compactMainRev;
    }

    range(key: Uint8Array, end: Uint8Array, options: RangeOptions = NO_RANGE_OPTIONS): RangeResult {
      return this.#store.#range(key, end, this.revision, options, false);
    }

    put(key: Uint8Array, value: Uint8Array, lease: bigint, prevKv = true): KeyValue | undefined {
      assert(!this.#ended, "put after the write transaction ended");
      return this.#store.#put(this, key, value, lease, prevKv);
    }

    deleteRange(key: Uint8Array, end: Uint8Array): KeyValue[] {
      assert(!this.#ended, "delete after the write transaction ended");
      return this.#store.#deleteRange(this, key, end);
    }

    end(): void {
      assert(!this.#ended, "write transaction ended twice");
      this.#ended = true;
      this.#store.#commit(this);
    }
  };

  #commit(tx: WriteBatch): void {
    assert(tx.beginRevision === this.#revision, "one write at a time");
    if (tx.changes > 0) this.#revision = tx.beginRevision + 1;
  }

  /** The KeyValue of a put entry: in memory, or read back from the revision storage and cached. */
  #kvOf(e: number): KeyValue {
    const log = this.#log;
    const cached = log.kv(e);
    if (cached !== undefined) return cached;
    const size = log.size(e);
    // Read into the arena: the cache keeps the KeyValue, whose arrays are views of the record.
    const data = this.#revisions!.read(log.location(e), size, this.#arena.alloc(size));
    const kv = readKeyValue(new ByteReader(data), data.length, viewOf);
    Object.freeze(kv);
    this.#cache(e, kv);
    return kv;
  }

  /** A KeyValue read back is now in memory; the oldest cached ones leave once over the budget. */
  #cache(e: number, kv: KeyValue): void {
    const log = this.#log;
    log.setKv(e, kv);
    this.#cached.push(e);
    this.#cacheBytes += cachedBytes(kv);
    while (this.#cacheBytes > this.#cacheLimit && this.#cacheHead < this.#cached.length) {
      const old = this.#cached[this.#cacheHead++];
      this.#cacheBytes -= cachedBytes(log.kv(old)!);
      log.setKv(old, undefined);
    }
    if (this.#cacheHead > 4096 && this.#cacheHead * 2 > this.#cached.length) {
      this.#cached = this.#cached.slice(this.#cacheHead);
      this.#cacheHead = 0;
    }
  }

  /** The record's bytes as etcd's key bucket holds them (written into `w` when in memory). */
  #recordData(
    e: number,
    w: ByteWriter,
    read?: (location: number, size: number) => Uint8Array,
  ): Uint8Array {
    const log = this.#log;
    const location = log.location(e);
    if (location >= 0) return read!(location, log.size(e));
    w.reset();
    if (log.tombstone(e)) {
      // etcd stores a tombstone as a KeyValue holding only the key.
      w.byte(0x0a);
      w.idBytes(log.record(e).id);
    } else {
      writeKeyValue(w, log.kv(e) ?? ZERO_KV);
    }
    return w.view();
  }

  #entryBytes(e: number): number {
    const log = this.#log;
    if (log.location(e) >= 0) return ENTRY_OVERHEAD_BYTES + log.size(e);
    const kv = log.kv(e);
    return ENTRY_OVERHEAD_BYTES + log.record(e).id.length + (kv ? kv.value.length : 0);
  }

  /** rangeKeys: checks the revision against curRev (the view's) and collects. */
  #range(
    key: Uint8Array,
    end: Uint8Array,
    curRev: number,
    options: RangeOptions,
    asEntries: boolean,
  ): RangeResult {
    let rev = options.revision ?? 0;
    if (rev > curRev) throw Errors.futureRev();
    if (rev <= 0) rev = curRev;
    if (rev < this.#compactMainRev) throw Errors.compacted();
    const limit = options.limit ?? 0;
    const countOnly = options.countOnly ?? false;
    const log = this.#log;
    const kvs: KeyValue[] = [];
    if (end.length === 0) {
      const record = this.#index.get(keyId(key));
      const e = record === undefined ? -1 : record.at(log, rev);
      if (e < 0) return { kvs, count: 0, revision: curRev };
      if (!countOnly) kvs.push(options.keysOnly ? keyOnlyKv(log, e) : this.#kvOf(e));
      return { kvs, count: 1, revision: curRev };
    }
    if (asEntries && !countOnly) {
      const positions: number[] = [];
      let count: number;
      let scan: PendingScan | null = null;
      if (limit <= 0 && rev === curRev) {
        // Every key of the range as it is now: the index knows how many, and they are found in
        // steps (RangeEntries.scanned) as of this revision.
        const start = keyId(key);
        const stop = endId(end);
        count = this.#index.weightBetween(start, stop);
        scan = this.#scanInSteps(start, stop, rev, positions);
      } else {
        count = this.#scan(key, end, rev, curRev, limit, false, positions).count;
      }
      const keysOnly = options.keysOnly === true;
      const entries = new ColumnEntries(log, positions, keysOnly, this.#revisions, scan);
      return { kvs, count, revision: curRev, entries };
    }
    const read = options.keysOnly ? (e: number) => keyOnlyKv(log, e) : (e: number) => this.#kvOf(e);
    const found = this.#scan(key, end, rev, curRev, limit, countOnly, kvs, read);
    return { kvs, count: found.count, revision: curRev };
  }

  /**
   * Counts the live keys of [key, end) at `rev`; up to `limit` of them in key order (0 or less:
   * all; none when countOnly) go into `kvs`, as `read` makes them of their positions (or as
   * positions).
   */
  #scan<T>(
    key: Uint8Array,
    end: Uint8Array,
    rev: number,
    curRev: number,
    limit: number,
    countOnly: boolean,
    kvs: T[],
    read: (e: number) => T = asPosition as (e: number) => T,
  ): { count: number } {
    const log = this.#log;
    const start = keyId(key);
    const stop = endId(end);
    if (countOnly || limit > 0) {
      // The index knows how many keys exist now in each chunk of it: the count is summed chunk by
      // chunk (where etcd's walks every key of the range: a paginated list pays for the whole
      // range on every page there), and only the first `limit` keys are visited. At an older
      // revision (a paginated list's later pages ask for the first page's) the count is corrected
      // by the keys written since, when those are fewer than the keys there are to walk.
      const since = rev === curRev ? log.length : log.lastAtOrBefore(rev) + 1;
      const now = this.#index.weightBetween(start, stop);
      if (log.length - since <= Math.max(1024, now)) {
        if (!countOnly) {
          this.#index.scan(start, stop, (record) => {
            const e = rev === curRev ? record.live() : record.at(log, rev);
            if (e < 0) return;
            kvs.push(read(e));
            return kvs.length < limit;
          });
        }
        return { count: now + this.#countChange(since, rev, start, stop) };
      }
    }
    let count = 0;
    this.#index.scan(start, stop, (record) => {
      const e = record.at(log, rev);
      if (e < 0) return;
      count++;
      if (!countOnly && (limit <= 0 || kvs.length < limit)) kvs.push(read(e));
    });
    return { count };
  }

  /**
   * How many more keys of [start, stop) existed at `rev` than exist now, from the revisions
   * after it (positions `since` onwards): each key written since counts once, +1 if it existed
   * then, -1 if it exists now.
   */
  #countChange(since: number, rev: number, start: string, stop: string | undefined): number {
    const log = this.#log;
    if (since === log.length) return 0;
    const seen = new Set<KeyRecord>();
    let change = 0;
    for (let i = since; i < log.length; i++) {
      const record = log.record(i);
      if (seen.has(record)) continue;
      seen.add(record);
      if (record.id < start || (stop !== undefined && record.id >= stop)) continue;
      change += (record.at(log, rev) >= 0 ? 1 : 0) - liveWeight(record);
    }
    return change;
  }

  /** storeTxnWrite.put: a new revision of key; returns its previous live value. */
  #put(
    tx: WriteBatch,
    key: Uint8Array,
    value: Uint8Array,
    lease: bigint,
    prevKv: boolean,
  ): KeyValue | undefined {
    const id = keyId(key);
    let record = this.#index.get(id);
    const log = this.#log;
    // What the previous revision's KeyValue would give is in the columns: nothing is read.
    const prev = record === undefined ? -1 : record.live();
    const rev = tx.beginRevision + 1;
    const inMemory = this.#revisions === null;
    if (!record) {
      record = inMemory ? new KeptKeyRecord(id, this.#arena.copy(key)) : new KeyRecord(id);
      this.#index.insert(record);
    }
    const modRevision = BigInt(rev);
    const kv = create(KeyValueSchema);
    if (inMemory) {
      kv.key = record.key;
      kv.value = this.#arena.copy(value);
    } else {
      // Key and value in one slab allocation for what the event holds (a slow watcher may hold
      // it a while): a buffer of their own would be an ArrayBuffer per put, external memory the
      // collector counts, freed one by one in a full collection's pause once it got old.
      const both = this.#arena.alloc(key.length + value.length);
      both.set(key);
      both.set(value, key.length);
      kv.key = both.subarray(0, key.length);
      kv.value = both.subarray(key.length);
    }
    const prevKvOut = prevKv && prev >= 0 ? this.#kvOf(prev) : undefined;
    const prevLease = prev >= 0 ? log.lease(prev) : NO_LEASE;
    kv.createRevision = prev >= 0 ? BigInt(log.createRevision(prev)) : modRevision;
    kv.modRevision = modRevision;
    kv.version = prev >= 0 ? BigInt(log.version(prev) + 1) : 1n;
    kv.lease = lease;
    Object.freeze(kv);
    this.#append(tx, record, Event_EventType.PUT, kv);
    if (prevLease !== NO_LEASE) this.#leases.detach(prevLease, kv.key);
    if (lease !== 0n) this.#leases.attach(lease, kv.key);
    return prevKvOut;
  }

  /**
   * The KeyValue of the put at position e of `log` (the store's columns, or ones it had while a
   * write was applied): cached only when they are the store's.
   */
  readonly #kvAt = (log: RevisionColumns, e: number): KeyValue =>
    log === this.#log ? this.#kvOf(e) : uncachedKv(this.#revisions, log, e);

  /** storeTxnWrite.deleteRange: tombstones for the live keys; returns their last values. */
  #deleteRange(tx: WriteBatch, key: Uint8Array, end: Uint8Array): KeyValue[] {
    const readRev = tx.changes > 0 ? tx.beginRevision + 1 : tx.beginRevision;
    const records: KeyRecord[] = [];
    const prevKvs: KeyValue[] = [];
    const log = this.#log;
    const collect = (record: KeyRecord) => {
      const e = record.at(log, readRev);
      if (e < 0) return;
      records.push(record);
      prevKvs.push(this.#kvOf(e));
    };
    if (end.length === 0) {
      const record = this.#index.get(keyId(key));
      if (record) collect(record);
    } else {
      this.#index.scan(keyId(key), endId(end), collect);
    }
    const rev = BigInt(tx.beginRevision + 1);
    for (let i = 0; i < records.length; i++) {
      const record = records[i];
      const tomb = Object.freeze(create(KeyValueSchema, { key: record.key, modRevision: rev }));
      this.#append(tx, record, Event_EventType.DELETE, tomb);
      const lease = prevKvs[i].lease;
      if (lease !== 0n) this.#leases.detach(lease, tomb.key);
    }
    return prevKvs;
  }

  #append(tx: WriteBatch, record: KeyRecord, type: Event_EventType, kv: KeyValue): void {
    const tombstone = type === Event_EventType.DELETE;
    const main = tx.beginRevision + 1;
    const sub = tx.changes;
    const log = this.#log;
    const prev = record.at(log, tx.beginRevision);
    tx.prevKvs.add(log, prev);
    let location = -1;
    let size = 0;
    const revisions = this.#revisions;
    if (revisions !== null) {
      const w = this.#encoder;
      w.reset();
      if (tombstone) {
        w.byte(0x0a);
        w.bytes(kv.key);
      } else {
        writeKeyValue(w, kv);
      }
      const at = revisions.append(main, sub, tombstone, w.view());
      location = at.location;
      size = at.size;
    }
    this.#add(
      main,
      sub,
      tombstone,
      record,
      tombstone ? 0 : Number(kv.createRevision),
      tombstone ? 0 : Number(kv.version),
      tombstone ? NO_LEASE : kv.lease,
      location,
      size,
      // Not cached when written: a put's KeyValue in a cache of recent writes outlived the young
      // generation and then died in the old one, a quarter of what a write promoted (measured). The
      // event takes it to watchers; a read finds it in the revision log (and caches it then).
      tombstone || revisions !== null ? undefined : kv,
    );
    tx.changes++;
    tx.events.push(freezeEvent(type, kv));
  }
}

/** mkGteRange: "\0" means no upper bound. */
function endId(rangeEnd: Uint8Array): string | undefined {
  return rangeEnd.length === 1 && rangeEnd[0] === 0 ? undefined : keyId(rangeEnd);
}

/** A key's weight in the index: 1 when it exists now, else 0 (see SortedRecords). */
function liveWeight(record: KeyRecord): number {
  return record.live() >= 0 ? 1 : 0;
}

function freezeEvent(type: Event_EventType, kv: KeyValue): Event {
  return Object.freeze(create(EventSchema, { type, kv }));
}

/** What a DELETE event carries: the key and the tombstone's revision. */
/** MvccStore.checkpoint's encoding: sizes (and locations) first, then the bytes. */
function* checkpointSteps(
  log: RevisionColumns,
  length: number,
  revision: number,
  compactMainRev: number,
  incomplete: boolean,
  frame: (size: number) => Uint8Array,
): Generator<void, Uint8Array> {
  // Locations as of the sizing pass (a rewrite may move a record meanwhile: either place is
  // kept until a later checkpoint, but the size planned must be the size written).
  const locations = new Float64Array(length);
  let size = 5 + uvarintSize(revision) + uvarintSize(compactMainRev + 1) + 1 + uvarintSize(length);
  for (let i = 0; i < length; i++) {
    const location = log.location(i);
    assert(location >= 0, "a checkpoint's revisions are all in revision storage");
    locations[i] = location;
    const keyLength = log.record(i).id.length;
    size += uvarintSize(log.main(i)) + uvarintSize(log.sub(i)) + 1 + uvarintSize(keyLength) +
      keyLength;
    if (!log.tombstone(i)) {
      size += uvarintSize(log.createRevision(i)) + uvarintSize(log.version(i));
      const lease = log.lease(i);
      if (lease !== NO_LEASE) size += int64Size(lease);
    }
    size += uvarintSize(location) + uvarintSize(log.size(i));
    if (i % CHECKPOINT_STEP_ENTRIES === CHECKPOINT_STEP_ENTRIES - 1) yield;
  }
  const before = frame(size);
  const out = new Uint8Array(before.length + size);
  out.set(before);
  const w = new CheckpointWriter(out, before.length);
  for (const b of CHECKPOINT_MAGIC) w.byte(b);
  w.byte(CHECKPOINT_VERSION);
  w.uvarint(revision);
  w.uvarint(compactMainRev + 1);
  w.byte(incomplete ? 1 : 0);
  w.uvarint(length);
  for (let i = 0; i < length; i++) {
    const id = log.record(i).id;
    w.uvarint(log.main(i));
    w.uvarint(log.sub(i));
    const tombstone = log.tombstone(i);
    const lease = tombstone ? NO_LEASE : log.lease(i);
    const leased = lease !== NO_LEASE;
    w.byte((tombstone ? CHECKPOINT_TOMBSTONE : 0) | (leased ? CHECKPOINT_LEASE : 0));
    w.uvarint(id.length);
    for (let c = 0; c < id.length; c++) w.byte(id.charCodeAt(c));
    if (!tombstone) {
      w.uvarint(log.createRevision(i));
      w.uvarint(log.version(i));
      if (leased) w.int64(lease);
    }
    w.uvarint(locations[i]);
    w.uvarint(log.size(i));
    if (i % CHECKPOINT_STEP_ENTRIES === CHECKPOINT_STEP_ENTRIES - 1) yield;
  }
  assert(w.at === out.length, "checkpoint size planned");
  return out;
}

/** Writes into a buffer sized in advance (ByteWriter wants slack for every varint). */
class CheckpointWriter {
  constructor(readonly out: Uint8Array, public at: number) {}
  byte(b: number): void {
    this.out[this.at++] = b;
  }
  uvarint(n: number): void {
    while (n >= 0x80) {
      this.out[this.at++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.out[this.at++] = n;
  }
  int64(v: bigint): void {
    this.at = putInt64(this.out, this.at, v);
  }
}

function tombstoneKv(log: RevisionColumns, e: number): KeyValue {
  return Object.freeze(
    create(KeyValueSchema, { key: log.record(e).key, modRevision: BigInt(log.main(e)) }),
  );
}

/** A put's KeyValue without its value, from what the index holds (frozen). */
function keyOnlyKv(log: RevisionColumns, e: number): KeyValue {
  const kv = create(KeyValueSchema);
  kv.key = log.kv(e)?.key ?? log.record(e).key;
  kv.createRevision = BigInt(log.createRevision(e));
  kv.modRevision = BigInt(log.main(e));
  kv.version = BigInt(log.version(e));
  kv.lease = log.lease(e);
  return Object.freeze(kv);
}

/** Decoded values keep a view of the record just read (a fresh buffer each read). */
const viewOf = (view: Uint8Array): Uint8Array => view;

/**
 * The KeyValue of the put at position e of `log`: in memory, or read from the revision storage
 * without going into the store's cache (columns other than the store's, or a read of many keys).
 */
function uncachedKv(revisions: RevisionStorage | null, log: RevisionColumns, e: number): KeyValue {
  const kv = log.kv(e);
  if (kv !== undefined) return kv;
  const data = revisions!.read(log.location(e), log.size(e));
  return Object.freeze(readKeyValue(new ByteReader(data), data.length, viewOf));
}

function cachedBytes(kv: KeyValue): number {
  return CACHED_KV_OVERHEAD_BYTES + kv.value.length;
}

/** A restore keeps the lease of each key's latest put in `leaseOf` (a tombstone clears it). */
function keepLease(
  leaseOf: Map<KeyRecord, bigint>,
  record: KeyRecord,
  tombstone: boolean,
  lease: bigint,
): void {
  if (tombstone || lease === NO_LEASE) leaseOf.delete(record);
  else leaseOf.set(record, lease);
}
