/**
 * The file system as core/ sees it. core never touches Deno's APIs directly so that a whole member
 * can run against a simulated disk (one that loses unsynced writes on a crash) in tests.
 */

/**
 * How much of a long write goes to a file between syncs that keep its writeback going: the revision
 * log (written without syncs until a checkpoint; a defragment writes hundreds of MB), a received
 * snapshot, a checkpoint's file. One sync of all of it at the end held the disk so long that the
 * WAL's fdatasync, on the event loop, waited behind it (30-63 ms at 1M keys, measured).
 */
export const PACED_SYNC_BYTES = 4 * 1024 * 1024;

/** A file open for appending; `sync` makes everything written so far durable (fdatasync). */
export interface AppendFile {
  write(data: Uint8Array): Promise<void>;
  sync(): Promise<void>;
  /**
   * sync() off the event loop, for a large file (a received snapshot), where a disk has it; the
   * WAL's small batches use sync() (a handoff to another thread costs more than their sync).
   */
  syncInBackground?(): Promise<void>;
  close(): void;
}

/** A sync of a large amount of data: off the event loop where the disk can, else sync(). */
export function syncOffLoop(file: AppendFile): Promise<void> {
  return file.syncInBackground ? file.syncInBackground() : file.sync();
}

/**
 * A file open for positional reads. Synchronous: a read may serve a request from the event loop
 * (one pread, a few µs from the page cache; docs/adr/0010-storage-that-scales.md).
 */
export interface ReadAtFile {
  /** Reads up to buf.length bytes at `position` into buf; returns how many (fewer at the end). */
  readAt(buf: Uint8Array, position: number): number;
  /** The file's size now. */
  size(): number;
  close(): void;
}

/** What storage needs from a disk. Paths are '/'-separated. */
export interface Disk {
  /** Whole file, or null when it does not exist. */
  readFile(path: string): Promise<Uint8Array | null>;
  /** Replaces `path` atomically and durably (temp file, sync, rename, directory sync). */
  writeFileAtomic(
    path: string,
    data: Uint8Array,
    observeSync?: (ms: number) => void,
  ): Promise<void>;
  /**
   * Creates a new file (mode 0600) for sequential writes from offset 0. With `preallocateBytes`
   * the file is first filled with that many zero bytes and synced, so later fdatasyncs only flush
   * data, not size changes (about half the cost here); readers treat a zero tail as the end.
   */
  openAppend(path: string, preallocateBytes?: number): Promise<AppendFile>;
  /**
   * Opens a file for positional reads, or null when it does not exist. Reads see what was
   * written through openAppend so far (synced or not), as a page cache does.
   */
  openRead(path: string): Promise<ReadAtFile | null>;
  /** Cuts a file to `size` bytes and syncs it. */
  truncate(path: string, size: number): Promise<void>;
  /** Names (not paths) of the entries in a directory; [] when it does not exist. */
  list(dir: string): Promise<string[]>;
  remove(path: string): Promise<void>;
  /**
   * Renames `from` to `to` (replacing it) atomically; durable once the directory is synced
   * (syncDir).
   */
  rename(from: string, to: string): Promise<void>;
  /**
   * Creates a directory and its parents with mode 0700 (CVE-2020-15113: no loose permissions);
   * durable on return: the entry of each directory made is synced in its parent.
   */
  mkdirp(dir: string): Promise<void>;
  /** Makes a directory's entries (creations, renames, removals) durable. */
  syncDir(dir: string): Promise<void>;
  /**
   * The name the operating system knows `path` by, for another thread of this process to open
   * it (a worker reading the revision log); absent on a disk that is not the file system.
   */
  osPath?(path: string): string;
}
