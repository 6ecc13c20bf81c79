/**
 * `snapshot restore`: a new member data dir from a backend snapshot, as etcd's v3 snapshot
 * manager builds one. The key space, leases, alarms and auth state (users, roles, the enabled flag
 * and the auth revision, unchanged) come from the snapshot; the membership is
 * the new cluster of `--initial-cluster` (IDs derived from the peer URLs and the cluster token, as
 * for a new cluster). The member's log starts with a snapshot at index N (N = number of members)
 * and term 1, with N committed, exactly where etcd's restored WAL and snap leave a member: the
 * first leader then gets term 2, and every member of the new cluster starts from the same state.
 *
 * The data dir must not exist (etcd: `data-dir "X" exists`; the CLI checks, and this refuses a
 * dir that holds a member), so a restore never overwrites a member's data.
 */

import { create, toBinary } from "@bufbuild/protobuf";
import {
  LeaseRecordSchema,
  MemberMetaSchema,
  MemberRecordSchema,
  NodeSnapshotSchema,
} from "../../gen/detcdpb/internal_pb.ts";
import type { AlarmMember } from "../../gen/etcdserverpb/rpc_pb.ts";
import type { Disk } from "../storage/disk.ts";
import { Snapshotter } from "../storage/snapshot.ts";
import { Wal, walHardState, walSnapshotMarker } from "../storage/wal.ts";
import { bootstrapMeta } from "./bootstrap.ts";
import { memberId, parseInitialCluster } from "./ids.ts";
import { authRecordOf } from "./auth_record.ts";
import type { AuthSnapshot } from "../auth/mod.ts";

/** The restore flags of etcdctl (`snapshot restore`). */
export interface RestoreOptions {
  name: string;
  dataDir: string;
  /** --wal-dir; default `<data-dir>/member/wal` (start the member with the same --wal-dir). */
  walDir?: string;
  initialCluster: string;
  initialClusterToken: string;
  initialAdvertisePeerUrls: string[];
}

/** The state a snapshot carries into the new member. */
export interface RestoredContent {
  /** MvccStore.encodeSnapshot() bytes. */
  mvcc: Uint8Array;
  leases: { id: bigint; ttl: bigint; remainingTtl: bigint }[];
  alarms: AlarmMember[];
  /**
   * Users, roles, the enabled flag and the auth revision, carried over unchanged (etcd 3.4.23's
   * restore copies the backend and touches only the key space and membership buckets).
   */
  auth: AuthSnapshot;
}

/** The new member's identity and the cluster it was restored into. */
export interface RestoreResult {
  clusterId: bigint;
  memberId: bigint;
  members: { id: bigint; name: string; peerUrls: string[] }[];
}

/** Raised for restore flags or targets etcd refuses; the message is etcd's. */
export class RestoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RestoreError";
  }
}

/**
 * Checks the restore flags as etcd does before it touches anything (the member must be in the
 * initial cluster with its advertised peer URLs) and returns the new identity.
 */
export function planRestore(options: RestoreOptions): RestoreResult {
  const initial = parseInitialCluster(options.initialCluster);
  const meta = bootstrapMeta({
    name: options.name,
    dataDir: options.dataDir,
    initialAdvertisePeerUrls: options.initialAdvertisePeerUrls,
    advertiseClientUrls: [],
    initialCluster: options.initialCluster,
    initialClusterToken: options.initialClusterToken,
    initialClusterState: "new",
    snapshotCount: 0,
    maxTxnOps: 0,
    maxRequestBytes: 0,
  }, {});
  const members = initial.map((m) => ({
    id: memberId(m.peerUrls, options.initialClusterToken),
    name: m.name,
    peerUrls: m.peerUrls,
  })).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { clusterId: meta.clusterId, memberId: meta.memberId, members };
}

/** Writes a restored member data dir; see the module comment. */
export async function restoreMember(
  disk: Disk,
  options: RestoreOptions,
  content: RestoredContent,
): Promise<RestoreResult> {
  const plan = planRestore(options);
  const members = plan.members;
  // The caller refuses an existing data dir as etcd does; never overwrite a member in any case.
  if ((await disk.readFile(`${options.dataDir}/member/meta`)) !== null) {
    throw new RestoreError(`data-dir "${options.dataDir}" exists`);
  }
  const index = members.length;
  const term = 1;
  const state = create(NodeSnapshotSchema, {
    mvcc: content.mvcc,
    alarms: content.alarms,
    members: members.map((m) =>
      create(MemberRecordSchema, { id: m.id, name: m.name, peerUrls: m.peerUrls })
    ),
    removed: [],
    // etcd's restored member has no cluster version until the first leader sets it.
    clusterVersion: "",
    voters: members.map((m) => m.id),
    learners: [],
    leases: content.leases.map((l) =>
      create(LeaseRecordSchema, { id: l.id, ttl: l.ttl, remainingTtl: l.remainingTtl })
    ),
    auth: authRecordOf(content.auth),
  });
  const memberDir = `${options.dataDir}/member`;
  await disk.mkdirp(memberDir);
  await new Snapshotter(disk, `${memberDir}/snap`).save({
    index,
    term,
    data: toBinary(NodeSnapshotSchema, state),
  });
  const { wal } = await Wal.open(disk, options.walDir || `${memberDir}/wal`, index);
  await wal.append([walSnapshotMarker(index, term), walHardState(term, 0n, index)]);
  wal.close();
  // The identity last: a data dir without it is not a member, so an interrupted restore leaves
  // nothing that could start with half a state.
  const meta = create(MemberMetaSchema, {
    clusterId: plan.clusterId,
    memberId: plan.memberId,
    name: options.name,
    peerUrls: options.initialAdvertisePeerUrls,
    initialCluster: options.initialCluster,
  });
  await disk.writeFileAtomic(`${memberDir}/meta`, toBinary(MemberMetaSchema, meta));
  return plan;
}
