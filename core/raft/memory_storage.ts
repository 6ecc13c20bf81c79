/**
 * An in-memory `Storage`: the stable log Raft reads back from. The node mirrors its WAL into one of
 * these (append after the WAL sync, applySnapshot after a snapshot is saved), exactly as etcd keeps
 * a raft.MemoryStorage beside its WAL, so Raft never touches the disk itself.
 */

import { entrySize } from "./codec.ts";
import {
  CompactedError,
  type ConfState,
  type Entry,
  EntryType,
  type HardState,
  none,
  type Snapshot,
  SnapshotTemporarilyUnavailableError,
  type Storage,
  UnavailableError,
} from "./types.ts";

const EMPTY = new Uint8Array(0);

/**
 * Number of entries of `ents[from..to)` that fit in `maxBytes` of encoded size (at least one), so
 * callers slice only what they send instead of copying a long tail and truncating it.
 */
export function countWithinSize(ents: Entry[], from: number, to: number, maxBytes: number): number {
  if (to - from <= 1) return to - from;
  let size = entrySize(ents[from]);
  let i = from + 1;
  for (; i < to; i++) {
    size += entrySize(ents[i]);
    if (size > maxBytes) break;
  }
  return i - from;
}

/**
 * Limits `ents` (already a fresh array) to `maxBytes` of encoded entries, keeping at least one, so
 * a single oversized entry still makes progress.
 */
export function limitSize(ents: Entry[], maxBytes: number): Entry[] {
  if (ents.length <= 1) return ents;
  let size = entrySize(ents[0]);
  let i = 1;
  for (; i < ents.length; i++) {
    size += entrySize(ents[i]);
    if (size > maxBytes) break;
  }
  if (i < ents.length) ents.length = i;
  return ents;
}

/** A Storage held in memory; see the module comment for how the node keeps it in step. */
export class MemoryStorage implements Storage {
  #hardState: HardState = { term: 0, vote: none, commit: 0 };
  #confState: ConfState = { voters: [], learners: [] };
  #snap: Snapshot = {
    metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } },
    data: EMPTY,
  };
  /** ents[0] is a dummy holding the index and term of the last compacted entry. */
  #ents: Entry[] = [{ term: 0, index: 0, type: EntryType.Normal, data: EMPTY }];
  /** When set, snapshot() throws SnapshotTemporarilyUnavailableError (for tests). */
  snapshotUnavailable = false;

  /** Creates an empty storage (index 0, term 0), as for a new member. */
  constructor() {}

  /** The persisted hard state and the membership of the newest snapshot or setConfState. */
  initialState(): { hardState: HardState; confState: ConfState } {
    return {
      hardState: { ...this.#hardState },
      confState: { voters: [...this.#confState.voters], learners: [...this.#confState.learners] },
    };
  }

  /** Records the hard state that was just persisted. */
  setHardState(hs: HardState): void {
    this.#hardState = { term: hs.term, vote: hs.vote, commit: hs.commit };
  }

  /**
   * Records the membership the node applied, so a restart from this storage alone (tests, the
   * simulation) knows its voters without replaying the log.
   */
  setConfState(cs: ConfState): void {
    this.#confState = { voters: [...cs.voters], learners: [...cs.learners] };
  }

  /** See Storage.entries. */
  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const offset = this.#ents[0].index;
    if (lo <= offset) throw new CompactedError();
    if (hi > this.lastIndex() + 1) throw new UnavailableError();
    if (this.#ents.length === 1 || lo >= hi) return [];
    const n = countWithinSize(this.#ents, lo - offset, hi - offset, maxBytes);
    return this.#ents.slice(lo - offset, lo - offset + n);
  }

  /** See Storage.term. */
  term(index: number): number {
    const offset = this.#ents[0].index;
    if (index < offset) throw new CompactedError();
    if (index - offset >= this.#ents.length) throw new UnavailableError();
    return this.#ents[index - offset].term;
  }

  /** See Storage.lastIndex. */
  lastIndex(): number {
    return this.#ents[0].index + this.#ents.length - 1;
  }

  /** See Storage.firstIndex. */
  firstIndex(): number {
    return this.#ents[0].index + 1;
  }

  /** See Storage.snapshot. */
  snapshot(): Snapshot {
    if (this.snapshotUnavailable) throw new SnapshotTemporarilyUnavailableError();
    return this.#snap;
  }

  /** Replaces everything with `snap` (a follower installing a leader's snapshot). */
  applySnapshot(snap: Snapshot): void {
    if (snap.metadata.index < this.#snap.metadata.index) {
      throw new Error("raft storage: snapshot is older than the current one");
    }
    this.#snap = snap;
    this.#ents = [{
      term: snap.metadata.term,
      index: snap.metadata.index,
      type: EntryType.Normal,
      data: EMPTY,
    }];
    this.setConfState(snap.metadata.confState);
  }

  /**
   * Makes a snapshot at `index` (<= lastIndex) carrying the application's `data`; the log is not
   * compacted until compact() is called, so slow followers can still catch up from entries.
   */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.#snap.metadata.index) {
      throw new Error("raft storage: snapshot is out of date");
    }
    const offset = this.#ents[0].index;
    if (index > this.lastIndex()) {
      throw new Error(`raft storage: snapshot index ${index} is beyond last index`);
    }
    this.#snap = {
      metadata: {
        index,
        term: this.#ents[index - offset].term,
        confState: { voters: [...confState.voters], learners: [...confState.learners] },
      },
      data,
    };
    this.setConfState(confState);
    return this.#snap;
  }

  /** Discards entries up to and including `index`, keeping its term as the new dummy. */
  compact(index: number): void {
    const offset = this.#ents[0].index;
    if (index <= offset) throw new CompactedError();
    if (index > this.lastIndex()) {
      throw new Error(`raft storage: compact ${index} is beyond last index ${this.lastIndex()}`);
    }
    const i = index - offset;
    const kept = this.#ents.slice(i);
    kept[0] = { term: this.#ents[i].term, index, type: EntryType.Normal, data: EMPTY };
    this.#ents = kept;
  }

  /**
   * Appends entries that were just persisted. A conflicting tail is dropped first; entries already
   * compacted away are skipped. Must leave no gap after lastIndex.
   */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0].index + entries.length - 1;
    if (last < first) return;
    let start = 0;
    if (first > entries[0].index) start = first - entries[0].index;
    const offset = entries[start].index - this.#ents[0].index;
    if (offset > this.#ents.length) {
      throw new Error(
        `raft storage: missing log entries [last: ${this.lastIndex()}, append at: ${
          entries[start].index
        }]`,
      );
    }
    if (offset < this.#ents.length) this.#ents.length = offset;
    for (let i = start; i < entries.length; i++) this.#ents.push(entries[i]);
  }
}
