/**
 * The replicated state machine of one member: request validation, the log, apply, and the
 * membership and status views that the APIs answer from.
 */
export { clusterVersion, EtcdNode, type NodeConfig, serverVersion } from "./etcd_node.ts";
export { clusterId, idHex, memberId, parseInitialCluster } from "./ids.ts";
