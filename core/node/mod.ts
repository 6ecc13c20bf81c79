/**
 * The replicated state machine of one member: request validation, Raft and the log, the apply
 * chain (core/node/apply/), leases, membership, and the status views the APIs answer from.
 * `EtcdNode` is the facade; docs/adr/0008-apply-chain.md maps the modules behind it.
 *
 * @example A single member on a simulated disk
 * ```ts
 * import { create } from "@bufbuild/protobuf";
 * import { PutRequestSchema } from "../../gen/etcdserverpb/rpc_pb.ts";
 * import { silentLogger } from "../log.ts";
 * import { MemoryDisk } from "../storage/mod.ts";
 * import { EtcdNode } from "./mod.ts";
 *
 * const node = await EtcdNode.open({
 *   name: "default",
 *   dataDir: "data",
 *   initialAdvertisePeerUrls: ["http://127.0.0.1:2380"],
 *   advertiseClientUrls: ["http://127.0.0.1:2379"],
 *   initialCluster: "default=http://127.0.0.1:2380",
 *   initialClusterToken: "etcd-cluster",
 *   initialClusterState: "new",
 *   snapshotCount: 100000,
 *   maxTxnOps: 128,
 *   maxRequestBytes: 1572864,
 * }, new MemoryDisk(), silentLogger);
 * const reply = await node.put(create(PutRequestSchema, { key: new Uint8Array([1]) }));
 * console.log(reply.header?.revision); // 2n
 * await node.stop();
 * ```
 *
 * @module
 */
export {
  type CallerSource,
  clusterVersion,
  EtcdNode,
  type NodeConfig,
  type NodeEnvironment,
  SERVER_VERSION,
} from "./etcd_node.ts";
export { nodeDefaults, type ResolvedNodeConfig, resolveNodeConfig } from "./config.ts";
export { clusterId, idHex, memberId, parseInitialCluster } from "./ids.ts";
export { type MemberInfo, Membership } from "./membership.ts";
export { noTransport, type SnapshotBody, type Transport } from "./transport.ts";
export {
  planRestore,
  type RestoredContent,
  RestoreError,
  restoreMember,
  type RestoreOptions,
  type RestoreResult,
} from "./restore.ts";
