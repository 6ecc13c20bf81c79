import type { AppendFile, Disk, MemoryDisk, ReadAtFile } from "../../core/storage/mod.ts";

/**
 * One member incarnation's view of its MemoryDisk. Every mutating operation (append write, sync,
 * atomic file write, truncate, remove) completes only when the simulation runs it (`schedule`
 * decides when, in order), so crashes land between a write and its sync, and a leader's messages
 * race its own disk. After `fence()` (the incarnation crashed or stopped) nothing it still has in
 * flight touches the disk again and its promises never settle: the next incarnation owns the disk.
 */
export class SimDisk implements Disk {
  #live = true;
  #base: MemoryDisk;
  #schedule: (run: () => void) => void;
  #readsYield: boolean;

  /**
   * `readsYield`: reads, listings and mkdirs resolve one microtask later than the base disk's.
   * Real disks give no ordering guarantee between such a read and the member's other promise
   * chains; shifting them changes how a member's async steps interleave, which found a stale
   * lease revoke that only one layout showed (etcd #15247, see InternalRequest.leader_term).
   */
  constructor(
    base: MemoryDisk,
    schedule: (run: () => void) => void,
    readsYield = false,
  ) {
    this.#base = base;
    this.#schedule = schedule;
    this.#readsYield = readsYield;
  }

  /** Cuts this incarnation off the disk for good. */
  fence(): void {
    this.#live = false;
  }

  get live(): boolean {
    return this.#live;
  }

  #later<T>(fn: () => Promise<T>): Promise<T> {
    if (!this.#live) return new Promise<T>(() => {});
    return new Promise<T>((resolve, reject) => {
      this.#schedule(() => {
        if (!this.#live) return;
        fn().then(resolve, reject);
      });
    });
  }

  #now<T>(fn: () => Promise<T>): Promise<T> {
    if (!this.#live) return new Promise<T>(() => {});
    if (this.#readsYield) return Promise.resolve().then(fn);
    return fn();
  }

  readFile(path: string): Promise<Uint8Array | null> {
    return this.#now(() => this.#base.readFile(path));
  }

  writeFileAtomic(path: string, data: Uint8Array): Promise<void> {
    const copy = data.slice();
    return this.#later(() => this.#base.writeFileAtomic(path, copy));
  }

  openAppend(path: string, preallocateBytes?: number): Promise<AppendFile> {
    return this.#later(async () => {
      const file = await this.#base.openAppend(path, preallocateBytes);
      return {
        write: (data: Uint8Array) => {
          const copy = data.slice();
          return this.#later(() => file.write(copy));
        },
        sync: () => this.#later(() => file.sync()),
        close: () => {
          if (this.#live) file.close();
        },
      };
    });
  }

  openRead(path: string): Promise<ReadAtFile | null> {
    return this.#now(() => this.#base.openRead(path));
  }

  truncate(path: string, size: number): Promise<void> {
    return this.#later(() => this.#base.truncate(path, size));
  }

  list(dir: string): Promise<string[]> {
    return this.#now(() => this.#base.list(dir));
  }

  remove(path: string): Promise<void> {
    return this.#later(() => this.#base.remove(path));
  }

  rename(from: string, to: string): Promise<void> {
    return this.#later(() => this.#base.rename(from, to));
  }

  mkdirp(dir: string): Promise<void> {
    return this.#now(() => this.#base.mkdirp(dir));
  }

  syncDir(dir: string): Promise<void> {
    return this.#later(() => this.#base.syncDir(dir));
  }
}
