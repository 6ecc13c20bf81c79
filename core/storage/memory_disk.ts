import type { AppendFile, Disk } from "./disk.ts";

interface MemoryFile {
  synced: Uint8Array;
  pending: Uint8Array[];
}

/**
 * An in-memory Disk for tests and simulation. `crash()` drops every write not yet synced, the
 * way a power loss does, so recovery code is tested against the disk it will really meet.
 */
export class MemoryDisk implements Disk {
  #files = new Map<string, MemoryFile>();
  #dirs = new Set<string>();

  readFile(path: string): Promise<Uint8Array | null> {
    const f = this.#files.get(path);
    return Promise.resolve(f ? concat([f.synced, ...f.pending]) : null);
  }

  writeFileAtomic(path: string, data: Uint8Array): Promise<void> {
    this.#files.set(path, { synced: data.slice(), pending: [] });
    return Promise.resolve();
  }

  openAppend(path: string): Promise<AppendFile> {
    let f = this.#files.get(path);
    if (!f) {
      f = { synced: new Uint8Array(0), pending: [] };
      this.#files.set(path, f);
    }
    const file = f;
    return Promise.resolve({
      write: (data: Uint8Array) => {
        file.pending.push(data.slice());
        return Promise.resolve();
      },
      sync: () => {
        file.synced = concat([file.synced, ...file.pending]);
        file.pending = [];
        return Promise.resolve();
      },
      close: () => {},
    });
  }

  truncate(path: string, size: number): Promise<void> {
    const f = this.#files.get(path);
    if (f) {
      this.#files.set(path, {
        synced: concat([f.synced, ...f.pending]).slice(0, size),
        pending: [],
      });
    }
    return Promise.resolve();
  }

  list(dir: string): Promise<string[]> {
    const prefix = dir.endsWith("/") ? dir : dir + "/";
    const names = new Set<string>();
    for (const p of this.#files.keys()) {
      if (p.startsWith(prefix)) names.add(p.slice(prefix.length).split("/")[0]);
    }
    for (const d of this.#dirs) {
      if (d.startsWith(prefix)) names.add(d.slice(prefix.length).split("/")[0]);
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
    const data = concat([f.synced, ...f.pending]);
    data.set(bytes, offset);
    this.#files.set(path, { synced: data, pending: [] });
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
