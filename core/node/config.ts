/**
 * What a member is given at start: its flags (NodeConfig) and its environment (NodeEnvironment:
 * the transport, the wall clock, the seed and the callbacks through which it reaches the rest of
 * the process). core/ reads no clock and opens no socket itself: everything comes in here.
 */
import type { AuthStoreOptions } from "../auth/mod.ts";
import type {
  LeaseTimeToLiveRequest,
  LeaseTimeToLiveResponse,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import type { Entry } from "../raft/mod.ts";
import type { MvccView } from "../mvcc/snapshot_codec.ts";
import type { SnapshotBody, Transport } from "./transport.ts";

/** What a member is told at start; mirrors etcd's flags of the same names. */
export interface NodeConfig {
  name: string;
  dataDir: string;
  /** --wal-dir: a directory of its own for the WAL; default `<data-dir>/member/wal`. */
  walDir?: string;
  initialAdvertisePeerUrls: string[];
  advertiseClientUrls: string[];
  initialCluster: string;
  initialClusterToken: string;
  initialClusterState: "new" | "existing";
  snapshotCount: number;
  maxTxnOps: number;
  maxRequestBytes: number;
  /**
   * --quota-backend-bytes: past this storage size puts, txns that put and lease grants answer
   * NOSPACE and the member raises the NOSPACE alarm (0: etcd's default of 2 GiB; negative: none).
   */
  quotaBackendBytes?: number;
  /** --heartbeat-interval: one Raft tick (ms). */
  heartbeatIntervalMs?: number;
  /** --election-timeout (ms); a multiple of the heartbeat interval. */
  electionTimeoutMs?: number;
  /** --strict-reconfig-check: refuse membership changes that would leave too few started members. */
  strictReconfigCheck?: boolean;
  /** WAL segment size; tests set it small to exercise segment release. */
  walSegmentBytes?: number;
  /**
   * Entries kept in the log after a snapshot for followers that lag (etcd: 5000); beyond that a
   * follower gets the snapshot. Tests and the simulation set it small.
   */
  snapshotCatchUpEntries?: number;
  /** --experimental-enable-lease-checkpoint: the leader replicates remaining TTLs. */
  leaseCheckpoint?: boolean;
  /** Interval between a lease's checkpoints (etcd: 5 minutes; tests set it short). */
  leaseCheckpointIntervalMs?: number;
}

/**
 * The defaults of NodeConfig's optional settings, as etcd's flags default them: filled in once,
 * when the member opens (resolveNodeConfig), so no other code repeats a default.
 */
export const nodeDefaults = {
  /** etcd's --heartbeat-interval default. */
  heartbeatIntervalMs: 100,
  /** etcd's --election-timeout default. */
  electionTimeoutMs: 1000,
  /** etcd's --strict-reconfig-check default. */
  strictReconfigCheck: true,
  /** etcd's SnapshotCatchUpEntries. */
  snapshotCatchUpEntries: 5000,
} as const;

/** NodeConfig with every default filled in. */
export type ResolvedNodeConfig = NodeConfig & Required<Pick<NodeConfig, keyof typeof nodeDefaults>>;

/** `config` with nodeDefaults filled in where it leaves a setting out. */
export function resolveNodeConfig(config: NodeConfig): ResolvedNodeConfig {
  return {
    ...config,
    heartbeatIntervalMs: config.heartbeatIntervalMs ?? nodeDefaults.heartbeatIntervalMs,
    electionTimeoutMs: config.electionTimeoutMs ?? nodeDefaults.electionTimeoutMs,
    strictReconfigCheck: config.strictReconfigCheck ?? nodeDefaults.strictReconfigCheck,
    snapshotCatchUpEntries: config.snapshotCatchUpEntries ?? nodeDefaults.snapshotCatchUpEntries,
  };
}

/** What the environment provides to a member: everything with a side effect or a clock. */
export interface NodeEnvironment {
  /**
   * The auth store's token provider, password hasher and bcrypt cost (default: no token scheme
   * and no hasher: Authenticate fails, UserAdd cannot hash).
   */
  auth?: AuthStoreOptions;
  transport?: Transport;
  /** Wall clock (Unix ms): only for member IDs of added members, as etcd derives them. */
  nowMs?: () => number;
  /**
   * Lets other work run during long background work (a snapshot being written): the server
   * yields to its event loop once a slice of time is used. Default: a resolved promise.
   */
  pause?: () => Promise<void>;
  /**
   * Runs `run` at the end of this turn of the event loop, once the I/O already read is handled
   * (the server passes `setImmediate`, the simulation an event at the same moment). With it, the
   * Ready loop's second run in one turn waits for the turn's end, so that the proposals and
   * acknowledgements read from every socket in one poll form one Ready (one write and sync, one
   * message batch per peer). Absent: the loop runs as soon as there is something to do.
   */
  defer?: (run: () => void) => void;
  /**
   * As `pause`, for background work that has no deadline (compaction's steps, the revision log's
   * rewrite for defragment and reclaim): the server gives it shorter slices than `pause` so that
   * requests keep most of the thread. Default: `pause`.
   */
  pacedPause?: () => Promise<void>;
  /**
   * Writes the snapshot a follower is sent off the event loop (the server's worker): `head(size)`
   * bytes, then the view's store encoding. Resolves null where it cannot (a store in memory, no
   * worker): the member encodes it itself, in slices. The view stays the member's to close.
   */
  snapshotBody?: (
    view: MvccView,
    head: (size: number) => Uint8Array,
  ) => Promise<SnapshotBody | null>;
  /**
   * A monotonic clock (ms) for etcd's heartbeat timeout detector (a leader's heartbeats to a peer
   * more than two intervals apart are warned about and counted). Absent: the detector is off.
   */
  monotonicMs?: () => number;
  /** Seed of the Raft randomness (election timeouts). */
  seed?: number;
  /**
   * For `--initial-cluster-state existing` on a fresh data dir: the cluster as its members report
   * it (the server asks them over the peer port before the member starts).
   */
  join?: { clusterId: bigint; memberId: bigint };
  /**
   * Asks the leader to promote a learner (only the leader knows whether the learner caught up);
   * rejects with the leader's EtcdError. etcd forwards it over the peer port.
   */
  forwardPromote?: (leader: bigint, id: bigint) => Promise<void>;
  /**
   * Renews a lease on the leader (only the leader keeps expiries) and returns its TTL; rejects with
   * the leader's EtcdError. etcd forwards keep-alives over the peer port (POST /leases).
   */
  forwardLeaseRenew?: (leader: bigint, id: bigint) => Promise<bigint>;
  /** LeaseTimeToLive asked of the leader (etcd's POST /leases/internal). */
  forwardLeaseTimeToLive?: (
    leader: bigint,
    req: LeaseTimeToLiveRequest,
  ) => Promise<LeaseTimeToLiveResponse>;
  /** Called once if this member is removed from the cluster; the server exits. */
  onRemoved?: () => void;
  /**
   * Called once if the member stopped after a broken invariant or an internal error (it was
   * logged); the server exits, as etcd panics. The member refuses everything from then on.
   */
  onFatal?: (error: Error) => void;
  /**
   * Observes every entry as it is applied (simulation and tests check that all members apply the
   * same entry at each index). Called after the entry took effect.
   */
  onApply?: (entry: Entry) => void;
}
