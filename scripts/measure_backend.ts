/// <reference lib="deno.unstable" />
/**
 * Measures the on-disk backends issue 12 could keep detcd's applied MVCC state in, with the read
 * and write paths each one implies, so that the design rests on numbers:
 *
 *   log          our own append-only "revision log": records appended in revision order to 64 MiB
 *                segment files, each `u32 length | u32 CRC-32C | revision key | value`, 100
 *                records per write call, no fsync per batch (the WAL gives durability); memory
 *                holds per key the latest revision and where its record is (segment, offset,
 *                length); reads are positional: `node:fs` `readSync(fd, buf, 0, len, pos)` and,
 *                compared within the same run, Deno's `FsFile.seekSync` + `readSync`.
 *   sqlite       `node:sqlite` DatabaseSync, table (rev BLOB PRIMARY KEY, value BLOB) WITHOUT
 *                ROWID, journal_mode=WAL, synchronous=OFF, 100 inserts per transaction, point
 *                reads by revision with a prepared statement, `PRAGMA mmap_size=0`.
 *   sqlite-mmap  the same with `PRAGMA mmap_size=1 GiB`.
 *   kv           Deno KV (`Deno.openKv(path)`), keys `[revision bytes]`, `atomic()` of 100 sets
 *                (it syncs every commit; there is no way to turn that off), `get` (async only)
 *                and `list`.
 *
 * Every candidate keeps the same in-memory key index: a `Map` from the user key (a string) to a
 * slot in typed-array columns (main and sub revision, plus segment/offset/length for the log).
 * Records are etcd's `key` bucket entries: a 17-byte revision key (8-byte big-endian main, '_',
 * 8-byte big-endian sub) and a hand-encoded mvccpb.KeyValue (64-byte key, 256-byte value, three
 * revisions: 335 bytes). Each candidate runs in a child process of its own (so that its resident
 * memory is its own), and the candidates run interleaved: log, sqlite, sqlite-mmap, kv, log, ...
 *
 * Per candidate and round: load throughput (records/s; "final flush" = syncData of the segments,
 * or checkpoint + fdatasync for SQLite, timed apart), random point reads by user key (reads/s,
 * p50/p99 µs), a scan of 1000 consecutive keys done as 1000 point reads and, because those keys
 * sit at consecutive revisions, as one range read (one pread / one SELECT / one list), VmRSS
 * after `gc()` (at start, after loading, after reading, after restart), bytes on disk, and the
 * time to close, re-open and rebuild the key index from the files (restart). Reads hit the page
 * cache (the files were just written): they measure the read path's CPU and syscall cost.
 *
 * Usage:
 *
 *   deno run -A scripts/measure_backend.ts [--keys N] [--reads N] [--rounds N] \
 *     [--candidates log,sqlite,sqlite-mmap,kv] [--dir DIR] [--json FILE]
 *
 * (The children are started with `--unstable-kv --v8-flags=--expose-gc` by the script itself.)
 *
 * --keys N        keys loaded, one revision each (default 200000)
 * --reads N       random point reads per read variant (default 100000)
 * --rounds N      interleaved rounds (default 2)
 * --candidates    which candidates, comma-separated, in the order they run within a round
 * --dir DIR       where the scratch files go (default: `Deno.makeTempDir()`, removed after)
 * --json FILE     also write every round's results, with the load average, as JSON
 */
import { DatabaseSync } from "node:sqlite";
import * as fs from "node:fs";
import { crc32c } from "../core/storage/crc32c.ts";

const KEY_BYTES = 64;
const VALUE_BYTES = 256;
const REV_BYTES = 17;
const HEADER_BYTES = 8;
const BATCH = 100;
const SEGMENT_BYTES = 64 * 1024 * 1024;
const SCAN = 1000;
const MIB = 1024 * 1024;
const CANDIDATES = ["log", "sqlite", "sqlite-mmap", "kv"];

interface Options {
  keys: number;
  reads: number;
  rounds: number;
  candidates: string[];
  dir: string;
  removeDir: boolean;
  jsonPath?: string;
  child?: string;
}

function parseOptions(args: string[]): Options {
  const options: Options = {
    keys: 200_000,
    reads: 100_000,
    rounds: 2,
    candidates: CANDIDATES,
    dir: "",
    removeDir: true,
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--keys") options.keys = Number(args[++i]);
    else if (arg === "--reads") options.reads = Number(args[++i]);
    else if (arg === "--rounds") options.rounds = Math.max(1, Number(args[++i]));
    else if (arg === "--candidates") options.candidates = args[++i].split(",");
    else if (arg === "--dir") {
      options.dir = args[++i];
      options.removeDir = false;
    } else if (arg === "--json") options.jsonPath = args[++i];
    else if (arg === "--child") options.child = args[++i];
    else throw new Error(`unknown argument ${arg}`);
  }
  for (const c of options.candidates) {
    if (!CANDIDATES.includes(c)) throw new Error(`unknown candidate ${c}`);
  }
  return options;
}

// ---------------------------------------------------------------------------------------------
// Results

interface ReadResult {
  variant: string;
  readsPerSecond: number;
  p50Us: number;
  p99Us: number;
  /** Median over the scans of 1000 consecutive keys read one by one. */
  scanPointMs: number;
  /** Median over the scans of the same 1000 records as one range read (consecutive revisions). */
  scanRangeMs: number;
  async: boolean;
}

interface Memory {
  rssMiB: number;
  rssAnonMiB: number;
  rssFileMiB: number;
  heapUsedMiB: number;
}

interface ChildResult {
  candidate: string;
  keys: number;
  loadRecordsPerSecond: number;
  loadSeconds: number;
  finalFlushMs: number;
  reads: ReadResult[];
  memStart: Memory;
  memLoaded: Memory;
  memRead: Memory;
  memRestarted: Memory;
  diskBytes: number;
  restartSeconds: number;
  restartKeys: number;
  loadAverage: number[];
  note: string;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)];
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const gc = (globalThis as unknown as { gc?: () => void }).gc;

function memory(): Memory {
  for (let i = 0; i < 3; i++) gc?.();
  const status = Deno.readTextFileSync("/proc/self/status");
  const kib = (name: string) => {
    const m = status.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"));
    return m ? Number(m[1]) / 1024 : NaN;
  };
  return {
    rssMiB: kib("VmRSS"),
    rssAnonMiB: kib("RssAnon"),
    rssFileMiB: kib("RssFile"),
    heapUsedMiB: Deno.memoryUsage().heapUsed / MIB,
  };
}

function log(message: string): void {
  console.error(message);
}

// ---------------------------------------------------------------------------------------------
// Data: etcd's key bucket entries

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

function keyOf(index: number): string {
  return `/registry/bench/key-${index.toString().padStart(10, "0")}/`.padEnd(KEY_BYTES, "x");
}

/** Deterministic incompressible filler; values are 256-byte windows into it. */
const VALUE_POOL = (() => {
  const out = new Uint8Array(MIB);
  let x = 0x9e3779b9;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
})();

function valueOf(index: number): Uint8Array {
  const start = (index * 257) % (VALUE_POOL.length - VALUE_BYTES);
  return VALUE_POOL.subarray(start, start + VALUE_BYTES);
}

/** etcd's revision key: 8-byte big-endian main, '_', 8-byte big-endian sub. */
function writeRevision(target: Uint8Array, offset: number, main: number, sub: number): void {
  const view = new DataView(target.buffer, target.byteOffset + offset, REV_BYTES);
  view.setUint32(0, Math.floor(main / 2 ** 32));
  view.setUint32(4, main >>> 0);
  target[offset + 8] = 0x5f;
  view.setUint32(9, Math.floor(sub / 2 ** 32));
  view.setUint32(13, sub >>> 0);
}

function readRevisionMain(source: Uint8Array, offset: number): number {
  const view = new DataView(source.buffer, source.byteOffset + offset, REV_BYTES);
  return view.getUint32(0) * 2 ** 32 + view.getUint32(4);
}

function revisionBytes(main: number, sub: number): Uint8Array {
  const out = new Uint8Array(REV_BYTES);
  writeRevision(out, 0, main, sub);
  return out;
}

function varint(target: Uint8Array, offset: number, value: number): number {
  while (value >= 0x80) {
    target[offset++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 128);
  }
  target[offset++] = value;
  return offset;
}

/**
 * mvccpb.KeyValue {key=1, create_revision=2, mod_revision=3, version=4, value=5}, encoded by
 * hand (as a compact MVCC store would) at `offset`; returns the end offset.
 */
function encodeKv(target: Uint8Array, offset: number, key: string, rev: number, index: number) {
  target[offset++] = 0x0a;
  target[offset++] = KEY_BYTES;
  encoder.encodeInto(key, target.subarray(offset, offset + KEY_BYTES));
  offset += KEY_BYTES;
  target[offset++] = 0x10;
  offset = varint(target, offset, rev);
  target[offset++] = 0x18;
  offset = varint(target, offset, rev);
  target[offset++] = 0x20;
  target[offset++] = 1;
  target[offset++] = 0x2a;
  offset = varint(target, offset, VALUE_BYTES);
  target.set(valueOf(index), offset);
  return offset + VALUE_BYTES;
}

/** The user key of an encoded KeyValue (field 1, which a real decoder would look for). */
function kvKey(source: Uint8Array, offset: number): string {
  if (source[offset] !== 0x0a) throw new Error("KeyValue without key first");
  let length = 0;
  let shift = 0;
  let i = offset + 1;
  for (;;) {
    const b = source[i++];
    length += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) break;
    shift += 7;
  }
  return latin1.decode(source.subarray(i, i + length));
}

// ---------------------------------------------------------------------------------------------
// The in-memory key index every candidate keeps (etcd's treeIndex, reduced to the latest revision)

class KeyIndex {
  map = new Map<string, number>();
  size = 0;
  main = new Float64Array(1024);
  sub = new Uint32Array(1024);
  seg: Uint32Array | null;
  off: Uint32Array | null;
  len: Uint32Array | null;

  constructor(withLocation: boolean) {
    this.seg = withLocation ? new Uint32Array(1024) : null;
    this.off = withLocation ? new Uint32Array(1024) : null;
    this.len = withLocation ? new Uint32Array(1024) : null;
  }

  #grow(): void {
    const grow = <T extends Float64Array | Uint32Array>(a: T): T => {
      const b = new (a.constructor as { new (n: number): T })(a.length * 2);
      b.set(a);
      return b;
    };
    this.main = grow(this.main);
    this.sub = grow(this.sub);
    if (this.seg) this.seg = grow(this.seg);
    if (this.off) this.off = grow(this.off);
    if (this.len) this.len = grow(this.len);
  }

  put(key: string, main: number, sub: number, seg = 0, off = 0, len = 0): void {
    let slot = this.map.get(key);
    if (slot === undefined) {
      slot = this.size++;
      if (slot >= this.main.length) this.#grow();
      this.map.set(key, slot);
    }
    this.main[slot] = main;
    this.sub[slot] = sub;
    if (this.seg) {
      this.seg[slot] = seg;
      this.off![slot] = off;
      this.len![slot] = len;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Candidates

interface ScanRange {
  firstSlot: number;
  lastSlot: number;
}

interface Candidate {
  index: KeyIndex;
  note: string;
  /** Appends records for keys [first, first+count) at revisions first+1... */
  load(first: number, count: number): Promise<void> | void;
  finalFlush(): Promise<void> | void;
  /** Read variants: each reads the latest value of one key by its index slot. */
  readers: {
    name: string;
    async: boolean;
    read: (slot: number) => Promise<Uint8Array> | Uint8Array;
  }[];
  /** Reads the records of consecutive revisions from the first slot's to the last slot's. */
  scanRange(range: ScanRange): Promise<number> | number;
  close(): Promise<void> | void;
  /** Re-opens the files and rebuilds `index` from them. */
  reopen(): Promise<void> | void;
  diskBytes(): number;
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const entry of Deno.readDirSync(dir)) {
    if (entry.isFile) total += Deno.statSync(`${dir}/${entry.name}`).size;
  }
  return total;
}

class RevisionLog implements Candidate {
  index = new KeyIndex(true);
  note = "";
  #fds: number[] = [];
  #files: Deno.FsFile[] = [];
  #segment = -1;
  #segmentOffset = SEGMENT_BYTES;
  #batch = new Uint8Array(BATCH * 512);
  readers;

  constructor(readonly dir: string) {
    this.readers = [
      { name: "node:fs readSync(pos)", async: false, read: (s: number) => this.#readNode(s) },
      { name: "FsFile seekSync+readSync", async: false, read: (s: number) => this.#readDeno(s) },
    ];
  }

  #path(seq: number): string {
    return `${this.dir}/${seq.toString().padStart(8, "0")}.seg`;
  }

  #openSegment(seq: number, create: boolean): void {
    const fd = fs.openSync(this.#path(seq), create ? "a+" : "r");
    this.#fds[seq] = fd;
    this.#files[seq] = Deno.openSync(this.#path(seq), { read: true });
  }

  load(first: number, count: number): void {
    const batch = this.#batch;
    let pos = 0;
    const locations: number[] = [];
    for (let i = first; i < first + count; i++) {
      const rev = i + 1;
      const key = keyOf(i);
      const start = pos;
      writeRevision(batch, pos + HEADER_BYTES, rev, 0);
      const end = encodeKv(batch, pos + HEADER_BYTES + REV_BYTES, key, rev, i);
      const view = new DataView(batch.buffer, start, HEADER_BYTES);
      view.setUint32(0, end - start - HEADER_BYTES, true);
      view.setUint32(4, crc32c(batch.subarray(start + HEADER_BYTES, end)), true);
      pos = end;
      locations.push(start);
    }
    if (this.#segmentOffset + pos > SEGMENT_BYTES) {
      this.#segment++;
      this.#segmentOffset = 0;
      this.#openSegment(this.#segment, true);
    }
    const fd = this.#fds[this.#segment];
    let written = 0;
    while (written < pos) written += fs.writeSync(fd, batch, written, pos - written);
    for (let k = 0; k < count; k++) {
      const start = locations[k];
      const end = k + 1 < count ? locations[k + 1] : pos;
      this.index.put(
        keyOf(first + k),
        first + k + 1,
        0,
        this.#segment,
        this.#segmentOffset + start,
        end - start,
      );
    }
    this.#segmentOffset += pos;
  }

  finalFlush(): void {
    for (const fd of this.#fds) fs.fdatasyncSync(fd);
  }

  #check(buf: Uint8Array): Uint8Array {
    const view = new DataView(buf.buffer, buf.byteOffset, HEADER_BYTES);
    const length = view.getUint32(0, true);
    if (length + HEADER_BYTES !== buf.length) throw new Error("bad record length");
    if (crc32c(buf.subarray(HEADER_BYTES, buf.length)) !== view.getUint32(4, true)) {
      throw new Error("bad record crc");
    }
    return buf.subarray(HEADER_BYTES + REV_BYTES);
  }

  #readNode(slot: number): Uint8Array {
    const len = this.index.len![slot];
    const buf = new Uint8Array(len);
    const n = fs.readSync(this.#fds[this.index.seg![slot]], buf, 0, len, this.index.off![slot]);
    if (n !== len) throw new Error("short read");
    return this.#check(buf);
  }

  #readDeno(slot: number): Uint8Array {
    const len = this.index.len![slot];
    const buf = new Uint8Array(len);
    const file = this.#files[this.index.seg![slot]];
    file.seekSync(this.index.off![slot], Deno.SeekMode.Start);
    let n = 0;
    while (n < len) {
      const r = file.readSync(buf.subarray(n));
      if (r === null || r === 0) throw new Error("short read");
      n += r;
    }
    return this.#check(buf);
  }

  scanRange({ firstSlot, lastSlot }: ScanRange): number {
    const ix = this.index;
    let count = 0;
    let slot = firstSlot;
    while (slot <= lastSlot) {
      // One pread per segment the range touches.
      const seg = ix.seg![slot];
      let last = slot;
      while (last < lastSlot && ix.seg![last + 1] === seg) last++;
      const start = ix.off![slot];
      const end = ix.off![last] + ix.len![last];
      const buf = new Uint8Array(end - start);
      const n = fs.readSync(this.#fds[seg], buf, 0, buf.length, start);
      if (n !== buf.length) throw new Error("short read");
      const view = new DataView(buf.buffer);
      for (let p = 0; p < buf.length;) {
        const length = view.getUint32(p, true);
        const recordEnd = p + HEADER_BYTES + length;
        if (crc32c(buf.subarray(p + HEADER_BYTES, recordEnd)) !== view.getUint32(p + 4, true)) {
          throw new Error("bad record crc");
        }
        buf.subarray(p + HEADER_BYTES + REV_BYTES, recordEnd);
        count++;
        p = recordEnd;
      }
      slot = last + 1;
    }
    return count;
  }

  close(): void {
    for (const fd of this.#fds) fs.closeSync(fd);
    for (const f of this.#files) f.close();
    this.#fds = [];
    this.#files = [];
  }

  /** Streams every segment through one reused 1 MiB buffer, checking each record's CRC. */
  reopen(): void {
    this.index = new KeyIndex(true);
    const names = [...Deno.readDirSync(this.dir)].map((e) => e.name).filter((n) =>
      n.endsWith(".seg")
    ).sort();
    const buf = new Uint8Array(MIB);
    const view = new DataView(buf.buffer);
    for (const name of names) {
      const seq = Number(name.slice(0, 8));
      this.#openSegment(seq, false);
      const fd = this.#fds[seq];
      let fileOffset = 0; // file offset of buf[0]
      let have = 0;
      for (;;) {
        const n = fs.readSync(fd, buf, have, buf.length - have, fileOffset + have);
        have += n;
        let p = 0;
        while (p + HEADER_BYTES <= have) {
          const length = view.getUint32(p, true);
          const end = p + HEADER_BYTES + length;
          if (end > have) break;
          if (crc32c(buf.subarray(p + HEADER_BYTES, end)) !== view.getUint32(p + 4, true)) {
            throw new Error(`bad record crc in ${name} at ${fileOffset + p}`);
          }
          const revAt = p + HEADER_BYTES;
          this.index.put(
            kvKey(buf, revAt + REV_BYTES),
            readRevisionMain(buf, revAt),
            0,
            seq,
            fileOffset + p,
            end - p,
          );
          p = end;
        }
        buf.copyWithin(0, p, have);
        fileOffset += p;
        have -= p;
        if (n === 0) {
          if (have !== 0) throw new Error(`torn tail in ${name}`);
          break;
        }
      }
      this.#segment = seq;
      this.#segmentOffset = fileOffset;
    }
  }

  diskBytes(): number {
    return dirBytes(this.dir);
  }
}

/** Rows as arrays rather than objects (in Deno's node:sqlite, missing from its type definitions). */
function returnArrays(statement: ReturnType<DatabaseSync["prepare"]>): void {
  (statement as unknown as { setReturnArrays(on: boolean): void }).setReturnArrays(true);
}

class Sqlite implements Candidate {
  index = new KeyIndex(false);
  note: string;
  #db!: DatabaseSync;
  #insert!: ReturnType<DatabaseSync["prepare"]>;
  #get!: ReturnType<DatabaseSync["prepare"]>;
  #range!: ReturnType<DatabaseSync["prepare"]>;
  #scratch = new Uint8Array(512);
  #rev = new Uint8Array(REV_BYTES);
  #rev2 = new Uint8Array(REV_BYTES);
  readers;

  constructor(readonly dir: string, readonly mmap: boolean) {
    this.#open();
    const mmapSize = this.#db.prepare("PRAGMA mmap_size").get() as Record<string, unknown>;
    this.note = `mmap_size=${Object.values(mmapSize)[0]}`;
    this.readers = [
      { name: "prepared get()", async: false, read: (s: number) => this.#read(s) },
    ];
  }

  #open(): void {
    this.#db = new DatabaseSync(`${this.dir}/state.db`);
    this.#db.exec("PRAGMA journal_mode=WAL");
    this.#db.exec("PRAGMA synchronous=OFF");
    this.#db.exec(`PRAGMA mmap_size=${this.mmap ? 1024 * MIB : 0}`);
    this.#db.exec(
      "CREATE TABLE IF NOT EXISTS kv (rev BLOB PRIMARY KEY, value BLOB) WITHOUT ROWID",
    );
    this.#insert = this.#db.prepare("INSERT INTO kv (rev, value) VALUES (?, ?)");
    this.#get = this.#db.prepare("SELECT value FROM kv WHERE rev = ?");
    returnArrays(this.#get);
    this.#range = this.#db.prepare(
      "SELECT rev, value FROM kv WHERE rev >= ? AND rev <= ? ORDER BY rev",
    );
    returnArrays(this.#range);
  }

  load(first: number, count: number): void {
    this.#db.exec("BEGIN");
    for (let i = first; i < first + count; i++) {
      const rev = i + 1;
      const key = keyOf(i);
      writeRevision(this.#rev, 0, rev, 0);
      const end = encodeKv(this.#scratch, 0, key, rev, i);
      this.#insert.run(this.#rev, this.#scratch.subarray(0, end));
      this.index.put(key, rev, 0);
    }
    this.#db.exec("COMMIT");
  }

  finalFlush(): void {
    this.#db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    const fd = fs.openSync(`${this.dir}/state.db`, "r+");
    fs.fdatasyncSync(fd);
    fs.closeSync(fd);
  }

  #read(slot: number): Uint8Array {
    writeRevision(this.#rev, 0, this.index.main[slot], this.index.sub[slot]);
    const row = this.#get.get(this.#rev) as unknown as [Uint8Array] | undefined;
    if (!row) throw new Error("missing revision");
    return row[0];
  }

  scanRange({ firstSlot, lastSlot }: ScanRange): number {
    writeRevision(this.#rev, 0, this.index.main[firstSlot], this.index.sub[firstSlot]);
    writeRevision(this.#rev2, 0, this.index.main[lastSlot], this.index.sub[lastSlot]);
    return this.#range.all(this.#rev, this.#rev2).length;
  }

  close(): void {
    this.#db.close();
  }

  reopen(): void {
    this.index = new KeyIndex(false);
    this.#open();
    const all = this.#db.prepare("SELECT rev, value FROM kv ORDER BY rev");
    returnArrays(all);
    for (const row of all.iterate()) {
      const [rev, value] = row as unknown as [Uint8Array, Uint8Array];
      this.index.put(kvKey(value, 0), readRevisionMain(rev, 0), 0);
    }
  }

  diskBytes(): number {
    return dirBytes(this.dir);
  }
}

class DenoKv implements Candidate {
  index = new KeyIndex(false);
  note = "atomic() syncs every commit; get/list are async only";
  readers;
  #kv!: Deno.Kv;

  constructor(readonly dir: string) {
    this.readers = [
      { name: "await get()", async: true, read: (s: number) => this.#read(s) },
    ];
  }

  async open(): Promise<void> {
    this.#kv = await Deno.openKv(`${this.dir}/state.kv`);
  }

  async load(first: number, count: number): Promise<void> {
    const batch = new Uint8Array(count * 512);
    const op = this.#kv.atomic();
    let pos = 0;
    for (let i = first; i < first + count; i++) {
      const rev = i + 1;
      const key = keyOf(i);
      const end = encodeKv(batch, pos, key, rev, i);
      op.set([revisionBytes(rev, 0)], batch.subarray(pos, end));
      pos = end;
      this.index.put(key, rev, 0);
    }
    const res = await op.commit();
    if (!res.ok) throw new Error("atomic commit failed");
  }

  finalFlush(): void {}

  async #read(slot: number): Promise<Uint8Array> {
    const entry = await this.#kv.get<Uint8Array>([
      revisionBytes(this.index.main[slot], this.index.sub[slot]),
    ]);
    if (entry.value === null) throw new Error("missing revision");
    return entry.value;
  }

  async scanRange({ firstSlot, lastSlot }: ScanRange): Promise<number> {
    const start = revisionBytes(this.index.main[firstSlot], this.index.sub[firstSlot]);
    const end = revisionBytes(this.index.main[lastSlot], this.index.sub[lastSlot] + 1);
    let n = 0;
    for await (
      const _ of this.#kv.list<Uint8Array>({ start: [start], end: [end] }, { batchSize: SCAN })
    ) n++;
    return n;
  }

  close(): void {
    this.#kv.close();
  }

  async reopen(): Promise<void> {
    this.index = new KeyIndex(false);
    await this.open();
    for await (const entry of this.#kv.list<Uint8Array>({ prefix: [] }, { batchSize: 1000 })) {
      const rev = entry.key[0] as Uint8Array;
      this.index.put(kvKey(entry.value, 0), readRevisionMain(rev, 0), 0);
    }
  }

  diskBytes(): number {
    return dirBytes(this.dir);
  }
}

// ---------------------------------------------------------------------------------------------
// One candidate, in a child process

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

async function runChild(options: Options): Promise<ChildResult> {
  const name = options.child!;
  const dir = options.dir;
  const keys = options.keys;
  const memStart = memory();
  let candidate: Candidate;
  if (name === "log") candidate = new RevisionLog(dir);
  else if (name === "sqlite") candidate = new Sqlite(dir, false);
  else if (name === "sqlite-mmap") candidate = new Sqlite(dir, true);
  else {
    const kv = new DenoKv(dir);
    await kv.open();
    candidate = kv;
  }

  // Load.
  const loadStart = performance.now();
  for (let first = 0; first < keys; first += BATCH) {
    await candidate.load(first, Math.min(BATCH, keys - first));
  }
  const loadSeconds = (performance.now() - loadStart) / 1000;
  const flushStart = performance.now();
  await candidate.finalFlush();
  const finalFlushMs = performance.now() - flushStart;
  log(`  ${name}: loaded ${keys} in ${loadSeconds.toFixed(2)} s`);
  const memLoaded = memory();

  // Random point reads by user key: key -> index slot -> backend read. The read variants run
  // interleaved in slices of 10 000 reads.
  const reads: ReadResult[] = [];
  const readers = candidate.readers;
  const latencies = readers.map(() => new Float64Array(options.reads));
  const elapsed = readers.map(() => 0);
  const done = readers.map(() => 0);
  const slice = 10_000;
  const index = () => candidate.index;
  for (let base = 0; base < options.reads; base += slice) {
    for (let r = 0; r < readers.length; r++) {
      const next = rng(base + 1);
      const read = readers[r].read;
      const lat = latencies[r];
      const t0 = performance.now();
      const end = Math.min(options.reads, base + slice);
      for (let k = base; k < end; k++) {
        const before = performance.now();
        const slot = index().map.get(keyOf(Math.floor(next() * keys)));
        if (slot === undefined) throw new Error("missing key");
        const value = readers[r].async ? await read(slot) : read(slot);
        if ((value as Uint8Array).length < VALUE_BYTES) throw new Error("short value");
        lat[k] = performance.now() - before;
      }
      elapsed[r] += performance.now() - t0;
      done[r] = end;
    }
  }
  // Scans of 1000 consecutive keys: one by one, and as one range read.
  const scans = 20;
  for (let r = 0; r < readers.length; r++) {
    const next = rng(99);
    const pointMs: number[] = [];
    const rangeMs: number[] = [];
    for (let s = 0; s < scans; s++) {
      const first = Math.floor(next() * Math.max(1, keys - SCAN));
      const last = Math.min(keys - 1, first + SCAN - 1);
      let t = performance.now();
      for (let k = first; k <= last; k++) {
        const slot = index().map.get(keyOf(k))!;
        if (readers[r].async) await readers[r].read(slot);
        else readers[r].read(slot);
      }
      pointMs.push(performance.now() - t);
      t = performance.now();
      const n = await candidate.scanRange({
        firstSlot: index().map.get(keyOf(first))!,
        lastSlot: index().map.get(keyOf(last))!,
      });
      rangeMs.push(performance.now() - t);
      if (n !== last - first + 1) throw new Error(`range read ${n} records`);
    }
    const sorted = latencies[r].subarray(0, done[r]).sort();
    reads.push({
      variant: readers[r].name,
      readsPerSecond: done[r] / (elapsed[r] / 1000),
      p50Us: percentile(sorted, 50) * 1000,
      p99Us: percentile(sorted, 99) * 1000,
      scanPointMs: median(pointMs),
      scanRangeMs: median(rangeMs),
      async: readers[r].async,
    });
    log(
      `  ${name} / ${readers[r].name}: ${Math.round(reads[r].readsPerSecond)} reads/s, ` +
        `p50 ${reads[r].p50Us.toFixed(1)} µs, p99 ${reads[r].p99Us.toFixed(1)} µs`,
    );
  }
  latencies.length = 0;
  const memRead = memory();
  const diskBytes = candidate.diskBytes();

  // Restart: close, drop the index, re-open and rebuild it from the files.
  await candidate.close();
  candidate.index = new KeyIndex(false);
  memory();
  const restartStart = performance.now();
  await candidate.reopen();
  const restartSeconds = (performance.now() - restartStart) / 1000;
  const restartKeys = candidate.index.size;
  if (restartKeys !== keys) throw new Error(`restart found ${restartKeys} keys`);
  // A read after restart, so the re-opened files are known to work.
  const check = await candidate.readers[0].read(candidate.index.map.get(keyOf(keys - 1))!);
  if (check.length < VALUE_BYTES) throw new Error("read after restart failed");
  const memRestarted = memory();
  await candidate.close();
  log(`  ${name}: restart ${restartSeconds.toFixed(2)} s`);
  return {
    candidate: name,
    keys,
    loadRecordsPerSecond: keys / loadSeconds,
    loadSeconds,
    finalFlushMs,
    reads,
    memStart,
    memLoaded,
    memRead,
    memRestarted,
    diskBytes,
    restartSeconds,
    restartKeys,
    loadAverage: Deno.loadavg(),
    note: candidate.note,
  };
}

// ---------------------------------------------------------------------------------------------
// Parent: interleaved rounds, tables

async function runParent(options: Options): Promise<void> {
  const dir = options.dir || await Deno.makeTempDir({ prefix: "measure_backend_" });
  if (options.dir) await Deno.mkdir(dir, { recursive: true });
  const loadAverageStart = Deno.loadavg();
  const results: ChildResult[] = [];
  try {
    for (let round = 0; round < options.rounds; round++) {
      for (const candidate of options.candidates) {
        const childDir = `${dir}/${candidate}-${round}`;
        await Deno.mkdir(childDir);
        log(`round ${round + 1}/${options.rounds}: ${candidate} (load ${Deno.loadavg()[0]})`);
        const output = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            "--unstable-kv",
            "--v8-flags=--expose-gc",
            new URL(import.meta.url).pathname,
            "--child",
            candidate,
            "--keys",
            String(options.keys),
            "--reads",
            String(options.reads),
            "--dir",
            childDir,
          ],
          stdout: "piped",
          stderr: "inherit",
        }).output();
        await Deno.remove(childDir, { recursive: true });
        if (!output.success) throw new Error(`${candidate} failed (${output.code})`);
        results.push(JSON.parse(new TextDecoder().decode(output.stdout)));
      }
    }
  } finally {
    if (options.removeDir) await Deno.remove(dir, { recursive: true });
  }
  const loadAverageEnd = Deno.loadavg();
  printTables(options, results, loadAverageStart, loadAverageEnd);
  if (options.jsonPath) {
    const report = {
      keys: options.keys,
      reads: options.reads,
      rounds: options.rounds,
      loadAverageStart,
      loadAverageEnd,
      deno: Deno.version,
      results,
    };
    await Deno.writeTextFile(options.jsonPath, JSON.stringify(report, null, 2) + "\n");
  }
}

function fmtRate(values: number[]): string {
  const k = (v: number) => v >= 10_000 ? `${Math.round(v / 1000)}k` : `${(v / 1000).toFixed(1)}k`;
  const s = [...values].sort((a, b) => a - b);
  return s.length > 1 ? `${k(median(s))} (${k(s[0])}–${k(s[s.length - 1])})` : k(s[0]);
}

function printTables(
  options: Options,
  results: ChildResult[],
  loadStart: number[],
  loadEnd: number[],
): void {
  const f1 = (v: number) => v.toFixed(1);
  const lines: string[] = [];
  lines.push(
    `${options.keys} keys, ${options.reads} random reads per variant, ${options.rounds} ` +
      `interleaved rounds, load average ${loadStart[0].toFixed(1)} → ${loadEnd[0].toFixed(1)}; ` +
      `medians (min–max for rates)`,
  );
  lines.push("");
  lines.push(
    "| candidate | load rec/s | final flush ms | RSS start MiB | RSS loaded MiB | RSS after reads MiB | " +
      "disk MiB | restart s | RSS restarted MiB |",
  );
  lines.push("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const c of options.candidates) {
    const rs = results.filter((r) => r.candidate === c);
    const m = (get: (r: ChildResult) => number) => median(rs.map(get));
    lines.push(
      `| ${c} | ${fmtRate(rs.map((r) => r.loadRecordsPerSecond))} | ${
        f1(m((r) => r.finalFlushMs))
      } | ` +
        `${f1(m((r) => r.memStart.rssMiB))} | ${f1(m((r) => r.memLoaded.rssMiB))} | ` +
        `${f1(m((r) => r.memRead.rssMiB))} | ${f1(m((r) => r.diskBytes / MIB))} | ` +
        `${m((r) => r.restartSeconds).toFixed(2)} | ${f1(m((r) => r.memRestarted.rssMiB))} |`,
    );
  }
  lines.push("");
  lines.push(
    "| candidate | read path | point reads/s | p50 µs | p99 µs | 1000 keys one by one ms | " +
      "1000 revisions one range read ms |",
  );
  lines.push("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
  for (const c of options.candidates) {
    const rs = results.filter((r) => r.candidate === c);
    for (let v = 0; v < rs[0].reads.length; v++) {
      const rr = rs.map((r) => r.reads[v]);
      const m = (get: (r: ReadResult) => number) => median(rr.map(get));
      lines.push(
        `| ${c} | ${rr[0].variant}${rr[0].async ? " (async)" : ""} | ` +
          `${fmtRate(rr.map((r) => r.readsPerSecond))} | ${f1(m((r) => r.p50Us))} | ` +
          `${f1(m((r) => r.p99Us))} | ${f1(m((r) => r.scanPointMs))} | ` +
          `${f1(m((r) => r.scanRangeMs))} |`,
      );
    }
  }
  console.log(lines.join("\n"));
}

const options = parseOptions(Deno.args);
if (options.child) {
  console.log(JSON.stringify(await runChild(options)));
} else {
  await runParent(options);
}
