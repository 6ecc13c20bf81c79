/**
 * The data Raft exchanges with the rest of detcd. Plain objects only: `core/raft` imports nothing
 * but these types, so a whole cluster can run inside one process under a simulated clock and
 * network. Indexes and terms are numbers (they stay far below 2^53); member IDs are bigints because
 * etcd's are full 64-bit values. `0n` means "no member" (etcd's raft.None).
 */

/** A member ID; `none` means no member. */
export type NodeId = bigint;
/** No member (no leader, no vote). */
export const none: NodeId = 0n;

/** What a log entry carries. */
export enum EntryType {
  /** An application command (empty data = the leader's no-op at the start of its term). */
  Normal = 0,
  /** A membership change: `data` is an encoded ConfChange (see encodeConfChange). */
  ConfChange = 1,
}

/** One log entry. */
export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Uint8Array;
}

/** What a membership change does, as etcd's raftpb.ConfChangeType. */
export enum ConfChangeType {
  AddNode = 0,
  RemoveNode = 1,
  UpdateNode = 2,
  AddLearnerNode = 3,
}

/**
 * One membership change, applied one at a time. Promoting a learner is `AddNode` of a member that
 * is a learner now (as etcd does). `context` is opaque to Raft (etcd puts the member's JSON there).
 */
export interface ConfChange {
  type: ConfChangeType;
  nodeId: NodeId;
  context: Uint8Array;
}

/** Voters and learners; a member is never both. Kept sorted ascending. */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

/** What must be on disk before any message that depends on it is sent. */
export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

/** The state at `index`: everything up to it is inside `data` (an application snapshot). */
export interface SnapshotMetadata {
  index: number;
  term: number;
  confState: ConfState;
}

export interface Snapshot {
  metadata: SnapshotMetadata;
  data: Uint8Array;
}

/** Role of a member. */
export enum StateType {
  Follower = 0,
  Candidate = 1,
  Leader = 2,
  PreCandidate = 3,
}

/** Message kinds, numbered as etcd's raftpb.MessageType. Local ones never cross the network. */
export enum MessageType {
  /** local: start an election */
  Hup = 0,
  /** local: leader sends heartbeats */
  Beat = 1,
  Prop = 2,
  App = 3,
  AppResp = 4,
  Vote = 5,
  VoteResp = 6,
  Snap = 7,
  Heartbeat = 8,
  HeartbeatResp = 9,
  /** local: the transport could not reach `from` */
  Unreachable = 10,
  /** local: outcome of sending a snapshot (`reject` = failed) */
  SnapStatus = 11,
  /** local: leader checks it still hears from a quorum */
  CheckQuorum = 12,
  TransferLeader = 13,
  TimeoutNow = 14,
  ReadIndex = 15,
  ReadIndexResp = 16,
  PreVote = 17,
  PreVoteResp = 18,
}

/** A Raft message; unused fields are zero / empty. */
export interface Message {
  type: MessageType;
  to: NodeId;
  from: NodeId;
  term: number;
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
  snapshot: Snapshot | null;
  reject: boolean;
  rejectHint: number;
  /** ReadIndex request context; also marks a leader-transfer election ("transfer"). */
  context: Uint8Array;
}

/** Volatile role information; appears in a Ready only when it changed. */
export interface SoftState {
  lead: NodeId;
  state: StateType;
}

/** A linearizable read that may be served once the state machine applied `index`. */
export interface ReadState {
  index: number;
  requestCtx: Uint8Array;
}

/**
 * Everything Raft wants done, in this order: persist `hardState`, `entries` and `snapshot` (one
 * sync when `mustSync`); apply `snapshot` then `committedEntries`; send `messages` (after the
 * persist: votes and acknowledgements must not outrun the disk); serve `readStates` once applied;
 * then call `advance(ready)`. A leader counts its own log toward commit only after advance, so the
 * leader's disk is never skipped.
 */
export interface Ready {
  softState: SoftState | null;
  hardState: HardState | null;
  /** Entries to append to stable storage (may overwrite a conflicting tail). */
  entries: Entry[];
  snapshot: Snapshot | null;
  committedEntries: Entry[];
  messages: Message[];
  readStates: ReadState[];
  mustSync: boolean;
}

/**
 * The log as it is on stable storage. `MemoryStorage` implements it; the node keeps it in step with
 * the WAL. Errors: `entries`/`term` throw `CompactedError` below `firstIndex()` and
 * `UnavailableError` above `lastIndex()`.
 */
export interface Storage {
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries in [lo, hi), at least one even when it is larger than maxBytes. */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** Term of entry i; valid for firstIndex()-1 ..= lastIndex(). */
  term(index: number): number;
  lastIndex(): number;
  /** Index of the first entry still held (snapshot index + 1). */
  firstIndex(): number;
  /** The newest snapshot; throws SnapshotTemporarilyUnavailableError when it is being made. */
  snapshot(): Snapshot;
}

/** Requested index is below what the log still holds. */
export class CompactedError extends Error {
  constructor() {
    super("requested index is unavailable due to compaction");
  }
}

/** Requested index is beyond the log. */
export class UnavailableError extends Error {
  constructor() {
    super("requested entry at index is unavailable");
  }
}

/** A snapshot is being created; the caller retries later. */
export class SnapshotTemporarilyUnavailableError extends Error {
  constructor() {
    super("snapshot is temporarily unavailable");
  }
}

/** A proposal was dropped (no leader, leader transferring, or a conf change already pending). */
export class ProposalDroppedError extends Error {
  constructor() {
    super("raft proposal dropped");
  }
}

/** Configuration of one Raft member. */
export interface RaftConfig {
  id: NodeId;
  /** Ticks without hearing from a leader before a follower campaigns (randomized in [e, 2e)). */
  electionTicks: number;
  /** Ticks between leader heartbeats; must be less than electionTicks. */
  heartbeatTicks: number;
  storage: Storage;
  /** Last applied index when restarting (entries up to it are not returned as committed again). */
  applied: number;
  /** Bytes of entries per append message at most (the first entry always goes). */
  maxSizePerMsg: number;
  /** Append messages in flight per follower at most while replicating optimistically. */
  maxInflightMsgs: number;
  checkQuorum: boolean;
  preVote: boolean;
  /** Uniform random integer in [0, n): seeded by the caller, never Math.random. */
  randomInt: (n: number) => number;
  /** Optional trace sink for debugging (role changes, elections). */
  logger?: (msg: string) => void;
}

/** A snapshot of progress and role, for Status and tests. */
export interface RaftStatus {
  id: NodeId;
  term: number;
  vote: NodeId;
  commit: number;
  lead: NodeId;
  state: StateType;
  applied: number;
  /** Leader only: match index of every member (including itself). */
  progress: Map<NodeId, { match: number; next: number; isLearner: boolean }>;
  leadTransferee: NodeId;
}
