/**
 * The services whose methods detcd may serve, for routers and metrics that need their descriptors.
 * A module of its own (descriptors only), so that importing it pulls in no handler: the metrics
 * module reads it at load time, and the handlers' modules import the metrics module.
 */
import { Auth, Cluster, KV, Lease, Maintenance } from "../gen/etcdserverpb/rpc_pb.ts";
import { Lock } from "../gen/v3lockpb/v3lock_pb.ts";
import { Election } from "../gen/v3electionpb/v3election_pb.ts";

/** The Lock and Election services (server/concurrency_service.ts serves them). */
export const concurrencyServiceDescriptors = [Lock, Election];

/** Every service detcd serves on the client port. */
export const etcdServiceDescriptors = [
  KV,
  Maintenance,
  Cluster,
  Lease,
  Auth,
  ...concurrencyServiceDescriptors,
];
