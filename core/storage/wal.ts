import { create, fromBinary } from "@bufbuild/protobuf";
import { type WalEntry, WalEntrySchema } from "../../gen/detcdpb/internal_pb.ts";
import { assert } from "../assert.ts";
import { crc32c } from "./crc32c.ts";
import type { AppendFile, Disk } from "./disk.ts";

/** Bytes before each record: payload length (u32 LE) and its CRC-32C (u32 LE). */
const recordHeaderBytes = 8;
/**
 * Largest record we write or accept. A length above it is corruption, never an allocation
 * (CVE-2020-15106 / CVE-2020-15112: malformed WAL records crashed etcd).
 */
export const maxRecordBytes = 64 * 1024 * 1024;
/**
 * A segment is closed and a new one started once it grows past this. Each new segment is
 * zero-filled up front (see Disk.openAppend), so this is also the cost paid at each roll and start.
 */
export const defaultSegmentBytes = 16 * 1024 * 1024;

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

function parseSegmentName(name: string): Segment | null {
  const m = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/.exec(name);
  if (!m) return null;
  return { name, sequence: parseInt(m[1], 16), firstIndex: parseInt(m[2], 16) };
}

function varintBytes(n: number): number {
  let bytes = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    bytes++;
  }
  return bytes;
}

function putVarint(out: Uint8Array, offset: number, n: number): number {
  while (n >= 0x80) {
    out[offset++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[offset++] = n;
  return offset;
}

/**
 * WalEntry's protobuf encoding, written directly: it is on every write's path, and protobuf-es's
 * reflective toBinary costs several times more. Byte-identical to toBinary (tested).
 */
export function encodeWalEntry(entry: WalEntry): Uint8Array {
  const index = Number(entry.index);
  const term = Number(entry.term);
  const data = entry.data;
  const size = (index === 0 ? 0 : 1 + varintBytes(index)) +
    (term === 0 ? 0 : 1 + varintBytes(term)) +
    (data.length === 0 ? 0 : 1 + varintBytes(data.length) + data.length);
  const out = new Uint8Array(size);
  let o = 0;
  if (index !== 0) {
    out[o++] = 0x08;
    o = putVarint(out, o, index);
  }
  if (term !== 0) {
    out[o++] = 0x10;
    o = putVarint(out, o, term);
  }
  if (data.length !== 0) {
    out[o++] = 0x1a;
    o = putVarint(out, o, data.length);
    out.set(data, o);
  }
  return out;
}

/** Encodes entries as framed records in one buffer, so a batch costs one write and one sync. */
export function encodeRecords(entries: WalEntry[]): Uint8Array {
  const payloads = entries.map(encodeWalEntry);
  let size = 0;
  for (const p of payloads) size += recordHeaderBytes + p.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const p of payloads) {
    assert(p.length <= maxRecordBytes, `wal record of ${p.length} bytes exceeds the limit`);
    view.setUint32(offset, p.length, true);
    view.setUint32(offset + 4, crc32c(p), true);
    out.set(p, offset + recordHeaderBytes);
    offset += recordHeaderBytes + p.length;
  }
  return out;
}

/** Result of scanning one segment's bytes. */
export interface DecodeResult {
  entries: WalEntry[];
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
  const entries: WalEntry[] = [];
  let offset = 0;
  while (offset < data.length) {
    if (data.length - offset < recordHeaderBytes) {
      return { entries, validBytes: offset, tornReason: "partial record header" };
    }
    const length = view.getUint32(offset, true);
    const checksum = view.getUint32(offset + 4, true);
    if (length > maxRecordBytes) {
      if (isZero(data, offset + recordHeaderBytes)) {
        return { entries, validBytes: offset, tornReason: "torn record header" };
      }
      throw new WalCorruptError(`record at offset ${offset} claims ${length} bytes`);
    }
    const end = offset + recordHeaderBytes + length;
    if (end > data.length) {
      return { entries, validBytes: offset, tornReason: "partial record" };
    }
    const payload = data.subarray(offset + recordHeaderBytes, end);
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
    let entry: WalEntry;
    try {
      entry = fromBinary(WalEntrySchema, payload);
    } catch (e) {
      throw new WalCorruptError(`undecodable record at offset ${offset}: ${e}`);
    }
    entries.push(entry);
    offset = end;
  }
  return { entries, validBytes: offset, tornReason: null };
}

const sectorBytes = 512;

/** Whether [from, to) covers a whole 512-byte sector that is all zeros (never written). */
function hasZeroSector(data: Uint8Array, from: number, to: number): boolean {
  for (
    let s = Math.ceil(from / sectorBytes) * sectorBytes;
    s + sectorBytes <= to;
    s += sectorBytes
  ) {
    let zero = true;
    for (let i = s; i < s + sectorBytes && zero; i++) zero = data[i] === 0;
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
  /** Entries with index > afterIndex, in order. */
  entries: WalEntry[];
  /** Set when a torn tail was cut off (a crash interrupted the last write). */
  truncatedTail: string | null;
}

/**
 * The write-ahead log: entries appended in index order, durable once `append` resolves.
 * Segmented so that everything covered by a snapshot can be dropped.
 */
export class Wal {
  #disk: Disk;
  #dir: string;
  #segments: Segment[];
  #file: AppendFile | null = null;
  #fileBytes = 0;
  #lastIndex: number;
  #segmentBytes: number;

  private constructor(
    disk: Disk,
    dir: string,
    segments: Segment[],
    lastIndex: number,
    segmentBytes: number,
  ) {
    this.#disk = disk;
    this.#dir = dir;
    this.#segments = segments;
    this.#lastIndex = lastIndex;
    this.#segmentBytes = segmentBytes;
  }

  /**
   * Opens (or creates) the WAL in `dir`, returns the entries after `afterIndex` (the snapshot's
   * index), and cuts a torn tail off the last segment.
   */
  static async open(
    disk: Disk,
    dir: string,
    afterIndex: number,
    segmentBytes = defaultSegmentBytes,
  ): Promise<WalRecovery> {
    await disk.mkdirp(dir);
    const segments = (await disk.list(dir)).map(parseSegmentName).filter((s): s is Segment =>
      s !== null
    ).sort((a, b) => a.sequence - b.sequence);
    const entries: WalEntry[] = [];
    let truncatedTail: string | null = null;
    let lastIndex = afterIndex;
    for (let i = 0; i < segments.length; i++) {
      const seg = segments[i];
      const path = `${dir}/${seg.name}`;
      const data = (await disk.readFile(path)) ?? new Uint8Array(0);
      const result = decodeRecords(data);
      if (result.tornReason !== null) {
        if (i !== segments.length - 1) {
          throw new WalCorruptError(`${seg.name}: ${result.tornReason} before the last segment`);
        }
        truncatedTail = `${seg.name}: ${result.tornReason} at offset ${result.validBytes}`;
        await disk.truncate(path, result.validBytes);
      }
      for (const e of result.entries) {
        const index = Number(e.index);
        if (index <= afterIndex) continue;
        if (index !== lastIndex + 1) {
          throw new WalCorruptError(`${seg.name}: entry ${index} follows ${lastIndex}`);
        }
        entries.push(e);
        lastIndex = index;
      }
    }
    const wal = new Wal(disk, dir, segments, lastIndex, segmentBytes);
    return { wal, entries, truncatedTail };
  }

  /** Index of the last entry appended (or recovered). */
  get lastIndex(): number {
    return this.#lastIndex;
  }

  /** Appends entries (consecutive indexes following lastIndex) and syncs once. */
  async append(entries: WalEntry[]): Promise<void> {
    if (entries.length === 0) return;
    assert(
      Number(entries[0].index) === this.#lastIndex + 1,
      `wal append of ${entries[0].index} after ${this.#lastIndex}`,
    );
    const data = encodeRecords(entries);
    if (this.#file === null || this.#fileBytes + data.length > this.#segmentBytes) {
      await this.#roll(Number(entries[0].index));
    }
    await this.#file!.write(data);
    await this.#file!.sync();
    this.#fileBytes += data.length;
    this.#lastIndex = Number(entries[entries.length - 1].index);
  }

  /**
   * Drops closed segments whose entries are all at or below `index` (covered by a durable
   * snapshot). The segment being written stays until it fills up and a new one starts.
   */
  async releaseTo(index: number): Promise<void> {
    const keep: Segment[] = [];
    const last = this.#segments.length - 1;
    for (let i = 0; i < this.#segments.length; i++) {
      const next = this.#segments[i + 1];
      if (i < last && next.firstIndex - 1 <= index) {
        await this.#disk.remove(`${this.#dir}/${this.#segments[i].name}`);
      } else {
        keep.push(this.#segments[i]);
      }
    }
    if (keep.length !== this.#segments.length) await this.#disk.syncDir(this.#dir);
    this.#segments = keep;
  }

  /** Number of segment files currently on disk. */
  get segmentCount(): number {
    return this.#segments.length;
  }

  close(): void {
    this.#file?.close();
    this.#file = null;
  }

  async #roll(firstIndex: number): Promise<void> {
    this.#file?.close();
    const last = this.#segments[this.#segments.length - 1];
    const seg: Segment = {
      sequence: last ? last.sequence + 1 : 0,
      firstIndex,
      name: "",
    };
    seg.name = segmentName(seg.sequence, firstIndex);
    this.#file = await this.#disk.openAppend(`${this.#dir}/${seg.name}`, this.#segmentBytes);
    this.#fileBytes = 0;
    this.#segments.push(seg);
    await this.#disk.syncDir(this.#dir);
  }
}

/** Convenience for building entries. */
export function walEntry(index: number, term: number, data: Uint8Array): WalEntry {
  return create(WalEntrySchema, { index: BigInt(index), term: BigInt(term), data });
}
