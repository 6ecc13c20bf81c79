import type { BackendState } from "../snapshot/etcd_db.ts";
import { formatGoDurationMs } from "../go_duration.ts";
import { metricsNow } from "../metrics.ts";
import {
  defragInflight,
  defragSeconds,
  hashRevSeconds,
  heartbeatSendFailures,
  leaderChanges,
  learnerPromoteSuccesses,
  receivedSnapshotFsyncSeconds,
  receivedSnapshotSaveSeconds,
  slowApplies,
  snapshotApplyInProgress,
  snapshotMarshallingSeconds,
  snapshotSaveSeconds,
} from "./metrics.ts";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  type HistoryRequest,
  type HistoryResponse,
  HistoryResponseSchema,
  type LevelRequest,
  type LevelResponse,
  LevelResponseSchema,
} from "../../gen/detcdpb/console_pb.ts";
import {
  ClusterVersionSchema,
  MemberAttributesSchema,
  type MemberMeta,
  MemberMetaSchema,
  type NodeSnapshot,
} from "../../gen/detcdpb/internal_pb.ts";
import {
  type AlarmMember,
  type AlarmRequest,
  AlarmRequest_AlarmAction,
  AlarmRequestSchema,
  type AlarmResponse,
  AlarmType,
  type CompactionRequest,
  type CompactionResponse,
  type DefragmentResponse,
  DefragmentResponseSchema,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type HashKVRequest,
  type HashKVResponse,
  HashKVResponseSchema,
  type LeaseGrantRequest,
  type LeaseGrantResponse,
  type LeaseLeasesResponse,
  LeaseRevokeRequestSchema,
  type LeaseRevokeResponse,
  type LeaseTimeToLiveRequest,
  type LeaseTimeToLiveResponse,
  type Member,
  type MemberAddResponse,
  type MemberPromoteResponse,
  type MemberRemoveResponse,
  type MemberUpdateResponse,
  type MoveLeaderResponse,
  MoveLeaderResponseSchema,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type ResponseHeader,
  ResponseHeaderSchema,
  type StatusResponse,
  StatusResponseSchema,
  type TxnRequest,
  type TxnResponse,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { assert } from "../assert.ts";
import { prefixRangeEnd } from "../bytes.ts";
import type { AuthInfo } from "../auth/mod.ts";
import { Errors, EtcdError, GrpcCode, isEtcdError } from "../errors.ts";
import { humanizeBytes } from "../go_humanize.ts";
import type { Logger } from "../log.ts";
import type { Lessor } from "../lease/mod.ts";
import { MvccStore, type MvccStoreOptions, readSource, WatchableStore } from "../mvcc/mod.ts";
import {
  checkDeleteRequest,
  checkPutRequest,
  checkRangeRequest,
  checkTxnRequest,
  isTxnReadOnly,
  isTxnSerializable,
} from "./kv/mod.ts";
import {
  type ConfChange,
  ConfChangeType,
  type ConfState,
  decodeConfChange,
  type Entry,
  EntryType,
  MemoryStorage,
  type Message,
  MessageType,
  none,
  RawNode,
  type Ready,
  type Snapshot as RaftSnapshot,
  type SnapshotMetadata,
  StateType,
} from "../raft/mod.ts";
import {
  crc32c,
  type Disk,
  RevisionLog,
  sealSnapshot,
  SNAPSHOT_HEADER_BYTES,
  Snapshotter,
  Wal,
} from "../storage/mod.ts";
import {
  backendQuota,
  DEFAULT_QUOTA_BYTES,
  type LoggedOperation,
  MAX_QUOTA_BYTES,
  type OperationOf,
  type Quota,
  quotaCost,
  type Responses,
} from "./apply/mod.ts";
import { StateMachine } from "./state_machine.ts";
import { readNodeSnapshot } from "./node_snapshot.ts";
import { NodeAuth } from "./auth_api.ts";
import { DurableLog } from "./durable_log.ts";
import {
  type NodeConfig,
  type NodeEnvironment,
  type ResolvedNodeConfig,
  resolveNodeConfig,
} from "./config.ts";
import { NodeLeases } from "./leases.ts";
import {
  electionTicks,
  initialPeers,
  memberMeta,
  newLessor,
  newRawNode,
  recoverStorage,
} from "./bootstrap.ts";
import { idHex } from "./ids.ts";
import { type MemberInfo, Membership, toApiMember } from "./membership.ts";
import { Proposals, type Waiter } from "./proposals.ts";
import { ReadIndexReads } from "./reads.ts";
import { decodeContext, encodeContext, MemberChanges, type ReconfigView } from "./reconfig.ts";
import { noTransport, type SnapshotBody, type Transport } from "./transport.ts";

/** A member's MVCC store: revisions in its revision log, compaction dropped in steps. */
function storeOptions(revisions: RevisionLog): MvccStoreOptions {
  return { revisions, stepwiseCompaction: true };
}

/** A background snapshot's checksum runs over this much at a time between pauses. */
const CRC_SLICE_BYTES = 1 << 20;

export type { NodeConfig, NodeEnvironment } from "./config.ts";

/** The etcd version detcd speaks and reports. */
export const SERVER_VERSION = "3.4.23";
/** The cluster version etcd 3.4 members agree on. */
export const clusterVersion = "3.4.0";

/** Leader messages that promise nothing about its own disk and may go out while it writes. */
const leaderEarlyTypes = new Set<MessageType>([
  MessageType.App,
  MessageType.Heartbeat,
  MessageType.Snap,
]);

/**
 * One etcd member's replicated state machine. A write is validated, proposed to Raft (forwarded to
 * the leader when this member follows), made durable in the WAL with every other write that
 * arrived meanwhile (one sync per Ready), committed by a quorum, applied to MVCC in log order, and
 * answered with etcd's header by the member that proposed it. Linearizable reads confirm the
 * leader's commit index with ReadIndex and wait until it is applied. Time comes in through `tick()`
 * (one per heartbeat interval); the network through the Transport and `step()`.
 */
/** Who a call comes from, or how to find out (a token resolved only when needed). */
export type CallerSource =
  | AuthInfo
  | null
  | (() => AuthInfo | null | Promise<AuthInfo | null>);

/** A version as etcd logs cluster versions: major.minor ("3.4"). */
function majorMinor(version: string): string {
  return version.split(".").slice(0, 2).join(".");
}

function resolveCaller(
  source: CallerSource,
): AuthInfo | null | Promise<AuthInfo | null> {
  return typeof source === "function" ? source() : source;
}

export class EtcdNode {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  #config: ResolvedNodeConfig;
  #logger: Logger;
  /** The WAL, the snapshot files and Raft's in-memory log. */
  #log: DurableLog;
  #raft: RawNode;
  #transport: Transport;
  #env: NodeEnvironment;
  /** The wall clock the environment gives (0 without one): added members' IDs, request IDs. */
  readonly #nowMs: () => number;
  #lessor: Lessor;
  #membership = new Membership();
  /** MVCC, leases, alarms and membership as applied from the log. */
  #sm: StateMachine;
  /** --quota-backend-bytes over this member's storage. */
  readonly #quota: Quota;
  /** Where the MVCC store keeps its revisions (member/revs). */
  #revisions: RevisionLog;
  /** Watchers of this member: every applied write's events reach them. */
  readonly watchable: WatchableStore;
  /** The Auth service, token resolution and the caller checks of this member. */
  readonly auth: NodeAuth;
  #confState: ConfState = { voters: [], learners: [] };
  /** Term of the last applied entry: what etcd reports in headers and Status. */
  #term = 0;
  /** Raft's current term (for logs). */
  #raftTerm = 0;
  #commitIndex = 0;
  #lead = none;
  #state = StateType.Follower;
  #appliedIndex: number;
  #ticks = 0;
  #reqTimeoutTicks: number;
  #electionTicks: number;
  #proposals: Proposals;
  #reads: ReadIndexReads;
  /** Term and start (tick, monotonic ms) of the last ReadIndex round confirmed as leader. */
  #confirmed = { term: -1, tick: 0, ms: 0 };
  #published = false;
  #publishing = false;
  #transferWaiters: { target: bigint; waiter: Waiter }[] = [];
  /** A proposal of the cluster version is on its way (proposed once per leadership). */
  #settingClusterVersion = false;
  /** Entries up to this index are re-applied from the WAL at start (see ApplyMeta.replay). */
  #replayUntil = 0;
  /** Callers waiting for an index to be applied here (a simple token issued elsewhere). */
  #appliedWaiters: { index: number; deadline: number; resolve: (ok: boolean) => void }[] = [];
  #running = false;
  /** The Ready loop ran in this turn of the event loop (see #schedule). */
  #ranThisTurn = false;
  #readyWaiters: (() => void)[] = [];
  #failure: Error | null = null;
  #stopped = false;
  #removed = false;
  #idle: Promise<void> = Promise.resolve();
  /** A streamed snapshot is being received, or waits to be installed (receiveSnapshot). */
  #receivingSnapshot = false;
  /** The snapshot being written in the background, if any. */
  #snapshotTask: Promise<void> | null = null;
  /** The revision log's mostly-garbage segments being rewritten in the background, if so. */
  #reclaimTask: Promise<void> | null = null;
  /** When this member (as leader) last sent each peer a heartbeat (env.monotonicMs). */
  readonly #heartbeatSentAt = new Map<bigint, number>();
  /** Dropping a compaction's history in steps (MvccStore.compactionStep), while serving. */
  #compactionTask: Promise<void> | null = null;
  /** No snapshot is started below this applied index (set after a failed one). */
  #nextSnapshotAt = 0;
  /** Keep-alive, TimeToLive and the leader's lease ticks. */
  #leases: NodeLeases;
  /** Member add, remove, update and promote, before they reach the log. */
  #memberChanges: MemberChanges;

  private constructor(init: {
    config: ResolvedNodeConfig;
    logger: Logger;
    env: NodeEnvironment;
    wal: Wal;
    snapshotter: Snapshotter;
    storage: MemoryStorage;
    raft: RawNode;
    mvcc: MvccStore;
    revisions: RevisionLog;
    lessor: Lessor;
    meta: MemberMeta;
    appliedIndex: number;
    electionTicks: number;
  }) {
    this.#config = init.config;
    this.#logger = init.logger;
    this.#env = init.env;
    this.#transport = init.env.transport ?? noTransport;
    this.#nowMs = init.env.nowMs ?? (() => 0);
    this.#log = new DurableLog({
      wal: init.wal,
      snapshotter: init.snapshotter,
      storage: init.storage,
      logger: init.logger,
      snapshotIndex: init.appliedIndex,
      catchUpEntries: init.config.snapshotCatchUpEntries,
    });
    this.#raft = init.raft;
    this.#lessor = init.lessor;
    this.#revisions = init.revisions;
    this.#quota = backendQuota(
      init.config.quotaBackendBytes ?? 0,
      () => dbFileSize(this.#sm.mvcc.storageSizes().totalBytes),
    );
    this.#sm = new StateMachine({
      quota: this.#quota,
      mvcc: init.mvcc,
      storeOptions: storeOptions(init.revisions),
      lessor: init.lessor,
      membership: this.#membership,
      header: () => this.header(),
      leaseNowMs: () => this.#leases.nowMs(),
      auth: init.env.auth,
    });
    this.auth = new NodeAuth({
      store: this.#sm.auth,
      logger: init.logger,
      propose: (operation, caller) => this.#propose(operation, 0, caller),
      linearizableRead: () => this.#linearizableRead(),
    });
    this.watchable = this.#sm.watchable;
    this.memberId = init.meta.memberId;
    this.clusterId = init.meta.clusterId;
    this.#appliedIndex = init.appliedIndex;
    this.#electionTicks = init.electionTicks;
    // etcd's ReqTimeout: 5 s plus two election timeouts.
    const heartbeatMs = init.config.heartbeatIntervalMs;
    this.#reqTimeoutTicks = Math.ceil(5000 / heartbeatMs) + 2 * init.electionTicks;
    this.#proposals = new Proposals({
      memberId: init.meta.memberId,
      startMs: this.#nowMs(),
      maxRequestBytes: init.config.maxRequestBytes,
      raft: init.raft,
      schedule: () => this.#schedule(),
    });
    this.#reads = new ReadIndexReads({
      memberId: init.meta.memberId,
      readIndex: (ctx) => this.#raft.readIndex(ctx),
      schedule: () => this.#schedule(),
      leaderTerm: () => this.#state === StateType.Leader ? this.#raftTerm : -1,
      monotonicMs: init.env.monotonicMs,
    });
    this.#leases = new NodeLeases({
      lessor: init.lessor,
      env: init.env,
      ticks: () => this.#ticks,
      heartbeatMs,
      requestTimeoutTicks: this.#reqTimeoutTicks,
      isLeader: () => this.isLeader,
      leader: () => this.#lead,
      raftTerm: () => this.#raftTerm,
      closed: () => this.#stopped || this.#failure !== null,
      header: () => this.header(),
      linearizableRead: () => this.#linearizableRead(),
      confirmLeadership: () => this.#confirmLeadership(),
      propose: (operation, leaderTerm) => this.#propose(operation, leaderTerm),
    });
    this.#memberChanges = new MemberChanges({
      memberId: init.meta.memberId,
      config: init.config,
      membership: this.#membership,
      nowMs: this.#nowMs,
      forwardPromote: init.env.forwardPromote,
      view: () => this.#reconfigView(),
      isLeader: () => this.isLeader,
      leader: () => this.#lead,
      progress: () => this.#raft.status().progress,
      linearizableRead: () => this.#linearizableRead(),
      proposeConfChange: (type, member) => this.#proposeConfChange(type, member),
      header: () => this.headerWithoutRevision(),
      members: () => this.members(),
    });
  }

  /**
   * Opens the member in `config.dataDir`: creates it on first start (bootstrapping a new cluster
   * from --initial-cluster, or joining an existing one), otherwise recovers snapshot + WAL and
   * ignores the initial-* flags as etcd does.
   */
  static async open(
    flags: NodeConfig,
    disk: Disk,
    logger: Logger,
    env: NodeEnvironment = {},
  ): Promise<EtcdNode> {
    const config = resolveNodeConfig(flags);
    const memberDir = `${config.dataDir}/member`;
    await disk.mkdirp(config.dataDir);
    await disk.mkdirp(memberDir);
    const metaPath = `${memberDir}/meta`;
    const metaBytes = await disk.readFile(metaPath);
    const fresh = metaBytes === null;
    const meta = memberMeta(config, env, logger, metaBytes);
    const snapshotter = new Snapshotter(disk, `${memberDir}/snap`);
    await snapshotter.removePartial(); // received snapshots never installed
    // Read by position: a full snapshot (a leader's, a restored backup) is never whole in memory.
    const snapshot = await snapshotter.openNewest((name, reason) =>
      logger.warn("snap/snapshotter.go:123", "failed to read a snap file", {
        path: name,
        error: reason,
      })
    );
    const lessor = newLessor(config);
    logQuota(logger, config.quotaBackendBytes);
    let state: NodeSnapshot | null = null;
    let mvcc: MvccStore;
    let revisions: RevisionLog;
    try {
      const read = snapshot ? readNodeSnapshot(snapshot) : null;
      state = read?.state ?? null;
      // A checkpoint (a fifth of a full snapshot's size, no values) is read whole.
      const checkpoint = read !== null && MvccStore.isCheckpoint(read.mvcc)
        ? readSource(read.mvcc)
        : null;
      revisions = await openRevisionLog(disk, `${memberDir}/revs`, checkpoint !== null);
      // Leases first: restoring MVCC re-attaches live keys to them (etcd's order).
      mvcc = await StateMachine.restoreStore(
        state,
        lessor,
        storeOptions(revisions),
        checkpoint ?? read?.mvcc ?? null,
      );
      if (checkpoint !== null) revisions.removeUnreferenced();
    } finally {
      snapshot?.close();
    }
    const snapshotIndex = snapshot?.index ?? 0;
    const recovery = await Wal.open(
      disk,
      config.walDir || `${memberDir}/wal`,
      snapshotIndex,
      config.walSegmentBytes,
    );
    if (recovery.truncatedTail !== null) {
      logger.warn("wal/wal.go:206", "cut a torn record off the WAL tail", {
        detail: recovery.truncatedTail,
      });
    }
    const storage = recoverStorage(snapshot && state ? { ...snapshot, state } : null, recovery);
    const ticks = electionTicks(config);
    const raft = newRawNode(meta, env, storage, snapshotIndex, ticks);
    const node = new EtcdNode({
      config,
      logger,
      env,
      wal: recovery.wal,
      snapshotter,
      storage,
      raft,
      mvcc,
      revisions,
      lessor,
      meta,
      appliedIndex: snapshotIndex,
      electionTicks: ticks,
    });
    if (state && snapshot) {
      node.#sm.restore(state);
      node.#restoreConf(state);
      node.#term = snapshot.term;
    }
    // Raft reports the commit index only when it changes: start from what the disk says.
    node.#commitIndex = Math.max(storage.initialState().hardState.commit, snapshotIndex);
    if (fresh && config.initialClusterState === "new") raft.bootstrap(initialPeers(config));
    if (fresh) await disk.writeFileAtomic(metaPath, toBinary(MemberMetaSchema, meta));
    // Replay: everything committed up to the recovered commit index is applied before serving.
    node.#replayUntil = node.#commitIndex;
    await node.#drive();
    if (node.#failure) throw node.#failure;
    const voters = node.#confState.voters;
    if (voters.length === 1 && voters[0] === node.memberId) {
      // Alone in the cluster: no one to wait for, win the election right away.
      node.#raft.campaign();
      await node.#drive();
    }
    logger.info("etcdserver/raft.go:519", "starting raft member", {
      "local-member-id": idHex(meta.memberId),
      "cluster-id": idHex(meta.clusterId),
      "applied-index": node.#appliedIndex,
      "commit-index": node.#commitIndex,
    });
    return node;
  }

  // ---------------------------------------------------------------------------------------------
  // Environment inputs

  /** One heartbeat interval passed. */
  tick(): void {
    if (this.#stopped || this.#failure) return;
    this.#ticks++;
    this.#leases.wakeWaiters();
    this.#raft.tick();
    this.#expireWaiters();
    this.#proposals.proposeParked(this.#lead);
    this.#maybePublish();
    this.#leases.tick();
    this.#schedule();
  }

  /** A message from a peer. */
  step(message: Message): void {
    if (this.#stopped || this.#failure) return;
    if (this.#membership.isRemoved(message.from)) return;
    try {
      this.#raft.step(message);
    } catch (e) {
      // Malformed bytes never get here (the transport drops what does not decode, with the
      // reason); a decoded message that breaks Raft's invariants means this member's state, or
      // the sender's, is wrong. Stop, as etcd panics, rather than go on with possibly wrong state.
      this.#fail(e, { from: idHex(message.from), type: MessageType[message.type] });
      return;
    }
    this.#schedule();
  }

  reportUnreachable(id: bigint): void {
    if (this.#stopped) return;
    this.#raft.reportUnreachable(id);
  }

  /**
   * The transport's connection to `id` was refused: nothing listens on its peer port any more. If
   * it is the leader, followers stop waiting for its lease to run out (faster re-election after a
   * leader dies; a live leader's next heartbeat restores it).
   */
  reportPeerDown(id: bigint): void {
    if (this.#stopped || id !== this.#lead || id === this.memberId) return;
    this.#raft.forgetLeader();
    this.#schedule();
  }

  reportSnapshot(id: bigint, ok: boolean): void {
    if (this.#stopped) return;
    this.#raft.reportSnapshot(id, ok);
    this.#schedule();
  }

  /** Whether a member ID was removed from the cluster (its messages are refused). */
  isRemovedMember(id: bigint): boolean {
    return this.#membership.isRemoved(id);
  }

  // ---------------------------------------------------------------------------------------------
  // Client API

  /** The header every response carries. */
  header(revision: number = this.#sm.mvcc.revision): ResponseHeader {
    // The same (frozen) header for the same revision and term: a watch fan-out asks for one per
    // watcher and event, reads at one revision for one each.
    const last = this.#lastHeader;
    if (
      last !== null && this.#lastHeaderRevision === revision &&
      this.#lastHeaderTerm === this.#term && last.clusterId === this.clusterId
    ) {
      return last;
    }
    const header = Object.freeze(create(ResponseHeaderSchema, {
      clusterId: this.clusterId,
      memberId: this.memberId,
      revision: BigInt(revision),
      raftTerm: BigInt(this.#term),
    }));
    this.#lastHeader = header;
    this.#lastHeaderRevision = revision;
    this.#lastHeaderTerm = this.#term;
    return header;
  }
  #lastHeader: ResponseHeader | null = null;
  #lastHeaderRevision = -1;
  #lastHeaderTerm = -1;

  /** Header without a revision, as etcd sends for cluster-membership responses. */
  headerWithoutRevision(): ResponseHeader {
    return create(ResponseHeaderSchema, {
      clusterId: this.clusterId,
      memberId: this.memberId,
      raftTerm: BigInt(this.#term),
    });
  }

  /** Range: serializable reads answer from the applied state; linearizable ones use ReadIndex. */
  // Every client call names its caller: the user and auth revision of its token (null without
  // one). Requests through the log carry it in the entry and are checked when they apply; reads
  // are checked by the same apply chain; the rest is checked here.

  /**
   * KV.Range. `caller` may be given late (a function): as etcd does, a linearizable read resolves
   * the caller's token only after its read barrier, so a token revoked by an entry this member
   * had not applied yet is seen as revoked.
   */
  async range(req: RangeRequest, caller: CallerSource = null): Promise<RangeResponse> {
    checkRangeRequest(req);
    if (!req.serializable) await this.#linearizableRead();
    return this.#sm.read({ case: "range", value: req }, await resolveCaller(caller));
  }

  /**
   * The web console's history of one key (detcdpb.Console.History): its stored revisions,
   * newest first, after a read barrier as a linearizable Range; the caller must be allowed to
   * read the key. At most 1000 events a call.
   */
  async keyHistory(req: HistoryRequest, caller: CallerSource = null): Promise<HistoryResponse> {
    if (req.key.length === 0) throw Errors.emptyKey();
    await this.#linearizableRead();
    this.#sm.auth.isRangePermitted(await resolveCaller(caller), req.key, new Uint8Array(0));
    const bound = 1000;
    const limit = req.limit > 0n && req.limit < BigInt(bound) ? Number(req.limit) : bound;
    const mvcc = this.#sm.mvcc;
    const { events, more } = mvcc.keyHistory(req.key, Number(req.beforeRevision), limit);
    return create(HistoryResponseSchema, {
      header: this.header(),
      events,
      more,
      compactRevision: BigInt(mvcc.compactRevision),
    });
  }

  /**
   * The web console's tree level (detcdpb.Console.Level): after a read barrier, one page of the
   * keys and folders directly under the prefix; the caller must be allowed to read the whole
   * prefix, as for a range over it. At most 1000 entries a call.
   */
  async keyLevel(req: LevelRequest, caller: CallerSource = null): Promise<LevelResponse> {
    if (req.separator.length > 1) {
      throw new EtcdError(GrpcCode.InvalidArgument, "detcd: the separator is one byte");
    }
    await this.#linearizableRead();
    const end = req.prefix.length === 0 ? new Uint8Array([0]) : prefixRangeEnd(req.prefix);
    const start = req.prefix.length === 0 ? new Uint8Array([0]) : req.prefix;
    this.#sm.auth.isRangePermitted(await resolveCaller(caller), start, end);
    const bound = 1000;
    const limit = req.limit > 0n && req.limit < BigInt(bound) ? Number(req.limit) : bound;
    const separator = req.separator.length === 0 ? -1 : req.separator[0];
    const { entries, next } = this.#sm.mvcc.level(req.prefix, separator, req.from, limit);
    return create(LevelResponseSchema, {
      header: this.header(),
      entries,
      next: next ?? new Uint8Array(0),
    });
  }

  async put(req: PutRequest, caller: AuthInfo | null = null): Promise<PutResponse> {
    checkPutRequest(req);
    await this.#checkQuota({ case: "put", value: req });
    return await this.#propose({ case: "put", value: req }, 0, caller);
  }

  async deleteRange(
    req: DeleteRangeRequest,
    caller: AuthInfo | null = null,
  ): Promise<DeleteRangeResponse> {
    checkDeleteRequest(req);
    return await this.#propose({ case: "deleteRange", value: req }, 0, caller);
  }

  /** KV.Txn; a read-only txn resolves a late `caller` after its read barrier, as range does. */
  async txn(req: TxnRequest, caller: CallerSource = null): Promise<TxnResponse> {
    checkTxnRequest(req, this.#config.maxTxnOps);
    if (isTxnReadOnly(req)) {
      // etcd serves read-only transactions without going through the log.
      if (!isTxnSerializable(req)) await this.#linearizableRead();
      return this.#sm.read({ case: "txn", value: req }, await resolveCaller(caller));
    }
    await this.#checkQuota({ case: "txn", value: req });
    return await this.#propose({ case: "txn", value: req }, 0, await resolveCaller(caller));
  }

  async compact(
    req: CompactionRequest,
    caller: AuthInfo | null = null,
  ): Promise<CompactionResponse> {
    const response = await this.#propose({ case: "compaction", value: req }, 0, caller);
    // etcd answers a physical compaction once its backend holds none of the compacted revisions:
    // here once this member's compaction steps are done.
    if (req.physical) await this.#compactionDone();
    return response;
  }

  /** Resolves once no compaction is dropping history (or the member stops). */
  async #compactionDone(): Promise<void> {
    while (!this.#stopped && this.#sm.mvcc.compacting) {
      if (this.#compactionTask === null) this.#startBackgroundWork();
      if (this.#compactionTask === null) return;
      await this.#compactionTask;
    }
  }

  /** Maintenance.Alarm: every action, listing included, goes through the log as in etcd. */
  async alarm(req: AlarmRequest, caller: AuthInfo | null = null): Promise<AlarmResponse> {
    return await this.#propose({ case: "alarm", value: req }, 0, caller);
  }

  /**
   * Lease.LeaseGrant: without an ID the proposer picks one from its request-ID generator (positive,
   * as etcd's v3_server.go does); the checks (exists, TTL too large) happen at apply.
   */
  async leaseGrant(
    req: LeaseGrantRequest,
    caller: AuthInfo | null = null,
  ): Promise<LeaseGrantResponse> {
    await this.#checkQuota({ case: "leaseGrant", value: req });
    let id = req.ID;
    while (id === 0n) id = this.#proposals.newRequestId() & ((1n << 63n) - 1n);
    const value = { ...req, ID: id };
    return await this.#propose({ case: "leaseGrant", value }, 0, caller);
  }

  /**
   * etcd's quotaAlarmer: a request that would take this member's storage past its quota is not
   * proposed; the member raises NOSPACE (through the log, cluster-wide) and the request answers
   * `etcdserver: mvcc: database space exceeded`.
   */
  async #checkQuota(operation: OperationOf<"put" | "txn" | "leaseGrant">): Promise<void> {
    if (this.#quota.available(quotaCost(operation))) return;
    await this.#raiseNoSpace().catch(() => {});
    throw Errors.noSpace();
  }

  /** Proposes this member's NOSPACE alarm (etcd's AlarmRequest ACTIVATE NOSPACE). */
  #raiseNoSpace(): Promise<AlarmResponse> {
    const value = create(AlarmRequestSchema, {
      action: AlarmRequest_AlarmAction.ACTIVATE,
      memberID: this.memberId,
      alarm: AlarmType.NOSPACE,
    });
    return this.#propose({ case: "alarm", value }, 0, null);
  }

  /** Lease.LeaseRevoke: through the log; every member deletes the lease's keys in one revision. */
  async leaseRevoke(id: bigint, caller: AuthInfo | null = null): Promise<LeaseRevokeResponse> {
    const value = create(LeaseRevokeRequestSchema, { ID: id });
    return await this.#propose({ case: "leaseRevoke", value }, 0, caller);
  }

  /**
   * Keep-alive: the leader renews and answers the TTL; a follower forwards to the leader. Unknown
   * or expired leases reject with leaseNotFound (see NodeLeases).
   */
  leaseRenew(id: bigint): Promise<bigint> {
    return this.#leases.renew(id);
  }

  /** Renews on this member only (the leader's side of a forwarded keep-alive). */
  leaseRenewLocal(id: bigint): Promise<bigint> {
    return this.#leases.renewLocal(id);
  }

  /**
   * Lease.LeaseTimeToLive: answered by the leader (a follower asks it). With auth on, the caller
   * must be a user, and listing keys needs read permission on every one of them
   * (CVE-2023-32082; 3.4.23 lists them to anyone).
   */
  async leaseTimeToLive(
    req: LeaseTimeToLiveRequest,
    caller: AuthInfo | null = null,
  ): Promise<LeaseTimeToLiveResponse> {
    this.auth.requireUser(caller);
    const response = await this.#leases.timeToLive(req);
    if (req.keys) {
      for (const key of response.keys) {
        this.#sm.auth.isRangePermitted(caller, key, new Uint8Array(0));
      }
    }
    return response;
  }

  /** LeaseTimeToLive from this member's lessor (the leader's side of a forwarded request). */
  leaseTimeToLiveLocal(req: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse> {
    return this.#leases.timeToLiveLocal(req);
  }

  /** Lease.LeaseLeases: this member's leases (etcd answers from the local lessor), by ID. */
  leaseLeases(caller: AuthInfo | null = null): LeaseLeasesResponse {
    this.auth.requireUser(caller);
    return this.#leases.leases();
  }

  /**
   * Maintenance.HashKV: etcd's hash of the key space up to a revision (0 = current), of the
   * store as it is now, computed in steps with pauses between them (the member keeps serving).
   */
  async hashKV(req: HashKVRequest): Promise<HashKVResponse> {
    const timed = hashRevSeconds.startTimer();
    const steps = this.#sm.mvcc.hashKVSteps(Number(req.revision));
    const pause = this.#env.pause ?? (() => Promise.resolve());
    let step = steps.next();
    while (!step.done) {
      await pause();
      step = steps.next();
    }
    const result = step.value;
    timed();
    return create(HashKVResponseSchema, {
      header: this.header(result.revision),
      hash: result.hash,
      compactRevision: BigInt(result.compactRevision),
    });
  }

  /**
   * etcd's HashKV of the store at its current revision, at once (no pauses): for checks that read
   * several members at one moment (the simulation's convergence check).
   */
  hashNow(): number {
    return this.#sm.mvcc.hash();
  }

  /**
   * The applied state as etcd's backend database holds it (Maintenance.Snapshot streams it as a
   * bbolt file). Taken synchronously, so it is one consistent point: the last applied index.
   */
  backendState(): BackendState {
    return {
      mvcc: this.#sm.mvcc.view(),
      leases: this.#lessor.records().map((l) => ({
        id: l.id,
        ttl: l.ttlSeconds,
        remainingTtl: l.remainingTtlSeconds,
      })),
      alarms: [...this.#sm.alarms],
      members: this.#membership.list(),
      removed: this.#membership.removedIds(),
      clusterVersion: this.#membership.clusterVersion,
      consistentIndex: this.#appliedIndex,
      auth: this.#sm.auth.snapshot(),
    };
  }

  /** Maintenance.Status for this member. */
  status(): StatusResponse {
    const size = this.#sm.mvcc.storageSizes();
    return create(StatusResponseSchema, {
      header: this.header(),
      version: SERVER_VERSION,
      dbSize: BigInt(dbFileSize(size.totalBytes)),
      dbSizeInUse: BigInt(dbInUseSize(size.liveBytes)),
      leader: this.#lead,
      raftIndex: BigInt(this.#commitIndex),
      raftTerm: BigInt(this.#term),
      raftAppliedIndex: BigInt(this.#appliedIndex),
      errors: [
        ...(this.#failure ? [this.#failure.message] : []),
        ...this.#sm.alarms.map((a) => `memberID:${a.memberID} alarm:${AlarmType[a.alarm]} `),
      ],
      isLearner: this.#membership.get(this.memberId)?.isLearner ?? false,
    });
  }

  /** Cluster.MemberList members, in ID order as etcd lists them. */
  members(): Member[] {
    return this.#membership.list().map(toApiMember);
  }

  /** Members as the node knows them (for the peer API and the transport). */
  memberInfos(): MemberInfo[] {
    return this.#membership.list();
  }

  /** The current leader's ID (0 when there is none). */
  get leader(): bigint {
    return this.#lead;
  }

  /** Whether this member is a learner (it then serves only Status and serializable reads). */
  get isLearner(): boolean {
    return this.#membership.get(this.memberId)?.isLearner ?? false;
  }

  /** The raised alarms, as this member applied them (no Raft round: /health's view). */
  alarmList(): readonly AlarmMember[] {
    return this.#sm.alarms;
  }

  get isLeader(): boolean {
    return this.#state === StateType.Leader;
  }

  /** Term of the last applied entry (what headers and Status report, as in etcd). */
  get term(): number {
    return this.#term;
  }

  /** Raft's current term (elections move it before any entry of the term is applied). */
  get raftTerm(): number {
    return this.#raftTerm;
  }

  /** --heartbeat-interval: one tick() is due every this many ms. */
  get heartbeatIntervalMs(): number {
    return this.#config.heartbeatIntervalMs;
  }

  /** --election-timeout in ms. */
  get electionTimeoutMs(): number {
    return this.#config.electionTimeoutMs;
  }

  /** Proposals of this member waiting for their outcome. */
  get pendingProposals(): number {
    return this.#proposals.pending;
  }

  /** etcd's ReqTimeout (5 s plus two election timeouts), in ms. */
  get requestTimeoutMs(): number {
    return 5000 + 2 * this.#config.electionTimeoutMs;
  }

  get appliedIndex(): number {
    return this.#appliedIndex;
  }

  /** --quota-backend-bytes as in force (etcd's etcd_server_quota_backend_bytes). */
  get quotaBackendBytes(): number {
    return effectiveQuotaBytes(this.#config.quotaBackendBytes);
  }

  /** Current MVCC revision. */
  get revision(): number {
    return this.#sm.mvcc.revision;
  }

  /** The revision of the last compaction (0 before any). */
  get compactRevision(): number {
    return this.#sm.mvcc.compactRevision;
  }

  /** Keys that exist now (O(keys): for metrics). */
  get keyCount(): number {
    return this.#sm.mvcc.keyCount;
  }

  /** Views of the store being read (snapshots streamed or saved): etcd's open read txns. */
  get openReads(): number {
    return this.#revisions.holders;
  }

  /**
   * Cluster.MemberAdd: a voting member, or a learner that replicates but does not vote. Membership
   * changes need the root role when auth is on (etcd's checkMembershipOperationPermission).
   */
  async memberAdd(
    peerUrls: string[],
    isLearner: boolean,
    caller: AuthInfo | null = null,
  ): Promise<MemberAddResponse> {
    this.auth.requireAdmin(caller);
    return await this.#memberChanges.add(peerUrls, isLearner);
  }

  /** Cluster.MemberRemove (strict checks keep a started quorum). */
  async memberRemove(id: bigint, caller: AuthInfo | null = null): Promise<MemberRemoveResponse> {
    this.auth.requireAdmin(caller);
    return await this.#memberChanges.remove(id);
  }

  /** Cluster.MemberUpdate: a member's new peer URLs. */
  async memberUpdate(
    id: bigint,
    peerUrls: string[],
    caller: AuthInfo | null = null,
  ): Promise<MemberUpdateResponse> {
    this.auth.requireAdmin(caller);
    return await this.#memberChanges.update(id, peerUrls);
  }

  /** Cluster.MemberPromote: a learner that caught up becomes a voter (decided by the leader). */
  async memberPromote(id: bigint, caller: AuthInfo | null = null): Promise<MemberPromoteResponse> {
    this.auth.requireAdmin(caller);
    const response = await this.#memberChanges.promote(id);
    if (this.isLeader) learnerPromoteSuccesses.inc();
    return response;
  }

  /** Maintenance.MoveLeader: hands leadership to a voting member that has caught up. */
  async moveLeader(target: bigint): Promise<MoveLeaderResponse> {
    if (!this.isLeader) throw Errors.notLeader();
    const member = this.#membership.get(target);
    if (!member || member.isLearner) throw Errors.badLeaderTransferee();
    if (target !== this.memberId) await this.#transferLeadership(target, this.#reqTimeoutTicks);
    return create(MoveLeaderResponseSchema, { header: this.header() });
  }

  #transferLeadership(target: bigint, timeoutTicks: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve: () => resolve(),
        reject,
        deadline: this.#ticks + timeoutTicks,
        lead: this.#lead,
      };
      this.#transferWaiters.push({ target, waiter });
      this.#raft.transferLeader(target);
      this.#schedule();
    });
  }

  /**
   * Resolves once this member has published its name and client URLs through the log (etcd serves
   * clients only after that).
   */
  waitReady(): Promise<void> {
    if (this.#published) return Promise.resolve();
    return new Promise((resolve) => this.#readyWaiters.push(resolve));
  }

  /** Whether this data dir already holds a member (then the initial-* flags are ignored). */
  static async isInitialized(config: NodeConfig, disk: Disk): Promise<boolean> {
    return (await disk.readFile(`${config.dataDir}/member/meta`)) !== null;
  }

  /** Stops accepting requests and waits for the writes in flight to be durable. */
  async stop(): Promise<void> {
    if (this.isLeader && !this.#failure && !this.#stopped) {
      // Like etcd, a leader that stops first hands leadership to the most caught-up voter, so
      // the others need not wait for an election timeout.
      const progress = this.#raft.status().progress;
      let best: bigint = none;
      let bestMatch = -1;
      for (const m of this.#membership.voters()) {
        const match = progress.get(m.id)?.match ?? -1;
        if (m.id !== this.memberId && match > bestMatch) {
          best = m.id;
          bestMatch = match;
        }
      }
      if (best !== none) {
        await this.#transferLeadership(best, 2 * this.#electionTicks).catch(() => {});
      }
    }
    this.#stopped = true;
    this.#leases.wakeWaiters();
    await this.#idle;
    await this.#snapshotTask;
    await this.#compactionTask;
    await this.#reclaimTask;
    this.#rejectAll(Errors.stopped());
    this.#log.close();
    this.#revisions.close();
  }

  /** What etcd's strict reconfig checks look at. */
  #reconfigView(): ReconfigView {
    return {
      memberId: this.memberId,
      membership: this.#membership,
      transport: this.#transport,
      nowMs: this.#nowMs,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Proposals and reads

  /**
   * Proposes an operation and resolves with its response once this member applied it, typed by
   * the operation's kind (the apply backend answers each kind with its own response).
   */
  #propose<K extends LoggedOperation["case"]>(
    operation: OperationOf<K>,
    leaderTerm = 0,
    caller: AuthInfo | null = null,
  ): Promise<Responses[K]> {
    if (this.#stopped || this.#failure) return Promise.reject(Errors.stopped());
    return this.#proposals.propose(
      operation,
      this.#ticks + this.#reqTimeoutTicks,
      this.#lead,
      leaderTerm,
      caller,
    ) as Promise<Responses[K]>;
  }

  #proposeConfChange(type: ConfChangeType, member: MemberInfo): Promise<unknown> {
    if (this.#stopped || this.#failure) return Promise.reject(Errors.stopped());
    return this.#proposals.proposeConfChange(
      (id) => ({ type, nodeId: member.id, context: encodeContext(id, member) }),
      this.#ticks + this.#reqTimeoutTicks,
      this.#lead,
    );
  }

  /**
   * Resolves once this member is known to still lead: at once while a ReadIndex round of this
   * term that started less than half an election timeout ago was confirmed by a quorum, else
   * after a new round (ADR 0006, "Renewals and the leader's lease"). A leader elected after that
   * round's start gives every lease an election timeout more than it had, so a renewal answered
   * inside the window outlives a deposition its leader has not heard of yet.
   */
  #confirmLeadership(): Promise<void> | void {
    const window = this.#config.electionTimeoutMs / 2;
    const confirmed = this.#confirmed;
    if (
      this.#state === StateType.Leader && confirmed.term === this.#raftTerm &&
      (this.#ticks - confirmed.tick) * this.#config.heartbeatIntervalMs < window &&
      // Ticks come late when the event loop is held up (a pause of the process): the time that
      // really passed is what the next leader's extension is measured against.
      (this.#env.monotonicMs === undefined || this.#env.monotonicMs() - confirmed.ms < window)
    ) {
      return;
    }
    return this.#linearizableRead();
  }

  /** Resolves once a read started now may be served from the applied state. */
  #linearizableRead(): Promise<void> | void {
    // A lone voter that leads has applied everything it ever acknowledged (also after its disk
    // failed: the writes it refuses were never acknowledged).
    if (
      this.#state === StateType.Leader && this.#confState.voters.length === 1 &&
      this.#reads.idle && !this.#stopped
    ) {
      return;
    }
    if (this.#stopped || this.#failure) return Promise.reject(Errors.stopped());
    return new Promise<void>((resolve, reject) => {
      this.#reads.add({
        resolve: () => resolve(),
        reject,
        deadline: this.#ticks + this.#reqTimeoutTicks,
        lead: this.#lead,
      }, this.#ticks);
    });
  }

  /**
   * Resolves true once this member applied `index`, false after the request timeout or when it
   * stops (etcd's indexWaiter, which a simple token issued through another member waits on).
   */
  waitApplied(index: number): Promise<boolean> {
    if (index <= this.#appliedIndex) return Promise.resolve(true);
    if (this.#stopped || this.#failure) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.#appliedWaiters.push({ index, deadline: this.#ticks + this.#reqTimeoutTicks, resolve });
    });
  }

  #expireWaiters(): void {
    if (this.#appliedWaiters.length > 0) {
      this.#appliedWaiters = this.#appliedWaiters.filter((w) => {
        if (w.deadline > this.#ticks) return true;
        w.resolve(false);
        return false;
      });
    }
    this.#proposals.expire(this.#ticks, this.#lead);
    this.#reads.expire(this.#ticks, this.#lead !== none);
    this.#transferWaiters = this.#transferWaiters.filter(({ waiter }) => {
      if (waiter.deadline > this.#ticks) return true;
      waiter.reject(Errors.timeoutLeaderTransfer());
      return false;
    });
  }

  /** Publishes this member's name and client URLs once a leader exists (etcd's publish). */
  #maybePublish(): void {
    if (this.#published || this.#publishing || this.#lead === none) return;
    if (!this.#membership.has(this.memberId)) return;
    this.#publishing = true;
    this.#propose({
      case: "memberAttributes",
      value: create(MemberAttributesSchema, {
        memberId: this.memberId,
        name: this.#config.name,
        clientUrls: this.#config.advertiseClientUrls,
      }),
    }).then(
      () => {
        this.#published = true;
        for (const resolve of this.#readyWaiters.splice(0)) resolve();
        this.#logger.info(
          "etcdserver/server.go:2069",
          "published local member to cluster through raft",
          {
            "local-member-id": idHex(this.memberId),
            "local-member-attributes": `{Name:${this.#config.name} ClientURLs:[${
              this.#config.advertiseClientUrls.join(" ")
            }]}`,
            "cluster-id": idHex(this.clusterId),
          },
        );
      },
      () => {},
    ).finally(() => {
      this.#publishing = false;
    });
  }

  #maybeSetClusterVersion(): void {
    if (this.#state !== StateType.Leader || this.#membership.clusterVersion !== "") return;
    if (this.#settingClusterVersion) return;
    this.#settingClusterVersion = true;
    this.#logger.info("etcdserver/server.go:2567", "setting up initial cluster version", {
      "cluster-version": majorMinor(clusterVersion),
    });
    this.#propose({
      case: "clusterVersion",
      value: create(ClusterVersionSchema, { version: clusterVersion }),
    }).then(() => {
      this.#logger.info("etcdserver/server.go:2599", "cluster version is updated", {
        "cluster-version": majorMinor(clusterVersion),
      });
    }, () => {}).finally(() => this.#settingClusterVersion = false);
  }

  /** The log lines etcd prints when an applied entry sets the cluster version. */
  #logClusterVersion(previous: string, version: string): void {
    if (previous === version) return;
    const ids = { "cluster-id": idHex(this.clusterId), "local-member-id": idHex(this.memberId) };
    if (previous === "") {
      this.#logger.info("membership/cluster.go:558", "set initial cluster version", {
        ...ids,
        "cluster-version": majorMinor(version),
      });
    } else {
      this.#logger.info("membership/cluster.go:547", "updated cluster version", {
        ...ids,
        from: majorMinor(previous),
        to: majorMinor(version),
      });
    }
    this.#logger.info("api/capability.go:76", "enabled capabilities for version", {
      "cluster-version": majorMinor(version),
    });
  }

  // ---------------------------------------------------------------------------------------------
  // The Ready loop

  #schedule(): void {
    if (this.#running) return;
    this.#running = true;
    const defer = this.#env.defer;
    if (defer === undefined) {
      this.#idle = this.#drive();
      return;
    }
    // A run waits for the end of this turn of the event loop, so that what every socket delivered
    // in the turn joins one Ready: one write and sync, one message batch per peer. A member with
    // peers always waits (each Ready also costs every follower a message and a sync). A single
    // member waits only for its second run in a turn (it is busy: more was read while the first
    // wrote and synced); its first comes once the work that woke it has queued its own (every
    // request of one read proposes first), so that a lone request pays no extra turn.
    const later = this.#ranThisTurn || this.#membership.size > 1;
    if (!later) {
      this.#ranThisTurn = true;
      defer(() => this.#ranThisTurn = false);
    }
    this.#idle = new Promise<void>((resolve) => {
      const run = () => this.#drive().then(resolve);
      if (later) defer(run);
      else queueMicrotask(run);
    });
  }

  /** Handles Ready after Ready until Raft has nothing more to do. */
  async #drive(): Promise<void> {
    this.#running = true;
    try {
      while (!this.#failure) {
        if (!this.#raft.hasReady()) break;
        const rd = this.#raft.ready();
        await this.#handleReady(rd);
      }
    } catch (e) {
      this.#fail(e);
    } finally {
      this.#running = false;
    }
  }

  async #handleReady(rd: Ready): Promise<void> {
    if (rd.softState) this.#onSoftState(rd.softState.lead, rd.softState.state);
    if (rd.hardState) {
      this.#raftTerm = rd.hardState.term;
      this.#commitIndex = rd.hardState.commit;
    }
    // A leader's messages may go out while it writes its own disk (it counts itself only after
    // advance); everyone else's wait for the disk: votes and acknowledgements promise durability.
    let later = rd.messages;
    if (this.#state === StateType.Leader && later.length > 0) {
      const early = later.filter((m) => leaderEarlyTypes.has(m.type));
      if (early.length > 0) this.#send(early);
      later = early.length === later.length
        ? []
        : later.filter((m) => !leaderEarlyTypes.has(m.type));
    }

    if (rd.snapshot) await this.#log.persistSnapshot(rd.snapshot);
    if (rd.entries.length > 0 || rd.hardState) {
      try {
        await this.#log.write(rd.entries, rd.hardState, rd.mustSync);
      } catch (e) {
        this.#failWrites(e);
        return;
      }
      this.#log.stage(rd.entries, rd.hardState);
    }
    if (later.length > 0) this.#send(later);

    if (rd.snapshot) await this.#applySnapshot(rd.snapshot);
    for (const e of rd.committedEntries) this.#applyEntry(e);
    for (const rs of rd.readStates) {
      const batch = this.#reads.onReadState(
        rs.index,
        rs.requestCtx,
        this.#appliedIndex,
        this.#ticks,
      );
      if (
        batch !== null && batch.leaderTerm === this.#raftTerm &&
        (batch.leaderTerm !== this.#confirmed.term || batch.startedTick >= this.#confirmed.tick)
      ) {
        this.#confirmed = { term: batch.leaderTerm, tick: batch.startedTick, ms: batch.startedMs };
      }
    }
    this.#raft.advance(rd);
    if (rd.snapshot) {
      // A streamed snapshot's file is installed and restored, and Raft has let go of it.
      if (rd.snapshot.data.length === 0) this.#receivingSnapshot = false;
      // A leader's snapshot is the whole state: a start from it rebuilds the revision log from
      // every value. A checkpoint of it now (at its index, in the background) lets the next start
      // open the log as it is.
      void this.#checkpointNow();
    }
    this.#reads.release(this.#appliedIndex);
    if (
      this.#snapshotTask === null &&
      this.#appliedIndex - this.#log.snapshotIndex >= this.#config.snapshotCount &&
      this.#appliedIndex >= this.#nextSnapshotAt
    ) {
      this.#snapshotTask = this.#snapshotInBackground().then(() => {}).finally(() =>
        this.#snapshotTask = null
      );
    }
    this.#startBackgroundWork();
  }

  /** Starts what the applied entries left to do in the background: compaction, then reclaim. */
  #startBackgroundWork(): void {
    if (this.#stopped) return;
    if (this.#compactionTask === null && this.#sm.mvcc.compacting) {
      this.#compactionTask = this.#compactInBackground().finally(() => {
        this.#compactionTask = null;
        this.#startBackgroundWork(); // what it released may make segments worth rewriting
      });
      return;
    }
    if (this.#reclaimTask === null && this.#compactionTask === null && this.#sm.mvcc.reclaimable) {
      this.#reclaimTask = this.#reclaimInBackground().finally(() => (this.#reclaimTask = null));
    }
  }

  /**
   * Drops a compaction's history key range by key range, resting between steps as the rewrite
   * does, so that no request waits for the whole of it (etcd's index compaction also lets writes
   * in between keys). Abandoned when the store is replaced or the member stops; anything that
   * needs the history complete (a snapshot, a hash, a rewrite) finishes it at once.
   */
  async #compactInBackground(): Promise<void> {
    const pause = this.#env.pacedPause ?? this.#env.pause ?? (() => Promise.resolve());
    const store = this.#sm.mvcc;
    try {
      while (!this.#stopped && this.#sm.mvcc === store && !store.compactionStep()) await pause();
    } catch (e) {
      if (!this.#stopped) this.#fail(e);
    }
  }

  /**
   * Gives back the space of compacted (or replaced) revisions: the store rewrites its revision
   * log's mostly-garbage segments in slices while the member serves (MvccStore.reclaimSteps).
   * Abandoned when the store is replaced by a leader's snapshot or the member stops.
   */
  async #reclaimInBackground(): Promise<void> {
    try {
      const segments = await this.#rewrite(false);
      this.#logger.info("mvcc/revision_log.go", "rewrote revision log segments", { segments });
      // The old segments go once a checkpoint no longer points into them.
      if (segments > 0) await this.#checkpointNow();
    } catch (e) {
      if (!this.#stopped) this.#fail(e);
    }
  }

  /**
   * Rewrites the revision log's segments with garbage (all of them when `all`, else the mostly
   * garbage ones) in slices; returns how many. Ends early when the member stops or its store is
   * replaced by a leader's snapshot (the new store starts over); a failed read throws.
   */
  async #rewrite(all: boolean): Promise<number> {
    while (this.#compactionTask !== null) await this.#compactionTask;
    const pause = this.#env.pacedPause ?? this.#env.pause ?? (() => Promise.resolve());
    const store = this.#sm.mvcc;
    const steps = all ? store.defragmentSteps() : store.reclaimSteps();
    try {
      let step = steps.next();
      while (!step.done) {
        await pause();
        if (this.#stopped || this.#sm.mvcc !== store) return 0;
        step = steps.next();
      }
      return step.value;
    } finally {
      steps.return(0);
    }
  }

  /**
   * Maintenance.Defragment: this member's revision log rewritten without its garbage, while the
   * member keeps serving (etcd's rewrites its bbolt file with every request waiting). One rewrite
   * at a time: a background one in progress is waited for first.
   */
  async defragment(): Promise<DefragmentResponse> {
    while (this.#reclaimTask !== null) await this.#reclaimTask;
    if (this.#stopped || this.#failure) throw Errors.stopped();
    const before = this.#sm.mvcc.storageSizes();
    this.#logger.info("mvcc/backend/backend.go:357", "defragmenting", {
      path: "member/revs",
      "current-db-size-bytes": before.totalBytes,
      "current-db-size-in-use-bytes": before.liveBytes,
    });
    const started = performance.now();
    defragInflight.set(1);
    const timed = defragSeconds.startTimer();
    const work = this.#rewrite(true).then(async (segments) => {
      // The old segments go once a checkpoint no longer points into them.
      if (segments > 0 && !(await this.#checkpointNow())) throw Errors.stopped();
    });
    this.#reclaimTask = work.then(() => {}, () => {}).finally(() => (this.#reclaimTask = null));
    try {
      await work;
    } finally {
      defragInflight.set(0);
      timed();
    }
    if (this.#stopped) throw Errors.stopped(); // cut short: not defragmented
    const after = this.#sm.mvcc.storageSizes();
    this.#logger.info("mvcc/backend/backend.go:409", "defragmented", {
      path: "member/revs",
      "current-db-size-bytes-diff": after.totalBytes - before.totalBytes,
      "current-db-size-bytes": after.totalBytes,
      "current-db-size-in-use-bytes": after.liveBytes,
      took: `${Math.round(performance.now() - started)}ms`,
    });
    return create(DefragmentResponseSchema, { header: this.header() });
  }

  /**
   * Hands messages to the transport. A snapshot message leaves Raft without its data (Raft's
   * storage keeps only snapshots' metadata, and the member's own snapshot files are checkpoints
   * that point into its revision log): the whole state as of now is encoded for it, at the
   * applied index (etcd's merged snapshot, createMergedSnapshotMessage); a failure is reported to
   * Raft as a failed snapshot send (it tries again later).
   */
  #send(messages: Message[]): void {
    let ready = messages;
    for (const m of messages) {
      if (m.type === MessageType.Heartbeat) this.#observeHeartbeat(m.to);
      if (m.type !== MessageType.Snap || !m.snapshot || m.snapshot.data.length > 0) continue;
      ready = ready.filter((x) => x !== m);
      this.#sendSnapshot(m);
    }
    if (ready.length > 0) this.#transport.send(ready);
  }

  /**
   * etcd's heartbeat timeout detector: a leader's heartbeat to a peer sent more than two
   * heartbeat intervals after the previous one means the leader is overloaded (warned, counted in
   * etcd_server_heartbeat_send_failures_total). Forgotten on every leadership change.
   */
  #observeHeartbeat(to: bigint): void {
    if (this.#env.monotonicMs === undefined) return;
    const now = this.#env.monotonicMs();
    const previous = this.#heartbeatSentAt.get(to);
    this.#heartbeatSentAt.set(to, now);
    if (previous === undefined) return;
    const interval = this.#config.heartbeatIntervalMs;
    const exceeded = now - previous - 2 * interval;
    if (exceeded <= 0) return;
    this.#logger.warn(
      "etcdserver/raft.go:440",
      "leader failed to send out heartbeat on time; took too long, leader is overloaded likely from slow disk",
      {
        to: idHex(to),
        "heartbeat-interval": formatGoDurationMs(interval),
        "expected-duration": formatGoDurationMs(2 * interval),
        "exceeded-duration": formatGoDurationMs(exceeded),
      },
    );
    heartbeatSendFailures.inc();
  }

  /**
   * Sends the whole state as of the applied index to a follower: captured now (a view of the
   * store), then written by the environment's worker (`snapshotBody`) or sized here in steps with
   * pauses, and streamed a chunk at a time by the transport on a connection of its own (never
   * whole in memory, etcd's snapshot sender). A transport that cannot stream is handed the data
   * whole in the message.
   */
  #sendSnapshot(m: Message): void {
    const index = this.#appliedIndex;
    const confState = {
      voters: [...this.#confState.voters],
      learners: [...this.#confState.learners],
    };
    const pause = this.#env.pause ?? (() => Promise.resolve());
    const transport = this.#transport;
    const stream = this.#sm.snapshotStream(confState);
    const written = this.#env.snapshotBody;
    const work = async (): Promise<{ metadata: SnapshotMetadata; body: SnapshotBody } | null> => {
      const metadata = { index, term: this.#log.termAt(index), confState };
      const fromWorker = written ? await written(stream.view, stream.frame) : null;
      if (fromWorker !== null) {
        if (!this.#stopped) return { metadata, body: fromWorker };
        fromWorker.close();
        return null;
      }
      let step = stream.plan.next();
      while (!step.done) {
        await pause();
        if (this.#stopped) return null;
        step = stream.plan.next();
      }
      const chunks = step.value;
      return {
        metadata,
        body: { size: chunks.size, next: () => Promise.resolve(chunks.next()), close() {} },
      };
    };
    work().then(async (planned) => {
      if (planned === null || this.#stopped) {
        planned?.body.close(); // a worker's ends with it
        return stream.close();
      }
      const { metadata, body } = planned;
      if (transport.sendSnapshot) {
        this.#logger.info("rafthttp/snapshot_sender.go:82", "sending database snapshot", {
          "snapshot-index": index,
          "remote-peer-id": idHex(m.to),
          bytes: body.size,
          size: humanizeBytes(body.size),
        });
        transport.sendSnapshot({ ...m, snapshot: { metadata, data: new Uint8Array(0) } }, {
          size: body.size,
          next: () => body.next(),
          close: () => {
            body.close();
            stream.close();
          },
        });
        return;
      }
      const data = new Uint8Array(body.size);
      try {
        let at = 0;
        for (let chunk = await body.next(); chunk !== null; chunk = await body.next()) {
          data.set(chunk, at);
          at += chunk.length;
        }
      } finally {
        body.close();
        stream.close();
      }
      transport.send([{ ...m, snapshot: { metadata, data } }]);
    }).catch((e) => {
      stream.close();
      if (this.#stopped) return;
      this.#logger.warn("etcdserver/snapshot_merge.go:64", "failed to make a snapshot to send", {
        "snapshot-index": index,
        error: e instanceof Error ? e.message : String(e),
      });
      this.reportSnapshot(m.to, false);
    });
  }

  /**
   * A snapshot message whose data arrives as a stream (the transport's snapshot connection):
   * the data is written to a snapshot file as it comes, never whole in memory, then the message
   * is stepped with its data left empty (Raft needs only the metadata); if Raft takes it, the
   * state is restored from that file. Rejects when the data did not all arrive or the file could
   * not be written (the sender is told the send failed, and tries again later).
   */
  async receiveSnapshot(
    message: Message,
    size: number,
    chunks: AsyncIterable<Uint8Array>,
  ): Promise<void> {
    const metadata = message.snapshot?.metadata;
    if (message.type !== MessageType.Snap || metadata === undefined) {
      throw new Error("not a snapshot message");
    }
    if (this.#stopped || this.#failure) throw Errors.stopped();
    // One at a time, from its first byte until Raft refused it or it is installed: its file must
    // be there when the Ready that carries it is handled. The sender tries again later.
    if (this.#receivingSnapshot) throw new Error("a snapshot is being received already");
    this.#receivingSnapshot = true;
    let taken = false;
    try {
      taken = await this.#receiveSnapshot(message, metadata, size, chunks);
    } finally {
      if (!taken) this.#receivingSnapshot = false;
    }
  }

  /** receiveSnapshot's work; true when Raft took the message (its Ready will install the file). */
  async #receiveSnapshot(
    message: Message,
    metadata: SnapshotMetadata,
    size: number,
    chunks: AsyncIterable<Uint8Array>,
  ): Promise<boolean> {
    const fields = {
      "snapshot-index": metadata.index,
      "remote-peer-id": idHex(message.from),
      bytes: size,
      size: humanizeBytes(size),
    };
    this.#logger.info("rafthttp/http.go:183", "receiving database snapshot", fields);
    const file = await this.#log.receiveSnapshot(metadata.index, metadata.term, size);
    try {
      for await (const chunk of chunks) {
        if (this.#stopped) throw Errors.stopped();
        await file.write(chunk);
      }
      await file.finish();
    } catch (e) {
      await file.abort().catch(() => {});
      this.#logger.warn("rafthttp/http.go:197", "failed to save database snapshot", {
        ...fields,
        error: e instanceof Error ? e.message : String(e),
      });
      throw e;
    }
    this.#logger.info("rafthttp/http.go:212", "received and saved database snapshot", fields);
    const snapshot = { metadata, data: new Uint8Array(0) };
    this.step({ ...message, snapshot });
    // Raft keeps the very snapshot it takes (a copy of the same metadata would not tell this one
    // from one taken before, still waiting for its Ready).
    if (this.#raft.pendingSnapshot() === metadata) return true;
    await this.#log.dropReceived(); // refused (not newer than what this member has), or stopped
    return false;
  }

  /**
   * A checkpoint now (a snapshot at the applied index, rewritten when there is one there
   * already): after a rewrite of the revision log, so that its old segments can go. False when
   * the member stopped or the save failed.
   */
  async #checkpointNow(): Promise<boolean> {
    while (this.#snapshotTask !== null) await this.#snapshotTask;
    if (this.#stopped) return false;
    const task = this.#snapshotInBackground(true);
    this.#snapshotTask = task.then(() => {}).finally(() => (this.#snapshotTask = null));
    return await task;
  }

  /**
   * Takes a snapshot at the applied index: the state is captured at once (the MVCC store as a
   * view), then encoded, checksummed and written in steps with pauses (NodeEnvironment.pause)
   * while the member goes on applying and answering, as etcd snapshots in a goroutine. One at a
   * time; a failure is logged and tried again a tenth of --snapshot-count entries later.
   */
  async #snapshotInBackground(force = false): Promise<boolean> {
    // A compaction under way is let finish in its steps rather than all at once by the view.
    while (this.#compactionTask !== null) await this.#compactionTask;
    const index = this.#appliedIndex;
    const confState = {
      voters: [...this.#confState.voters],
      learners: [...this.#confState.learners],
    };
    const pause = this.#env.pause ?? (() => Promise.resolve());
    const revisions = this.#revisions;
    try {
      const term = this.#log.termAt(index);
      // A checkpoint (the store's revisions stay in the revision log; the file says where),
      // encoded in steps into one buffer. The store is captured now, with the log's mark.
      const marshalling = snapshotMarshallingSeconds.startTimer();
      const steps = this.#sm.snapshotSteps(confState, SNAPSHOT_HEADER_BYTES);
      const mark = revisions.checkpointMark();
      let step = steps.next();
      try {
        while (!step.done) {
          await pause();
          step = steps.next();
        }
      } finally {
        steps.return(undefined as never); // the store's view is closed even when abandoned
      }
      const file = step.value;
      let crc = 0;
      for (let at = SNAPSHOT_HEADER_BYTES; at < file.length; at += CRC_SLICE_BYTES) {
        crc = crc32c(file.subarray(at, Math.min(file.length, at + CRC_SLICE_BYTES)), crc);
        await pause();
      }
      sealSnapshot(file, index, term, crc);
      marshalling();
      // Every record the checkpoint points at is durable before it is.
      await revisions.sync();
      // Even when stopping: stop() waits for this save before it closes the log.
      const timed = snapshotSaveSeconds.startTimer();
      const saved = await this.#log.saveSnapshot(index, term, confState, file, force);
      timed();
      if (saved) revisions.checkpointSaved(mark);
      return saved;
    } catch (e) {
      // Not again at once (a full disk would have every Ready encode the whole state): after
      // another tenth of --snapshot-count entries.
      this.#nextSnapshotAt = index + Math.max(1, Math.floor(this.#config.snapshotCount / 10));
      if (this.#stopped) return false;
      this.#logger.error("etcdserver/server.go:2375", "failed to save snapshot", {
        "snapshot-index": index,
        error: e instanceof Error ? e.message : String(e),
      });
      return false;
    }
  }

  #onSoftState(lead: bigint, state: StateType): void {
    this.#heartbeatSentAt.clear();
    const wasLeader = this.#state === StateType.Leader;
    const leadChanged = lead !== this.#lead;
    this.#lead = lead;
    this.#state = state;
    if (leadChanged) {
      if (lead !== none) leaderChanges.inc();
      if (lead === none) {
        this.#logger.info("raft/raft.go:1025", "raft.node lost leader", {
          "local-member-id": idHex(this.memberId),
        });
      } else {
        this.#logger.info("raft/node.go:325", "raft.node elected leader", {
          "local-member-id": idHex(this.memberId),
          "leader-member-id": idHex(lead),
          term: this.#raftTerm,
        });
      }
      if (lead !== none) {
        // A transfer is over once someone leads again: done if it is the target.
        for (const { target, waiter } of this.#transferWaiters) {
          if (target === lead) waiter.resolve(undefined);
          else waiter.reject(Errors.leaderChanged());
        }
        this.#transferWaiters = [];
      }
      // Reads waiting on a leader that is gone are asked again of the new one.
      if (lead !== none) this.#reads.leaderChanged(this.#ticks);
    }
    if (state === StateType.Leader && !wasLeader) this.#maybeSetClusterVersion();
    // Only the leader keeps lease expiries (etcd's Demote); it promotes again once it applies the
    // first entry of its term.
    if (wasLeader && state !== StateType.Leader) this.#leases.demote();
    if (lead !== none) {
      this.#proposals.proposeParked(this.#lead);
      queueMicrotask(() => this.#maybePublish());
    }
  }

  /**
   * Replaces the state machine with a snapshot the leader sent: from its data in the message, or
   * (streamed, see receiveSnapshot) from its file, read a window at a time.
   */
  async #applySnapshot(snap: RaftSnapshot): Promise<void> {
    const { index, term } = snap.metadata;
    // Its checksum was computed as it arrived, and it was synced: not read twice to verify.
    const file = snap.data.length > 0 ? null : await this.#log.openSnapshot(index, term, false);
    let state: NodeSnapshot;
    snapshotApplyInProgress.set(1);
    try {
      // What etcd times as saving the leader's .snap.db: here its records written into the
      // revision log, then made durable.
      const saving = receivedSnapshotSaveSeconds.startTimer();
      state = await this.#sm.restoreSnapshot(file ?? snap.data);
      const syncing = receivedSnapshotFsyncSeconds.startTimer();
      await this.#revisions.sync();
      syncing();
      saving();
    } finally {
      file?.close();
      snapshotApplyInProgress.set(0);
    }
    this.#restoreConf(state);
    this.#appliedIndex = snap.metadata.index;
    this.#log.snapshotApplied(snap.metadata.index);
    this.#term = snap.metadata.term;
    this.#logger.info("etcdserver/server.go:1117", "applied snapshot", {
      "snapshot-index": snap.metadata.index,
    });
  }

  /** Raft's configuration and the peers of a restored snapshot (its members are restored). */
  #restoreConf(state: NodeSnapshot): void {
    this.#confState = { voters: [...state.voters], learners: [...state.learners] };
    for (const m of this.#membership.list()) {
      if (m.id !== this.memberId) this.#transport.addPeer(m.id, m.peerUrls);
    }
  }

  /**
   * A failed WAL write (full disk, I/O error) leaves the log's tail unknown: refuse every further
   * write rather than risk acknowledging something that is not durable. Reads keep working.
   */
  #failWrites(error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    this.#failure = new Error(`wal write failed: ${message}`);
    this.#logger.error("wal/wal.go:700", "failed to write WAL; refusing further writes", {
      error: message,
    });
    this.#rejectAll(Errors.stopped());
  }

  /**
   * A broken invariant or an internal error: the member stops for good (every waiter is refused,
   * nothing more is applied or acknowledged) with one clear fatal log line, and the environment is
   * told (the server exits, as etcd panics).
   */
  #fail(error: unknown, fields: Record<string, string> = {}): void {
    if (this.#failure) return;
    const message = error instanceof Error ? error.stack ?? error.message : String(error);
    this.#failure = new Error(`member failed: ${message}`);
    this.#logger.error("etcdserver/server.go:1000", "member stopped after an internal error", {
      ...fields,
      error: message,
    });
    this.#rejectAll(Errors.stopped());
    this.#env.onFatal?.(this.#failure);
  }

  #rejectAll(error: EtcdError): void {
    this.#proposals.rejectAll(error);
    this.#reads.rejectAll(error);
    for (const { waiter } of this.#transferWaiters) waiter.reject(error);
    this.#transferWaiters = [];
    for (const w of this.#appliedWaiters) w.resolve(false);
    this.#appliedWaiters = [];
  }

  // ---------------------------------------------------------------------------------------------
  // Apply

  #applyEntry(entry: Entry): void {
    const index = entry.index;
    if (index <= this.#appliedIndex) return;
    assert(index === this.#appliedIndex + 1, `apply of ${index} after ${this.#appliedIndex}`);
    this.#appliedIndex = index;
    this.#term = entry.term;
    const started = metricsNow();
    try {
      this.#applyEntryData(entry);
    } finally {
      // etcd counts an apply that took longer than 100 ms (warnApplyDuration) as slow.
      if (metricsNow() - started > 100) slowApplies.inc();
      this.#env.onApply?.(entry);
    }
    if (this.#appliedWaiters.length > 0) {
      this.#appliedWaiters = this.#appliedWaiters.filter((w) => {
        if (w.index > index) return true;
        w.resolve(true);
        return false;
      });
    }
  }

  #applyEntryData(entry: Entry): void {
    if (entry.type === EntryType.ConfChange) {
      this.#applyConfChange(decodeConfChange(entry.data));
      return;
    }
    if (entry.data.length === 0) {
      // The leader's first entry of its term: from now on it keeps lease expiries, each extended
      // by an election timeout (etcd's lessor.Promote(electionTimeout)).
      if (this.#state === StateType.Leader && entry.term === this.#raftTerm) {
        this.#leases.promote(this.#electionTicks * this.#config.heartbeatIntervalMs);
      }
      return;
    }
    const request = this.#proposals.decode(entry.data);
    const waiter = this.#proposals.take(request.id);
    try {
      // Every request passes the apply chain (core/node/apply/): a deposed leader's leader-only
      // request is void there, alarms refuse what they refuse, the backend applies the rest.
      const replay = entry.index <= this.#replayUntil;
      const previousVersion = this.#membership.clusterVersion;
      const result = this.#sm.applyRequest(request, entry.term, entry.index, replay);
      if (request.request.case === "clusterVersion") {
        this.#logClusterVersion(previousVersion, this.#membership.clusterVersion);
      }
      // An Authenticate answers once its JWT is signed; where nobody waits, its failure (auth
      // disabled meanwhile) is the proposer's to report, not this member's.
      if (result instanceof Promise) result.catch(() => {});
      waiter?.resolve(result);
    } catch (e) {
      // The request failed when it was first applied too (e.g. lease not found): same outcome.
      if (!(e instanceof EtcdError)) throw e;
      if (isEtcdError(e, Errors.noSpace) && !this.#sm.alarmStore.has(AlarmType.NOSPACE)) {
        // Applied past this member's quota (etcd's applyEntryNormal): raise NOSPACE, then answer.
        const quotaBytes = effectiveQuotaBytes(this.#config.quotaBackendBytes);
        this.#logger.warn(
          "etcdserver/server.go:2267",
          "message exceeded backend quota; raising alarm",
          {
            "quota-size-bytes": quotaBytes,
            "quota-size": humanizeBytes(quotaBytes),
            error: e.message,
          },
        );
        this.#raiseNoSpace().catch(() => {}).finally(() => waiter?.reject(e));
        return;
      }
      waiter?.reject(e);
    }
  }

  #applyConfChange(cc: ConfChange): void {
    const context = decodeContext(cc.context);
    const waiter = this.#proposals.take(context.requestId);
    const member = context.member;
    try {
      this.#sm.applyConfChange(cc, member);
    } catch (e) {
      // Rejected at apply (it raced with another change): Raft still learns it is done.
      this.#confState = this.#raft.applyConfChange({ ...cc, nodeId: none });
      if (e instanceof EtcdError) {
        waiter?.reject(e);
        return;
      }
      throw e;
    }
    this.#confState = this.#raft.applyConfChange(cc);
    this.#log.setConfState(this.#confState);
    const type = ConfChangeType[cc.type];
    this.#logger.info("membership/cluster.go:392", `applied a membership change (${type})`, {
      "local-member-id": idHex(this.memberId),
      "member-id": idHex(cc.nodeId),
      "peer-urls": member.peerUrls,
    });
    if (cc.nodeId !== this.memberId) {
      if (cc.type === ConfChangeType.RemoveNode) this.#transport.removePeer(cc.nodeId);
      else if (cc.type === ConfChangeType.UpdateNode) {
        this.#transport.updatePeer(cc.nodeId, member.peerUrls);
      } else this.#transport.addPeer(cc.nodeId, member.peerUrls);
    }
    waiter?.resolve(null);
    if (cc.type === ConfChangeType.RemoveNode && cc.nodeId === this.memberId && !this.#removed) {
      this.#removed = true;
      this.#logger.warn(
        "etcdserver/server.go:1182",
        "the member has been permanently removed from the cluster",
        {
          "local-member-id": idHex(this.memberId),
        },
      );
      this.#env.onRemoved?.();
    }
  }
}

/**
 * etcd reports the size of its bbolt file, which starts at 20 KiB (16 KiB in use) and grows by
 * pages; we report the same starting point plus the revision log's bytes (db_size: all of its
 * segments; db_size_in_use: the records not compacted away), rounded to 4 KiB pages.
 */
/** --quota-backend-bytes as it applies: 0 is etcd's default (2 GiB). */
function effectiveQuotaBytes(configured = 0): number {
  return configured === 0 ? DEFAULT_QUOTA_BYTES : configured;
}

/** What etcd logs about its backend quota when it starts (etcdserver/quota.go). */
function logQuota(logger: Logger, configured = 0): void {
  const name = { "quota-name": "v3-applier" };
  if (configured < 0) {
    logger.info("etcdserver/quota.go:82", "disabled backend quota", {
      ...name,
      "quota-size-bytes": configured,
    });
    return;
  }
  if (configured === 0) {
    logger.info("etcdserver/quota.go:98", "enabled backend quota with default value", {
      ...name,
      "quota-size-bytes": DEFAULT_QUOTA_BYTES,
      "quota-size": humanizeBytes(DEFAULT_QUOTA_BYTES),
    });
    return;
  }
  if (configured > MAX_QUOTA_BYTES) {
    logger.warn("etcdserver/quota.go:113", "quota exceeds the maximum value", {
      ...name,
      "quota-size-bytes": configured,
      "quota-size": humanizeBytes(configured),
      "quota-maximum-size-bytes": MAX_QUOTA_BYTES,
      "quota-maximum-size": humanizeBytes(MAX_QUOTA_BYTES),
    });
  }
  logger.info("etcdserver/quota.go:126", "enabled backend quota", {
    ...name,
    "quota-size-bytes": configured,
    "quota-size": humanizeBytes(configured),
  });
}

function dbFileSize(bytes: number): number {
  return 20480 + pageRound(bytes - 4096);
}

function dbInUseSize(bytes: number): number {
  return 16384 + pageRound(bytes - 4096);
}

function pageRound(bytes: number): number {
  return bytes <= 0 ? 0 : Math.ceil(bytes / 4096) * 4096;
}

/**
 * The MVCC store's revision log in `dir` (docs/adr/0010-storage-that-scales.md). When the newest
 * snapshot is a checkpoint (`located`), its records are where the checkpoint says: the log is
 * opened as it is. Otherwise (a full snapshot: a restored backup, one a leader sent, or none) the
 * store is rebuilt from it and the WAL, so what an earlier run left there is removed first. Either
 * way a segment is removed only once a checkpoint no longer points into it.
 */
async function openRevisionLog(disk: Disk, dir: string, located: boolean): Promise<RevisionLog> {
  if (located) return await RevisionLog.openLocated(disk, dir, { removeAfterCheckpoint: true });
  await disk.mkdirp(dir);
  for (const name of await disk.list(dir)) await disk.remove(`${dir}/${name}`);
  return await RevisionLog.open(disk, dir, () => {}, { removeAfterCheckpoint: true });
}
