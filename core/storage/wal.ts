import { assert } from "../assert.ts";
import { walFsyncSeconds, walWriteBytes } from "./metrics.ts";
import { crc32c } from "./crc32c.ts";
import type { AppendFile, Disk } from "./disk.ts";
import { putUvarint, putUvarint64, uvarint64Size, uvarintSize } from "../varint.ts";

/** Bytes before each record: payload length (u32 LE) and its CRC-32C (u32 LE). */
const RECORD_HEADER_BYTES = 8;
/**
 * Largest record we write or accept. A length above it is corruption, never an allocation
 * (CVE-2020-15106 / CVE-2020-15112: malformed WAL records crashed etcd).
 */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;
/**
 * A segment is closed and a new one started once it grows past this. Each new segment is
 * zero-filled up front (see Disk.openAppend): the next one is made so while the current one fills
 * (a spare, as etcd's file pipeline does), so a roll is a rename, not 16 MiB of writes and a sync.
 */
export const DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024;

/** The WAL cannot be trusted: recovery refuses to guess. */
export class WalCorruptError extends Error {
  constructor(message: string) {
    super(`wal: ${message}`);
    this.name = "WalCorruptError";
  }
}

interface Segment {
  name: string;
  sequence: number;
  firstIndex: number;
}

function segmentName(sequence: number, firstIndex: number): string {
  return `${sequence.toString(16).padStart(16, "0")}-${
    firstIndex.toString(16).padStart(16, "0")
  }.wal`;
}

/** A spare segment being made ready; never read as part of the log (a start removes it). */
const SPARE_SUFFIX = ".spare.tmp";
/** Distinct spare names within a process, so that a closed WAL's late cleanup spares a new one's. */
let spares = 0;

function parseSegmentName(name: string): Segment | null {
  const m = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/.exec(name);
  if (!m) return null;
  return { name, sequence: parseInt(m[1], 16), firstIndex: parseInt(m[2], 16) };
}

/** What a WAL record is: a log entry, Raft's hard state, or a snapshot marker. */
export enum WalRecordKind {
  Entry = 0,
  /** term, vote, commit: Raft's HardState. */
  HardState = 1,
  /** The log restarts after (index, term): a snapshot received from the leader replaced it. */
  Snapshot = 2,
}

/**
 * One WAL record, as plain numbers (the proto's WalEntry shape without bigint indexes, which cost
 * on the hot path). Indexes and terms stay far below 2^53.
 */
export interface WalRecord {
  kind: WalRecordKind;
  index: number;
  term: number;
  /** Raft entry type (0 normal, 1 conf change). */
  type: number;
  data: Uint8Array;
  vote: bigint;
  commit: number;
}

const emptyBytes = new Uint8Array(0);

/** A log entry record. */
export function walEntry(index: number, term: number, data: Uint8Array, type = 0): WalRecord {
  return { kind: WalRecordKind.Entry, index, term, type, data, vote: 0n, commit: 0 };
}

/** A hard-state record. */
export function walHardState(term: number, vote: bigint, commit: number): WalRecord {
  return { kind: WalRecordKind.HardState, index: 0, term, type: 0, data: emptyBytes, vote, commit };
}

/** A snapshot marker record. */
export function walSnapshotMarker(index: number, term: number): WalRecord {
  return {
    kind: WalRecordKind.Snapshot,
    index,
    term,
    type: 0,
    data: emptyBytes,
    vote: 0n,
    commit: 0,
  };
}

/**
 * The record's protobuf encoding (detcdpb.WalEntry), written directly: it is on every write's
 * path, and protobuf-es's reflective toBinary costs several times more. Byte-identical to
 * toBinary (tested).
 */
export function encodeWalEntry(r: WalRecord): Uint8Array {
  const { index, term, data, type, kind, vote, commit } = r;
  const size = (index === 0 ? 0 : 1 + uvarintSize(index)) +
    (term === 0 ? 0 : 1 + uvarintSize(term)) +
    (data.length === 0 ? 0 : 1 + uvarintSize(data.length) + data.length) +
    (type === 0 ? 0 : 1 + uvarintSize(type)) +
    (kind === 0 ? 0 : 1 + uvarintSize(kind)) +
    (vote === 0n ? 0 : 1 + uvarint64Size(vote)) +
    (commit === 0 ? 0 : 1 + uvarintSize(commit));
  const out = new Uint8Array(size);
  let o = 0;
  if (index !== 0) {
    out[o++] = 0x08;
    o = putUvarint(out, o, index);
  }
  if (term !== 0) {
    out[o++] = 0x10;
    o = putUvarint(out, o, term);
  }
  if (data.length !== 0) {
    out[o++] = 0x1a;
    o = putUvarint(out, o, data.length);
    out.set(data, o);
    o += data.length;
  }
  if (type !== 0) {
    out[o++] = 0x20;
    o = putUvarint(out, o, type);
  }
  if (kind !== 0) {
    out[o++] = 0x28;
    o = putUvarint(out, o, kind);
  }
  if (vote !== 0n) {
    out[o++] = 0x30;
    o = putUvarint64(out, o, vote);
  }
  if (commit !== 0) {
    out[o++] = 0x38;
    o = putUvarint(out, o, commit);
  }
  return out;
}

/** Decodes detcdpb.WalEntry; throws on anything malformed (never reads past the record). */
export function decodeWalEntry(b: Uint8Array): WalRecord {
  const r: WalRecord = {
    kind: WalRecordKind.Entry,
    index: 0,
    term: 0,
    type: 0,
    data: emptyBytes,
    vote: 0n,
    commit: 0,
  };
  let o = 0;
  const readVarint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (o >= b.length) throw new Error("truncated varint");
      const byte = b[o++];
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) break;
      shift += 7n;
      if (shift > 63n) throw new Error("varint too long");
    }
    return result;
  };
  const readNumber = (): number => {
    const v = readVarint();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error("value out of range");
    return Number(v);
  };
  while (o < b.length) {
    const tag = readNumber();
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (wire === 0) {
      switch (field) {
        case 1:
          r.index = readNumber();
          break;
        case 2:
          r.term = readNumber();
          break;
        case 4:
          r.type = readNumber();
          break;
        case 5:
          r.kind = readNumber();
          break;
        case 6:
          r.vote = readVarint();
          break;
        case 7:
          r.commit = readNumber();
          break;
        default:
          readVarint();
      }
    } else if (wire === 2) {
      const length = readNumber();
      if (o + length > b.length) throw new Error("truncated field");
      if (field === 3) r.data = b.subarray(o, o + length);
      o += length;
    } else {
      throw new Error(`unexpected wire type ${wire}`);
    }
  }
  if (r.kind > WalRecordKind.Snapshot) throw new Error(`unknown record kind ${r.kind}`);
  return r;
}

/** Encodes entries as framed records in one buffer, so a batch costs one write and one sync. */
export function encodeRecords(entries: WalRecord[]): Uint8Array {
  const payloads = entries.map(encodeWalEntry);
  let size = 0;
  for (const p of payloads) size += RECORD_HEADER_BYTES + p.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const p of payloads) {
    assert(p.length <= MAX_RECORD_BYTES, `wal record of ${p.length} bytes exceeds the limit`);
    view.setUint32(offset, p.length, true);
    view.setUint32(offset + 4, crc32c(p), true);
    out.set(p, offset + RECORD_HEADER_BYTES);
    offset += RECORD_HEADER_BYTES + p.length;
  }
  return out;
}

/** Result of scanning one segment's bytes. */
export interface DecodeResult {
  entries: WalRecord[];
  /** Bytes that hold whole, valid records; anything after is a torn tail. */
  validBytes: number;
  /** Why decoding stopped early, or null when the whole buffer was valid. */
  tornReason: string | null;
}

/**
 * Decodes framed records. A short or checksum-failing record that ends the buffer is a torn
 * write (reported, not thrown); a bad record followed by more data is corruption (thrown).
 */
export function decodeRecords(data: Uint8Array): DecodeResult {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const entries: WalRecord[] = [];
  let offset = 0;
  while (offset < data.length) {
    if (data.length - offset < RECORD_HEADER_BYTES) {
      return { entries, validBytes: offset, tornReason: "partial record header" };
    }
    const length = view.getUint32(offset, true);
    const checksum = view.getUint32(offset + 4, true);
    if (length > MAX_RECORD_BYTES) {
      if (isZero(data, offset + RECORD_HEADER_BYTES)) {
        return { entries, validBytes: offset, tornReason: "torn record header" };
      }
      throw new WalCorruptError(`record at offset ${offset} claims ${length} bytes`);
    }
    const end = offset + RECORD_HEADER_BYTES + length;
    if (end > data.length) {
      return { entries, validBytes: offset, tornReason: "partial record" };
    }
    const payload = data.subarray(offset + RECORD_HEADER_BYTES, end);
    if (crc32c(payload) !== checksum) {
      // A crash during the last, unsynced write leaves some of its sectors unwritten (zeros on a
      // preallocated segment): that is a torn tail. A bad record with live data after it and no
      // unwritten sector is corruption.
      if (isZero(data, end) || hasZeroSector(data, offset, end)) {
        return { entries, validBytes: offset, tornReason: "checksum mismatch in last record" };
      }
      throw new WalCorruptError(`checksum mismatch in record at offset ${offset}`);
    }
    if (length === 0 && checksum === 0) {
      return { entries, validBytes: offset, tornReason: "zeroed tail" };
    }
    let entry: WalRecord;
    try {
      entry = decodeWalEntry(payload);
    } catch (e) {
      throw new WalCorruptError(`undecodable record at offset ${offset}: ${e}`);
    }
    entries.push(entry);
    offset = end;
  }
  return { entries, validBytes: offset, tornReason: null };
}

const SECTOR_BYTES = 512;

/** Whether [from, to) covers a whole 512-byte sector that is all zeros (never written). */
function hasZeroSector(data: Uint8Array, from: number, to: number): boolean {
  for (
    let s = Math.ceil(from / SECTOR_BYTES) * SECTOR_BYTES;
    s + SECTOR_BYTES <= to;
    s += SECTOR_BYTES
  ) {
    let zero = true;
    for (let i = s; i < s + SECTOR_BYTES && zero; i++) zero = data[i] === 0;
    if (zero) return true;
  }
  return false;
}

function isZero(data: Uint8Array, from: number): boolean {
  for (let i = from; i < data.length; i++) if (data[i] !== 0) return false;
  return true;
}

/** What `Wal.open` found on disk. */
export interface WalRecovery {
  wal: Wal;
  /** The log after `afterIndex`, in order, with overwritten tails already resolved. */
  entries: WalRecord[];
  /** The last hard state written, or null when none was. */
  hardState: WalRecord | null;
  /** Set when a torn tail was cut off (a crash interrupted the last write). */
  truncatedTail: string | null;
}

/**
 * The write-ahead log: Raft's log entries, hard state and snapshot markers, durable once `append`
 * resolves with `sync`. An append may start at or below the last index: a follower whose
 * uncommitted tail conflicts with the leader's log overwrites it, and recovery keeps the newest
 * version of each index. Segmented so that everything covered by a snapshot can be dropped; each
 * new segment starts with the current hard state so that releasing old segments never loses it.
 */
export class Wal {
  #disk: Disk;
  #dir: string;
  #segments: Segment[];
  #file: AppendFile | null = null;
  #fileBytes = 0;
  #lastIndex: number;
  #segmentBytes: number;
  #hardState: WalRecord | null;
  /** The next segment's file, zero-filled and synced under a temporary name; null until asked. */
  #spare: Promise<{ path: string; file: AppendFile } | null> | null = null;
  /** Cutting the last closed segment to its records (after a roll, off the write path). */
  #cutting: Promise<void> = Promise.resolve();
  /**
   * The directory's changes (a roll's rename or creation, a release's removals) one at a time, each
   * synced before the next starts: a segment removed after a snapshot never goes while a new
   * segment's name is not yet durable (a crash then would find neither change half made).
   */
  #dirChanges: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(
    disk: Disk,
    dir: string,
    segments: Segment[],
    lastIndex: number,
    segmentBytes: number,
    hardState: WalRecord | null,
  ) {
    this.#disk = disk;
    this.#dir = dir;
    this.#segments = segments;
    this.#lastIndex = lastIndex;
    this.#segmentBytes = segmentBytes;
    this.#hardState = hardState;
  }

  /**
   * Opens (or creates) the WAL in `dir`, returns the log after `afterIndex` (the snapshot's
   * index) and the last hard state, and cuts a torn tail off the last segment.
   */
  static async open(
    disk: Disk,
    dir: string,
    afterIndex: number,
    segmentBytes = DEFAULT_SEGMENT_BYTES,
  ): Promise<WalRecovery> {
    await disk.mkdirp(dir);
    const names = await disk.list(dir);
    // A spare left by a stop or a crash was never part of the log.
    for (const name of names) if (name.endsWith(SPARE_SUFFIX)) await disk.remove(`${dir}/${name}`);
    const segments = names.map(parseSegmentName).filter((s): s is Segment => s !== null)
      .sort((a, b) => a.sequence - b.sequence);
    let entries: WalRecord[] = [];
    let hardState: WalRecord | null = null;
    let truncatedTail: string | null = null;
    // Index of the last entry of the log as the records so far describe it.
    let last = -1;
    for (let i = 0; i < segments.length; i++) {
      const seg = segments[i];
      const path = `${dir}/${seg.name}`;
      const data = (await disk.readFile(path)) ?? new Uint8Array(0);
      const result = decodeRecords(data);
      if (result.tornReason !== null) {
        if (i !== segments.length - 1) {
          // Closed segments are cut to their records when the next one starts; one written before
          // that (or preallocated space never reached) ends in zeros, which is a clean end.
          if (!isZero(data, result.validBytes)) {
            throw new WalCorruptError(`${seg.name}: ${result.tornReason} before the last segment`);
          }
        } else {
          truncatedTail = `${seg.name}: ${result.tornReason} at offset ${result.validBytes}`;
          await disk.truncate(path, result.validBytes);
        }
      }
      for (const r of result.entries) {
        if (r.kind === WalRecordKind.HardState) {
          hardState = r;
          continue;
        }
        if (r.kind === WalRecordKind.Snapshot) {
          if (r.index > afterIndex) {
            throw new WalCorruptError(
              `${seg.name}: the log restarts at snapshot ${r.index}, newer than the snapshot ` +
                `loaded (${afterIndex}); its snapshot file is missing or unreadable`,
            );
          }
          entries = [];
          last = r.index;
          continue;
        }
        const index = r.index;
        if (last === -1) {
          if (index > afterIndex + 1) {
            throw new WalCorruptError(
              `${seg.name}: log starts at ${index} but the snapshot ends at ${afterIndex}`,
            );
          }
        } else if (index > last + 1 && !(last < afterIndex && index <= afterIndex + 1)) {
          // A gap the loaded snapshot does not cover. (One it covers is a received snapshot whose
          // file was saved but whose marker never reached the WAL before a crash: the member
          // restarted from the file and logged on from the snapshot's index.)
          throw new WalCorruptError(`${seg.name}: entry ${index} follows ${last}`);
        }
        if (index <= last && entries.length > 0 && index <= entries[entries.length - 1].index) {
          // An overwritten tail: keep the log before this index only.
          const keep = index - Number(entries[0].index);
          entries.length = Math.max(0, keep);
        }
        last = index;
        if (index > afterIndex) entries.push(r);
      }
      detachFrom(data, entries);
    }
    const lastIndex = Math.max(last, afterIndex);
    const wal = new Wal(disk, dir, segments, lastIndex, segmentBytes, hardState);
    return { wal, entries, hardState, truncatedTail };
  }

  /** Index of the last entry appended (or recovered). */
  get lastIndex(): number {
    return this.#lastIndex;
  }

  /**
   * Appends records: entries continue the log or overwrite its tail (never leave a gap). With
   * `sync` the call resolves once everything written so far is durable.
   */
  async append(records: WalRecord[], sync = true): Promise<void> {
    if (records.length === 0) return;
    let last = this.#lastIndex;
    let firstIndex = 0;
    for (const r of records) {
      if (r.kind === WalRecordKind.Entry) {
        assert(r.index <= last + 1, `wal append of ${r.index} after ${last}`);
        if (firstIndex === 0) firstIndex = r.index;
        last = r.index;
      } else if (r.kind === WalRecordKind.Snapshot) {
        last = r.index;
      }
    }
    let data = encodeRecords(records);
    if (this.#file === null || this.#fileBytes + data.length > this.#segmentBytes) {
      const first = firstIndex === 0 ? last + 1 : Math.min(firstIndex, this.#lastIndex + 1);
      await this.#inDirOrder(() => this.#roll(first));
      if (this.#hardState !== null) {
        const withState = encodeRecords([this.#hardState]);
        const joined = new Uint8Array(withState.length + data.length);
        joined.set(withState, 0);
        joined.set(data, withState.length);
        data = joined;
      }
    }
    await this.#file!.write(data);
    walWriteBytes.inc(data.length);
    if (sync) await this.#timedSync();
    this.#fileBytes += data.length;
    this.#makeSpare();
    this.#lastIndex = last;
    for (let i = records.length - 1; i >= 0; i--) {
      if (records[i].kind === WalRecordKind.HardState) {
        this.#hardState = records[i];
        break;
      }
    }
  }

  /** Makes everything appended so far durable. */
  async sync(): Promise<void> {
    if (this.#file !== null) await this.#timedSync();
  }

  /** fsync of the segment being written, timed into etcd_disk_wal_fsync_duration_seconds. */
  async #timedSync(): Promise<void> {
    const timed = walFsyncSeconds.startTimer();
    await this.#file!.sync();
    timed();
  }

  /**
   * Drops closed segments whose entries are all at or below `index` (covered by a durable
   * snapshot). The segment being written stays until it fills up and a new one starts.
   */
  async releaseTo(index: number): Promise<void> {
    // Decided at once; a segment rolled while the removals are awaited must stay in the list.
    const segments = this.#segments;
    const removed = new Set<Segment>();
    for (let i = 0; i < segments.length - 1; i++) {
      if (segments[i + 1].firstIndex - 1 <= index) removed.add(segments[i]);
    }
    if (removed.size === 0) return;
    await this.#cutting;
    await this.#inDirOrder(async () => {
      this.#segments = this.#segments.filter((s) => !removed.has(s));
      for (const s of removed) await this.#disk.remove(`${this.#dir}/${s.name}`);
      await this.#disk.syncDir(this.#dir);
    });
  }

  /** Runs a change of the directory after the ones before it (see #dirChanges). */
  #inDirOrder<T>(change: () => Promise<T>): Promise<T> {
    const done = this.#dirChanges.then(change);
    this.#dirChanges = done.catch(() => {});
    return done;
  }

  /** Number of segment files currently on disk. */
  get segmentCount(): number {
    return this.#segments.length;
  }

  close(): void {
    this.#closed = true;
    this.#file?.close();
    this.#file = null;
    // A spare still being made is removed once it is (etcd's file pipeline does the same).
    const spare = this.#spare;
    this.#spare = null;
    void spare?.then(async (made) => {
      if (made === null) return;
      made.file.close();
      await this.#disk.remove(made.path);
    }).catch(() => {});
  }

  async #roll(firstIndex: number): Promise<void> {
    const last = this.#segments[this.#segments.length - 1];
    if (this.#file !== null) {
      // Close the full segment like etcd's cut: durable first. Cutting it to its records (so its
      // preallocated zeros end it cleanly) is left to the background: a start reads zeros after
      // the records of a segment that is not the last as its end.
      await this.#file.sync();
      this.#file.close();
      this.#file = null;
      const path = `${this.#dir}/${last.name}`;
      const size = this.#fileBytes;
      this.#cutting = this.#cutting.then(() => this.#disk.truncate(path, size)).catch(() => {});
    }
    const seg: Segment = {
      sequence: last ? last.sequence + 1 : 0,
      firstIndex,
      name: "",
    };
    seg.name = segmentName(seg.sequence, firstIndex);
    const path = `${this.#dir}/${seg.name}`;
    const spare = this.#spare === null ? null : await this.#spare;
    this.#spare = null;
    let file: AppendFile | null = null;
    if (spare !== null) {
      try {
        await this.#disk.rename(spare.path, path);
        file = spare.file;
      } catch {
        spare.file.close();
      }
    }
    this.#file = file ?? await this.#disk.openAppend(path, this.#segmentBytes);
    this.#fileBytes = 0;
    this.#segments.push(seg);
    // The new name is durable before anything written under it is acknowledged.
    await this.#disk.syncDir(this.#dir);
  }

  /**
   * Starts making the next segment's file in the background once the current one is a quarter
   * full (a WAL that only takes a few entries, as a restore's, makes none); a failure leaves the
   * roll to make it.
   */
  #makeSpare(): void {
    if (this.#closed || this.#spare !== null || this.#fileBytes * 4 < this.#segmentBytes) return;
    const path = `${this.#dir}/${(spares++).toString(16).padStart(8, "0")}${SPARE_SUFFIX}`;
    this.#spare = this.#disk.openAppend(path, this.#segmentBytes).then(
      (file) => ({ path, file }),
      () => {
        void this.#disk.remove(path).catch(() => {});
        return null;
      },
    );
  }
}

/**
 * The recovered entries' data are views into a segment's buffer (64 MiB, most of it entries
 * before the snapshot, or preallocated zeros): those that point into `segment` are moved to one
 * buffer holding only the span they cover, so that the segment's buffer can be freed (Raft's
 * storage keeps the entries until the next snapshot).
 */
function detachFrom(segment: Uint8Array, entries: WalRecord[]): void {
  let start = Infinity;
  let end = 0;
  for (let i = 0; i < entries.length; i++) {
    const data = entries[i].data;
    if (data.buffer !== segment.buffer) continue;
    start = Math.min(start, data.byteOffset);
    end = Math.max(end, data.byteOffset + data.length);
  }
  if (end === 0) return;
  const span = new Uint8Array(segment.buffer.slice(start, end));
  for (let i = 0; i < entries.length; i++) {
    const data = entries[i].data;
    if (data.buffer !== segment.buffer) continue;
    entries[i].data = span.subarray(data.byteOffset - start, data.byteOffset - start + data.length);
  }
}
