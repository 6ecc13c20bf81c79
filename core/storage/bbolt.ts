/**
 * A codec for the bbolt (bolt DB 1.3.x) file format, so that detcd can stream a snapshot that real
 * `etcdctl snapshot status|restore` open as etcd's own backend file, and read one that real etcd
 * produced. Pure: bytes in, bytes out; no I/O, no clock.
 *
 * Only what etcd uses is supported: top-level buckets holding plain key/value pairs (no nested
 * buckets). The encoder always writes buckets as separate (non-inline) page trees; the decoder also
 * understands inline buckets, branch pages, overflow pages and the freelist page.
 *
 * Layout facts (bbolt 1.3.6, little endian): every page starts with a 16-byte header
 * {id u64, flags u16, count u16, overflow u32}; pages 0 and 1 are meta pages; a leaf element is
 * {flags u32, pos u32, ksize u32, vsize u32} and a branch element {pos u32, ksize u32, pgid u64},
 * where `pos` counts from the element itself to its key (the value follows the key).
 */
import { compareBytes } from "../bytes.ts";

/** One top-level bucket: its name and its key/value pairs. */
export interface BoltBucket {
  name: Uint8Array;
  entries: Array<[key: Uint8Array, value: Uint8Array]>;
}

/** Knobs of the encoder; the defaults match what etcd writes on Linux/amd64. */
export interface EncodeBoltOptions {
  /** Bytes per page: a power of two in [1024, 65536]; 4096 when absent. */
  pageSize?: number;
  /** Transaction id recorded in the newer meta page (the other gets txid - 1); 1 when absent. */
  txid?: number;
}

/** Raised when a file is not a bbolt database we can read (corrupt, truncated, unsupported). */
export class BoltFormatError extends Error {
  constructor(message: string) {
    super(`bbolt: ${message}`);
    this.name = "BoltFormatError";
  }
}

const boltMagic = 0xed0cdaed;
const boltVersion = 2;
const PAGE_HEADER_BYTES = 16;
const elementBytes = 16; // leaf and branch elements are both 16 bytes
const bucketHeaderBytes = 16; // {root pgid u64, sequence u64}
const metaChecksumOffset = 56; // the checksum covers the meta fields before it
const META_BYTES = 64;
const branchPageFlag = 0x01;
const leafPageFlag = 0x02;
const metaPageFlag = 0x04;
const freelistPageFlag = 0x10;
const BUCKET_LEAF_FLAG = 0x01;
const maxElementsPerPage = 0xfffe; // page.count is u16; 0xffff is the freelist's escape value
const maxTreeDepth = 64;
const TWO_TO32 = 0x1_0000_0000;

/** compareBytes over two ranges of one buffer, without making views. */
function compareRanges(
  bytes: Uint8Array,
  aStart: number,
  aSize: number,
  bStart: number,
  bSize: number,
): number {
  const n = aSize < bSize ? aSize : bSize;
  for (let i = 0; i < n; i++) {
    const d = bytes[aStart + i] - bytes[bStart + i];
    if (d !== 0) return d;
  }
  return aSize - bSize;
}

/** FNV-1a 64-bit over `bytes`, the checksum bbolt stores in its meta pages. */
function fnv64a(bytes: Uint8Array): bigint {
  // Split into 16-bit limbs would be faster; 56 bytes twice per file does not warrant it.
  let h = 0xcbf29ce484222325n;
  for (let i = 0; i < bytes.length; i++) {
    h ^= BigInt(bytes[i]);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h;
}

function setU64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, value >>> 0, true);
  view.setUint32(offset + 4, Math.floor(value / TWO_TO32), true);
}

/** Reads a u64 that must fit a JS number safely (page ids, txids); larger values are corrupt. */
function getU64(view: DataView, offset: number, what: string): number {
  const lo = view.getUint32(offset, true);
  const hi = view.getUint32(offset + 4, true);
  if (hi > 0x1fffff) {
    throw new BoltFormatError(`${what} out of range (high word 0x${hi.toString(16)})`);
  }
  return hi * TWO_TO32 + lo;
}

// ---------------------------------------------------------------------------------------------
// Encoder

/**
 * One top-level bucket for {@link BoltWriter}: entries read by index, in strictly increasing key
 * order. The writer walks them twice (sizes while planning, bytes while writing), so a source must
 * answer the same both times: a consistent view, not live data.
 */
export interface BoltSource {
  readonly name: Uint8Array;
  readonly length: number;
  /** Key i; may be a scratch buffer, valid until the next key() call (the writer copies it). */
  key(i: number): Uint8Array;
  /** Size of value i in bytes (without building it). */
  valueSize(i: number): number;
  /** Value i (valueSize(i) bytes); may be a scratch buffer, used before the next call. */
  value(i: number): Uint8Array;
}

/** A planned leaf page run: entries [start, end) of one source. */
interface LeafPlan {
  kind: "leaf";
  pgid: number;
  pageCount: number;
  source: BoltSource;
  start: number;
  end: number;
  elementFlags: number;
}

interface BranchPlan {
  kind: "branch";
  pgid: number;
  pageCount: number;
  keys: Uint8Array[];
  children: number[];
}

type PagePlan = LeafPlan | BranchPlan;

/** How often (in entries) planning offers its caller a pause. */
const PLAN_CHECKPOINT_ENTRIES = 4096;

/** Entries of a sorted array of buckets' names → bucket headers, the root bucket's tree. */
function arraySource(name: Uint8Array, keys: Uint8Array[], values: Uint8Array[]): BoltSource {
  return {
    name,
    length: keys.length,
    key: (i) => keys[i],
    valueSize: (i) => values[i].length,
    value: (i) => values[i],
  };
}

/**
 * bbolt's file for top-level buckets, planned then written page by page, so that a large database
 * is produced with bounded memory and with pauses for the caller (a member keeps serving while it
 * streams a snapshot). The file is what bbolt's `Tx.WriteTo` would stream: two meta pages, an empty
 * freelist page, then each bucket's tree (leaves, then branch levels) in bucket-name order, then
 * the root bucket's tree; `tx.Check()` finds every page reachable exactly once.
 *
 * Use: run {@link plan} to its end (each value it yields is a point where the caller may pause),
 * then {@link size} is the file's length and {@link pages} yields the file in order.
 */
export class BoltWriter {
  readonly #pageSize: number;
  readonly #txid: number;
  readonly #sources: BoltSource[];
  readonly #plans: PagePlan[] = [];
  #next = 3; // 0 and 1: meta pages; 2: freelist
  #rootPgid = -1;

  constructor(sources: BoltSource[], options: EncodeBoltOptions = {}) {
    const pageSize = options.pageSize ?? 4096;
    const txid = options.txid ?? 1;
    if (
      !Number.isInteger(pageSize) || pageSize < 1024 || pageSize > 65536 ||
      (pageSize & (pageSize - 1)) !== 0
    ) {
      throw new RangeError(`bbolt: page size ${pageSize} is not a power of two in [1024, 65536]`);
    }
    if (!Number.isSafeInteger(txid) || txid < 1) {
      throw new RangeError(`bbolt: txid ${txid} must be a positive integer`);
    }
    const ordered = sources.slice().sort((a, b) => compareBytes(a.name, b.name));
    for (let i = 0; i < ordered.length; i++) {
      if (ordered[i].name.length === 0) {
        throw new BoltFormatError("bucket name must not be empty");
      }
      if (i > 0 && compareBytes(ordered[i - 1].name, ordered[i].name) === 0) {
        throw new BoltFormatError(`duplicate bucket ${JSON.stringify(text(ordered[i].name))}`);
      }
    }
    this.#pageSize = pageSize;
    this.#txid = txid;
    this.#sources = ordered;
  }

  /** Plans every page; yields every few thousand entries. Throws on unsorted or empty keys. */
  *plan(): Generator<void> {
    if (this.#rootPgid >= 0) return;
    const names: Uint8Array[] = [];
    const headers: Uint8Array[] = [];
    for (const source of this.#sources) {
      const root = yield* this.#planTree(source, 0);
      const header = new Uint8Array(bucketHeaderBytes);
      setU64(new DataView(header.buffer), 0, root); // sequence stays 0
      names.push(source.name);
      headers.push(header);
    }
    const rootName = new Uint8Array(0);
    this.#rootPgid = yield* this.#planTree(arraySource(rootName, names, headers), BUCKET_LEAF_FLAG);
  }

  /** The file's length in bytes (after {@link plan}). */
  get size(): number {
    this.#assertPlanned();
    return this.#next * this.#pageSize;
  }

  /**
   * The file in order: the meta and freelist pages, then one buffer per planned page run, each
   * valid until the next is asked for (one buffer is reused: a buffer per page was a new
   * ArrayBuffer every 4 KiB, hundreds of MB of them for a large state).
   */
  *pages(): Generator<Uint8Array> {
    this.#assertPlanned();
    const pageSize = this.#pageSize;
    const txid = this.#txid;
    const head = new Uint8Array(3 * pageSize);
    const headView = new DataView(head.buffer);
    const meta = { rootPgid: this.#rootPgid, freelistPgid: 2, highWaterMark: this.#next, txid };
    // bbolt writes transaction t's meta to page t % 2; the other page keeps the previous one.
    writeMeta(head, headView, pageSize, (txid % 2) as 0 | 1, meta);
    writeMeta(head, headView, pageSize, ((txid + 1) % 2) as 0 | 1, { ...meta, txid: txid - 1 });
    writePageHeader(headView, 2 * pageSize, 2, freelistPageFlag, 0, 0);
    yield head;
    let buffer = new Uint8Array(16 * pageSize);
    let view = new DataView(buffer.buffer);
    for (const plan of this.#plans) {
      const bytes = plan.pageCount * pageSize;
      if (buffer.length < bytes) {
        buffer = new Uint8Array(bytes);
        view = new DataView(buffer.buffer);
      }
      const out = buffer.subarray(0, bytes);
      out.fill(0);
      writePlan(out, view, plan);
      yield out;
    }
  }

  #assertPlanned(): void {
    if (this.#rootPgid < 0) throw new Error("bbolt: BoltWriter.plan() has not finished");
  }

  #take(bytes: number): { pgid: number; pageCount: number } {
    const pageCount = Math.max(1, Math.ceil(bytes / this.#pageSize));
    const pgid = this.#next;
    this.#next += pageCount;
    return { pgid, pageCount };
  }

  /** Plans the pages of one B+tree over `source`; returns the root page id. */
  *#planTree(source: BoltSource, elementFlags: number): Generator<void, number> {
    const pageSize = this.#pageSize;
    const bucketName = () => JSON.stringify(text(source.name));
    // Leaves: pack greedily; an element that does not fit starts a new page, and an element larger
    // than a page sits alone on a page with overflow pages.
    let level: Array<{ key: Uint8Array; pgid: number }> = [];
    const addLeaf = (start: number, end: number, bytes: number) => {
      const { pgid, pageCount } = this.#take(bytes);
      this.#plans.push({ kind: "leaf", pgid, pageCount, source, start, end, elementFlags });
      // A copy: the source's key may be its scratch buffer.
      const key = start < source.length ? source.key(start).slice() : new Uint8Array(0);
      level.push({ key, pgid });
    };
    let start = 0;
    let bytes = PAGE_HEADER_BYTES;
    // The previous key, copied into a buffer of the writer's own.
    let previous = new Uint8Array(64);
    let previousLength = -1;
    for (let i = 0; i < source.length; i++) {
      const key = source.key(i);
      if (key.length === 0) throw new BoltFormatError(`empty key in bucket ${bucketName()}`);
      if (previousLength >= 0 && comparePrefix(previous, previousLength, key) >= 0) {
        throw new BoltFormatError(`keys out of order in bucket ${bucketName()}`);
      }
      if (previous.length < key.length) previous = new Uint8Array(key.length * 2);
      previous.set(key);
      previousLength = key.length;
      const size = elementBytes + key.length + source.valueSize(i);
      if (i > start && (bytes + size > pageSize || i - start >= maxElementsPerPage)) {
        addLeaf(start, i, bytes);
        start = i;
        bytes = PAGE_HEADER_BYTES;
      }
      bytes += size;
      if (i % PLAN_CHECKPOINT_ENTRIES === PLAN_CHECKPOINT_ENTRIES - 1) yield;
    }
    addLeaf(start, source.length, bytes);

    // Branch levels until a single page remains.
    while (level.length > 1) {
      const upper: Array<{ key: Uint8Array; pgid: number }> = [];
      let first = 0;
      let size = PAGE_HEADER_BYTES;
      const addBranch = (from: number, to: number, pageBytes: number) => {
        const { pgid, pageCount } = this.#take(pageBytes);
        const slice = level.slice(from, to);
        this.#plans.push({
          kind: "branch",
          pgid,
          pageCount,
          keys: slice.map((c) => c.key),
          children: slice.map((c) => c.pgid),
        });
        upper.push({ key: level[from].key, pgid });
      };
      for (let i = 0; i < level.length; i++) {
        const s = elementBytes + level[i].key.length;
        // At least two children per branch page so that every level shrinks.
        if (i - first >= 2 && (size + s > pageSize || i - first >= maxElementsPerPage)) {
          addBranch(first, i, size);
          first = i;
          size = PAGE_HEADER_BYTES;
        }
        size += s;
      }
      addBranch(first, level.length, size);
      level = upper;
      yield;
    }
    return level[0].pgid;
  }
}

/** compareBytes(a.subarray(0, aLength), b), without the subarray. */
function comparePrefix(a: Uint8Array, aLength: number, b: Uint8Array): number {
  const n = Math.min(aLength, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return aLength - b.length;
}

function writePageHeader(
  view: DataView,
  offset: number,
  pgid: number,
  flags: number,
  count: number,
  overflow: number,
): void {
  setU64(view, offset, pgid);
  view.setUint16(offset + 8, flags, true);
  view.setUint16(offset + 10, count, true);
  view.setUint32(offset + 12, overflow, true);
}

/** Writes one planned page run into `out` (exactly its pages). */
function writePlan(out: Uint8Array, view: DataView, plan: PagePlan): void {
  if (plan.kind === "leaf") {
    const count = plan.end - plan.start;
    const source = plan.source;
    writePageHeader(view, 0, plan.pgid, leafPageFlag, count, plan.pageCount - 1);
    let data = PAGE_HEADER_BYTES + count * elementBytes;
    for (let i = 0; i < count; i++) {
      const key = source.key(plan.start + i);
      const value = source.value(plan.start + i);
      const element = PAGE_HEADER_BYTES + i * elementBytes;
      view.setUint32(element, plan.elementFlags, true);
      view.setUint32(element + 4, data - element, true);
      view.setUint32(element + 8, key.length, true);
      view.setUint32(element + 12, value.length, true);
      out.set(key, data);
      data += key.length;
      out.set(value, data);
      data += value.length;
    }
  } else {
    const count = plan.keys.length;
    writePageHeader(view, 0, plan.pgid, branchPageFlag, count, plan.pageCount - 1);
    let data = PAGE_HEADER_BYTES + count * elementBytes;
    for (let i = 0; i < count; i++) {
      const key = plan.keys[i];
      const element = PAGE_HEADER_BYTES + i * elementBytes;
      view.setUint32(element, data - element, true);
      view.setUint32(element + 4, key.length, true);
      setU64(view, element + 8, plan.children[i]);
      out.set(key, data);
      data += key.length;
    }
  }
}

function writeMeta(
  out: Uint8Array,
  view: DataView,
  pageSize: number,
  pageId: 0 | 1,
  meta: { rootPgid: number; freelistPgid: number; highWaterMark: number; txid: number },
): void {
  const base = pageId * pageSize;
  writePageHeader(view, base, pageId, metaPageFlag, 0, 0);
  const m = base + PAGE_HEADER_BYTES;
  view.setUint32(m, boltMagic, true);
  view.setUint32(m + 4, boltVersion, true);
  view.setUint32(m + 8, pageSize, true);
  view.setUint32(m + 12, 0, true); // flags
  setU64(view, m + 16, meta.rootPgid);
  setU64(view, m + 24, 0); // root bucket sequence
  setU64(view, m + 32, meta.freelistPgid);
  setU64(view, m + 40, meta.highWaterMark);
  setU64(view, m + 48, meta.txid);
  const sum = fnv64a(out.subarray(m, m + metaChecksumOffset));
  view.setBigUint64(m + metaChecksumOffset, sum, true);
}

/** A bucket's entries sorted by key, as a source; duplicate keys are refused. */
export function bucketSource(bucket: BoltBucket): BoltSource {
  let entries = bucket.entries;
  let sorted = true;
  for (let i = 1; i < entries.length; i++) {
    if (compareBytes(entries[i - 1][0], entries[i][0]) >= 0) {
      sorted = false;
      break;
    }
  }
  if (!sorted) {
    entries = entries.slice().sort((a, b) => compareBytes(a[0], b[0]));
    for (let i = 1; i < entries.length; i++) {
      if (compareBytes(entries[i - 1][0], entries[i][0]) === 0) {
        throw new BoltFormatError(
          `duplicate key in bucket ${JSON.stringify(text(bucket.name))}`,
        );
      }
    }
  }
  return arraySource(bucket.name, entries.map((e) => e[0]), entries.map((e) => e[1]));
}

function text(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

/**
 * Builds a complete bbolt database file holding `buckets` (top-level only) in one buffer: what
 * {@link BoltWriter} streams, for small databases and tests.
 */
export function encodeBolt(buckets: BoltBucket[], options: EncodeBoltOptions = {}): Uint8Array {
  return boltFile(buckets.map(bucketSource), options);
}

/** The whole file of a {@link BoltWriter} over `sources`, in one buffer. */
export function boltFile(sources: BoltSource[], options: EncodeBoltOptions = {}): Uint8Array {
  const writer = new BoltWriter(sources, options);
  for (const _ of writer.plan());
  const out = new Uint8Array(writer.size);
  let offset = 0;
  for (const page of writer.pages()) {
    out.set(page, offset);
    offset += page.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoder

interface Meta {
  pageSize: number;
  rootPgid: number;
  freelistPgid: number | null; // null: bbolt's pgidNoFreelist (NoFreelistSync)
  highWaterMark: number;
  txid: bigint;
}

/** Parses and validates the meta at `offset` (the start of a meta page); a string on failure. */
function readMeta(file: Uint8Array, offset: number): Meta | string {
  if (offset + PAGE_HEADER_BYTES + META_BYTES > file.length) {
    return "file too short for a meta page";
  }
  const view = new DataView(file.buffer, file.byteOffset + offset, PAGE_HEADER_BYTES + META_BYTES);
  const m = PAGE_HEADER_BYTES;
  if (view.getUint32(m, true) !== boltMagic) return "invalid magic";
  if (view.getUint32(m + 4, true) !== boltVersion) {
    return `unsupported version ${view.getUint32(m + 4, true)}`;
  }
  const checksum = view.getBigUint64(m + metaChecksumOffset, true);
  const body = file.subarray(offset + m, offset + m + metaChecksumOffset);
  // bbolt accepts a zero checksum (files from before checksums existed).
  if (checksum !== 0n && checksum !== fnv64a(body)) return "meta checksum mismatch";
  const pageSize = view.getUint32(m + 8, true);
  if (pageSize < 512 || pageSize > 1 << 20 || (pageSize & (pageSize - 1)) !== 0) {
    return `invalid page size ${pageSize}`;
  }
  try {
    const freelistLo = view.getUint32(m + 32, true);
    const freelistHi = view.getUint32(m + 36, true);
    const noFreelist = freelistLo === 0xffffffff && freelistHi === 0xffffffff;
    return {
      pageSize,
      rootPgid: getU64(view, m + 16, "root page id"),
      freelistPgid: noFreelist ? null : getU64(view, m + 32, "freelist page id"),
      highWaterMark: getU64(view, m + 40, "high water mark"),
      txid: view.getBigUint64(m + 48, true),
    };
  } catch (e) {
    return (e as Error).message;
  }
}

function chooseMeta(file: Uint8Array): Meta {
  if (file.length < 1024) {
    throw new BoltFormatError(`file too small (${file.length} bytes) to be a bbolt database`);
  }
  const meta0 = readMeta(file, 0);
  let meta1: Meta | string = "not found";
  if (typeof meta0 !== "string") {
    meta1 = readMeta(file, meta0.pageSize);
    if (typeof meta1 !== "string" && meta1.pageSize !== meta0.pageSize) {
      meta1 = "page size differs from meta 0";
    }
  } else {
    // Meta 0 is unreadable: find meta 1 at the page size it claims for itself.
    for (const size of [4096, 512, 1024, 2048, 8192, 16384, 32768, 65536]) {
      const candidate = readMeta(file, size);
      if (typeof candidate !== "string" && candidate.pageSize === size) {
        meta1 = candidate;
        break;
      }
    }
  }
  const valid = [meta0, meta1].filter((m): m is Meta => typeof m !== "string");
  if (valid.length === 0) {
    throw new BoltFormatError(`no valid meta page (meta 0: ${meta0}; meta 1: ${meta1})`);
  }
  const meta = valid.length === 2 && valid[1].txid > valid[0].txid ? valid[1] : valid[0];
  const needed = meta.highWaterMark * meta.pageSize;
  if (meta.highWaterMark < 3 || meta.highWaterMark > Math.floor(file.length / meta.pageSize)) {
    throw new BoltFormatError(
      `file truncated or corrupt: meta says ${meta.highWaterMark} pages of ${meta.pageSize} bytes ` +
        `(${needed} bytes) but the file has ${file.length} bytes`,
    );
  }
  if (meta.rootPgid < 2 || meta.rootPgid >= meta.highWaterMark) {
    throw new BoltFormatError(`root page id ${meta.rootPgid} outside [2, ${meta.highWaterMark})`);
  }
  return meta;
}

/** A page (or an inline bucket's fake page) located in the file, bounds already checked. */
interface PageView {
  flags: number;
  count: number;
  /** Absolute offset of the page header. */
  start: number;
  /** Absolute end (exclusive) of the bytes the page may reference. */
  end: number;
}

class Reader {
  readonly view: DataView;
  readonly visited = new Set<number>();
  constructor(readonly file: Uint8Array, readonly meta: Meta) {
    this.view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  }

  /** Locates page `pgid` of a tree, refusing out-of-range ids, bad headers and second visits. */
  page(pgid: number): PageView {
    const { pageSize, highWaterMark } = this.meta;
    if (pgid < 2 || pgid >= highWaterMark) {
      throw new BoltFormatError(`page id ${pgid} outside [2, ${highWaterMark})`);
    }
    if (this.visited.has(pgid)) {
      throw new BoltFormatError(`page ${pgid} referenced twice (cycle or shared page)`);
    }
    this.visited.add(pgid);
    const start = pgid * pageSize;
    const id = getU64(this.view, start, `id of page ${pgid}`);
    if (id !== pgid) throw new BoltFormatError(`page ${pgid} has id ${id} in its header`);
    const flags = this.view.getUint16(start + 8, true);
    const count = this.view.getUint16(start + 10, true);
    const overflow = this.view.getUint32(start + 12, true);
    if (pgid + overflow >= highWaterMark) {
      throw new BoltFormatError(`page ${pgid} overflows past the high water mark`);
    }
    // Overflow pages belong to this page alone (bbolt's tx.Check reports overlaps the same way).
    for (let id = pgid + 1; id <= pgid + overflow; id++) {
      if (this.visited.has(id)) {
        throw new BoltFormatError(`page ${id} referenced twice (overlapping overflow)`);
      }
      this.visited.add(id);
    }
    return { flags, count, start, end: start + (overflow + 1) * pageSize };
  }

  /** Calls `visit` with the file offsets of every leaf element under `page`, in key order. */
  walk(
    page: PageView,
    depth: number,
    visit: (keyStart: number, keySize: number, valueSize: number, flags: number) => void,
  ): void {
    if (depth > maxTreeDepth) throw new BoltFormatError(`tree deeper than ${maxTreeDepth} levels`);
    const { start, end, count } = page;
    if (start + PAGE_HEADER_BYTES + count * elementBytes > end) {
      throw new BoltFormatError(`page at offset ${start}: ${count} elements do not fit`);
    }
    const view = this.view;
    if (page.flags & leafPageFlag) {
      for (let i = 0; i < count; i++) {
        const element = start + PAGE_HEADER_BYTES + i * elementBytes;
        const flags = view.getUint32(element, true);
        const pos = view.getUint32(element + 4, true);
        const keySize = view.getUint32(element + 8, true);
        const valueSize = view.getUint32(element + 12, true);
        const keyStart = element + pos;
        if (keyStart + keySize + valueSize > end) {
          throw new BoltFormatError(`page at offset ${start}: element ${i} points past the page`);
        }
        visit(keyStart, keySize, valueSize, flags);
      }
    } else if (page.flags & branchPageFlag) {
      if (count === 0) throw new BoltFormatError(`branch page at offset ${start} is empty`);
      for (let i = 0; i < count; i++) {
        const element = start + PAGE_HEADER_BYTES + i * elementBytes;
        const pos = view.getUint32(element, true);
        const keySize = view.getUint32(element + 4, true);
        if (element + pos + keySize > end) {
          throw new BoltFormatError(`page at offset ${start}: element ${i} points past the page`);
        }
        const child = getU64(view, element + 8, `child of page at offset ${start}`);
        this.walk(this.page(child), depth + 1, visit);
      }
    } else {
      throw new BoltFormatError(
        `page at offset ${start} has flags 0x${page.flags.toString(16)}, not a branch or leaf`,
      );
    }
  }

  checkFreelist(): void {
    const { freelistPgid, highWaterMark } = this.meta;
    if (freelistPgid === null) return;
    if (freelistPgid < 2 || freelistPgid >= highWaterMark) {
      throw new BoltFormatError(`freelist page id ${freelistPgid} outside [2, ${highWaterMark})`);
    }
    const page = this.page(freelistPgid);
    if (!(page.flags & freelistPageFlag)) {
      throw new BoltFormatError(`freelist page ${freelistPgid} is not a freelist page`);
    }
    let first = page.start + PAGE_HEADER_BYTES;
    let count = page.count;
    if (count === 0xffff) {
      if (first + 8 > page.end) throw new BoltFormatError("freelist count does not fit");
      count = getU64(this.view, first, "freelist count");
      first += 8;
    }
    if (count > highWaterMark || first + count * 8 > page.end) {
      throw new BoltFormatError(`freelist of ${count} ids does not fit its page`);
    }
    for (let i = 0; i < count; i++) {
      const id = getU64(this.view, first + i * 8, "free page id");
      if (id < 2 || id >= highWaterMark) {
        throw new BoltFormatError(`free page id ${id} outside [2, ${highWaterMark})`);
      }
    }
  }
}

/** What the valid newest meta page of a bbolt file says about the database. */
export interface BoltInfo {
  pageSize: number;
  /** Pages in use (bbolt's high water mark): `pageSize * highWaterMark` is `Tx.Size()`. */
  highWaterMark: number;
  txid: bigint;
}

/** The newest valid meta page of `file`; throws BoltFormatError like decodeBolt. */
export function boltInfo(file: Uint8Array): BoltInfo {
  const meta = chooseMeta(file);
  return { pageSize: meta.pageSize, highWaterMark: meta.highWaterMark, txid: meta.txid };
}

/**
 * Reads every top-level bucket of a bbolt database file (trailing bytes after the last page, such
 * as etcd's sha256 snapshot trailer, are ignored). Uses the valid meta page with the higher txid.
 * Keys and values are views into one private copy of `file`, so later changes to `file` do not
 * show through (and a decoded entry keeps that copy alive). Throws BoltFormatError on anything
 * inconsistent; work is bounded by the file size since no page is visited twice.
 */
export function decodeBolt(file: Uint8Array): BoltBucket[] {
  const meta = chooseMeta(file);
  const reader = new Reader(file, meta);
  reader.checkFreelist();
  const rootEntries: Array<[Uint8Array, Uint8Array, number]> = [];
  reader.walk(reader.page(meta.rootPgid), 0, (at, keySize, valueSize, flags) => {
    const key = file.subarray(at, at + keySize);
    rootEntries.push([key, file.subarray(at + keySize, at + keySize + valueSize), flags]);
  });
  // One copy of the file backs every returned key and value: allocating a separate buffer per key
  // costs several times more than the copy.
  const owned = file.slice();
  const buckets: BoltBucket[] = [];
  let previousName: Uint8Array | null = null;
  for (const [name, value, flags] of rootEntries) {
    const label = JSON.stringify(text(name));
    if (!(flags & BUCKET_LEAF_FLAG)) {
      throw new BoltFormatError(`top-level key ${label} is not a bucket`);
    }
    if (previousName && compareBytes(previousName, name) >= 0) {
      throw new BoltFormatError(`bucket names out of order at ${label}`);
    }
    previousName = name;
    if (value.length < bucketHeaderBytes) {
      throw new BoltFormatError(`bucket ${label} header is ${value.length} bytes`);
    }
    const headerView = new DataView(value.buffer, value.byteOffset, bucketHeaderBytes);
    const root = getU64(headerView, 0, `root of bucket ${label}`);
    let page: PageView;
    if (root === 0) {
      // Inline bucket: a leaf page embedded in the value after the bucket header.
      const start = value.byteOffset - file.byteOffset + bucketHeaderBytes;
      const end = value.byteOffset - file.byteOffset + value.length;
      if (end - start < PAGE_HEADER_BYTES) {
        throw new BoltFormatError(`inline bucket ${label} is too short`);
      }
      const flags = reader.view.getUint16(start + 8, true);
      if (!(flags & leafPageFlag)) {
        throw new BoltFormatError(`inline bucket ${label} page is not a leaf`);
      }
      page = { flags, count: reader.view.getUint16(start + 10, true), start, end };
    } else {
      page = reader.page(root);
    }
    const entries: Array<[Uint8Array, Uint8Array]> = [];
    let previousStart = -1;
    let previousSize = 0;
    reader.walk(page, 0, (at, keySize, valueSize, flags) => {
      if (flags & BUCKET_LEAF_FLAG) {
        throw new BoltFormatError(`bucket ${label} holds a nested bucket (unsupported)`);
      }
      if (
        previousStart >= 0 && compareRanges(file, previousStart, previousSize, at, keySize) >= 0
      ) {
        throw new BoltFormatError(`keys out of order in bucket ${label}`);
      }
      previousStart = at;
      previousSize = keySize;
      const valueEnd = at + keySize + valueSize;
      entries.push([owned.subarray(at, at + keySize), owned.subarray(at + keySize, valueEnd)]);
    });
    const nameAt = name.byteOffset - file.byteOffset;
    buckets.push({ name: owned.subarray(nameAt, nameAt + name.length), entries });
  }
  return buckets;
}
