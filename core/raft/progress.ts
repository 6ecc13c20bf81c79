/**
 * What a leader knows about each member's log, and how eagerly it sends to it. Probing (one append
 * per heartbeat round until a match is found) keeps a lagging or unknown follower from being
 * flooded; replicating pipelines appends up to a window of in-flight messages; snapshot state
 * waits for a snapshot to land. This is the flow control behind every write.
 */
import { raftAssert } from "./log.ts";

/** How the leader currently sends to a follower. */
export enum ProgressState {
  Probe = 0,
  Replicate = 1,
  Snapshot = 2,
}

/**
 * A bounded ring of the last index of each append message in flight, so the leader stops
 * pipelining to a follower that does not keep up (maxInflightMsgs).
 */
export class Inflights {
  readonly #buf: Float64Array;
  #start = 0;
  count = 0;

  constructor(readonly size: number) {
    this.#buf = new Float64Array(Math.max(1, size));
  }

  full(): boolean {
    return this.count >= this.size;
  }

  add(lastIndex: number): void {
    if (this.full()) throw new Error("raft: inflights overflow");
    let next = this.#start + this.count;
    if (next >= this.#buf.length) next -= this.#buf.length;
    this.#buf[next] = lastIndex;
    this.count++;
  }

  /** Frees every message whose last index is <= `to` (acknowledged). */
  freeLE(to: number): void {
    const buf = this.#buf;
    while (this.count > 0 && buf[this.#start] <= to) {
      this.#start++;
      if (this.#start >= buf.length) this.#start = 0;
      this.count--;
    }
    if (this.count === 0) this.#start = 0;
  }

  freeFirstOne(): void {
    if (this.count === 0) return;
    this.#start++;
    if (this.#start >= this.#buf.length) this.#start = 0;
    this.count--;
  }

  reset(): void {
    this.#start = 0;
    this.count = 0;
  }
}

/** The leader's view of one member (including itself). */
export class Progress {
  /** Highest index known to be replicated (and, for the leader itself, persisted). */
  match: number;
  /** Next index to send. */
  next: number;
  state: ProgressState = ProgressState.Probe;
  /** Index of the snapshot being sent while in Snapshot state. */
  pendingSnapshot = 0;
  /** Heard from since the last CheckQuorum round. */
  recentActive = false;
  /** Probe state: an append is outstanding, wait for its answer or a heartbeat response. */
  probeSent = false;
  isLearner: boolean;
  readonly inflights: Inflights;

  constructor(match: number, next: number, maxInflight: number, isLearner: boolean) {
    this.match = match;
    this.next = next;
    this.isLearner = isLearner;
    this.inflights = new Inflights(maxInflight);
  }

  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot) {
      const pending = this.pendingSnapshot;
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.next = this.match + 1;
    }
    this.state = ProgressState.Probe;
    this.pendingSnapshot = 0;
    this.probeSent = false;
    this.inflights.reset();
  }

  becomeReplicate(): void {
    this.state = ProgressState.Replicate;
    this.next = this.match + 1;
    this.pendingSnapshot = 0;
    this.probeSent = false;
    this.inflights.reset();
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.state = ProgressState.Snapshot;
    this.pendingSnapshot = snapshotIndex;
    this.probeSent = false;
    this.inflights.reset();
  }

  /** Records an acknowledgement up to `n`; returns whether match moved. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    if (this.next < n + 1) this.next = n + 1;
    raftAssert(this.match < this.next, `progress: match ${this.match} not below next ${this.next}`);
    return updated;
  }

  /** Replicate state: assume the append up to `n` will land and send past it. */
  optimisticUpdate(n: number): void {
    raftAssert(n >= this.match, `progress: optimistic update to ${n} below match ${this.match}`);
    this.next = n + 1;
  }

  /**
   * Handles a rejection of the append at `rejected`; `matchHint` is the highest index that may
   * match. Returns false when the rejection is stale (an answer to an older append).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1, 1);
    raftAssert(this.match < this.next, `progress: match ${this.match} not below next ${this.next}`);
    this.probeSent = false;
    return true;
  }

  /** Whether sending must wait (probe outstanding, window full, or snapshot in flight). */
  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.full();
      default:
        return true;
    }
  }
}
