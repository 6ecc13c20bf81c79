/**
 * A member's Raft log on disk and in memory: the WAL (entries and hard states, made durable before
 * anything that depends on them is sent), the snapshot files, and Raft's MemoryStorage, which
 * follows the disk. Snapshots the member takes compact both; a snapshot the leader sends replaces
 * them.
 */
import type { Logger } from "../log.ts";
import type {
  ConfState,
  Entry,
  HardState,
  MemoryStorage,
  Snapshot as RaftSnapshot,
} from "../raft/mod.ts";
import {
  type ReceivingSnapshot,
  type SnapshotFile,
  type Snapshotter,
  type Wal,
  walEntry,
  walHardState,
  type WalRecord,
  walSnapshotMarker,
} from "../storage/mod.ts";

const NO_DATA = new Uint8Array(0);

/** The WAL, the snapshot files and Raft's in-memory log of one member. */
export class DurableLog {
  #wal: Wal;
  #snapshotter: Snapshotter;
  #storage: MemoryStorage;
  #logger: Logger;
  #catchUpEntries: number;
  #snapshotIndex: number;

  constructor(init: {
    wal: Wal;
    snapshotter: Snapshotter;
    storage: MemoryStorage;
    logger: Logger;
    /** Index of the newest snapshot on disk (0 without one). */
    snapshotIndex: number;
    /**
     * Entries kept after a snapshot so slow followers catch up without one
     * (NodeConfig.snapshotCatchUpEntries; etcd: 5000).
     */
    catchUpEntries: number;
  }) {
    this.#wal = init.wal;
    this.#snapshotter = init.snapshotter;
    this.#storage = init.storage;
    this.#logger = init.logger;
    this.#snapshotIndex = init.snapshotIndex;
    this.#catchUpEntries = init.catchUpEntries;
  }

  /** Index of the newest snapshot (taken or received). */
  get snapshotIndex(): number {
    return this.#snapshotIndex;
  }

  /**
   * Writes a Ready's entries and hard state to the WAL, synced if `mustSync`; rejects if the
   * write failed. Raft's storage learns them only through `stage` once they are written.
   */
  write(entries: Entry[], hardState: HardState | null, mustSync: boolean): Promise<void> {
    const records: WalRecord[] = [];
    for (const e of entries) records.push(walEntry(e.index, e.term, e.data, e.type));
    if (hardState) {
      const hs = hardState;
      records.push(walHardState(hs.term, hs.vote, hs.commit));
    }
    return this.#wal.append(records, mustSync);
  }

  /** Hands written entries and hard state to Raft's storage. */
  stage(entries: Entry[], hardState: HardState | null): void {
    if (entries.length > 0) this.#storage.append(entries);
    if (hardState) this.#storage.setHardState(hardState);
  }

  /**
   * A snapshot the leader streams: written to a file as it arrives (Snapshotter.receive), and
   * made this member's by persistSnapshot once Raft takes its message. An earlier one that Raft
   * never took is removed first (the node receives one at a time).
   */
  async receiveSnapshot(index: number, term: number, size: number): Promise<ReceivingSnapshot> {
    await this.#snapshotter.removePartial();
    return await this.#snapshotter.receive(index, term, size);
  }

  /** Removes a received snapshot's file that Raft did not take. */
  async dropReceived(): Promise<void> {
    await this.#snapshotter.removePartial();
  }

  /**
   * Makes a snapshot the leader sent durable and installs it in Raft's storage. Its data is in
   * the message, or (empty there) in the file receiveSnapshot wrote.
   */
  async persistSnapshot(snap: RaftSnapshot): Promise<void> {
    const { index, term } = snap.metadata;
    if (snap.data.length > 0) await this.#snapshotter.save({ index, term, data: snap.data });
    else await this.#snapshotter.install(index, term);
    await this.#wal.append([walSnapshotMarker(index, term)]);
    // Raft's storage keeps only the metadata: the state is in the file and the state machine.
    this.#storage.applySnapshot({ metadata: snap.metadata, data: NO_DATA });
  }

  /**
   * The data of the snapshot file at (index, term), read by position; its checksum verified
   * unless `verify` is false (a file this process wrote and checksummed as it arrived).
   */
  async openSnapshot(index: number, term: number, verify = true): Promise<SnapshotFile> {
    const file = await this.#snapshotter.open(index, term, verify);
    if (file === null) {
      throw new Error(`snapshot file for index ${index} (term ${term}) is missing`);
    }
    return file;
  }

  /** The state machine now holds a received snapshot at `index`. */
  snapshotApplied(index: number): void {
    this.#snapshotIndex = index;
  }

  /** Raft's configuration changed (a membership change applied). */
  setConfState(confState: ConfState): void {
    this.#storage.setConfState(confState);
  }

  /** Term of the entry at `index` (still in Raft's log). */
  termAt(index: number): number {
    return this.#storage.term(index);
  }

  /**
   * Saves a snapshot of the state machine at the applied `index`: `data` is the sealed snapshot
   * file (see sealSnapshot). Then compacts Raft's log and releases the WAL up to the previous
   * snapshot. A snapshot taken in the background may be overtaken by one the leader sent
   * meanwhile: then it is dropped (false). With `replace`, a snapshot at the newest snapshot's own
   * index replaces its file.
   */
  async saveSnapshot(
    index: number,
    term: number,
    confState: ConfState,
    data: Uint8Array,
    replace = false,
  ): Promise<boolean> {
    if (replace && index === this.#snapshotIndex && index > 0) {
      // The same state written again (a checkpoint after the revision log was rewritten): the
      // file is replaced atomically; Raft's log and the WAL stay as they are.
      await this.#wal.sync();
      await this.#snapshotter.saveFile(index, term, data);
      this.#logger.info("etcdserver/server.go:2381", "saved snapshot", { "snapshot-index": index });
      return index === this.#snapshotIndex;
    }
    if (index <= this.#snapshotIndex) return false;
    // The hard state that committed `index` may still be unsynced (a commit-only Ready does not
    // sync): make it durable first, or a crash leaves a snapshot newer than the WAL's commit and
    // the member cannot restart (etcd syncs its WAL in SaveSnap for the same reason).
    await this.#wal.sync();
    await this.#snapshotter.saveFile(index, term, data);
    // Raft's storage may have moved past `index` meanwhile (a snapshot received from the leader).
    if (index <= this.#storage.snapshot().metadata.index || index <= this.#snapshotIndex) {
      return false;
    }
    this.#storage.createSnapshot(index, confState, NO_DATA);
    const compactTo = index - this.#catchUpEntries;
    if (compactTo > this.#storage.firstIndex()) this.#storage.compact(compactTo);
    // Keep the log back to the previous snapshot: if this newest one is ever unreadable, recovery
    // falls back to the previous snapshot and still finds every entry after it.
    await this.#wal.releaseTo(this.#snapshotIndex);
    this.#snapshotIndex = index;
    this.#logger.info("etcdserver/server.go:2381", "saved snapshot", { "snapshot-index": index });
    return true;
  }

  close(): void {
    this.#wal.close();
  }
}
