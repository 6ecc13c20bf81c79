/** Shared by core/node's tests: a member's config with etcd's defaults on loopback ports. */
import type { NodeConfig } from "./config.ts";

/** A single member `default` (etcd's default name and token); `overrides` change any field. */
export function testConfig(overrides: Partial<NodeConfig> = {}): NodeConfig {
  return {
    name: "default",
    dataDir: "data",
    initialAdvertisePeerUrls: ["http://127.0.0.1:26380"],
    advertiseClientUrls: ["http://127.0.0.1:26379"],
    initialCluster: "default=http://127.0.0.1:26380",
    initialClusterToken: "etcd-cluster",
    initialClusterState: "new",
    snapshotCount: 100000,
    maxTxnOps: 128,
    maxRequestBytes: 1572864,
    ...overrides,
  };
}
