/**
 * A data dir's first start: its identity (from the initial-* flags, or the answer of an existing
 * cluster's members) and, for a new cluster, the initial members Raft bootstraps with.
 */
import { create } from "@bufbuild/protobuf";
import { type MemberMeta, MemberMetaSchema } from "../../gen/detcdpb/internal_pb.ts";
import { clusterId, memberId, parseInitialCluster } from "./ids.ts";
import type { MemberInfo } from "./membership.ts";
import { encodeContext } from "./reconfig.ts";

/** The flags bootstrapMeta reads (a subset of NodeConfig). */
export interface BootstrapConfig {
  name: string;
  initialAdvertisePeerUrls: string[];
  initialCluster: string;
  initialClusterToken: string;
  initialClusterState: "new" | "existing";
}

/** The data dir's identity on first start. */
export function bootstrapMeta(
  config: BootstrapConfig,
  env: { join?: { clusterId: bigint; memberId: bigint } },
): MemberMeta {
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
export function initialPeers(
  config: Pick<BootstrapConfig, "initialCluster" | "initialClusterToken">,
): { id: bigint; context: Uint8Array }[] {
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
