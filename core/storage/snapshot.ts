import { crc32c } from "./crc32c.ts";
import type { Disk } from "./disk.ts";

const magic = 0x44534e50; // "DSNP"
const formatVersion = 1;
const HEADER_BYTES = 4 + 4 + 8 + 8 + 4 + 8;
/** How many snapshot files are kept; older ones are removed after a new one is durable. */
export const KEEP_SNAPSHOTS = 5;

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

/** Serialises a snapshot with a checksummed header. */
export function encodeSnapshot(s: Snapshot): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + s.data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, magic, true);
  v.setUint32(4, formatVersion, true);
  v.setBigUint64(8, BigInt(s.index), true);
  v.setBigUint64(16, BigInt(s.term), true);
  v.setUint32(24, crc32c(s.data), true);
  v.setBigUint64(28, BigInt(s.data.length), true);
  out.set(s.data, HEADER_BYTES);
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
  async save(s: Snapshot): Promise<void> {
    await this.disk.mkdirp(this.dir);
    await this.disk.writeFileAtomic(`${this.dir}/${fileName(s.index, s.term)}`, encodeSnapshot(s));
    const names = await this.#sortedNames();
    for (const name of names.slice(KEEP_SNAPSHOTS)) await this.disk.remove(`${this.dir}/${name}`);
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
