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
import type { ByteSource } from "../bytes.ts";
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
  /**
   * The view's revisions as columns, with the files holding their records, for a reader on
   * another thread; in steps. Null when a record is only in memory or the storage's files have no
   * name another thread can open. The files are read only after `flushed` resolves. The columns
   * are copied into `into` when given (each `length` long), else into new shared memory.
   */
  storedColumns?(into?: ColumnArrays): Generator<void, StoredColumns | null>;
}

/** A view's revisions as columns, one entry per revision in (main, sub) order. */
export interface ColumnArrays {
  main: Float64Array;
  sub: Int32Array;
  /** 1 for a tombstone, else 0. */
  tombstone: Uint8Array;
  location: Float64Array;
  size: Uint32Array;
}

/** Columns of `length` revisions in shared memory (zeroed), each in its own buffer. */
export function newColumnArrays(length: number): ColumnArrays {
  const shared = (bytes: number) => new SharedArrayBuffer(length * bytes);
  return {
    main: new Float64Array(shared(8)),
    sub: new Int32Array(shared(4)),
    tombstone: new Uint8Array(shared(1)),
    location: new Float64Array(shared(8)),
    size: new Uint32Array(shared(4)),
  };
}

/**
 * Every revision of a view in (main, sub) order, as copies of the store's columns (typed arrays,
 * transferable), and where each record is in the revision log (core/storage/revision_log.ts):
 * what etcd's key bucket needs, keys and values being the records' data.
 */
export interface StoredColumns extends ColumnArrays {
  /** The revision log's segment files. */
  files: { sequence: number; path: string }[];
  /** Resolves once every record of the view is in its file. */
  flushed: Promise<void>;
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
  return snapshotEntrySize(e.main, e.sub, entryValueSize(e));
}

/** Bytes of an entry of revision (main, sub) whose KeyValue encoding is `valueSize` bytes. */
export function snapshotEntrySize(main: number, sub: number, valueSize: number): number {
  return uvarintSize(main) + uvarintSize(sub) + 1 + uvarintSize(valueSize) + valueSize;
}

function writeEntry(w: ByteWriter, e: SnapshotEntry): void {
  writeSnapshotEntryHead(w, e.main, e.sub, e.tombstone, entryValueSize(e));
  writeEntryValue(w, e);
}

/** An entry's bytes before its KeyValue encoding (of `valueSize` bytes). */
export function writeSnapshotEntryHead(
  w: ByteWriter,
  main: number,
  sub: number,
  tombstone: boolean,
  valueSize: number,
): void {
  w.uvarint(main);
  w.uvarint(sub);
  w.byte(tombstone ? 1 : 0);
  w.uvarint(valueSize);
}

/** The snapshot's bytes before its first entry. */
export function writeSnapshotHeader(
  w: ByteWriter,
  revision: number,
  compactMainRev: number,
  count: number,
): void {
  writeHeader(w, revision, compactMainRev, count);
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

/** Bytes of a view's encoding, summed in steps (sizes come from the index: nothing is read). */
function* planView(view: MvccView): Generator<void, number> {
  const head = new ByteWriter(32);
  writeHeader(head, view.revision, view.compactMainRev, view.length);
  let size = head.length;
  for (let i = 0; i < view.length; i++) {
    size += entrySize(view.entry(i));
    if (i % ENCODE_CHECKPOINT_ENTRIES === ENCODE_CHECKPOINT_ENTRIES - 1) yield;
  }
  return size;
}

/** Writes a view's encoding into writers, a bounded amount at a time, in order. */
class ViewWriter {
  #next = 0;
  #headWritten = false;

  constructor(readonly view: MvccView) {}

  get done(): boolean {
    return this.#headWritten && this.#next === this.view.length;
  }

  /** Writes entries into `w` until it holds at least `bytes` more (or the view is written). */
  write(w: ByteWriter, bytes: number): void {
    const view = this.view;
    const until = w.length + bytes;
    if (!this.#headWritten) {
      writeHeader(w, view.revision, view.compactMainRev, view.length);
      this.#headWritten = true;
    }
    while (this.#next < view.length && w.length < until) writeEntry(w, view.entry(this.#next++));
  }
}

/**
 * encodeView in steps, for large stores: yields every few hundred KiB (the caller may let other
 * work run), and writes the encoding straight into one buffer sized in a first pass, with
 * `frame(size)` bytes before it (e.g. a file header and an enclosing message's field header) and
 * `after` bytes after it. Returns the whole buffer; no other copy of the state is made.
 */
export function* encodeViewSteps(
  view: MvccView,
  frame: (size: number) => Uint8Array,
  after: Uint8Array = new Uint8Array(0),
): Generator<void, Uint8Array> {
  const size = yield* planView(view);
  const before = frame(size);
  // Slack: the writer wants room for a whole varint before each one, even the last.
  const w = new ByteWriter(before.length + size + after.length + 16);
  w.raw(before);
  const writer = new ViewWriter(view);
  while (!writer.done) {
    writer.write(w, STREAM_CHUNK_BYTES);
    yield;
  }
  w.raw(after);
  const out = w.view();
  assert(out.length === before.length + size + after.length, "snapshot size planned");
  assert(out.buffer.byteLength === before.length + size + after.length + 16, "written in place");
  return out;
}

/** Size of the chunks a streamed encoding comes in (a chunk may exceed it by one entry). */
export const STREAM_CHUNK_BYTES = 256 * 1024;

/** An encoding handed out in chunks: its size is known before the first one. */
export interface ChunkedBytes {
  /** Bytes in all. */
  readonly size: number;
  /**
   * The next chunk, or null after the last one. Valid until the next call: the chunks share one
   * buffer (a new array per chunk would be hundreds of MB of external memory, which makes V8
   * collect its whole heap over and over), so a writer must be done with a chunk first.
   */
  next(): Uint8Array | null;
}

/**
 * A view's encoding as a stream, after `frame(size)` bytes: sized in steps first (this generator),
 * then written a chunk at a time as the reader asks (each ~STREAM_CHUNK_BYTES, read from the
 * view when asked for): never whole in memory.
 */
export function* streamViewSteps(
  view: MvccView,
  frame: (size: number) => Uint8Array,
): Generator<void, ChunkedBytes> {
  const size = yield* planView(view);
  let before: Uint8Array | null = frame(size);
  const total = before.length + size;
  const writer = new ViewWriter(view);
  const w = new ByteWriter(STREAM_CHUNK_BYTES + 1024);
  let sent = 0;
  return {
    size: total,
    next(): Uint8Array | null {
      if (before === null && writer.done) {
        assert(sent === total, "streamed snapshot size planned");
        return null;
      }
      w.reset();
      if (before !== null) w.raw(before);
      before = null;
      writer.write(w, STREAM_CHUNK_BYTES);
      sent += w.length;
      assert(sent <= total, "streamed snapshot size planned");
      return w.view();
    },
  };
}

/** `source`'s bytes [offset, offset + size). */
export function sourceRange(source: ByteSource, offset: number, size: number): ByteSource {
  assert(offset >= 0 && offset + size <= source.size, "byte range within its source");
  return {
    size,
    readAt: (buf, position) => {
      const n = Math.max(0, Math.min(buf.length, size - position));
      return n === 0 ? 0 : source.readAt(buf.subarray(0, n), offset + position);
    },
  };
}

/** How much of a ByteSource a reader holds at a time (more when one entry is larger). */
const READ_WINDOW_BYTES = 1024 * 1024;

/**
 * Reads encodeSnapshotBytes() output entry by entry, in as many calls as the caller likes: each
 * stored revision comes with its KeyValue's encoding (a view, valid until the next call). From a
 * ByteSource it holds a window of about a MiB at a time, however large the snapshot. Throws on
 * anything else than the format.
 */
export class SnapshotReader {
  readonly revision: number;
  /** -1 when never compacted, as in etcd. */
  readonly compactMainRev: number;
  /** Number of stored revisions. */
  readonly count: number;
  readonly #source: ByteSource | null;
  /** The window: source bytes [#base, #base + #r.end). */
  #r: ByteReader;
  #base = 0;
  #read = 0;

  constructor(input: Uint8Array | ByteSource) {
    if (input instanceof Uint8Array) {
      this.#source = null;
      this.#r = new ByteReader(input);
    } else {
      this.#source = input;
      this.#r = new ByteReader(new Uint8Array(Math.min(READ_WINDOW_BYTES, input.size)), 0);
      this.#fill(64); // the header: magic, version and three varints
    }
    const r = this.#r;
    for (const b of MAGIC) assert(r.byte() === b, "not an mvcc snapshot");
    assert(r.byte() === FORMAT_VERSION, "unsupported mvcc snapshot version");
    this.revision = r.uvarint();
    this.compactMainRev = r.uvarint() - 1;
    this.count = r.uvarint();
  }

  get #size(): number {
    return this.#source === null ? this.#r.end : this.#source.size;
  }

  /**
   * Makes at least `n` bytes from the read position available in the window (fewer at the end
   * of the source): what is left is moved to its start and the rest read after it.
   */
  #fill(n: number): void {
    const source = this.#source;
    const r = this.#r;
    if (source === null || r.end - r.pos >= n || this.#base + r.end === source.size) return;
    const left = r.end - r.pos;
    let buf = r.buf;
    if (buf.length < n) {
      buf = new Uint8Array(Math.max(n, READ_WINDOW_BYTES));
      buf.set(r.buf.subarray(r.pos, r.end));
    } else {
      buf.copyWithin(0, r.pos, r.end);
    }
    this.#base += r.pos;
    let end = left;
    const want = Math.min(buf.length, source.size - this.#base);
    while (end < want) {
      const got = source.readAt(buf.subarray(end, want), this.#base + end);
      assert(got > 0, "mvcc snapshot truncated");
      end += got;
    }
    this.#r = new ByteReader(buf, end);
  }

  /** Visits up to `max` more entries; false once every entry has been visited. */
  next(
    max: number,
    visit: (main: number, sub: number, tombstone: boolean, data: Uint8Array) => void,
  ): boolean {
    for (let n = 0; n < max && this.#read < this.count; n++, this.#read++) {
      this.#fill(32); // the longest entry head: three varints and a flag
      let r = this.#r;
      const main = r.uvarint();
      const sub = r.uvarint();
      const flag = r.byte();
      assert(flag === 0 || flag === 1, "mvcc snapshot: bad tombstone flag");
      const len = r.uvarint();
      this.#fill(len);
      r = this.#r;
      const end = r.pos + len;
      assert(end <= r.end, "mvcc snapshot truncated");
      visit(main, sub, flag === 1, r.buf.subarray(r.pos, end));
      r.pos = end;
    }
    if (this.#read < this.count) return true;
    assert(this.#base + this.#r.pos === this.#size, "trailing bytes after mvcc snapshot");
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
