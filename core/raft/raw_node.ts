/**
 * The public driver of one Raft member (etcd-raft's RawNode style). The node calls tick() on its
 * clock, step() for every peer message, propose()/readIndex()/... for client work, and loops on
 * hasReady()/ready()/advance(): persist, apply, send, advance. Nothing here does I/O, so a whole
 * cluster runs deterministically inside one process.
 */

import { encodeConfChange } from "./codec.ts";
import { compareIds, newMessage, Raft } from "./raft.ts";
import {
  type ConfChange,
  type ConfState,
  type Entry,
  EntryType,
  type HardState,
  type Message,
  MessageType,
  type NodeId,
  none,
  ProposalDroppedError,
  type RaftConfig,
  type RaftStatus,
  type Ready,
  type SnapshotMetadata,
  type SoftState,
  StateType,
} from "./types.ts";

/** Committed entries handed out per Ready at most (the first one always goes). */
const MAX_COMMITTED_ENTRIES_PER_READY = 1000;
/** Bytes of committed entries handed out per Ready at most (the first one always goes). */
const MAX_COMMITTED_BYTES_PER_READY = 16 * 1024 * 1024;

/** Drives one Raft member; see the module comment for the loop the caller runs. */
export class RawNode {
  readonly #raft: Raft;
  #prevSoftState: SoftState;
  #prevHardState: HardState;

  /** Restores term, vote, commit and membership from `config.storage.initialState()`. */
  constructor(config: RaftConfig) {
    this.#raft = new Raft(config);
    this.#prevSoftState = this.#raft.softState();
    this.#prevHardState = config.storage.initialState().hardState;
  }

  /**
   * Makes a fresh member of a NEW cluster: follower at term 1 with one committed ConfChange
   * (AddNode) entry per peer at indexes 1..n, and those peers as voters. The entries come out in
   * the next Ready both to persist and to apply; applying them again is a no-op.
   */
  bootstrap(peers: { id: NodeId; context: Uint8Array }[]): void {
    this.#raft.bootstrap(peers);
  }

  /** Advances logical time by one tick (election and heartbeat timers). */
  tick(): void {
    this.#raft.tick();
  }

  /** Starts an election now (MsgHup); a single-voter cluster becomes leader at once. */
  campaign(): void {
    this.#raft.step(newMessage(MessageType.Hup, none, this.#raft.id, 0));
  }

  /**
   * Proposes `data` for the log. Followers forward it to the leader. Throws ProposalDroppedError
   * when it cannot be accepted (no leader known, candidate, leadership transfer in progress, or
   * this member was removed); the caller fails the request instead of waiting for a timeout.
   */
  propose(data: Uint8Array): void {
    this.#proposeEntry(EntryType.Normal, data);
  }

  /**
   * Proposes a membership change. Only one may be pending: on the leader a second one, while the
   * first is not applied yet, throws ProposalDroppedError. A change forwarded from a follower that
   * arrives at a leader with one pending becomes an empty Normal entry (as etcd does), so the
   * follower's caller sees it never take effect.
   */
  proposeConfChange(cc: ConfChange): void {
    const r = this.#raft;
    if (r.state === StateType.Leader && r.pendingConfIndex > r.log.applied) {
      throw new ProposalDroppedError();
    }
    this.#proposeEntry(EntryType.ConfChange, encodeConfChange(cc));
  }

  #proposeEntry(type: EntryType, data: Uint8Array): void {
    const m = newMessage(MessageType.Prop, none, this.#raft.id, 0);
    m.entries = [{ term: 0, index: 0, type, data }];
    if (this.#raft.step(m)) throw new ProposalDroppedError();
  }

  /** Applies a committed ConfChange entry's change; returns the membership after it. */
  applyConfChange(cc: ConfChange): ConfState {
    return this.#raft.applyConfChange(cc);
  }

  /**
   * Processes a message from a peer. Local-only message types and responses from members not in
   * the configuration are ignored (a removed member's late answers must not count).
   */
  step(m: Message): void {
    if (!this.#raft.acceptsFromNetwork(m)) return;
    this.#raft.step(m);
  }

  /**
   * Requests a linearizable read point tagged `ctx` (unique per request). The ReadState appears
   * in a later Ready, here or, on a follower, after the leader answered. Silently dropped when no
   * leader is known (the caller retries on its own timer, as etcd's server does). A new leader
   * holds requests until it has committed an entry in its term.
   */
  readIndex(ctx: Uint8Array): void {
    const m = newMessage(MessageType.ReadIndex, none, this.#raft.id, 0);
    m.context = ctx;
    this.#raft.step(m);
  }

  /** Asks the leader to hand leadership to `to` (forwarded when called on a follower). */
  transferLeader(to: NodeId): void {
    this.#raft.step(newMessage(MessageType.TransferLeader, none, to, 0));
  }

  /** Forget the leader and its lease (see Raft.forgetLeader); a no-op unless a follower. */
  forgetLeader(): void {
    this.#raft.forgetLeader();
  }

  /** The transport failed to reach `id`: stop pipelining to it until it answers again. */
  reportUnreachable(id: NodeId): void {
    this.#raft.step(newMessage(MessageType.Unreachable, none, id, 0));
  }

  /** Outcome of sending a snapshot to `id`; the leader resumes probing either way. */
  reportSnapshot(id: NodeId, ok: boolean): void {
    const m = newMessage(MessageType.SnapStatus, none, id, 0);
    m.reject = !ok;
    this.#raft.step(m);
  }

  /**
   * The metadata of a snapshot Raft took (from a leader's message) and has not yet handed over
   * as handled (see advance), or null.
   */
  pendingSnapshot(): SnapshotMetadata | null {
    return this.#raft.log.unstable.snapshot?.metadata ?? null;
  }

  /** Whether ready() has anything for the node to do. */
  hasReady(): boolean {
    const r = this.#raft;
    r.flushProposals();
    const ss = this.#prevSoftState;
    if (r.lead !== ss.lead || r.state !== ss.state) return true;
    const hs = this.#prevHardState;
    if (r.term !== hs.term || r.vote !== hs.vote || r.log.committed !== hs.commit) return true;
    if (r.log.unstable.snapshot !== null) return true;
    if (r.log.unstable.entries.length > 0) return true;
    if (r.msgs.length > 0 || r.readStates.length > 0) return true;
    return r.log.hasNextCommittedEntries();
  }

  /**
   * What the node must do next (see Ready for the order). Messages and read states are handed
   * over now; entries, hard state and committed entries are acknowledged by advance(ready).
   */
  ready(): Ready {
    const r = this.#raft;
    r.flushProposals();
    let softState: SoftState | null = null;
    if (r.lead !== this.#prevSoftState.lead || r.state !== this.#prevSoftState.state) {
      softState = r.softState();
      this.#prevSoftState = softState;
    }
    const phs = this.#prevHardState;
    let hardState: HardState | null = null;
    if (r.term !== phs.term || r.vote !== phs.vote || r.log.committed !== phs.commit) {
      hardState = r.hardState();
    }
    const entries: Entry[] = r.log.unstableEntries().slice();
    const snapshot = r.log.unstable.snapshot;
    const committedEntries = r.log.nextCommittedEntries(
      MAX_COMMITTED_BYTES_PER_READY,
      MAX_COMMITTED_ENTRIES_PER_READY,
    );
    const messages = r.msgs;
    r.msgs = [];
    const readStates = r.readStates;
    r.readStates = [];
    const mustSync = entries.length > 0 || snapshot !== null ||
      (hardState !== null && (hardState.term !== phs.term || hardState.vote !== phs.vote));
    return {
      softState,
      hardState,
      entries,
      snapshot,
      committedEntries,
      messages,
      readStates,
      mustSync,
    };
  }

  /**
   * Acknowledges that `rd` was fully handled: its entries, hard state and snapshot are durable
   * and its committed entries applied. Only now does a leader count its new entries toward commit.
   */
  advance(rd: Ready): void {
    const r = this.#raft;
    if (rd.hardState !== null) this.#prevHardState = rd.hardState;
    if (rd.snapshot !== null) {
      r.log.stableSnapTo(rd.snapshot.metadata.index);
      if (r.log.applied < rd.snapshot.metadata.index) r.log.applied = rd.snapshot.metadata.index;
    }
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1];
      r.log.stableTo(last.index, last.term);
    }
    if (rd.committedEntries.length > 0) {
      r.log.appliedTo(rd.committedEntries[rd.committedEntries.length - 1].index);
    }
    r.onPersisted();
  }

  /** Role, term, commit/apply positions and (on the leader) every member's progress. */
  status(): RaftStatus {
    const r = this.#raft;
    const progress = new Map<NodeId, { match: number; next: number; isLearner: boolean }>();
    if (r.state === StateType.Leader) {
      const ids = [...r.prs.keys()].sort(compareIds);
      for (const id of ids) {
        const pr = r.prs.get(id)!;
        progress.set(id, { match: pr.match, next: pr.next, isLearner: pr.isLearner });
      }
    }
    return {
      id: r.id,
      term: r.term,
      vote: r.vote,
      commit: r.log.committed,
      lead: r.lead,
      state: r.state,
      applied: r.log.applied,
      progress,
      leadTransferee: r.leadTransferee,
    };
  }
}
