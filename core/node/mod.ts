/**
 * The replicated state machine of one member: request validation, Raft and the log, apply, and
 * the membership and status views that the APIs answer from.
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
