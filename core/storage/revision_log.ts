/**
 * The revision log (docs/adr/0010-storage-that-scales.md, phase 2): stored revisions appended in
 * revision order to segment files and read back by location with one positional read, so that a
 * member's values live on disk and its memory holds only an index. This module is the file format
 * and its bookkeeping; what the records mean (etcd's `key` bucket: a revision and its KeyValue) is
 * the MVCC store's.
 *
 * Record: `u32 LE payload length | u32 LE CRC-32C(payload) | payload`, the payload
 * `u8 flags | uvarint main | uvarint sub | data`; flag 1 = tombstone. Segments are named by a
 * 16-hex-digit sequence (`0000000000000001.rev`), each up to `segmentBytes` (a record never spans
 * two). Appends are buffered and written by flush() without a sync: durability comes from the WAL,
 * which a caller cuts only after sync(). On open, a torn or zero tail of the last segment (a crash
 * mid-write) is cut off; a bad record anywhere else is corruption and refused.
 *
 * A location is one number: segment sequence × 2^32 + offset of the record; with the record's
 * size (header included) it is all a read needs. Sizes of live and released records are kept per
 * segment, for the compaction that rewrites mostly-dead segments.
 */
import { backendCommitSeconds } from "./metrics.ts";
import { crc32c } from "./crc32c.ts";
import {
  type AppendFile,
  type Disk,
  PACED_SYNC_BYTES,
  type ReadAtFile,
  syncOffLoop,
} from "./disk.ts";
import { putUvarint, uvarintSize } from "../varint.ts";

const HEADER_BYTES = 8;
const SEGMENT_SPAN = 2 ** 32;
/** A record larger than this is corruption, never an allocation (as the WAL's MAX_RECORD_BYTES). */
const MAX_RECORD_BYTES = 64 * 1024 * 1024;
/** Default segment size (a segment is closed once the next record would pass it). */
export const DEFAULT_REVISION_SEGMENT_BYTES = 64 * 1024 * 1024;
/** Buffered appends are written once they reach this (a flush is also asked for by the caller). */
const FLUSH_BYTES = 1024 * 1024;
const TOMBSTONE = 1;

/** The log cannot be trusted: a bad record before the last segment's tail. */
export class RevisionLogCorruptError extends Error {
  constructor(message: string) {
    super(`revision log: ${message}`);
    this.name = "RevisionLogCorruptError";
  }
}

/** One record as read back. */
export interface RevisionRecord {
  main: number;
  sub: number;
  tombstone: boolean;
  data: Uint8Array;
  location: number;
  /** The record's size in the file, header included (what read() and release() take). */
  size: number;
}

interface Segment {
  sequence: number;
  /** Resolves once the file exists (new segments are created asynchronously). */
  file: Promise<AppendFile> | null;
  reader: ReadAtFile | null;
  /** Bytes handed to the file (written or being written). */
  written: number;
  /** Appended, not yet handed to the file: the first `tailBytes` bytes, from offset `written`. */
  tail: Uint8Array;
  tailBytes: number;
  /** Being written: bytes [start, start + data.length), readable from here until done. */
  inflight: { start: number; data: Uint8Array }[];
  liveBytes: number;
  totalBytes: number;
  /** Written since the last sync. */
  dirty: boolean;
  /** Bytes written since the last writeback this log started for it (see #pace). */
  unpaced: number;
}

/** How a log is opened. */
export interface RevisionLogOptions {
  /** Bytes per segment (default DEFAULT_REVISION_SEGMENT_BYTES). */
  segmentBytes?: number;
  /**
   * Segments are removed only once a checkpoint taken after they were retired is saved
   * (checkpointMark(), checkpointSaved()): a member whose newest checkpoint points into them
   * still restarts.
   */
  removeAfterCheckpoint?: boolean;
}

/** The sequences of the segment files in `dir`, ascending. */
async function segmentSequences(disk: Disk, dir: string): Promise<number[]> {
  return (await disk.list(dir))
    .map((name) => /^([0-9a-f]{16})\.rev$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => parseInt(m[1], 16))
    .sort((a, b) => a - b);
}

function segmentName(sequence: number): string {
  return `${sequence.toString(16).padStart(16, "0")}.rev`;
}

/** Revision records in segment files; see the module comment. */
export class RevisionLog {
  readonly #disk: Disk;
  readonly #dir: string;
  readonly #segmentBytes: number;
  readonly #segments = new Map<number, Segment>();
  #head: Segment;
  #flushing: Promise<void> = Promise.resolve();
  /** A pacing sync is running (see #pace). */
  #pacing = false;
  #failure: unknown = null;
  /** Readers holding the log (see hold()), and the segments waiting for them to finish. */
  #holds = 0;
  #toRemove: number[] = [];
  /**
   * With `removeAfterCheckpoint`: segments whose records were all moved or released, each kept
   * until a checkpoint taken after it was retired is saved (an older one may still point into it).
   */
  readonly #deferRemoval: boolean;
  #retired: { sequence: number; mark: number }[] = [];
  /** Checkpoints marked so far (see checkpointMark()). */
  #marks = 0;
  /** A segment file was created since the last sync (the directory must be synced too). */
  #created = false;

  private constructor(
    disk: Disk,
    dir: string,
    segmentBytes: number,
    head: Segment,
    deferRemoval: boolean,
  ) {
    this.#disk = disk;
    this.#dir = dir;
    this.#segmentBytes = segmentBytes;
    this.#head = head;
    this.#deferRemoval = deferRemoval;
  }

  /**
   * Opens the log in `dir` (created if needed): every existing record is handed to `visit` in
   * order (to rebuild an index), a torn tail of the last segment is cut off, and appends go to a
   * new segment.
   */
  static async open(
    disk: Disk,
    dir: string,
    visit: (record: RevisionRecord) => void,
    options: RevisionLogOptions = {},
  ): Promise<RevisionLog> {
    await disk.mkdirp(dir);
    const sequences = await segmentSequences(disk, dir);
    const existing: Segment[] = [];
    for (let i = 0; i < sequences.length; i++) {
      const sequence = sequences[i];
      const path = `${dir}/${segmentName(sequence)}`;
      const reader = await disk.openRead(path);
      if (reader === null) continue;
      const segment = newSegment(sequence, null, reader);
      const end = scanSegment(segment, reader, visit);
      if (end.bad !== null) {
        if (i !== sequences.length - 1) {
          throw new RevisionLogCorruptError(`${segmentName(sequence)}: ${end.bad} at ${end.at}`);
        }
        await disk.truncate(path, end.at);
      }
      segment.written = end.at;
      if (end.at === 0) {
        // An empty segment (a member stopped before appending to it): nothing to keep.
        reader.close();
        await disk.remove(path);
        continue;
      }
      existing.push(segment);
    }
    return RevisionLog.#withHead(disk, dir, existing, options);
  }

  /**
   * Opens the log in `dir` as a checkpoint left it, without reading its records: the caller
   * names the records it still uses with adopt() (every other byte counts as garbage), then
   * removeUnreferenced(). Appends go to a new segment; bytes past the last adopted record of a
   * segment (appended after the checkpoint, maybe torn by a crash) are never read.
   */
  static async openLocated(
    disk: Disk,
    dir: string,
    options: RevisionLogOptions = {},
  ): Promise<RevisionLog> {
    await disk.mkdirp(dir);
    const existing: Segment[] = [];
    for (const sequence of await segmentSequences(disk, dir)) {
      const reader = await disk.openRead(`${dir}/${segmentName(sequence)}`);
      if (reader === null) continue;
      const segment = newSegment(sequence, null, reader);
      segment.written = reader.size();
      segment.totalBytes = segment.written;
      existing.push(segment);
    }
    return RevisionLog.#withHead(disk, dir, existing, options);
  }

  static #withHead(
    disk: Disk,
    dir: string,
    existing: Segment[],
    options: RevisionLogOptions,
  ): RevisionLog {
    const segmentBytes = options.segmentBytes ?? DEFAULT_REVISION_SEGMENT_BYTES;
    const next = existing.length > 0 ? existing[existing.length - 1].sequence + 1 : 1;
    const head = newSegment(next, null, null);
    const log = new RevisionLog(
      disk,
      dir,
      segmentBytes,
      head,
      options.removeAfterCheckpoint ?? false,
    );
    for (const s of existing) log.#segments.set(s.sequence, s);
    log.#segments.set(head.sequence, head);
    log.#create(head);
    return log;
  }

  /**
   * After openLocated(): the record at `location` of `size` bytes is part of the restored state.
   * Throws when the log does not have it (a segment missing or too short).
   */
  adopt(location: number, size: number): void {
    const sequence = Math.floor(location / SEGMENT_SPAN);
    const segment = this.#segments.get(sequence);
    const offset = location % SEGMENT_SPAN;
    if (!segment || segment === this.#head || offset + size > segment.written) {
      throw new RevisionLogCorruptError(
        `the checkpoint's record at ${segmentName(sequence)}:${offset} (${size} bytes) is missing`,
      );
    }
    segment.liveBytes += size;
  }

  /** After adopt(): removes the segments none of whose records was adopted. */
  removeUnreferenced(): number {
    let removed = 0;
    for (const s of [...this.#segments.values()]) {
      if (s === this.#head || s.liveBytes !== 0) continue;
      this.#removeWhenFree(s.sequence);
      removed++;
    }
    return removed;
  }

  /**
   * A checkpoint (a record of the locations of the live revisions) is being taken now; returns
   * its mark, for checkpointSaved() once it is durable.
   */
  checkpointMark(): number {
    return ++this.#marks;
  }

  /**
   * The checkpoint of `mark` is durable: segments retired before it was marked are no longer
   * pointed at by the newest checkpoint and are removed (once no view holds the log).
   */
  checkpointSaved(mark: number): void {
    const keep: { sequence: number; mark: number }[] = [];
    for (const r of this.#retired) {
      if (r.mark < mark) this.#removeWhenFree(r.sequence);
      else keep.push(r);
    }
    this.#retired = keep;
  }

  /** Segments retired and waiting for a checkpoint (removeAfterCheckpoint). */
  get retiredSegments(): number {
    return this.#retired.length;
  }

  /** Appends a record; returns its location (see read()). Buffered until flush(). */
  append(main: number, sub: number, tombstone: boolean, data: Uint8Array): {
    location: number;
    size: number;
  } {
    if (this.#failure !== null) throw this.#failure;
    const payload = 1 + uvarintSize(main) + uvarintSize(sub) + data.length;
    const size = HEADER_BYTES + payload;
    if (size > MAX_RECORD_BYTES) throw new RangeError(`revision record of ${size} bytes`);
    let head = this.#head;
    const end = head.written + head.tailBytes;
    if (end > 0 && end + size > this.#segmentBytes) head = this.#roll();
    if (head.tailBytes + size > head.tail.length) {
      const grown = new Uint8Array(
        Math.max(2 * head.tail.length, head.tailBytes + size, 64 * 1024),
      );
      grown.set(head.tail.subarray(0, head.tailBytes));
      head.tail = grown;
    }
    const record = head.tail.subarray(head.tailBytes, head.tailBytes + size);
    const view = new DataView(record.buffer, record.byteOffset, size);
    view.setUint32(0, payload, true);
    record[HEADER_BYTES] = tombstone ? TOMBSTONE : 0;
    let at = putUvarint(record, HEADER_BYTES + 1, main);
    at = putUvarint(record, at, sub);
    record.set(data, at);
    view.setUint32(4, crc32c(record.subarray(HEADER_BYTES)), true);
    const offset = head.written + head.tailBytes;
    head.tailBytes += size;
    head.liveBytes += size;
    head.totalBytes += size;
    if (head.tailBytes >= FLUSH_BYTES) void this.flush().catch(() => {});
    return { location: head.sequence * SEGMENT_SPAN + offset, size };
  }

  /**
   * The data of the record at `location` (a copy), checked against its CRC. With `scratch` (at
   * least `size` bytes), read into it: the result is a view of it, valid until it is reused.
   */
  read(location: number, size: number, scratch?: Uint8Array): Uint8Array {
    const segment = this.#segments.get(Math.floor(location / SEGMENT_SPAN));
    if (!segment) throw new RevisionLogCorruptError(`no segment for location ${location}`);
    const offset = location % SEGMENT_SPAN;
    const record = scratch !== undefined && scratch.length >= size
      ? scratch.subarray(0, size)
      : new Uint8Array(size);
    if (!readBuffered(segment, offset, record)) {
      if (segment.reader === null || segment.reader.readAt(record, offset) !== size) {
        throw new RevisionLogCorruptError(
          `short read at ${segmentName(segment.sequence)}:${offset}`,
        );
      }
    }
    return checkedData(record, 0, size, segment.sequence, offset);
  }

  /**
   * A reader for records visited mostly in file order (a snapshot, a hash): it reads the file in
   * blocks of `blockBytes` and serves the records inside a block without another read. Each
   * result is valid until its next read.
   */
  sequentialReader(blockBytes = 256 * 1024): (location: number, size: number) => Uint8Array {
    let scratch = new Uint8Array(4096);
    return blockReader(
      (sequence, offset, size) => {
        const segment = this.#segments.get(sequence);
        // Only what the file holds for sure; buffered and in-flight bytes are read one by one.
        const fileEnd = segment && segment.inflight.length === 0 ? segment.written : 0;
        return segment?.reader != null && offset + size <= fileEnd ? segment.reader : null;
      },
      (location, size) => {
        if (scratch.length < size) scratch = new Uint8Array(2 * size);
        return this.read(location, size, scratch);
      },
      blockBytes,
    );
  }

  /**
   * The segment files by the names the operating system knows them, for a reader on another
   * thread (a snapshot's file is written in a worker), or null when the disk has no such names
   * (a simulated one). Records appended but not yet flushed are not in them: flush() first.
   */
  segmentFiles(): { sequence: number; path: string }[] | null {
    const osPath = this.#disk.osPath?.bind(this.#disk);
    if (osPath === undefined) return null;
    return [...this.#segments.keys()].map((sequence) => ({
      sequence,
      path: osPath(`${this.#dir}/${segmentName(sequence)}`),
    }));
  }

  /** Size of the data of a record of revision (main, sub) that is `size` bytes in the file. */
  dataSize(main: number, sub: number, size: number): number {
    return revisionDataSize(main, sub, size);
  }

  /** The record at `location` is no longer needed (compacted away): it becomes garbage. */
  release(location: number, size: number): void {
    const segment = this.#segments.get(Math.floor(location / SEGMENT_SPAN));
    if (segment) segment.liveBytes -= size;
  }

  /**
   * Closes the segment appended to (when it holds anything) and starts the next, so that every
   * record written so far is in a closed segment, which a rewrite may take.
   */
  seal(): void {
    const head = this.#head;
    if (head.written + head.tailBytes > 0) this.#roll();
  }

  /** The segment a location is in. */
  static segmentOf(location: number): number {
    return Math.floor(location / SEGMENT_SPAN);
  }

  /**
   * Closed segments (not the one appended to) whose live records are under `fraction` of their
   * bytes: worth rewriting (their live records appended again, then the segment removed).
   */
  sparseSegments(fraction: number): number[] {
    const out: number[] = [];
    for (const s of this.#segments.values()) {
      if (s === this.#head || s.totalBytes === 0 || this.#toRemove.includes(s.sequence)) continue;
      if (this.#retired.some((r) => r.sequence === s.sequence)) continue;
      if (s.liveBytes < fraction * s.totalBytes) out.push(s.sequence);
    }
    return out;
  }

  /** Readers holding the log now (etcd's open read transactions: views being read). */
  get holders(): number {
    return this.#holds;
  }

  /**
   * Keeps every segment (removeSegment() waits) until the returned function is called: a reader
   * that may still read released records (a view of an earlier state) holds the log.
   */
  hold(): () => void {
    this.#holds++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      if (--this.#holds === 0) {
        const waiting = this.#toRemove;
        this.#toRemove = [];
        for (const sequence of waiting) this.#removeWhenFree(sequence);
      }
    };
  }

  /**
   * Removes a segment none of whose records is live any more (every one released): its bytes leave
   * the sizes and its file is deleted (after pending writes), at once unless the log is held, or
   * with `removeAfterCheckpoint` once a checkpoint taken after this call is saved.
   */
  removeSegment(sequence: number): void {
    const segment = this.#segments.get(sequence);
    if (!segment || segment === this.#head) return;
    if (segment.liveBytes !== 0) {
      throw new Error(`revision segment ${sequence} still holds ${segment.liveBytes} live bytes`);
    }
    if (this.#deferRemoval) {
      if (!this.#retired.some((r) => r.sequence === sequence)) {
        this.#retired.push({ sequence, mark: this.#marks });
      }
      return;
    }
    this.#removeWhenFree(sequence);
  }

  #removeWhenFree(sequence: number): void {
    const segment = this.#segments.get(sequence);
    if (!segment || segment === this.#head) return;
    if (this.#holds > 0) {
      if (!this.#toRemove.includes(sequence)) this.#toRemove.push(sequence);
      return;
    }
    this.#segments.delete(sequence);
    const path = `${this.#dir}/${segmentName(sequence)}`;
    // After pending writes (the file may still be being created or written).
    const work = this.#flushing.then(async () => {
      segment.reader?.close();
      if (segment.file !== null) (await segment.file).close();
      await this.#disk.remove(path);
    });
    this.#flushing = work.catch((e) => {
      this.#failure ??= e;
    });
  }

  /** Bytes in all segments, and of those the records not released. */
  get sizes(): { totalBytes: number; liveBytes: number } {
    let totalBytes = 0;
    let liveBytes = 0;
    for (const s of this.#segments.values()) {
      totalBytes += s.totalBytes;
      liveBytes += s.liveBytes;
    }
    return { totalBytes, liveBytes };
  }

  /** Writes what was appended (no sync); resolves once the file has it. */
  flush(): Promise<void> {
    const work = this.#flushing.then(() => this.#flushAll());
    this.#flushing = work.catch((e) => {
      this.#failure ??= e;
    });
    return work;
  }

  /** flush(), then makes every segment durable, and the directory when a segment was created. */
  async sync(): Promise<void> {
    const timed = backendCommitSeconds.startTimer();
    try {
      await this.#sync();
    } finally {
      timed();
    }
  }

  async #sync(): Promise<void> {
    const created = this.#created;
    this.#created = false;
    await this.flush();
    for (const s of [...this.#segments.values()]) {
      if (s.file === null || !s.dirty) continue;
      s.dirty = false;
      // A checkpoint's sync flushes megabytes (20+ ms measured): off the event loop, where the
      // disk can, so requests are not held for it.
      await syncOffLoop(await s.file);
    }
    if (created) {
      for (const s of [...this.#segments.values()]) await s.file;
      await this.#disk.syncDir(this.#dir);
    }
    if (this.#failure !== null) throw this.#failure;
  }

  close(): void {
    for (const s of this.#segments.values()) {
      s.reader?.close();
      s.file?.then((f) => f.close(), () => {});
    }
  }

  async #flushAll(): Promise<void> {
    for (const s of this.#segments.values()) {
      if (s.tailBytes === 0 || s.file === null) continue;
      const data = s.tail.slice(0, s.tailBytes);
      const start = s.written;
      s.tailBytes = 0;
      // Only the head appends again: a rolled segment gives its buffer back.
      if (s !== this.#head) s.tail = new Uint8Array(0);
      s.written += data.length;
      s.dirty = true;
      const inflight = { start, data };
      s.inflight.push(inflight);
      try {
        const file = await s.file;
        await file.write(data);
        s.unpaced += data.length;
        if (s.unpaced >= PACED_SYNC_BYTES) this.#pace(s, file);
      } finally {
        s.inflight = s.inflight.filter((x) => x !== inflight);
      }
    }
  }

  /**
   * Starts a sync in the background (where the disk has one) so that what was written goes to
   * disk a few MiB at a time; one at a time. Durability still comes from sync(): this only paces.
   */
  #pace(segment: Segment, file: AppendFile): void {
    if (this.#pacing || !file.syncInBackground) return;
    segment.unpaced = 0;
    this.#pacing = true;
    file.syncInBackground().catch(() => {}).finally(() => (this.#pacing = false));
  }

  /** Starts the next segment; the old head keeps its buffered bytes until the next flush. */
  #roll(): Segment {
    const head = newSegment(this.#head.sequence + 1, null, null);
    this.#segments.set(head.sequence, head);
    this.#head = head;
    this.#create(head);
    void this.flush().catch(() => {});
    return head;
  }

  #create(segment: Segment): void {
    this.#created = true;
    const path = `${this.#dir}/${segmentName(segment.sequence)}`;
    segment.file = (async () => {
      const file = await this.#disk.openAppend(path);
      segment.reader = await this.#disk.openRead(path);
      return file;
    })();
    segment.file.catch((e) => {
      this.#failure ??= e;
    });
  }
}

function newSegment(
  sequence: number,
  file: Promise<AppendFile> | null,
  reader: ReadAtFile | null,
): Segment {
  return {
    sequence,
    file,
    reader,
    written: 0,
    tail: new Uint8Array(0),
    tailBytes: 0,
    inflight: [],
    liveBytes: 0,
    totalBytes: 0,
    dirty: false,
    unpaced: 0,
  };
}

/**
 * A reader of records visited mostly in file order: it reads a segment's file in blocks of
 * `blockBytes` and serves the records inside a block without another read, each checked against
 * its length and CRC. `fileOf` gives the file that holds a record for sure (or null: `fallback`
 * reads it). Each result is valid until the next read.
 */
export function blockReader(
  fileOf: (sequence: number, offset: number, size: number) => ReadAtFile | null,
  fallback: (location: number, size: number) => Uint8Array,
  blockBytes = 256 * 1024,
): (location: number, size: number) => Uint8Array {
  const block = new Uint8Array(blockBytes);
  let blockSegment = -1;
  let blockStart = 0;
  let blockEnd = 0;
  return (location, size) => {
    const sequence = Math.floor(location / SEGMENT_SPAN);
    const offset = location % SEGMENT_SPAN;
    if (sequence !== blockSegment || offset < blockStart || offset + size > blockEnd) {
      const file = size > block.length ? null : fileOf(sequence, offset, size);
      if (file === null) return fallback(location, size);
      const got = file.readAt(block, offset);
      blockSegment = sequence;
      blockStart = offset;
      blockEnd = offset + got;
      if (offset + size > blockEnd) {
        blockSegment = -1;
        throw new RevisionLogCorruptError(`short read at ${segmentName(sequence)}:${offset}`);
      }
    }
    return checkedData(block, offset - blockStart, size, sequence, offset);
  };
}

/**
 * The data of a whole record, the `size` bytes of `bytes` at `at`, read from segment `sequence`
 * at `offset`, after its checks: one view, the one returned (a snapshot's worker reads a million
 * records; a view, a DataView and a view for the checksum each were its garbage).
 */
function checkedData(
  bytes: Uint8Array,
  at: number,
  size: number,
  sequence: number,
  offset: number,
): Uint8Array {
  const end = at + size;
  if (
    size < HEADER_BYTES || uint32At(bytes, at) !== size - HEADER_BYTES ||
    crc32c(bytes, 0, at + HEADER_BYTES, end) !== uint32At(bytes, at + 4)
  ) {
    throw new RevisionLogCorruptError(`bad record at ${segmentName(sequence)}:${offset}`);
  }
  return bytes.subarray(dataStart(bytes, at), end);
}

/** The little-endian uint32 at `at`. */
function uint32At(bytes: Uint8Array, at: number): number {
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;
}

/**
 * blockReader over segment files opened by `open` (from segmentFiles(), on another thread): every
 * record asked for must be in its file (the log was flushed after it was appended). `close()`
 * closes the files opened.
 */
export function segmentFilesReader(
  files: { sequence: number; path: string }[],
  open: (path: string) => ReadAtFile,
): { read: (location: number, size: number) => Uint8Array; close(): void } {
  const paths = new Map(files.map((f) => [f.sequence, f.path]));
  const opened = new Map<number, ReadAtFile>();
  const fileOf = (sequence: number): ReadAtFile => {
    let file = opened.get(sequence);
    if (file === undefined) {
      const path = paths.get(sequence);
      if (path === undefined) {
        throw new RevisionLogCorruptError(`no segment file ${segmentName(sequence)}`);
      }
      file = open(path);
      opened.set(sequence, file);
    }
    return file;
  };
  const read = blockReader(fileOf, (location, size) => {
    // Larger than a block: read on its own.
    const sequence = Math.floor(location / SEGMENT_SPAN);
    const offset = location % SEGMENT_SPAN;
    const record = new Uint8Array(size);
    if (fileOf(sequence).readAt(record, offset) !== size) {
      throw new RevisionLogCorruptError(`short read at ${segmentName(sequence)}:${offset}`);
    }
    return checkedData(record, 0, size, sequence, offset);
  });
  return {
    read,
    close() {
      for (const file of opened.values()) file.close();
      opened.clear();
    },
  };
}

/** Size of a record's data, from its revision and its size in the file (no read needed). */
export function revisionDataSize(main: number, sub: number, size: number): number {
  return size - HEADER_BYTES - 1 - uvarintSize(main) - uvarintSize(sub);
}

/** Where the data starts in the record at `record` (after header, flags and the two varints). */
function dataStart(bytes: Uint8Array, record: number): number {
  let at = record + HEADER_BYTES + 1;
  for (let varints = 0; varints < 2; varints++) {
    while (bytes[at] & 0x80) at++;
    at++;
  }
  return at;
}

function readUvarint(bytes: Uint8Array, at: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 9; i++) {
    const b = bytes[at++];
    value += (b & 0x7f) * scale;
    if ((b & 0x80) === 0) return [value, at];
    scale *= 128;
  }
  throw new RevisionLogCorruptError("varint too long");
}

/** Serves a read from bytes not yet in the file; false when they are in the file. */
function readBuffered(segment: Segment, offset: number, out: Uint8Array): boolean {
  for (const { start, data } of segment.inflight) {
    if (offset >= start && offset + out.length <= start + data.length) {
      out.set(data.subarray(offset - start, offset - start + out.length));
      return true;
    }
  }
  const at = offset - segment.written;
  if (at < 0 || at + out.length > segment.tailBytes) return false;
  out.set(segment.tail.subarray(at, at + out.length));
  return true;
}

/**
 * Visits every good record of a segment; returns where the good records end and, if they end
 * before the file does, why.
 */
function scanSegment(
  segment: Segment,
  reader: ReadAtFile,
  visit: (record: RevisionRecord) => void,
): { at: number; bad: string | null } {
  const header = new Uint8Array(HEADER_BYTES);
  const view = new DataView(header.buffer);
  let at = 0;
  for (;;) {
    const got = reader.readAt(header, at);
    if (got === 0) return { at, bad: null };
    if (got < HEADER_BYTES) return { at, bad: "torn record header" };
    const payload = view.getUint32(0, true);
    if (payload === 0) return { at, bad: "zero record" };
    if (payload + HEADER_BYTES > MAX_RECORD_BYTES) return { at, bad: "record length out of range" };
    const record = new Uint8Array(HEADER_BYTES + payload);
    if (reader.readAt(record, at) !== record.length) return { at, bad: "torn record" };
    if (crc32c(record.subarray(HEADER_BYTES)) !== view.getUint32(4, true)) {
      return { at, bad: "checksum mismatch" };
    }
    const [main, afterMain] = readUvarint(record, HEADER_BYTES + 1);
    const [sub, afterSub] = readUvarint(record, afterMain);
    visit({
      main,
      sub,
      tombstone: (record[HEADER_BYTES] & TOMBSTONE) !== 0,
      data: record.subarray(afterSub),
      location: segment.sequence * SEGMENT_SPAN + at,
      size: record.length,
    });
    segment.liveBytes += record.length;
    segment.totalBytes += record.length;
    at += record.length;
  }
}
