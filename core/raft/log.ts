/**
 * The Raft log as one sequence: the stable part in `Storage` (already on disk) followed by the
 * unstable part (appended or received but not yet handed to the node for persisting, or handed out
 * in a Ready that was not advanced yet). Keeping the two apart is what lets Raft tell exactly which
 * of its own entries are durable, so a leader never counts an unsynced entry toward commit.
 */

import { entrySize } from "./codec.ts";
import { countWithinSize } from "./memory_storage.ts";
import { CompactedError, type Entry, type Snapshot, type Storage } from "./types.ts";

/** Thrown when a protocol invariant of the log breaks; never caught to continue. */
export class RaftInvariantError extends Error {
  constructor(message: string) {
    super(`raft invariant violated: ${message}`);
    this.name = "RaftInvariantError";
  }
}

/** Throws RaftInvariantError unless `cond` holds (core/raft imports nothing outside itself). */
export function raftAssert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new RaftInvariantError(message);
}

/**
 * Entries not yet persisted; entries[i] has index offset + i. A pending snapshot (received from
 * the leader) precedes them.
 */
class Unstable {
  snapshot: Snapshot | null = null;
  entries: Entry[] = [];
  offset: number;
  constructor(offset: number) {
    this.offset = offset;
  }

  /** First index when a snapshot is pending, else -1. */
  maybeFirstIndex(): number {
    return this.snapshot !== null ? this.snapshot.metadata.index + 1 : -1;
  }

  maybeLastIndex(): number {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    if (this.snapshot !== null) return this.snapshot.metadata.index;
    return -1;
  }

  /** Term of `i` if the unstable part knows it, else -1. */
  maybeTerm(i: number): number {
    if (i < this.offset) {
      if (this.snapshot !== null && this.snapshot.metadata.index === i) {
        return this.snapshot.metadata.term;
      }
      return -1;
    }
    const last = this.maybeLastIndex();
    if (last === -1 || i > last) return -1;
    return this.entries[i - this.offset].term;
  }

  stableTo(i: number, t: number): void {
    const gt = this.maybeTerm(i);
    if (gt === -1) return;
    // Only if the entry is still the one that was persisted (not overwritten meanwhile).
    if (gt === t && i >= this.offset) {
      this.entries = this.entries.slice(i + 1 - this.offset);
      this.offset = i + 1;
    }
  }

  stableSnapTo(i: number): void {
    if (this.snapshot !== null && this.snapshot.metadata.index === i) this.snapshot = null;
  }

  restore(s: Snapshot): void {
    this.offset = s.metadata.index + 1;
    this.entries = [];
    this.snapshot = s;
  }

  truncateAndAppend(ents: Entry[]): void {
    const after = ents[0].index;
    if (after === this.offset + this.entries.length) {
      for (let i = 0; i < ents.length; i++) this.entries.push(ents[i]);
    } else if (after <= this.offset) {
      // Replaces everything unstable (and the tail of storage from `after` on).
      this.offset = after;
      this.entries = ents.slice();
    } else {
      const kept = this.entries.slice(0, after - this.offset);
      for (let i = 0; i < ents.length; i++) kept.push(ents[i]);
      this.entries = kept;
    }
  }

  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    raftAssert(
      lo >= this.offset && hi <= this.offset + this.entries.length && lo <= hi,
      `unstable slice [${lo},${hi}) out of [${this.offset},${this.offset + this.entries.length})`,
    );
    const from = lo - this.offset;
    const n = countWithinSize(this.entries, from, hi - this.offset, maxBytes);
    return this.entries.slice(from, from + n);
  }
}

/** The log Raft reasons about: storage + unstable, with commit and apply positions. */
export class RaftLog {
  readonly storage: Storage;
  readonly unstable: Unstable;
  /** Highest index known to be stored on a quorum. */
  committed: number;
  /** Highest index the application has applied (advance()d). */
  applied: number;

  constructor(storage: Storage) {
    this.storage = storage;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    this.committed = first - 1;
    this.applied = first - 1;
  }

  firstIndex(): number {
    const i = this.unstable.maybeFirstIndex();
    return i !== -1 ? i : this.storage.firstIndex();
  }

  lastIndex(): number {
    const i = this.unstable.maybeLastIndex();
    return i !== -1 ? i : this.storage.lastIndex();
  }

  /**
   * Last index known to be durable: everything below the unstable part. 0 while a received
   * snapshot is still waiting to be persisted (nothing after it is durable yet).
   */
  persistedIndex(): number {
    if (this.unstable.snapshot !== null) return 0;
    return this.unstable.offset - 1;
  }

  /** Term of entry `i`, or 0 when `i` is compacted away or beyond the log (etcd's semantics). */
  term(i: number): number {
    const dummy = this.firstIndex() - 1;
    if (i < dummy || i > this.lastIndex()) return 0;
    const t = this.unstable.maybeTerm(i);
    if (t !== -1) return t;
    try {
      return this.storage.term(i);
    } catch (e) {
      if (e instanceof CompactedError) return 0;
      throw e;
    }
  }

  lastTerm(): number {
    return this.term(this.lastIndex());
  }

  /** Whether entry `i` exists with term `t`. */
  matchTerm(i: number, t: number): boolean {
    if (i > this.lastIndex() || i < this.firstIndex() - 1) return false;
    return this.term(i) === t;
  }

  /** Raft §5.4.1: a candidate's log is at least as up to date as ours. */
  isUpToDate(lastIndex: number, term: number): boolean {
    const ourTerm = this.lastTerm();
    return term > ourTerm || (term === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Follower side of AppendEntries: if our log has (index, logTerm), append what is new (dropping
   * a conflicting tail), commit up to min(commit, last new index) and return the last new index;
   * otherwise -1.
   */
  maybeAppend(index: number, logTerm: number, commit: number, ents: Entry[]): number {
    if (!this.matchTerm(index, logTerm)) return -1;
    const lastNew = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      raftAssert(
        ci > this.committed,
        `entry ${ci} conflicts with committed entry ${this.committed}`,
      );
      const start = ci - (index + 1);
      this.append(start === 0 ? ents : ents.slice(start));
    }
    this.commitTo(Math.min(commit, lastNew));
    return lastNew;
  }

  /** Appends entries (which may overwrite an uncommitted tail) to the unstable part. */
  append(ents: Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0].index - 1;
    raftAssert(
      after >= this.committed,
      `append after ${after} is below committed ${this.committed}`,
    );
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /**
   * Index of the first entry of `ents` that is new or conflicts with our log (0 when all are
   * already present with matching terms).
   */
  findConflict(ents: Entry[]): number {
    const last = this.lastIndex();
    for (let i = 0; i < ents.length; i++) {
      const e = ents[i];
      if (e.index > last || !this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * Largest index <= `index` whose term is <= `term` (used to skip a whole term per round trip
   * when a follower rejects an append).
   */
  findConflictByTerm(index: number, term: number): number {
    const first = this.firstIndex() - 1;
    let i = Math.min(index, this.lastIndex());
    while (i > first) {
      if (this.term(i) <= term) return i;
      i--;
    }
    return i;
  }

  commitTo(c: number): void {
    if (c > this.committed) {
      raftAssert(c <= this.lastIndex(), `commit ${c} is beyond last index ${this.lastIndex()}`);
      this.committed = c;
    }
  }

  /** Raft §5.4.2: commit `maxIndex` only if it carries the current term. */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.term(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  appliedTo(i: number): void {
    if (i === 0) return;
    raftAssert(
      i <= this.committed && i >= this.applied,
      `applied ${i} out of range [${this.applied}, ${this.committed}]`,
    );
    this.applied = i;
  }

  stableTo(i: number, t: number): void {
    this.unstable.stableTo(i, t);
  }

  stableSnapTo(i: number): void {
    this.unstable.stableSnapTo(i);
  }

  unstableEntries(): Entry[] {
    return this.unstable.entries;
  }

  /** Whether nextCommittedEntries would return anything. */
  hasNextCommittedEntries(): boolean {
    const off = Math.max(this.applied + 1, this.firstIndex());
    return this.committed + 1 > off;
  }

  /** Committed entries not yet applied, at most `maxBytes` (at least one) and `maxCount`. */
  nextCommittedEntries(maxBytes: number, maxCount: number): Entry[] {
    const off = Math.max(this.applied + 1, this.firstIndex());
    if (this.committed + 1 <= off) return [];
    const hi = Math.min(this.committed + 1, off + maxCount);
    return this.slice(off, hi, maxBytes);
  }

  /** Entries from `lo` to the end, limited in bytes; throws CompactedError below firstIndex. */
  entriesFrom(lo: number, maxBytes: number): Entry[] {
    const last = this.lastIndex();
    if (lo > last) return [];
    return this.slice(lo, last + 1, maxBytes);
  }

  /** Entries [lo, hi) limited in bytes; throws CompactedError when lo is compacted. */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo >= hi) return [];
    if (lo < this.firstIndex()) throw new CompactedError();
    raftAssert(hi <= this.lastIndex() + 1, `slice [${lo},${hi}) beyond last ${this.lastIndex()}`);
    const uoff = this.unstable.offset;
    if (hi <= uoff) return this.storage.entries(lo, hi, maxBytes);
    if (lo >= uoff) return this.unstable.slice(lo, hi, maxBytes);
    const stored = this.storage.entries(lo, uoff, maxBytes);
    if (stored.length < uoff - lo) return stored;
    let size = 0;
    for (let i = 0; i < stored.length; i++) size += entrySize(stored[i]);
    if (size >= maxBytes) return stored;
    const rest = this.unstable.slice(uoff, hi, maxBytes - size);
    // The unstable slice always holds one entry; keep it only if it fits.
    const fits = rest.length > 1 || (rest.length === 1 && size + entrySize(rest[0]) <= maxBytes);
    if (fits) { for (let i = 0; i < rest.length; i++) stored.push(rest[i]); }
    return stored;
  }

  /** Installs a snapshot received from the leader (its entries replace the whole log). */
  restore(s: Snapshot): void {
    this.committed = s.metadata.index;
    this.unstable.restore(s);
  }

  /** The snapshot to send a follower that needs compacted entries. */
  snapshot(): Snapshot {
    if (this.unstable.snapshot !== null) return this.unstable.snapshot;
    return this.storage.snapshot();
  }
}
