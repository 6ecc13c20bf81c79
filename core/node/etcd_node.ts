import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type InternalRequest,
  InternalRequestSchema,
  type MemberMeta,
  MemberMetaSchema,
  NodeSnapshotSchema,
  type WalEntry,
} from "../../gen/detcdpb/internal_pb.ts";
import {
  type AlarmMember,
  AlarmMemberSchema,
  type AlarmRequest,
  AlarmRequest_AlarmAction,
  type AlarmResponse,
  AlarmResponseSchema,
  AlarmType,
  type CompactionRequest,
  type CompactionResponse,
  CompactionResponseSchema,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type HashKVRequest,
  type HashKVResponse,
  HashKVResponseSchema,
  type Member,
  MemberSchema,
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
import { Errors, EtcdError } from "../errors.ts";
import type { Logger } from "../log.ts";
import {
  checkDeleteRequest,
  checkPutRequest,
  checkRangeRequest,
  checkTxnRequest,
  isTxnReadOnly,
  MvccStore,
} from "../mvcc/mod.ts";
import { type Disk, Snapshotter, Wal, walEntry } from "../storage/mod.ts";
import { clusterId, idHex, memberId, parseInitialCluster } from "./ids.ts";

/** The etcd version detcd speaks and reports. */
export const serverVersion = "3.4.23";
/** The cluster version etcd 3.4 members agree on. */
export const clusterVersion = "3.4.0";

/** What a member is told at start; mirrors etcd's flags of the same names. */
export interface NodeConfig {
  name: string;
  dataDir: string;
  initialAdvertisePeerUrls: string[];
  advertiseClientUrls: string[];
  initialCluster: string;
  initialClusterToken: string;
  initialClusterState: "new" | "existing";
  snapshotCount: number;
  maxTxnOps: number;
  maxRequestBytes: number;
  /** WAL segment size; tests set it small to exercise segment release. */
  walSegmentBytes?: number;
}

/** Proposals waiting for the WAL at most; past it writers get `etcdserver: too many requests`. */
const maxPendingProposals = 20000;
/** Entries written with one sync at most. */
const maxBatchEntries = 2000;

interface Pending {
  entry: WalEntry;
  request: InternalRequest | null;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/** A member of the cluster as the membership list knows it. */
export interface MemberInfo {
  id: bigint;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
}

/**
 * One etcd member's replicated state machine: requests are validated, logged durably (group
 * commit: every proposal that arrives while a sync runs shares the next one), applied to MVCC in
 * log order, and answered with etcd's headers. Single-member for now: the log is committed as soon
 * as it is durable; Raft replication replaces that step without changing the rest.
 */
export class EtcdNode {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  #config: NodeConfig;
  #logger: Logger;
  #disk: Disk;
  #wal: Wal;
  #snapshotter: Snapshotter;
  #mvcc: MvccStore;
  #members: MemberInfo[];
  /** Raised alarms, kept sorted by member then type so that snapshots are deterministic. */
  #alarms: AlarmMember[];
  #term: number;
  #appliedIndex: number;
  #snapshotIndex: number;
  #nextIndex: number;
  #pending: Pending[] = [];
  #flushing = false;
  #failure: Error | null = null;
  #stopped = false;
  #idle: Promise<void> = Promise.resolve();

  private constructor(init: {
    config: NodeConfig;
    logger: Logger;
    disk: Disk;
    wal: Wal;
    snapshotter: Snapshotter;
    mvcc: MvccStore;
    alarms: AlarmMember[];
    meta: MemberMeta;
    members: MemberInfo[];
    term: number;
    appliedIndex: number;
    snapshotIndex: number;
  }) {
    this.#config = init.config;
    this.#logger = init.logger;
    this.#disk = init.disk;
    this.#wal = init.wal;
    this.#snapshotter = init.snapshotter;
    this.#mvcc = init.mvcc;
    this.#alarms = init.alarms;
    this.memberId = init.meta.memberId;
    this.clusterId = init.meta.clusterId;
    this.#members = init.members;
    this.#term = init.term;
    this.#appliedIndex = init.appliedIndex;
    this.#snapshotIndex = init.snapshotIndex;
    this.#nextIndex = init.wal.lastIndex + 1;
  }

  /**
   * Opens the member in `config.dataDir`: creates it on first start (IDs derived from the initial
   * cluster like etcd's), otherwise recovers snapshot + WAL and ignores the initial-* flags as
   * etcd does.
   */
  static async open(config: NodeConfig, disk: Disk, logger: Logger): Promise<EtcdNode> {
    const memberDir = `${config.dataDir}/member`;
    await disk.mkdirp(config.dataDir);
    await disk.mkdirp(memberDir);
    const metaPath = `${memberDir}/meta`;
    const metaBytes = await disk.readFile(metaPath);
    let meta: MemberMeta;
    const fresh = metaBytes === null;
    if (fresh) {
      meta = bootstrapMeta(config);
    } else {
      meta = fromBinary(MemberMetaSchema, metaBytes);
      logger.info("etcdmain/etcd.go:134", "server has been already initialized", {
        "data-dir": config.dataDir,
        "dir-type": "member",
      });
    }
    const members = membersFromMeta(meta, config);
    const snapshotter = new Snapshotter(disk, `${memberDir}/snap`);
    const snapshot = await snapshotter.loadNewest((name, reason) =>
      logger.warn("snap/snapshotter.go:123", "failed to read a snap file", {
        path: name,
        error: reason,
      })
    );
    const state = snapshot ? fromBinary(NodeSnapshotSchema, snapshot.data) : null;
    const mvcc = state ? MvccStore.decodeSnapshot(state.mvcc) : new MvccStore();
    const snapshotIndex = snapshot?.index ?? 0;
    let term = snapshot?.term ?? 0;
    const recovery = await Wal.open(
      disk,
      `${memberDir}/wal`,
      snapshotIndex,
      config.walSegmentBytes,
    );
    if (recovery.truncatedTail !== null) {
      logger.warn("wal/wal.go:206", "cut a torn record off the WAL tail", {
        detail: recovery.truncatedTail,
      });
    }
    const node = new EtcdNode({
      config,
      logger,
      disk,
      wal: recovery.wal,
      snapshotter,
      mvcc,
      alarms: state?.alarms ?? [],
      meta,
      members,
      term,
      appliedIndex: snapshotIndex,
      snapshotIndex,
    });
    for (const entry of recovery.entries) {
      try {
        node.#applyEntry(entry, decodeRequest(entry));
      } catch (e) {
        // The request failed when it was first applied too (e.g. lease not found): same outcome.
        if (!(e instanceof EtcdError)) throw e;
      }
      term = Number(entry.term);
    }
    node.#appliedIndex = recovery.wal.lastIndex;
    if (fresh) {
      // etcd's first entries: add-member conf change (term 1), the new leader's empty entry,
      // publishing this member's attributes, and setting the cluster version.
      const bootstrap = [
        walEntry(1, 1, new Uint8Array(0)),
        walEntry(2, 2, new Uint8Array(0)),
        walEntry(3, 2, new Uint8Array(0)),
        walEntry(4, 2, new Uint8Array(0)),
      ];
      await recovery.wal.append(bootstrap);
      await disk.writeFileAtomic(metaPath, toBinary(MemberMetaSchema, meta));
      node.#term = 2;
      node.#appliedIndex = 4;
    } else {
      // A restarted member wins a new election (term + 1), appends the leader's empty entry and
      // publishes its attributes again, as etcd does.
      node.#term = term + 1;
      const next = recovery.wal.lastIndex + 1;
      await recovery.wal.append([
        walEntry(next, node.#term, new Uint8Array(0)),
        walEntry(next + 1, node.#term, new Uint8Array(0)),
      ]);
      node.#appliedIndex = next + 1;
    }
    node.#nextIndex = recovery.wal.lastIndex + 1;
    logger.info("etcdserver/server.go:2069", "published local member to cluster through raft", {
      "local-member-id": idHex(meta.memberId),
      "local-member-attributes": `{Name:${config.name} ClientURLs:[${
        config.advertiseClientUrls.join(" ")
      }]}`,
      "cluster-id": idHex(meta.clusterId),
    });
    return node;
  }

  /** The header every response carries. */
  header(revision: number = this.#mvcc.revision): ResponseHeader {
    return create(ResponseHeaderSchema, {
      clusterId: this.clusterId,
      memberId: this.memberId,
      revision: BigInt(revision),
      raftTerm: BigInt(this.#term),
    });
  }

  /** Header without a revision, as etcd sends for cluster-membership responses. */
  headerWithoutRevision(): ResponseHeader {
    return create(ResponseHeaderSchema, {
      clusterId: this.clusterId,
      memberId: this.memberId,
      raftTerm: BigInt(this.#term),
    });
  }

  /** Linearizable and serializable reads alike: the applied state only holds durable writes. */
  range(req: RangeRequest): RangeResponse {
    checkRangeRequest(req);
    const resp = this.#mvcc.range(req);
    resp.header = this.header();
    return resp;
  }

  async put(req: PutRequest): Promise<PutResponse> {
    checkPutRequest(req);
    const resp = await this.#propose({ case: "put", value: req }) as PutResponse;
    return resp;
  }

  async deleteRange(req: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    checkDeleteRequest(req);
    return await this.#propose({ case: "deleteRange", value: req }) as DeleteRangeResponse;
  }

  async txn(req: TxnRequest): Promise<TxnResponse> {
    checkTxnRequest(req, this.#config.maxTxnOps);
    if (isTxnReadOnly(req)) {
      // etcd serves read-only transactions without going through the log.
      const { response } = this.#mvcc.txn(req);
      response.header = this.header();
      return response;
    }
    return await this.#propose({ case: "txn", value: req }) as TxnResponse;
  }

  async compact(req: CompactionRequest): Promise<CompactionResponse> {
    return await this.#propose({ case: "compaction", value: req }) as CompactionResponse;
  }

  /** Maintenance.Alarm: every action, listing included, goes through the log as in etcd. */
  async alarm(req: AlarmRequest): Promise<AlarmResponse> {
    return await this.#propose({ case: "alarm", value: req }) as AlarmResponse;
  }

  /** Maintenance.HashKV: etcd's hash of the key space up to a revision (0 = current). */
  hashKV(req: HashKVRequest): HashKVResponse {
    const result = this.#mvcc.hashKV(Number(req.revision));
    return create(HashKVResponseSchema, {
      header: this.header(result.revision),
      hash: result.hash,
      compactRevision: BigInt(result.compactRevision),
    });
  }

  /** Maintenance.Status for this member. */
  status(): StatusResponse {
    const size = this.#mvcc.sizeBytes();
    return create(StatusResponseSchema, {
      header: this.header(),
      version: serverVersion,
      dbSize: BigInt(dbFileSize(size)),
      dbSizeInUse: BigInt(dbInUseSize(size)),
      leader: this.memberId,
      raftIndex: BigInt(this.#nextIndex - 1),
      raftTerm: BigInt(this.#term),
      raftAppliedIndex: BigInt(this.#appliedIndex),
      errors: [
        ...(this.#failure ? [this.#failure.message] : []),
        ...this.#alarms.map((a) => `memberID:${a.memberID} alarm:${AlarmType[a.alarm]} `),
      ],
      isLearner: false,
    });
  }

  /** Cluster.MemberList members, in ID order as etcd lists them. */
  members(): Member[] {
    return [...this.#members]
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map((m) =>
        create(MemberSchema, {
          ID: m.id,
          name: m.name,
          peerURLs: m.peerUrls,
          clientURLs: m.clientUrls,
        })
      );
  }

  /** Current MVCC revision. */
  get revision(): number {
    return this.#mvcc.revision;
  }

  /** Stops accepting requests and waits for the writes in flight to be durable. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#idle;
    this.#wal.close();
  }

  #propose(request: InternalRequest["request"]): Promise<unknown> {
    if (this.#stopped) return Promise.reject(Errors.stopped());
    if (this.#failure) return Promise.reject(Errors.stopped());
    if (this.#pending.length >= maxPendingProposals) {
      return Promise.reject(Errors.tooManyRequests());
    }
    const internal = create(InternalRequestSchema, { request });
    const data = toBinary(InternalRequestSchema, internal);
    if (data.length > this.#config.maxRequestBytes) return Promise.reject(Errors.requestTooLarge());
    const entry = walEntry(this.#nextIndex++, this.#term, data);
    return new Promise((resolve, reject) => {
      this.#pending.push({ entry, request: internal, resolve, reject });
      if (!this.#flushing) this.#idle = this.#flush();
    });
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending.splice(0, maxBatchEntries);
        try {
          await this.#wal.append(batch.map((p) => p.entry));
        } catch (e) {
          this.#failWrites(e, batch);
          return;
        }
        for (const p of batch) {
          try {
            p.resolve(this.#applyEntry(p.entry, p.request));
          } catch (e) {
            p.reject(e);
          }
        }
        this.#appliedIndex = Number(batch[batch.length - 1].entry.index);
        if (this.#appliedIndex - this.#snapshotIndex >= this.#config.snapshotCount) {
          await this.#saveSnapshot();
        }
      }
    } finally {
      this.#flushing = false;
    }
  }

  /**
   * A failed WAL write (full disk, I/O error) leaves the log's tail unknown: refuse every further
   * write rather than risk acknowledging something that is not durable. Reads keep working.
   */
  #failWrites(error: unknown, batch: Pending[]): void {
    const message = error instanceof Error ? error.message : String(error);
    this.#failure = new Error(`wal write failed: ${message}`);
    this.#logger.error("wal/wal.go:700", "failed to write WAL; refusing further writes", {
      error: message,
    });
    const rejected = [...batch, ...this.#pending.splice(0)];
    for (const p of rejected) p.reject(Errors.stopped());
  }

  /** Applies one committed entry; throws the request's EtcdError when apply rejects it. */
  #applyEntry(entry: WalEntry, request: InternalRequest | null): unknown {
    const index = Number(entry.index);
    assert(index === this.#appliedIndex + 1, `apply of ${index} after ${this.#appliedIndex}`);
    this.#appliedIndex = index;
    if (request === null) return null;
    const r = request.request;
    switch (r.case) {
      case "put": {
        if (this.#hasAlarm(AlarmType.NOSPACE)) throw Errors.noSpace();
        const { response } = this.#mvcc.put(r.value);
        response.header = this.header();
        return response;
      }
      case "deleteRange": {
        const { response } = this.#mvcc.deleteRange(r.value);
        response.header = this.header();
        return response;
      }
      case "txn": {
        if (this.#hasAlarm(AlarmType.NOSPACE) && hasPut(r.value)) throw Errors.noSpace();
        const { response } = this.#mvcc.txn(r.value);
        response.header = this.header();
        return response;
      }
      case "compaction": {
        this.#mvcc.compact(Number(r.value.revision));
        return create(CompactionResponseSchema, { header: this.header() });
      }
      case "alarm":
        // etcd 3.4 answers Alarm without a response header (etcdctl prints `{}` for -w json).
        return create(AlarmResponseSchema, { alarms: this.#applyAlarm(r.value) });
      default:
        return null;
    }
  }

  #hasAlarm(type: AlarmType): boolean {
    return this.#alarms.some((a) => a.alarm === type);
  }

  /** etcd's alarm store: GET lists (all, or one type), ACTIVATE raises, DEACTIVATE clears. */
  #applyAlarm(req: AlarmRequest): AlarmMember[] {
    const matches = (a: AlarmMember) => a.memberID === req.memberID && a.alarm === req.alarm;
    switch (req.action) {
      case AlarmRequest_AlarmAction.GET:
        return this.#alarms.filter((a) => req.alarm === AlarmType.NONE || a.alarm === req.alarm);
      case AlarmRequest_AlarmAction.ACTIVATE: {
        if (req.alarm === AlarmType.NONE) return [];
        const member = create(AlarmMemberSchema, { memberID: req.memberID, alarm: req.alarm });
        if (!this.#alarms.some(matches)) {
          this.#alarms = [...this.#alarms, member].sort(compareAlarms);
        }
        return [member];
      }
      case AlarmRequest_AlarmAction.DEACTIVATE: {
        const removed = this.#alarms.filter(matches);
        this.#alarms = this.#alarms.filter((a) => !matches(a));
        return removed;
      }
      default:
        return [];
    }
  }

  async #saveSnapshot(): Promise<void> {
    const index = this.#appliedIndex;
    const data = toBinary(
      NodeSnapshotSchema,
      create(NodeSnapshotSchema, { mvcc: this.#mvcc.encodeSnapshot(), alarms: this.#alarms }),
    );
    await this.#snapshotter.save({ index, term: this.#term, data });
    // Keep the log back to the previous snapshot: if this newest one is ever unreadable, recovery
    // falls back to the previous snapshot and still finds every entry after it.
    await this.#wal.releaseTo(this.#snapshotIndex);
    this.#snapshotIndex = index;
    this.#logger.info("etcdserver/server.go:2381", "saved snapshot", { "snapshot-index": index });
  }
}

function decodeRequest(entry: WalEntry): InternalRequest | null {
  if (entry.data.length === 0) return null;
  return fromBinary(InternalRequestSchema, entry.data);
}

function compareAlarms(a: AlarmMember, b: AlarmMember): number {
  if (a.memberID !== b.memberID) return a.memberID < b.memberID ? -1 : 1;
  return a.alarm - b.alarm;
}

/** Whether any branch of a txn, at any depth, puts (what a NOSPACE alarm refuses). */
function hasPut(req: TxnRequest): boolean {
  return [...req.success, ...req.failure].some((op) =>
    op.request.case === "requestPut" ||
    (op.request.case === "requestTxn" && hasPut(op.request.value))
  );
}

function bootstrapMeta(config: NodeConfig): MemberMeta {
  const initial = parseInitialCluster(config.initialCluster);
  const self = initial.find((m) => m.name === config.name);
  if (!self) {
    throw new Error(
      `couldn't find local name "${config.name}" in the initial cluster configuration`,
    );
  }
  const advertised = [...config.initialAdvertisePeerUrls].sort().join(",");
  if ([...self.peerUrls].sort().join(",") !== advertised) {
    throw new Error(
      `--initial-cluster has ${config.name}=${self.peerUrls.join(",")} but missing from ` +
        `--initial-advertise-peer-urls=${config.initialAdvertisePeerUrls.join(",")}`,
    );
  }
  if (initial.length > 1) {
    throw new Error(
      "detcd: multi-member clusters are not supported yet (Raft replication is issue 4); " +
        "start a single member",
    );
  }
  const ids = initial.map((m) => memberId(m.peerUrls, config.initialClusterToken));
  return create(MemberMetaSchema, {
    clusterId: clusterId(ids),
    memberId: memberId(self.peerUrls, config.initialClusterToken),
    name: config.name,
    peerUrls: self.peerUrls,
    initialCluster: config.initialCluster,
  });
}

function membersFromMeta(meta: MemberMeta, config: NodeConfig): MemberInfo[] {
  return [{
    id: meta.memberId,
    name: meta.name,
    peerUrls: meta.peerUrls,
    clientUrls: config.advertiseClientUrls,
  }];
}

/**
 * etcd reports the size of its bbolt file, which starts at 20 KiB (16 KiB in use) and grows by
 * pages; we report the same starting point plus the live data rounded to 4 KiB pages.
 */
function dbFileSize(bytes: number): number {
  return 20480 + pageRound(bytes - 4096);
}

function dbInUseSize(bytes: number): number {
  return 16384 + pageRound(bytes - 4096);
}

function pageRound(bytes: number): number {
  return bytes <= 0 ? 0 : Math.ceil(bytes / 4096) * 4096;
}
