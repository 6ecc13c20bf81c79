/**
 * Byte format of an MVCC snapshot: the revision, the compact revision and every stored revision
 * in order. Self-describing enough to reject foreign or truncated input loudly.
 *
 *   "DMVC" version(1) | uvarint revision | uvarint (compactMainRev + 1) | uvarint count |
 *   count x ( uvarint main | uvarint sub | u8 tombstone | uvarint len | KeyValue protobuf )
 *
 * A tombstone's KeyValue carries only the key.
 */
import type { KeyValue } from "../../gen/mvccpb/kv_pb.ts";
import { assert } from "../assert.ts";
import { uvarintSize } from "../varint.ts";
import { ByteReader, ByteWriter, keyValueSize, readKeyValue, writeKeyValue } from "./kv_codec.ts";

/**
 * One stored revision as it travels in a snapshot: its KeyValue decoded (`kv`), or as etcd's key
 * bucket holds it (`data`: the KeyValue's encoding, a tombstone's holding only the key), or both.
 */
export interface SnapshotEntry {
  main: number;
  sub: number;
  tombstone: boolean;
  kv?: KeyValue;
  /** From a store's view: valid until the view's next entry's data is read. */
  data?: Uint8Array;
  /** data's length, when known without reading it. */
  dataSize?: number;
}

/** Size of an entry's KeyValue encoding, as etcd's key bucket holds it. */
export function entryValueSize(e: SnapshotEntry): number {
  if (e.dataSize !== undefined) return e.dataSize;
  const data = e.data; // once: it may be read from disk
  if (data !== undefined) return data.length;
  return e.tombstone ? tombstoneValueSize(e.kv!.key) : keyValueSize(e.kv!);
}

/** Writes an entry's KeyValue encoding, as etcd's key bucket holds it. */
export function writeEntryValue(w: ByteWriter, e: SnapshotEntry): void {
  const data = e.data; // once: it may be read from disk
  if (data !== undefined) {
    w.raw(data);
  } else if (e.tombstone) {
    w.byte(0x0a);
    w.bytes(e.kv!.key);
  } else {
    writeKeyValue(w, e.kv!);
  }
}

/** What a snapshot holds. */
export interface DecodedSnapshot {
  revision: number;
  /** -1 when never compacted, as in etcd. */
  compactMainRev: number;
  entries: SnapshotEntry[];
}

/**
 * Every stored revision of a store at one moment, read in revision order by index: what snapshots
 * (ours and etcd's backend file) are written from while the store goes on changing. Taking one is
 * O(1); it stays valid (and unchanged) however the store changes afterwards.
 */
export interface MvccView {
  readonly revision: number;
  /** -1 when never compacted, as in etcd. */
  readonly compactMainRev: number;
  /** Number of stored revisions. */
  readonly length: number;
  /** Stored revision i (0 <= i < length), in (main, sub) order; its kv is shared and frozen. */
  entry(i: number): SnapshotEntry;
  /**
   * The reader is done: what the view covers may now be reclaimed (a store's view must be closed,
   * or the space its revisions held is never given back).
   */
  close?(): void;
}

/** A view over decoded entries (already in revision order). */
export function viewOfEntries(
  revision: number,
  compactMainRev: number,
  entries: readonly SnapshotEntry[],
): MvccView {
  return { revision, compactMainRev, length: entries.length, entry: (i) => entries[i] };
}

/** A view's entries, in order. */
export function* viewEntries(view: MvccView): Generator<SnapshotEntry> {
  for (let i = 0; i < view.length; i++) yield view.entry(i);
}

/** encodeSnapshotBytes of a view. */
export function encodeView(view: MvccView): Uint8Array {
  return encodeSnapshotBytes(view.revision, view.compactMainRev, viewEntries(view));
}

/** A tombstone's stored KeyValue, as etcd writes it: only the key (field 1). */
export function tombstoneValueSize(key: Uint8Array): number {
  return 1 + uvarintSize(key.length) + key.length;
}

const MAGIC = [0x44, 0x4d, 0x56, 0x43]; // "DMVC"
const FORMAT_VERSION = 1;

/** Bytes of one entry in the format. */
function entrySize(e: SnapshotEntry): number {
  const kvSize = entryValueSize(e);
  return uvarintSize(e.main) + uvarintSize(e.sub) + 1 + uvarintSize(kvSize) + kvSize;
}

function writeEntry(w: ByteWriter, e: SnapshotEntry): void {
  w.uvarint(e.main);
  w.uvarint(e.sub);
  w.byte(e.tombstone ? 1 : 0);
  w.uvarint(entryValueSize(e));
  writeEntryValue(w, e);
}

function writeHeader(w: ByteWriter, revision: number, compactMainRev: number, count: number): void {
  for (const b of MAGIC) w.byte(b);
  w.byte(FORMAT_VERSION);
  w.uvarint(revision);
  w.uvarint(compactMainRev + 1);
  w.uvarint(count);
}

/** Encodes a snapshot; entries must be in revision order. */
export function encodeSnapshotBytes(
  revision: number,
  compactMainRev: number,
  entries: Iterable<SnapshotEntry>,
): Uint8Array {
  const w = new ByteWriter(1 << 16);
  const list = [...entries];
  writeHeader(w, revision, compactMainRev, list.length);
  for (const e of list) writeEntry(w, e);
  return w.finish();
}

/** How often (in entries) the sliced encoder offers its caller a pause. */
const ENCODE_CHECKPOINT_ENTRIES = 2048;

/**
 * encodeView in steps, for large stores: yields every few thousand entries (the caller may let
 * other work run), and writes the encoding straight into one buffer sized in a first pass, with
 * `frame(size)` bytes before it (e.g. a file header and an enclosing message's field header) and
 * `after` bytes after it. Returns the whole buffer; no other copy of the state is made.
 */
export function* encodeViewSteps(
  view: MvccView,
  frame: (size: number) => Uint8Array,
  after: Uint8Array = new Uint8Array(0),
): Generator<void, Uint8Array> {
  const head = new ByteWriter(32);
  writeHeader(head, view.revision, view.compactMainRev, view.length);
  let size = head.length;
  for (let i = 0; i < view.length; i++) {
    size += entrySize(view.entry(i));
    if (i % ENCODE_CHECKPOINT_ENTRIES === ENCODE_CHECKPOINT_ENTRIES - 1) yield;
  }
  const before = frame(size);
  // Slack: the writer wants room for a whole varint before each one, even the last.
  const w = new ByteWriter(before.length + size + after.length + 16);
  w.raw(before);
  w.raw(head.view());
  for (let i = 0; i < view.length; i++) {
    writeEntry(w, view.entry(i));
    if (i % ENCODE_CHECKPOINT_ENTRIES === ENCODE_CHECKPOINT_ENTRIES - 1) yield;
  }
  w.raw(after);
  const out = w.view();
  assert(out.length === before.length + size + after.length, "snapshot size planned");
  assert(out.buffer.byteLength === before.length + size + after.length + 16, "written in place");
  return out;
}

/**
 * Reads encodeSnapshotBytes() output entry by entry, in as many calls as the caller likes: each
 * stored revision comes with its KeyValue's encoding (a view into the bytes). Throws on anything
 * else than the format.
 */
export class SnapshotReader {
  readonly revision: number;
  /** -1 when never compacted, as in etcd. */
  readonly compactMainRev: number;
  /** Number of stored revisions. */
  readonly count: number;
  readonly #bytes: Uint8Array;
  readonly #r: ByteReader;
  #read = 0;

  constructor(bytes: Uint8Array) {
    const r = new ByteReader(bytes);
    for (const b of MAGIC) assert(r.byte() === b, "not an mvcc snapshot");
    assert(r.byte() === FORMAT_VERSION, "unsupported mvcc snapshot version");
    this.revision = r.uvarint();
    this.compactMainRev = r.uvarint() - 1;
    this.count = r.uvarint();
    this.#bytes = bytes;
    this.#r = r;
  }

  /** Visits up to `max` more entries; false once every entry has been visited. */
  next(
    max: number,
    visit: (main: number, sub: number, tombstone: boolean, data: Uint8Array) => void,
  ): boolean {
    const r = this.#r;
    const bytes = this.#bytes;
    for (let n = 0; n < max && this.#read < this.count; n++, this.#read++) {
      const main = r.uvarint();
      const sub = r.uvarint();
      const flag = r.byte();
      assert(flag === 0 || flag === 1, "mvcc snapshot: bad tombstone flag");
      const len = r.uvarint();
      const end = r.pos + len;
      assert(end <= bytes.length, "mvcc snapshot truncated");
      visit(main, sub, flag === 1, bytes.subarray(r.pos, end));
      r.pos = end;
    }
    if (this.#read < this.count) return true;
    assert(r.pos === bytes.length, "trailing bytes after mvcc snapshot");
    return false;
  }
}

/**
 * Decodes encodeSnapshotBytes() output; throws on anything else. Keys and values are copied out
 * (by `copy`, a plain slice by default).
 */
export function decodeSnapshotBytes(
  bytes: Uint8Array,
  copy?: (view: Uint8Array) => Uint8Array,
): DecodedSnapshot {
  const entries: SnapshotEntry[] = [];
  const reader = new SnapshotReader(bytes);
  reader.next(Infinity, (main, sub, tombstone, data) => {
    const kv = readKeyValue(new ByteReader(data), data.length, copy);
    entries.push({ main, sub, tombstone, kv });
  });
  return { revision: reader.revision, compactMainRev: reader.compactMainRev, entries };
}
