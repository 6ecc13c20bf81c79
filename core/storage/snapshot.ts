import { crc32c } from "./crc32c.ts";
import type { Disk } from "./disk.ts";
import { snapshotFsyncSeconds } from "./metrics.ts";

const magic = 0x44534e50; // "DSNP"
const formatVersion = 1;
const HEADER_BYTES = 4 + 4 + 8 + 8 + 4 + 8;
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
): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES);
  const v = new DataView(out.buffer);
  v.setUint32(0, magic, true);
  v.setUint32(4, formatVersion, true);
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

/** Parses and verifies a snapshot file; throws on any mismatch. */
export function decodeSnapshot(bytes: Uint8Array): Snapshot {
  if (bytes.length < HEADER_BYTES) throw new Error("snapshot: file too short");
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (v.getUint32(0, true) !== magic) throw new Error("snapshot: bad magic");
  if (v.getUint32(4, true) !== formatVersion) throw new Error("snapshot: unknown format version");
  const length = Number(v.getBigUint64(28, true));
  if (length !== bytes.length - HEADER_BYTES) throw new Error("snapshot: length mismatch");
  const data = bytes.subarray(HEADER_BYTES);
  if (crc32c(data) !== v.getUint32(24, true)) throw new Error("snapshot: checksum mismatch");
  return {
    index: Number(v.getBigUint64(8, true)),
    term: Number(v.getBigUint64(16, true)),
    data,
  };
}

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

  async #prune(): Promise<void> {
    const names = await this.#sortedNames();
    for (const name of names.slice(KEEP_SNAPSHOTS)) await this.disk.remove(`${this.dir}/${name}`);
  }

  /** The snapshot at (index, term) if its file is there and verifies, else null. */
  async load(index: number, term: number): Promise<Snapshot | null> {
    const bytes = await this.disk.readFile(`${this.dir}/${fileName(index, term)}`);
    if (bytes === null) return null;
    try {
      return decodeSnapshot(bytes);
    } catch {
      return null;
    }
  }

  /**
   * The newest snapshot that verifies, or null. Broken files are skipped and reported through
   * `onSkip` so the operator learns of them.
   */
  async loadNewest(onSkip: (name: string, reason: string) => void): Promise<Snapshot | null> {
    for (const name of await this.#sortedNames()) {
      const bytes = await this.disk.readFile(`${this.dir}/${name}`);
      if (bytes === null) continue;
      try {
        return decodeSnapshot(bytes);
      } catch (e) {
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
