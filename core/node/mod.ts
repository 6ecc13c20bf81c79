/**
 * The replicated state machine of one member: request validation, Raft and the log, apply, and
 * the membership and status views that the APIs answer from; plus `snapshot restore`'s offline
 * rebuild of a member's data directory from an etcd backend file.
 *
 * @example
 * ```ts
 * import { clusterId, idHex, memberId } from "./mod.ts";
 *
 * // IDs derived from peer URLs and the cluster token, as etcd derives them.
 * const id = memberId(["http://127.0.0.1:2380"], "etcd-cluster");
 * const cluster = clusterId([id]);
 * idHex(id); // lowercase hex, as etcdctl prints member IDs
 * idHex(cluster);
 * ```
 *
 * @module
 */
export {
  clusterVersion,
  EtcdNode,
  type NodeConfig,
  type NodeEnvironment,
  serverVersion,
} from "./etcd_node.ts";
export { clusterId, idHex, memberId, parseInitialCluster } from "./ids.ts";
export { type MemberInfo, Membership } from "./membership.ts";
export { noTransport, type Transport } from "./transport.ts";
export {
  planRestore,
  type RestoredContent,
  RestoreError,
  restoreMember,
  type RestoreOptions,
  type RestoreResult,
} from "./restore.ts";
