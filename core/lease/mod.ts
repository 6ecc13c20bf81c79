/**
 * Leases: etcd's lessor as a deterministic state machine (time comes from the node's ticks).
 * Every member applies grants, revokes and key attachments from the log; the leader (primary)
 * also tracks expiry and checkpoints, and asks the node to revoke what expired.
 *
 * @example
 * ```ts
 * import { Lessor } from "./mod.ts";
 *
 * const revoked: Uint8Array[][] = [];
 * const lessor = new Lessor({
 *   minTtlSeconds: 2n,
 *   deleter: { deleteKeys: (keys) => revoked.push(keys) },
 * });
 * lessor.grant(7n, 5n, 0);
 * lessor.attach(7n, new TextEncoder().encode("foo"));
 * lessor.promote(0, 0); // this member leads: expiry is tracked from now on
 * lessor.expired(6_000); // [7n]: the node proposes its revoke through Raft
 * ```
 *
 * @module
 */
export {
  DEFAULT_CHECKPOINT_INTERVAL_MS,
  EXPIRED_LEASE_RETRY_MS,
  Lessor,
  MAX_LEASE_TTL_SECONDS,
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
