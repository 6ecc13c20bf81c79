import { readSource } from "../bytes.ts";
import { Crc32c, crc32c } from "./crc32c.ts";
import { type Disk, PACED_SYNC_BYTES, type ReadAtFile, syncOffLoop } from "./disk.ts";
import { snapshotFsyncSeconds } from "./metrics.ts";

const magic = 0x44534e50; // "DSNP"
const formatVersion = 1;
/**
 * A file written as its data arrived (a snapshot the leader streamed): the header's CRC field is
 * 0 and the data's CRC-32C follows the data (4 bytes, little-endian).
 */
const formatVersionStreamed = 2;
const HEADER_BYTES = 4 + 4 + 8 + 8 + 4 + 8;
const TRAILER_BYTES = 4;
/** A received snapshot's file while it arrives, until the node installs it (or drops it). */
const PARTIAL_SUFFIX = ".part";
/**
 * How many snapshot files are kept; older ones are removed after a new one is durable. Two: the
 * newest, and the previous one to fall back to if the newest is ever unreadable (the WAL is kept
 * back to it; an older snapshot has no WAL left after it and could not be used). Each holds the
 * whole state, so every extra one costs its size on disk.
 */
export const KEEP_SNAPSHOTS = 2;

/** A state snapshot as stored: the applied state as of `index` (the consistent index). */
export interface Snapshot {
  index: number;
  term: number;
  /** Opaque state (the MVCC store's own encoding and whatever else the node adds). */
  data: Uint8Array;
}

function fileName(index: number, term: number): string {
  return `${term.toString(16).padStart(16, "0")}-${index.toString(16).padStart(16, "0")}.snap`;
}

function parseFileName(name: string): { index: number; term: number } | null {
  const m = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/.exec(name);
  return m ? { term: parseInt(m[1], 16), index: parseInt(m[2], 16) } : null;
}

/** Bytes before a snapshot file's data. */
export const SNAPSHOT_HEADER_BYTES = HEADER_BYTES;

/**
 * Writes the header of a snapshot file whose data already fills `file` from
 * SNAPSHOT_HEADER_BYTES on, `crc` being that data's CRC-32C (a large snapshot is encoded in place
 * and checksummed in slices, not copied).
 */
export function sealSnapshot(file: Uint8Array, index: number, term: number, crc: number): void {
  file.set(snapshotHeader(index, term, crc, file.length - HEADER_BYTES));
}

/** The header of a snapshot file whose data is `length` bytes with CRC-32C `crc`. */
export function snapshotHeader(
  index: number,
  term: number,
  crc: number,
  length: number,
  version = formatVersion,
): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES);
  const v = new DataView(out.buffer);
  v.setUint32(0, magic, true);
  v.setUint32(4, version, true);
  v.setBigUint64(8, BigInt(index), true);
  v.setBigUint64(16, BigInt(term), true);
  v.setUint32(24, crc, true);
  v.setBigUint64(28, BigInt(length), true);
  return out;
}

/** Serialises a snapshot with a checksummed header. */
export function encodeSnapshot(s: Snapshot): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + s.data.length);
  out.set(s.data, HEADER_BYTES);
  sealSnapshot(out, s.index, s.term, crc32c(s.data));
  return out;
}

/** A snapshot file's header, checked against the file's size; throws on any mismatch. */
function readHeader(
  head: Uint8Array,
  fileSize: number,
): { index: number; term: number; length: number; crc: number | null } {
  if (fileSize < HEADER_BYTES || head.length < HEADER_BYTES) {
    throw new Error("snapshot: file too short");
  }
  const v = new DataView(head.buffer, head.byteOffset, HEADER_BYTES);
  if (v.getUint32(0, true) !== magic) throw new Error("snapshot: bad magic");
  const version = v.getUint32(4, true);
  if (version !== formatVersion && version !== formatVersionStreamed) {
    throw new Error("snapshot: unknown format version");
  }
  const length = Number(v.getBigUint64(28, true));
  const trailer = version === formatVersionStreamed ? TRAILER_BYTES : 0;
  if (length !== fileSize - HEADER_BYTES - trailer) throw new Error("snapshot: length mismatch");
  return {
    index: Number(v.getBigUint64(8, true)),
    term: Number(v.getBigUint64(16, true)),
    length,
    crc: trailer === 0 ? v.getUint32(24, true) : null, // null: in the trailer
  };
}

/** Parses and verifies a snapshot file; throws on any mismatch. */
export function decodeSnapshot(bytes: Uint8Array): Snapshot {
  const h = readHeader(bytes, bytes.length);
  const data = bytes.subarray(HEADER_BYTES, HEADER_BYTES + h.length);
  const crc = h.crc ?? new DataView(bytes.buffer, bytes.byteOffset + HEADER_BYTES + h.length, 4)
    .getUint32(0, true);
  if (crc32c(data) !== crc) throw new Error("snapshot: checksum mismatch");
  return { index: h.index, term: h.term, data };
}

/** A snapshot's data in its file, read by position (see Snapshotter.open). */
export interface SnapshotFile {
  index: number;
  term: number;
  /** Bytes of data. */
  readonly size: number;
  /** Reads up to buf.length bytes of data at `position`; returns how many. */
  readAt(buf: Uint8Array, position: number): number;
  close(): void;
}

/** A snapshot arriving in chunks, written to its file as it comes (Snapshotter.receive). */
export interface ReceivingSnapshot {
  /** Appends the next chunk; throws once more than the announced length arrived. */
  write(chunk: Uint8Array): Promise<void>;
  /** Every byte arrived: the trailer is written and the file synced (not installed yet). */
  finish(): Promise<void>;
  /** Gives the file up (a broken or refused transfer). */
  abort(): Promise<void>;
}

/** Bytes read at a time while a snapshot file's checksum is verified. */
const VERIFY_BLOCK_BYTES = 1024 * 1024;

/** Saves and loads snapshots in one directory. */
export class Snapshotter {
  constructor(private readonly disk: Disk, private readonly dir: string) {}

  /** Writes a snapshot durably, then prunes all but the newest `KEEP_SNAPSHOTS`. */
  save(s: Snapshot): Promise<void> {
    return this.saveFile(s.index, s.term, encodeSnapshot(s));
  }

  /** save() of a file already encoded and sealed (see sealSnapshot). */
  async saveFile(index: number, term: number, file: Uint8Array): Promise<void> {
    await this.disk.mkdirp(this.dir);
    await this.disk.writeFileAtomic(
      `${this.dir}/${fileName(index, term)}`,
      file,
      (ms) => snapshotFsyncSeconds.observe(ms / 1000),
    );
    await this.#prune();
  }

  /**
   * A snapshot at (index, term) of `length` bytes that arrives in chunks: written to a partial
   * file as it comes (never whole in memory), its CRC-32C computed on the way and written after
   * it. Installed with install() once Raft takes it; until then it is no snapshot of this member.
   */
  async receive(index: number, term: number, length: number): Promise<ReceivingSnapshot> {
    await this.disk.mkdirp(this.dir);
    const path = `${this.dir}/${fileName(index, term)}${PARTIAL_SUFFIX}`;
    const file = await this.disk.openAppend(path);
    const crc = new Crc32c();
    let written = 0;
    let unpaced = 0;
    let closed = false;
    const close = () => {
      if (!closed) file.close();
      closed = true;
    };
    try {
      await file.write(snapshotHeader(index, term, 0, length, formatVersionStreamed));
    } catch (e) {
      close();
      await this.disk.remove(path).catch(() => {});
      throw e;
    }
    return {
      write: async (chunk) => {
        written += chunk.length;
        if (written > length) throw new Error("snapshot: more data than announced");
        crc.update(chunk);
        await file.write(chunk);
        // Hundreds of MB, maybe: flushed as they come (in the background, where the disk can), not
        // in one sync at the end that holds the disk from the WAL's (PACED_SYNC_BYTES).
        unpaced += chunk.length;
        if (unpaced >= PACED_SYNC_BYTES && file.syncInBackground) {
          unpaced = 0;
          await file.syncInBackground();
        }
      },
      finish: async () => {
        if (written !== length) {
          throw new Error(`snapshot: ${written} bytes of ${length} arrived`);
        }
        const trailer = new Uint8Array(TRAILER_BYTES);
        new DataView(trailer.buffer).setUint32(0, crc.digest(), true);
        await file.write(trailer);
        // Hundreds of MB, maybe: not on the event loop when the disk can sync in the background.
        const syncing = snapshotFsyncSeconds.startTimer(); // the metrics' clock, not the wall's
        await syncOffLoop(file);
        syncing();
        close();
      },
      abort: async () => {
        close();
        await this.disk.remove(path);
      },
    };
  }

  /**
   * Makes a received snapshot (finished) this member's newest snapshot file, durably, then
   * prunes as save() does.
   */
  async install(index: number, term: number): Promise<void> {
    const path = `${this.dir}/${fileName(index, term)}`;
    await this.disk.rename(`${path}${PARTIAL_SUFFIX}`, path);
    await this.disk.syncDir(this.dir);
    await this.#prune();
  }

  /** Removes received snapshots never installed (a transfer cut short, or one Raft refused). */
  async removePartial(): Promise<void> {
    for (const name of await this.disk.list(this.dir)) {
      if (name.endsWith(PARTIAL_SUFFIX)) await this.disk.remove(`${this.dir}/${name}`);
    }
  }

  /**
   * The snapshot file at (index, term), its checksum verified in blocks, for reading by position
   * (a large one is never read whole); null when it is not there. Throws when it does not verify.
   */
  async open(index: number, term: number, verify = true): Promise<SnapshotFile | null> {
    const file = await this.disk.openRead(`${this.dir}/${fileName(index, term)}`);
    if (file === null) return null;
    try {
      return verifiedFile(file, verify);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  async #prune(): Promise<void> {
    const names = await this.#sortedNames();
    for (const name of names.slice(KEEP_SNAPSHOTS)) await this.disk.remove(`${this.dir}/${name}`);
  }

  /**
   * The newest snapshot that verifies, whole, or null. Broken files are skipped and reported
   * through `onSkip` so the operator learns of them.
   */
  async loadNewest(onSkip: (name: string, reason: string) => void): Promise<Snapshot | null> {
    const file = await this.openNewest(onSkip);
    if (file === null) return null;
    try {
      return { index: file.index, term: file.term, data: readSource(file) };
    } finally {
      file.close();
    }
  }

  /**
   * The newest snapshot file that verifies, opened for reading by position (see open()), or
   * null. Broken files are skipped and reported through `onSkip`, as loadNewest() does.
   */
  async openNewest(onSkip: (name: string, reason: string) => void): Promise<SnapshotFile | null> {
    for (const name of await this.#sortedNames()) {
      const file = await this.disk.openRead(`${this.dir}/${name}`);
      if (file === null) continue;
      try {
        return verifiedFile(file);
      } catch (e) {
        file.close();
        onSkip(name, e instanceof Error ? e.message : String(e));
      }
    }
    return null;
  }

  /** Snapshot file names, newest (highest index) first. */
  async #sortedNames(): Promise<string[]> {
    const parsed = (await this.disk.list(this.dir))
      .map((name) => ({ name, meta: parseFileName(name) }))
      .filter((x) => x.meta !== null);
    parsed.sort((a, b) => b.meta!.index - a.meta!.index);
    return parsed.map((x) => x.name);
  }
}

/** A snapshot file's data, its header checked and (with `verify`) its checksum. */
function verifiedFile(file: ReadAtFile, verify = true): SnapshotFile {
  const fileSize = file.size();
  const head = new Uint8Array(HEADER_BYTES);
  file.readAt(head, 0);
  const h = readHeader(head, fileSize);
  if (verify) verifyData(file, h);
  return {
    index: h.index,
    term: h.term,
    size: h.length,
    readAt: (buf, position) => {
      const n = Math.max(0, Math.min(buf.length, h.length - position));
      return n === 0 ? 0 : file.readAt(buf.subarray(0, n), HEADER_BYTES + position);
    },
    close: () => file.close(),
  };
}

/** Reads a snapshot file's data in blocks and checks it against its CRC-32C. */
function verifyData(file: ReadAtFile, h: { length: number; crc: number | null }): void {
  const crc = new Crc32c();
  const block = new Uint8Array(Math.min(VERIFY_BLOCK_BYTES, Math.max(h.length, 4)));
  for (let at = 0; at < h.length;) {
    const want = block.subarray(0, Math.min(block.length, h.length - at));
    const n = file.readAt(want, HEADER_BYTES + at);
    if (n <= 0) throw new Error("snapshot: file too short");
    crc.update(want.subarray(0, n));
    at += n;
  }
  let expected = h.crc;
  if (expected === null) {
    const trailer = new Uint8Array(TRAILER_BYTES);
    if (file.readAt(trailer, HEADER_BYTES + h.length) !== TRAILER_BYTES) {
      throw new Error("snapshot: file too short");
    }
    expected = new DataView(trailer.buffer).getUint32(0, true);
  }
  if (crc.digest() !== expected) throw new Error("snapshot: checksum mismatch");
}
