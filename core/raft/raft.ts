/**
 * The Raft protocol as a deterministic state machine: messages and ticks in, messages and log
 * changes out, no I/O, no clock, randomness only through `config.randomInt`. Elections (with
 * PreVote and CheckQuorum), replication with flow control, the commit rule, snapshots, ReadIndex,
 * leader transfer and single-step membership changes follow the Raft thesis, with etcd-raft's
 * behaviour where etcd compatibility depends on it. `RawNode` (raw_node.ts) is the public driver.
 */

import { bytesEqual, keyId } from "../bytes.ts";
import { encodeConfChange } from "./codec.ts";
import { raftAssert, RaftLog } from "./log.ts";
import { Progress, ProgressState } from "./progress.ts";
import {
  type ConfChange,
  ConfChangeType,
  type ConfState,
  type Entry,
  EntryType,
  type HardState,
  type Message,
  MessageType,
  type NodeId,
  none,
  type RaftConfig,
  type ReadState,
  type Snapshot,
  SnapshotTemporarilyUnavailableError,
  type SoftState,
  StateType,
} from "./types.ts";

const EMPTY = new Uint8Array(0);
const NO_ENTRIES: Entry[] = [];
/** Context of the Vote messages of an election started by a leader transfer (as etcd). */
export const TRANSFER_CONTEXT: Uint8Array = new TextEncoder().encode("CampaignTransfer");
/** ReadIndex requests a new leader holds until it commits in its term; more are dropped. */
const MAX_PENDING_READ_INDEX = 4096;

/** Creates a message with every field set, so all messages share one object shape. */
export function newMessage(type: MessageType, to: NodeId, from: NodeId, term: number): Message {
  return {
    type,
    to,
    from,
    term,
    logTerm: 0,
    index: 0,
    entries: NO_ENTRIES,
    commit: 0,
    snapshot: null,
    reject: false,
    rejectHint: 0,
    context: EMPTY,
  };
}

/** Sorts member IDs ascending (ConfState is kept sorted). */
export function compareIds(a: NodeId, b: NodeId): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isResponseType(t: MessageType): boolean {
  return t === MessageType.AppResp || t === MessageType.VoteResp ||
    t === MessageType.HeartbeatResp || t === MessageType.PreVoteResp ||
    t === MessageType.Unreachable;
}

/** Whether a message type may only come from the local node, never the network. */
export function isLocalMessageType(t: MessageType): boolean {
  return t === MessageType.Hup || t === MessageType.Beat || t === MessageType.Unreachable ||
    t === MessageType.SnapStatus || t === MessageType.CheckQuorum;
}

/** Whether a message type answers a request (and is meaningless from an unknown member). */
export function isResponseMessageType(t: MessageType): boolean {
  return isResponseType(t);
}

interface ReadIndexStatus {
  index: number;
  req: Message;
  acks: Set<NodeId>;
}

/**
 * Pending safe ReadIndex requests, in arrival order: each waits for a quorum of heartbeat
 * responses carrying its context (or a later one) before it is answered.
 */
class ReadOnly {
  readonly #pending = new Map<string, ReadIndexStatus>();
  #queue: string[] = [];

  add(index: number, m: Message): void {
    const key = keyId(m.context);
    if (this.#pending.has(key)) return;
    this.#pending.set(key, { index, req: m, acks: new Set() });
    this.#queue.push(key);
  }

  recvAck(from: NodeId, ctx: Uint8Array): Set<NodeId> | null {
    const rs = this.#pending.get(keyId(ctx));
    if (rs === undefined) return null;
    rs.acks.add(from);
    return rs.acks;
  }

  /** Removes and returns every request up to and including the one with `ctx`. */
  advance(ctx: Uint8Array): ReadIndexStatus[] {
    const key = keyId(ctx);
    const i = this.#queue.indexOf(key);
    if (i === -1) return [];
    const done = this.#queue.slice(0, i + 1);
    this.#queue = this.#queue.slice(i + 1);
    const out: ReadIndexStatus[] = [];
    for (const k of done) {
      const rs = this.#pending.get(k);
      if (rs !== undefined) out.push(rs);
      this.#pending.delete(k);
    }
    return out;
  }

  lastPendingCtx(): Uint8Array | null {
    if (this.#queue.length === 0) return null;
    return this.#pending.get(this.#queue[this.#queue.length - 1])!.req.context;
  }

  size(): number {
    return this.#queue.length;
  }
}

type PollResult = 0 | 1 | 2;
const POLL_PENDING: PollResult = 0;
const POLL_WON: PollResult = 1;
const POLL_LOST: PollResult = 2;

/** The protocol state of one member; driven by RawNode. */
export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = none;
  lead: NodeId = none;
  state: StateType = StateType.Follower;
  readonly log: RaftLog;
  /** Every member (voters and learners) with the leader's view of its log. */
  readonly prs = new Map<NodeId, Progress>();
  msgs: Message[] = [];
  readStates: ReadState[] = [];
  leadTransferee: NodeId = none;
  /** Index of the newest conf change the leader appended; a new one waits until it is applied. */
  pendingConfIndex = 0;

  readonly #votes = new Map<NodeId, boolean>();
  #electionElapsed = 0;
  #heartbeatElapsed = 0;
  #randomizedElectionTimeout = 0;
  readonly #electionTimeout: number;
  readonly #heartbeatTimeout: number;
  readonly #maxSizePerMsg: number;
  readonly #maxInflight: number;
  readonly #checkQuorum: boolean;
  readonly #preVote: boolean;
  readonly #randomInt: (n: number) => number;
  readonly #logger: ((msg: string) => void) | undefined;
  #readOnly = new ReadOnly();
  #pendingReadIndex: Message[] = [];
  #matchScratch: number[] = [];
  #appendsPending = false;

  constructor(c: RaftConfig) {
    if (c.id === none) throw new Error("raft: cannot use none as id");
    if (c.heartbeatTicks <= 0) throw new Error("raft: heartbeatTicks must be greater than 0");
    if (c.electionTicks <= c.heartbeatTicks) {
      throw new Error("raft: electionTicks must be greater than heartbeatTicks");
    }
    if (c.maxInflightMsgs <= 0) throw new Error("raft: maxInflightMsgs must be greater than 0");
    this.id = c.id;
    this.#electionTimeout = c.electionTicks;
    this.#heartbeatTimeout = c.heartbeatTicks;
    this.#maxSizePerMsg = c.maxSizePerMsg;
    this.#maxInflight = c.maxInflightMsgs;
    this.#checkQuorum = c.checkQuorum;
    this.#preVote = c.preVote;
    this.#randomInt = c.randomInt;
    this.#logger = c.logger;
    this.log = new RaftLog(c.storage);
    const { hardState, confState } = c.storage.initialState();
    for (const id of confState.voters) this.#setProgress(id, false);
    for (const id of confState.learners) this.#setProgress(id, true);
    if (hardState.term !== 0 || hardState.vote !== none || hardState.commit !== 0) {
      this.#loadState(hardState);
    }
    if (c.applied > 0) this.log.appliedTo(c.applied);
    this.becomeFollower(this.term, none);
  }

  #trace(msg: string): void {
    if (this.#logger !== undefined) this.#logger(`${this.id.toString(16)} ${msg}`);
  }

  #loadState(hs: HardState): void {
    raftAssert(
      hs.commit >= this.log.committed && hs.commit <= this.log.lastIndex(),
      `hard state commit ${hs.commit} out of range [${this.log.committed}, ${this.log.lastIndex()}]`,
    );
    this.log.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  softState(): SoftState {
    return { lead: this.lead, state: this.state };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  // -------------------------------------------------------------------------------------------
  // Membership

  #setProgress(id: NodeId, isLearner: boolean): Progress {
    const pr = new Progress(0, this.log.lastIndex() + 1, this.#maxInflight, isLearner);
    this.prs.set(id, pr);
    return pr;
  }

  /** A member that is a voter in its own configuration and has no snapshot waiting. */
  promotable(): boolean {
    const pr = this.prs.get(this.id);
    return pr !== undefined && !pr.isLearner && this.log.unstable.snapshot === null;
  }

  #voterCount(): number {
    let n = 0;
    for (const pr of this.prs.values()) if (!pr.isLearner) n++;
    return n;
  }

  #quorum(): number {
    return (this.#voterCount() >> 1) + 1;
  }

  confState(): ConfState {
    const voters: NodeId[] = [];
    const learners: NodeId[] = [];
    for (const [id, pr] of this.prs) (pr.isLearner ? learners : voters).push(id);
    voters.sort(compareIds);
    learners.sort(compareIds);
    return { voters, learners };
  }

  /**
   * Applies a committed membership change. AddNode of an existing voter is a no-op (bootstrap
   * entries are applied after bootstrap() already installed the voters); AddNode of a learner
   * promotes it; AddLearnerNode of a voter is ignored (a voter cannot be demoted, as etcd 3.4);
   * UpdateNode changes nothing here. A leader that removes itself steps down once the change is
   * applied, after telling followers the new commit index.
   */
  applyConfChange(cc: ConfChange): ConfState {
    switch (cc.type) {
      case ConfChangeType.AddNode:
        this.addNode(cc.nodeId, false);
        break;
      case ConfChangeType.AddLearnerNode:
        this.addNode(cc.nodeId, true);
        break;
      case ConfChangeType.RemoveNode:
        this.#removeNode(cc.nodeId);
        break;
      case ConfChangeType.UpdateNode:
        break;
    }
    return this.confState();
  }

  /** Installs the initial voters of a new cluster (bootstrap). */
  addNode(id: NodeId, isLearner: boolean): void {
    if (id === none) return;
    const pr = this.prs.get(id);
    if (pr === undefined) {
      const np = this.#setProgress(id, isLearner);
      // Counted as active so CheckQuorum does not fire before it had a chance to answer.
      np.recentActive = true;
      if (this.state === StateType.Leader && id !== this.id) this.sendAppend(id, true);
    } else if (isLearner && !pr.isLearner) {
      this.#trace(`ignored AddLearnerNode of voter ${id.toString(16)}`);
      return;
    } else if (isLearner === pr.isLearner) {
      return;
    } else {
      pr.isLearner = false;
      pr.recentActive = true;
    }
    if (this.state === StateType.Leader && this.maybeCommit()) this.bcastAppend();
  }

  #removeNode(id: NodeId): void {
    if (!this.prs.delete(id)) return;
    if (this.state !== StateType.Leader) return;
    if (this.leadTransferee === id) this.abortLeaderTransfer();
    if (this.#voterCount() > 0 && this.maybeCommit()) this.bcastAppend();
    if (id === this.id) {
      this.#trace("removed from the configuration; stepping down");
      this.bcastAppend();
      this.becomeFollower(this.term, none);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Roles

  #resetRandomizedElectionTimeout(): void {
    this.#randomizedElectionTimeout = this.#electionTimeout +
      this.#randomInt(this.#electionTimeout);
  }

  #reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = none;
    }
    this.lead = none;
    this.#electionElapsed = 0;
    this.#heartbeatElapsed = 0;
    this.#resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.#votes.clear();
    const next = this.log.lastIndex() + 1;
    for (const [id, pr] of this.prs) {
      const isLearner = pr.isLearner;
      const np = new Progress(0, next, this.#maxInflight, isLearner);
      if (id === this.id) np.match = this.log.persistedIndex();
      this.prs.set(id, np);
    }
    this.pendingConfIndex = 0;
    this.#readOnly = new ReadOnly();
    this.#pendingReadIndex = [];
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.#reset(term);
    this.lead = lead;
    this.state = StateType.Follower;
    this.#trace(`became follower at term ${this.term}`);
  }

  #becomeCandidate(): void {
    raftAssert(this.state !== StateType.Leader, "leader cannot become candidate");
    this.#reset(this.term + 1);
    this.vote = this.id;
    this.state = StateType.Candidate;
    this.#trace(`became candidate at term ${this.term}`);
  }

  #becomePreCandidate(): void {
    raftAssert(this.state !== StateType.Leader, "leader cannot become pre-candidate");
    // Neither the term nor the vote change: a partitioned node must not disrupt the cluster.
    this.#votes.clear();
    this.lead = none;
    this.state = StateType.PreCandidate;
    this.#trace(`became pre-candidate at term ${this.term}`);
  }

  #becomeLeader(): void {
    raftAssert(this.state !== StateType.Follower, "follower cannot become leader directly");
    this.#reset(this.term);
    this.lead = this.id;
    this.state = StateType.Leader;
    const self = this.prs.get(this.id);
    if (self !== undefined) {
      self.becomeReplicate();
      self.next = this.log.lastIndex() + 1;
      self.recentActive = true;
    }
    // Conservatively treat every uncommitted entry as a possible conf change.
    this.pendingConfIndex = this.log.lastIndex();
    this.appendEntries([{ term: 0, index: 0, type: EntryType.Normal, data: EMPTY }]);
    this.#trace(`became leader at term ${this.term}`);
  }

  // -------------------------------------------------------------------------------------------
  // Ticks

  tick(): void {
    if (this.state === StateType.Leader) this.#tickHeartbeat();
    else this.#tickElection();
  }

  /**
   * A follower's failure detector (its connection to the leader was refused) says the leader is
   * gone: forget it and its lease, so that this follower grants pre-votes at once and campaigns
   * within one election timeout instead of up to two (etcd 3.6's ForgetLeader). Safety does not
   * depend on it: a live leader's next heartbeat makes it the leader again.
   */
  forgetLeader(): void {
    if (this.state !== StateType.Follower || this.lead === none) return;
    this.#trace(`forgot leader ${this.lead.toString(16)} at term ${this.term}`);
    this.lead = none;
    if (this.#electionElapsed < this.#electionTimeout) {
      this.#electionElapsed = this.#electionTimeout;
    }
  }

  #tickElection(): void {
    this.#electionElapsed++;
    if (this.promotable() && this.#electionElapsed >= this.#randomizedElectionTimeout) {
      this.#electionElapsed = 0;
      this.hup(false);
    }
  }

  #tickHeartbeat(): void {
    this.#heartbeatElapsed++;
    this.#electionElapsed++;
    if (this.#electionElapsed >= this.#electionTimeout) {
      this.#electionElapsed = 0;
      if (this.#checkQuorum) this.#stepLeaderLocal(MessageType.CheckQuorum);
      if (this.state === StateType.Leader && this.leadTransferee !== none) {
        this.abortLeaderTransfer();
      }
    }
    if (this.state !== StateType.Leader) return;
    if (this.#heartbeatElapsed >= this.#heartbeatTimeout) {
      this.#heartbeatElapsed = 0;
      this.#bcastHeartbeat();
    }
  }

  #stepLeaderLocal(t: MessageType): void {
    this.#stepLeader(newMessage(t, none, this.id, 0));
  }

  // -------------------------------------------------------------------------------------------
  // Elections

  /** Starts an election (MsgHup) unless this member may not campaign now. */
  hup(transfer: boolean): void {
    if (this.state === StateType.Leader) return;
    if (!this.promotable()) {
      this.#trace("is not promotable; cannot campaign");
      return;
    }
    if (this.#hasUnappliedConfChanges()) {
      this.#trace("has unapplied conf changes; cannot campaign");
      return;
    }
    if (this.#preVote && !transfer) this.#campaign(true, false);
    else this.#campaign(false, transfer);
  }

  #hasUnappliedConfChanges(): boolean {
    let lo = this.log.applied + 1;
    const hi = this.log.committed + 1;
    if (lo < this.log.firstIndex()) lo = this.log.firstIndex();
    while (lo < hi) {
      const ents = this.log.slice(lo, hi, 8 * 1024 * 1024);
      if (ents.length === 0) break;
      for (let i = 0; i < ents.length; i++) {
        if (ents[i].type === EntryType.ConfChange) return true;
      }
      lo = ents[ents.length - 1].index + 1;
    }
    return false;
  }

  #campaign(pre: boolean, transfer: boolean): void {
    let voteType: MessageType;
    let term: number;
    if (pre) {
      this.#becomePreCandidate();
      voteType = MessageType.PreVote;
      term = this.term + 1;
    } else {
      this.#becomeCandidate();
      voteType = MessageType.Vote;
      term = this.term;
    }
    const respType = pre ? MessageType.PreVoteResp : MessageType.VoteResp;
    if (this.#poll(this.id, respType, true) === POLL_WON) {
      if (pre) this.#campaign(false, false);
      else {
        this.#becomeLeader();
        this.bcastAppend();
      }
      return;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const [id, pr] of this.prs) {
      if (id === this.id || pr.isLearner) continue;
      const m = newMessage(voteType, id, this.id, term);
      m.index = lastIndex;
      m.logTerm = lastTerm;
      if (transfer) m.context = TRANSFER_CONTEXT;
      this.msgs.push(m);
    }
  }

  #poll(id: NodeId, t: MessageType, granted: boolean): PollResult {
    if (!this.#votes.has(id)) this.#votes.set(id, granted);
    let yes = 0;
    let no = 0;
    let voters = 0;
    for (const [pid, pr] of this.prs) {
      if (pr.isLearner) continue;
      voters++;
      const v = this.#votes.get(pid);
      if (v === true) yes++;
      else if (v === false) no++;
    }
    const q = (voters >> 1) + 1;
    this.#trace(`${MessageType[t]} from ${id.toString(16)}: ${yes} granted, ${no} rejected`);
    if (yes >= q) return POLL_WON;
    if (no >= q) return POLL_LOST;
    return POLL_PENDING;
  }

  #handleVoteRequest(m: Message): void {
    const canVote = this.vote === m.from || (this.vote === none && this.lead === none) ||
      (m.type === MessageType.PreVote && m.term > this.term);
    const respType = m.type === MessageType.Vote ? MessageType.VoteResp : MessageType.PreVoteResp;
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      // The response carries the requested term so a pre-candidate can count it.
      this.msgs.push(newMessage(respType, m.from, this.id, m.term));
      if (m.type === MessageType.Vote) {
        this.#electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      const r = newMessage(respType, m.from, this.id, this.term);
      r.reject = true;
      this.msgs.push(r);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Step

  /**
   * Processes one message. Returns true when a proposal (MsgProp) was dropped, so RawNode can
   * tell the caller; every other outcome is visible through the next Ready.
   */
  step(m: Message): boolean {
    if (m.term === 0) {
      // Local message, or a forwarded proposal / read request.
    } else if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        const force = bytesEqual(m.context, TRANSFER_CONTEXT);
        const inLease = this.#checkQuorum && this.lead !== none &&
          this.#electionElapsed < this.#electionTimeout;
        if (!force && inLease) {
          // We heard from a leader within the election timeout: do not help depose it.
          this.#trace(`ignored ${MessageType[m.type]} from ${m.from.toString(16)}: lease`);
          return false;
        }
      }
      if (m.type === MessageType.PreVote) {
        // Never change our term because of a pre-vote request.
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // A granted pre-vote for a term we will bump to when we win.
      } else if (
        m.type === MessageType.App || m.type === MessageType.Heartbeat ||
        m.type === MessageType.Snap
      ) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, none);
      }
    } else if (m.term < this.term) {
      if (
        (this.#checkQuorum || this.#preVote) &&
        (m.type === MessageType.Heartbeat || m.type === MessageType.App)
      ) {
        // A stale leader (e.g. after a partition) learns the new term from this and steps down;
        // otherwise, with PreVote/CheckQuorum, it might never hear a higher term.
        this.msgs.push(newMessage(MessageType.AppResp, m.from, this.id, this.term));
      } else if (m.type === MessageType.PreVote) {
        const r = newMessage(MessageType.PreVoteResp, m.from, this.id, this.term);
        r.reject = true;
        this.msgs.push(r);
      }
      return false;
    }

    switch (m.type) {
      case MessageType.Hup:
        this.hup(false);
        return false;
      case MessageType.Vote:
      case MessageType.PreVote:
        this.#handleVoteRequest(m);
        return false;
    }
    switch (this.state) {
      case StateType.Leader:
        return this.#stepLeader(m);
      case StateType.Candidate:
      case StateType.PreCandidate:
        return this.#stepCandidate(m);
      default:
        return this.#stepFollower(m);
    }
  }

  #stepLeader(m: Message): boolean {
    switch (m.type) {
      case MessageType.Beat:
        this.#bcastHeartbeat();
        return false;
      case MessageType.CheckQuorum:
        if (!this.#quorumActive()) {
          this.#trace("stepped down: no quorum heard within an election timeout");
          this.becomeFollower(this.term, none);
        }
        return false;
      case MessageType.Prop:
        return this.#leaderPropose(m);
      case MessageType.ReadIndex:
        if (!this.#committedEntryInCurrentTerm()) {
          // Our commit index may be behind the previous leader's until our no-op commits.
          if (this.#pendingReadIndex.length < MAX_PENDING_READ_INDEX) {
            this.#pendingReadIndex.push(m);
          }
          return false;
        }
        this.#serveReadIndex(m);
        return false;
    }
    const pr = this.prs.get(m.from);
    if (pr === undefined) return false;
    switch (m.type) {
      case MessageType.AppResp:
        this.#handleAppendResponse(m, pr);
        break;
      case MessageType.HeartbeatResp:
        this.#handleHeartbeatResponse(m, pr);
        break;
      case MessageType.SnapStatus:
        if (pr.state !== ProgressState.Snapshot) break;
        if (m.reject) pr.pendingSnapshot = 0;
        pr.becomeProbe();
        // Wait for a heartbeat response before probing again.
        pr.probeSent = true;
        break;
      case MessageType.Unreachable:
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        break;
      case MessageType.TransferLeader:
        this.#handleTransferLeader(m.from, pr);
        break;
    }
    return false;
  }

  #leaderPropose(m: Message): boolean {
    raftAssert(m.entries.length > 0, "stepped empty MsgProp");
    if (!this.prs.has(this.id)) return true;
    if (this.leadTransferee !== none) return true;
    const ents = m.entries;
    const out: Entry[] = new Array(ents.length);
    const last = this.log.lastIndex();
    for (let i = 0; i < ents.length; i++) {
      const e = ents[i];
      let type = e.type;
      let data = e.data;
      if (type === EntryType.ConfChange) {
        if (this.pendingConfIndex > this.log.applied) {
          // Like etcd: keep the slot (the proposer waits on it) but make it a no-op.
          this.#trace("a conf change is already pending; proposing an empty entry instead");
          type = EntryType.Normal;
          data = EMPTY;
        } else {
          this.pendingConfIndex = last + i + 1;
        }
      }
      out[i] = { term: 0, index: 0, type, data };
    }
    this.appendEntries(out);
    // Sent when the node next asks for a Ready, so proposals batched between two Readies go out
    // as one append per follower instead of one each.
    this.#appendsPending = true;
    return false;
  }

  /** Sends the appends deferred by proposals (called by RawNode before building a Ready). */
  flushProposals(): void {
    if (!this.#appendsPending) return;
    this.#appendsPending = false;
    if (this.state !== StateType.Leader) return;
    for (const id of this.prs.keys()) {
      if (id === this.id) continue;
      // Fill the in-flight window (bounded by maxInflightMsgs / one probe).
      while (this.sendAppend(id, false)) {
        // keep sending
      }
    }
  }

  #stepCandidate(m: Message): boolean {
    const respType = this.state === StateType.PreCandidate
      ? MessageType.PreVoteResp
      : MessageType.VoteResp;
    switch (m.type) {
      case MessageType.Prop:
        return true;
      case MessageType.App:
        this.becomeFollower(m.term, m.from);
        this.#handleAppend(m);
        return false;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.#handleHeartbeat(m);
        return false;
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.#handleSnapshot(m);
        return false;
      case respType: {
        const r = this.#poll(m.from, m.type, !m.reject);
        if (r === POLL_WON) {
          if (this.state === StateType.PreCandidate) this.#campaign(false, false);
          else {
            this.#becomeLeader();
            this.bcastAppend();
          }
        } else if (r === POLL_LOST) {
          this.becomeFollower(this.term, none);
        }
        return false;
      }
    }
    return false;
  }

  #stepFollower(m: Message): boolean {
    switch (m.type) {
      case MessageType.Prop: {
        if (this.lead === none) return true;
        const f = newMessage(MessageType.Prop, this.lead, this.id, 0);
        f.entries = m.entries;
        this.msgs.push(f);
        return false;
      }
      case MessageType.App:
        this.#electionElapsed = 0;
        this.lead = m.from;
        this.#handleAppend(m);
        return false;
      case MessageType.Heartbeat:
        this.#electionElapsed = 0;
        this.lead = m.from;
        this.#handleHeartbeat(m);
        return false;
      case MessageType.Snap:
        this.#electionElapsed = 0;
        this.lead = m.from;
        this.#handleSnapshot(m);
        return false;
      case MessageType.TransferLeader: {
        if (this.lead === none) return false;
        const f = newMessage(MessageType.TransferLeader, this.lead, m.from, this.term);
        this.msgs.push(f);
        return false;
      }
      case MessageType.TimeoutNow:
        if (this.promotable()) {
          this.#trace("received TimeoutNow; campaigning for leader transfer");
          this.#campaign(false, true);
        }
        return false;
      case MessageType.ReadIndex: {
        if (this.lead === none) {
          this.#trace("no leader; dropping read index request");
          return false;
        }
        const f = newMessage(MessageType.ReadIndex, this.lead, this.id, 0);
        f.context = m.context;
        this.msgs.push(f);
        return false;
      }
      case MessageType.ReadIndexResp:
        this.readStates.push({ index: m.index, requestCtx: m.context });
        return false;
    }
    return false;
  }

  // -------------------------------------------------------------------------------------------
  // Follower handlers

  #handleAppend(m: Message): void {
    if (m.index < this.log.committed) {
      const r = newMessage(MessageType.AppResp, m.from, this.id, this.term);
      r.index = this.log.committed;
      this.msgs.push(r);
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== -1) {
      const r = newMessage(MessageType.AppResp, m.from, this.id, this.term);
      r.index = lastNew;
      this.msgs.push(r);
      return;
    }
    // Tell the leader the highest index that may match, skipping a whole term at a time.
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    const r = newMessage(MessageType.AppResp, m.from, this.id, this.term);
    r.index = m.index;
    r.reject = true;
    r.rejectHint = hint;
    r.logTerm = this.log.term(hint);
    this.msgs.push(r);
  }

  #handleHeartbeat(m: Message): void {
    this.log.commitTo(m.commit);
    const r = newMessage(MessageType.HeartbeatResp, m.from, this.id, this.term);
    r.context = m.context;
    this.msgs.push(r);
  }

  #handleSnapshot(m: Message): void {
    if (m.snapshot === null) return;
    const r = newMessage(MessageType.AppResp, m.from, this.id, this.term);
    if (this.#restore(m.snapshot)) {
      r.index = this.log.lastIndex();
    } else {
      r.index = this.log.committed;
    }
    this.msgs.push(r);
  }

  /** Installs a leader's snapshot unless we already have what it covers. */
  #restore(s: Snapshot): boolean {
    const md = s.metadata;
    if (md.index <= this.log.committed) return false;
    if (this.log.matchTerm(md.index, md.term)) {
      // We have the entries already: just fast-forward the commit index.
      this.log.commitTo(md.index);
      return false;
    }
    this.#trace(`restoring snapshot at index ${md.index} term ${md.term}`);
    this.log.restore(s);
    this.prs.clear();
    for (const id of md.confState.voters) this.#setProgress(id, false);
    for (const id of md.confState.learners) this.#setProgress(id, true);
    return true;
  }

  // -------------------------------------------------------------------------------------------
  // Leader handlers

  #handleAppendResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    if (m.reject) {
      let hint = m.rejectHint;
      if (m.logTerm > 0) hint = this.log.findConflictByTerm(m.rejectHint, m.logTerm);
      if (pr.maybeDecrTo(m.index, hint)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.sendAppend(m.from, true);
      }
      return;
    }
    const oldPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) return;
    if (pr.state === ProgressState.Probe) {
      pr.becomeReplicate();
    } else if (
      pr.state === ProgressState.Snapshot &&
      (pr.match >= pr.pendingSnapshot || pr.match + 1 >= this.log.firstIndex())
    ) {
      // The follower can be caught up from the log now.
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === ProgressState.Replicate) {
      pr.inflights.freeLE(m.index);
    }
    if (this.maybeCommit()) {
      this.bcastAppend();
    } else if (oldPaused) {
      this.sendAppend(m.from, true);
    }
    // Fill the window while there is more to send.
    while (this.sendAppend(m.from, false)) {
      // keep sending
    }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
      this.#sendTimeoutNow(m.from);
    }
  }

  #handleHeartbeatResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.probeSent = false;
    if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.log.lastIndex()) this.sendAppend(m.from, true);
    if (m.context.length === 0) return;
    const acks = this.#readOnly.recvAck(m.from, m.context);
    if (acks === null) return;
    let n = 0;
    for (const id of acks) {
      const p = this.prs.get(id);
      if (p !== undefined && !p.isLearner) n++;
    }
    if (n < this.#quorum()) return;
    for (const rs of this.#readOnly.advance(m.context)) this.#respondReadIndex(rs.req, rs.index);
  }

  #handleTransferLeader(transferee: NodeId, pr: Progress): void {
    if (pr.isLearner) {
      this.#trace("ignored transfer of leadership to a learner");
      return;
    }
    if (this.leadTransferee !== none) {
      if (this.leadTransferee === transferee) return;
      this.abortLeaderTransfer();
    }
    if (transferee === this.id) return;
    this.#electionElapsed = 0;
    this.leadTransferee = transferee;
    if (pr.match === this.log.lastIndex()) this.#sendTimeoutNow(transferee);
    else this.sendAppend(transferee, true);
  }

  #sendTimeoutNow(to: NodeId): void {
    this.msgs.push(newMessage(MessageType.TimeoutNow, to, this.id, this.term));
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = none;
  }

  #quorumActive(): boolean {
    let active = 0;
    for (const [id, pr] of this.prs) {
      if (id === this.id) {
        if (!pr.isLearner) active++;
        continue;
      }
      if (pr.recentActive && !pr.isLearner) active++;
      pr.recentActive = false;
    }
    return active >= this.#quorum();
  }

  #committedEntryInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  #serveReadIndex(m: Message): void {
    const self = this.prs.get(this.id);
    if (this.#voterCount() === 1 && self !== undefined && !self.isLearner) {
      this.#respondReadIndex(m, this.log.committed);
      return;
    }
    this.#readOnly.add(this.log.committed, m);
    this.#readOnly.recvAck(this.id, m.context);
    this.#bcastHeartbeat();
  }

  #respondReadIndex(req: Message, index: number): void {
    if (req.from === none || req.from === this.id) {
      this.readStates.push({ index, requestCtx: req.context });
      return;
    }
    const r = newMessage(MessageType.ReadIndexResp, req.from, this.id, this.term);
    r.index = index;
    r.context = req.context;
    this.msgs.push(r);
  }

  /** Leader: advances commit to what a quorum of voters has (current-term entries only). */
  maybeCommit(): boolean {
    const scratch = this.#matchScratch;
    let n = 0;
    for (const pr of this.prs.values()) {
      if (pr.isLearner) continue;
      // Insertion sort, descending: clusters are small.
      let j = n++;
      const v = pr.match;
      while (j > 0 && scratch[j - 1] < v) {
        scratch[j] = scratch[j - 1];
        j--;
      }
      scratch[j] = v;
    }
    if (n === 0) return false;
    const mci = scratch[n >> 1];
    if (!this.log.maybeCommit(mci, this.term)) return false;
    if (this.#pendingReadIndex.length > 0 && this.#committedEntryInCurrentTerm()) {
      const pending = this.#pendingReadIndex;
      this.#pendingReadIndex = [];
      for (const m of pending) this.#serveReadIndex(m);
    }
    return true;
  }

  /**
   * Called once the node persisted what a Ready handed out: only now may the leader count its own
   * log toward commit (the durability rule).
   */
  onPersisted(): void {
    if (this.state !== StateType.Leader) return;
    const self = this.prs.get(this.id);
    if (self === undefined) return;
    if (self.maybeUpdate(this.log.persistedIndex()) && this.maybeCommit()) this.bcastAppend();
  }

  appendEntries(ents: Entry[]): void {
    let index = this.log.lastIndex();
    for (let i = 0; i < ents.length; i++) {
      const e = ents[i];
      e.term = this.term;
      e.index = ++index;
    }
    this.log.append(ents);
  }

  // -------------------------------------------------------------------------------------------
  // Sending

  bcastAppend(): void {
    for (const id of this.prs.keys()) if (id !== this.id) this.sendAppend(id, true);
  }

  #bcastHeartbeat(): void {
    const ctx = this.#readOnly.lastPendingCtx();
    for (const [id, pr] of this.prs) {
      if (id === this.id) continue;
      const m = newMessage(MessageType.Heartbeat, id, this.id, this.term);
      m.commit = Math.min(pr.match, this.log.committed);
      if (ctx !== null) m.context = ctx;
      this.msgs.push(m);
    }
  }

  /**
   * Sends the entries `to` lacks (or a snapshot when they were compacted). With `sendIfEmpty`
   * false, sends only when there are entries. Returns whether a message was sent.
   */
  sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.prs.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    if (pr.next < this.log.firstIndex()) return this.#sendSnapshot(to, pr);
    const prevIndex = pr.next - 1;
    const ents = this.log.entriesFrom(pr.next, this.#maxSizePerMsg);
    if (ents.length === 0 && !sendIfEmpty) return false;
    const m = newMessage(MessageType.App, to, this.id, this.term);
    m.index = prevIndex;
    m.logTerm = this.log.term(prevIndex);
    m.entries = ents;
    m.commit = this.log.committed;
    if (ents.length > 0) {
      const last = ents[ents.length - 1].index;
      if (pr.state === ProgressState.Replicate) {
        pr.optimisticUpdate(last);
        pr.inflights.add(last);
      } else if (pr.state === ProgressState.Probe) {
        pr.probeSent = true;
      }
    }
    this.msgs.push(m);
    return true;
  }

  #sendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) return false;
    let snap: Snapshot;
    try {
      snap = this.log.snapshot();
    } catch (e) {
      if (e instanceof SnapshotTemporarilyUnavailableError) return false;
      throw e;
    }
    raftAssert(snap.metadata.index > 0, "need a non-empty snapshot");
    pr.becomeSnapshot(snap.metadata.index);
    const m = newMessage(MessageType.Snap, to, this.id, this.term);
    m.snapshot = snap;
    this.msgs.push(m);
    this.#trace(`sent snapshot at ${snap.metadata.index} to ${to.toString(16)}`);
    return true;
  }

  /** New cluster: the initial voters as committed ConfChange entries at term 1. */
  bootstrap(peers: { id: NodeId; context: Uint8Array }[]): void {
    if (peers.length === 0) throw new Error("raft: bootstrap needs at least one peer");
    if (this.log.lastIndex() !== 0 || this.term !== 0) {
      throw new Error("raft: bootstrap requires empty storage");
    }
    this.becomeFollower(1, none);
    const ents: Entry[] = [];
    for (let i = 0; i < peers.length; i++) {
      const p = peers[i];
      ents.push({
        term: 1,
        index: i + 1,
        type: EntryType.ConfChange,
        data: encodeConfChange({
          type: ConfChangeType.AddNode,
          nodeId: p.id,
          context: p.context,
        }),
      });
    }
    this.log.append(ents);
    this.log.committed = ents.length;
    for (const p of peers) this.addNode(p.id, false);
  }

  /** Whether a message from the network is acceptable (responses from unknown members are not). */
  acceptsFromNetwork(m: Message): boolean {
    if (isLocalMessageType(m.type)) return false;
    if (isResponseType(m.type) && !this.prs.has(m.from)) return false;
    return true;
  }
}
