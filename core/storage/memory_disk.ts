import type { AppendFile, Disk, ReadAtFile } from "./disk.ts";

interface MemoryFile {
  synced: Uint8Array;
  /** Writes (and an open's truncation to 0) not yet synced, in order. */
  pending: ({ offset: number; data: Uint8Array } | { truncate: number })[];
}

/**
 * An in-memory Disk for tests and simulation, with the durability rules of a POSIX file system
 * after a power cut, so recovery code is tested against the disk it will really meet:
 *
 * - a file's contents survive a crash only as of its last `sync` (unsynced writes vanish, and so
 *   does the truncation of an existing file reopened for appending);
 * - a directory entry survives only as of the last `syncDir` of its directory: a file created and
 *   written (even synced) but whose directory was not synced is gone after `crash()`, and a
 *   removed file whose directory was not synced comes back;
 * - `writeFileAtomic` and `truncate` are durable on return, as DenoDisk's are (temp, sync, rename
 *   and directory sync; ftruncate and fdatasync). Directories made by `mkdirp` survive (its
 *   contract: DenoDisk syncs each new directory's parent).
 */
export class MemoryDisk implements Disk {
  /** What a reader sees now. */
  #files = new Map<string, MemoryFile>();
  /** The directory entries a crash leaves (each pointing at a file, whose synced bytes stay). */
  #durable = new Map<string, MemoryFile>();
  #dirs = new Set<string>();

  /** With `preallocate`, files opened for appending are zero-filled as the real disk does. */
  constructor(private readonly options: { preallocate?: boolean } = {}) {}

  readFile(path: string): Promise<Uint8Array | null> {
    const f = this.#files.get(path);
    return Promise.resolve(f ? contents(f) : null);
  }

  writeFileAtomic(path: string, data: Uint8Array): Promise<void> {
    this.#files.set(path, { synced: data.slice(), pending: [] });
    this.#syncDirOf(path);
    return Promise.resolve();
  }

  openAppend(path: string, preallocateBytes = 0): Promise<AppendFile> {
    let file = this.#files.get(path);
    if (file === undefined) {
      // A new directory entry: durable once the directory is synced.
      file = { synced: new Uint8Array(0), pending: [] };
      this.#files.set(path, file);
    }
    const size = this.options.preallocate ? preallocateBytes : 0;
    if (size > 0) {
      // DenoDisk zero-fills and syncs before returning.
      file.synced = new Uint8Array(size);
      file.pending = [];
    } else {
      file.pending.push({ truncate: 0 }); // O_TRUNC, durable at the next sync
    }
    const f = file;
    let offset = 0;
    return Promise.resolve({
      write: (data: Uint8Array) => {
        f.pending.push({ offset, data: data.slice() });
        offset += data.length;
        return Promise.resolve();
      },
      sync: () => {
        f.synced = contents(f);
        f.pending = [];
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
    if (f) {
      f.synced = contents(f).slice(0, size);
      f.pending = [];
    }
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

  rename(from: string, to: string): Promise<void> {
    const f = this.#files.get(from);
    if (f === undefined) return Promise.reject(new Error(`rename ${from}: no such file`));
    // A directory change: after a crash the old names are back until the directory is synced.
    this.#files.delete(from);
    this.#files.set(to, f);
    return Promise.resolve();
  }

  mkdirp(dir: string): Promise<void> {
    this.#dirs.add(dir);
    return Promise.resolve();
  }

  syncDir(dir: string): Promise<void> {
    const prefix = dir.endsWith("/") ? dir : dir + "/";
    const inDir = (p: string) => p.startsWith(prefix) && !p.slice(prefix.length).includes("/");
    for (const p of [...this.#durable.keys()]) {
      if (inDir(p) && !this.#files.has(p)) this.#durable.delete(p);
    }
    for (const [p, f] of this.#files) if (inDir(p)) this.#durable.set(p, f);
    return Promise.resolve();
  }

  #syncDirOf(path: string): void {
    const at = path.lastIndexOf("/");
    void this.syncDir(at < 0 ? "." : path.slice(0, at));
  }

  /**
   * A kill -9 followed by a power cut: every unsynced write and every directory change since the
   * directory's last sync are lost.
   */
  crash(): void {
    this.#files = new Map(this.#durable);
    for (const f of this.#files.values()) f.pending = [];
  }

  /** Overwrites bytes of a file in place (synced), to simulate corruption. */
  corrupt(path: string, offset: number, bytes: Uint8Array): void {
    const f = this.#files.get(path);
    if (!f) throw new Error(`no file ${path}`);
    const data = contents(f);
    data.set(bytes, offset);
    f.synced = data;
    f.pending = [];
  }
}

/** The file as a reader sees it: synced bytes with pending writes laid over them. */
function contents(f: MemoryFile): Uint8Array {
  let data = f.synced;
  let size = data.length;
  let copied = false;
  for (const op of f.pending) {
    if ("truncate" in op) {
      size = Math.min(size, op.truncate);
      if (copied) data.fill(0, size);
      continue;
    }
    const end = op.offset + op.data.length;
    if (!copied || end > data.length) {
      const grown = new Uint8Array(Math.max(end, size, data.length));
      grown.set(data.subarray(0, Math.min(data.length, size)));
      data = grown;
      copied = true;
    }
    data.set(op.data, op.offset);
    size = Math.max(size, end);
  }
  return copied ? data.subarray(0, size) : data.slice(0, size);
}
