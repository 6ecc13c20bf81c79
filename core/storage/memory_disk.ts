import type { AppendFile, Disk, ReadAtFile } from "./disk.ts";

interface MemoryFile {
  synced: Uint8Array;
  /** Writes not yet synced, at their offsets. */
  pending: { offset: number; data: Uint8Array }[];
}

/**
 * An in-memory Disk for tests and simulation. `crash()` drops every write not yet synced, the
 * way a power loss does, so recovery code is tested against the disk it will really meet.
 */
export class MemoryDisk implements Disk {
  #files = new Map<string, MemoryFile>();
  #dirs = new Set<string>();

  /** With `preallocate`, files opened for appending are zero-filled as the real disk does. */
  constructor(private readonly options: { preallocate?: boolean } = {}) {}

  readFile(path: string): Promise<Uint8Array | null> {
    const f = this.#files.get(path);
    return Promise.resolve(f ? contents(f) : null);
  }

  writeFileAtomic(path: string, data: Uint8Array): Promise<void> {
    this.#files.set(path, { synced: data.slice(), pending: [] });
    return Promise.resolve();
  }

  openAppend(path: string, preallocateBytes = 0): Promise<AppendFile> {
    const size = this.options.preallocate ? preallocateBytes : 0;
    const file: MemoryFile = { synced: new Uint8Array(size), pending: [] };
    this.#files.set(path, file);
    let offset = 0;
    return Promise.resolve({
      write: (data: Uint8Array) => {
        file.pending.push({ offset, data: data.slice() });
        offset += data.length;
        return Promise.resolve();
      },
      sync: () => {
        file.synced = contents(file);
        file.pending = [];
        return Promise.resolve();
      },
      close: () => {},
    });
  }

  openRead(path: string): Promise<ReadAtFile | null> {
    if (!this.#files.has(path)) return Promise.resolve(null);
    return Promise.resolve({
      readAt: (buf: Uint8Array, position: number) => {
        const f = this.#files.get(path);
        if (!f) return 0;
        const data = contents(f);
        const n = Math.max(0, Math.min(buf.length, data.length - position));
        buf.set(data.subarray(position, position + n));
        return n;
      },
      size: () => {
        const f = this.#files.get(path);
        return f ? contents(f).length : 0;
      },
      close: () => {},
    });
  }

  truncate(path: string, size: number): Promise<void> {
    const f = this.#files.get(path);
    if (f) this.#files.set(path, { synced: contents(f).slice(0, size), pending: [] });
    return Promise.resolve();
  }

  list(dir: string): Promise<string[]> {
    const prefix = dir.endsWith("/") ? dir : dir + "/";
    const names = new Set<string>();
    for (const p of [...this.#files.keys(), ...this.#dirs]) {
      if (p.startsWith(prefix)) names.add(p.slice(prefix.length).split("/")[0]);
    }
    return Promise.resolve([...names].sort());
  }

  remove(path: string): Promise<void> {
    this.#files.delete(path);
    return Promise.resolve();
  }

  mkdirp(dir: string): Promise<void> {
    this.#dirs.add(dir);
    return Promise.resolve();
  }

  syncDir(_dir: string): Promise<void> {
    return Promise.resolve();
  }

  /** Loses every unsynced write, as a kill -9 followed by a power cut would. */
  crash(): void {
    for (const f of this.#files.values()) f.pending = [];
  }

  /** Overwrites bytes of a file in place (synced), to simulate corruption. */
  corrupt(path: string, offset: number, bytes: Uint8Array): void {
    const f = this.#files.get(path);
    if (!f) throw new Error(`no file ${path}`);
    const data = contents(f);
    data.set(bytes, offset);
    this.#files.set(path, { synced: data, pending: [] });
  }
}

/** The file as a reader sees it: synced bytes with pending writes laid over them. */
function contents(f: MemoryFile): Uint8Array {
  let size = f.synced.length;
  for (const w of f.pending) size = Math.max(size, w.offset + w.data.length);
  const out = new Uint8Array(size);
  out.set(f.synced);
  for (const w of f.pending) out.set(w.data, w.offset);
  return out;
}
