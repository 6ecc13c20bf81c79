/** Leases: etcd's lessor as a deterministic state machine (time comes from the node's ticks). */
export {
  defaultCheckpointIntervalMs,
  expiredLeaseRetryMs,
  Lessor,
  maxLeaseTtlSeconds,
  minLeaseTtlSeconds,
  NotPrimaryError,
} from "./lessor.ts";
export type {
  LeaseCheckpoint,
  LeaseKeyDeleter,
  LeaseRecord,
  LeaseTimeToLive,
  LessorOptions,
} from "./lessor.ts";
