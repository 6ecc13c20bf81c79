/**
 * The synchronous steps of opening a member's data dir (EtcdNode.open does the disk reads in
 * between): its identity on first start (from the initial-* flags, or the answer of an existing
 * cluster's members) and the initial members Raft bootstraps a new cluster with; the lessor; Raft's
 * log recovered from the newest readable snapshot and the WAL after it; the Raft node over it.
 */
import { create, fromBinary } from "@bufbuild/protobuf";
import {
  type MemberMeta,
  MemberMetaSchema,
  type NodeSnapshot,
} from "../../gen/detcdpb/internal_pb.ts";
import { Lessor, minLeaseTtlSeconds } from "../lease/mod.ts";
import type { Logger } from "../log.ts";
import { type EntryType, MemoryStorage, RawNode, seededRandomInt } from "../raft/mod.ts";
import type { WalRecovery } from "../storage/mod.ts";
import type { NodeConfig, NodeEnvironment, ResolvedNodeConfig } from "./config.ts";
import { clusterId, memberId, parseInitialCluster } from "./ids.ts";
import type { MemberInfo } from "./membership.ts";
import { encodeContext } from "./reconfig.ts";

/** The member's identity: decoded from its meta file, or bootstrapped when there is none yet. */
export function memberMeta(
  config: NodeConfig,
  env: NodeEnvironment,
  logger: Logger,
  metaBytes: Uint8Array | null,
): MemberMeta {
  if (metaBytes === null) return bootstrapMeta(config, env);
  const meta = fromBinary(MemberMetaSchema, metaBytes);
  logger.info("etcdmain/etcd.go:134", "server has been already initialized", {
    "data-dir": config.dataDir,
    "dir-type": "member",
  });
  return meta;
}

/** One Raft tick per heartbeat interval; the election timeout in ticks (at least 2). */
export function electionTicks(config: ResolvedNodeConfig): number {
  return Math.max(2, Math.round(config.electionTimeoutMs / config.heartbeatIntervalMs));
}

/** The member's lessor, empty (a snapshot's leases are restored into it). */
export function newLessor(config: ResolvedNodeConfig): Lessor {
  return new Lessor({
    minTtlSeconds: minLeaseTtlSeconds(electionTicks(config), config.heartbeatIntervalMs),
    // Wired to the MVCC store by the StateMachine the node builds around it.
    deleter: { deleteKeys: () => {} },
    checkpoint: config.leaseCheckpoint,
    checkpointIntervalMs: config.leaseCheckpointIntervalMs,
  });
}

/** Raft's log as the disk holds it: the snapshot's metadata, then the WAL's entries and state. */
const NO_DATA = new Uint8Array(0);

export function recoverStorage(
  snapshot: { index: number; term: number; state: NodeSnapshot } | null,
  recovery: WalRecovery,
): MemoryStorage {
  const storage = new MemoryStorage();
  if (snapshot) {
    const { state } = snapshot;
    storage.applySnapshot({
      metadata: {
        index: snapshot.index,
        term: snapshot.term,
        confState: { voters: state.voters, learners: state.learners },
      },
      // The data stays in its file: a snapshot sent to a follower is read from there.
      data: NO_DATA,
    });
  }
  if (recovery.entries.length > 0) {
    storage.append(recovery.entries.map((r) => ({
      term: r.term,
      index: r.index,
      type: r.type as EntryType,
      data: r.data,
    })));
  }
  if (recovery.hardState) {
    const hs = recovery.hardState;
    // A snapshot holds committed entries only, so the commit index is at least its index even
    // when a crash lost the hard state written after it (a leader's snapshot is made durable
    // before the Ready's hard state reaches the WAL); Raft refuses a commit below its snapshot.
    const snapshotIndex = snapshot?.index ?? 0;
    storage.setHardState({
      term: hs.term,
      vote: hs.vote,
      commit: Math.max(Math.min(hs.commit, storage.lastIndex()), snapshotIndex),
    });
  }
  return storage;
}

/** The member's Raft node over its recovered log, `applied` being the snapshot's index. */
export function newRawNode(
  meta: MemberMeta,
  env: NodeEnvironment,
  storage: MemoryStorage,
  applied: number,
  electionTicks: number,
): RawNode {
  const random = seededRandomInt(env.seed ?? Number(meta.memberId & 0xffffffffn));
  return new RawNode({
    id: meta.memberId,
    electionTicks,
    heartbeatTicks: 1,
    storage,
    applied,
    maxSizePerMsg: 1024 * 1024,
    maxInflightMsgs: 4096 / 8,
    checkQuorum: true,
    preVote: true,
    randomInt: random,
  });
}

/** The data dir's identity on first start. */
export function bootstrapMeta(config: NodeConfig, env: NodeEnvironment): MemberMeta {
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
  if (config.initialClusterState === "existing") {
    if (!env.join) throw new Error("joining an existing cluster needs its members' answer");
    return create(MemberMetaSchema, {
      clusterId: env.join.clusterId,
      memberId: env.join.memberId,
      name: config.name,
      peerUrls: self.peerUrls,
      initialCluster: config.initialCluster,
    });
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

/** The members of a new cluster as Raft bootstraps them (a ConfChange context for each). */
export function initialPeers(config: NodeConfig): { id: bigint; context: Uint8Array }[] {
  return parseInitialCluster(config.initialCluster).map((m) => {
    const id = memberId(m.peerUrls, config.initialClusterToken);
    const member: MemberInfo = {
      id,
      name: m.name,
      peerUrls: m.peerUrls,
      clientUrls: [],
      isLearner: false,
    };
    return { id, context: encodeContext(0n, member) };
  });
}
