/**
 * etcd's lessor (lease/lessor.go) as a state machine: every member keeps the same leases and
 * attached keys (changed only by applied log entries), while the leader (the "primary") also keeps
 * expiry times and decides, from the time the node feeds it, which leases are due for a revoke or
 * a checkpoint. The lessor never revokes on its own: the node proposes a LeaseRevoke through Raft
 * and applies it on every member. Time is milliseconds of a monotonic clock the node derives from
 * its ticks; nothing here reads a clock.
 */

import {
  leasesExpired,
  leasesGranted,
  leasesRenewed,
  leasesRevoked,
  leaseTtls,
} from "./metrics.ts";
import { assert } from "../assert.ts";
import { compareBytes, IdMap, keyId } from "../bytes.ts";
import { Errors } from "../errors.ts";

/** The largest TTL a lease may have (etcd's MaxLeaseTTL, seconds). */
export const MAX_LEASE_TTL_SECONDS = 9000000000n;
/** How long an expired lease waits before its revoke is proposed again (etcd: 3 s). */
export const EXPIRED_LEASE_RETRY_MS = 3000;
/** etcd's default lease checkpoint interval (5 minutes). */
export const DEFAULT_CHECKPOINT_INTERVAL_MS = 5 * 60 * 1000;
/** Leases revoked or checkpointed per check at most (etcd: leaseRevokeRate / 2, batch 1000). */
const REVOKE_BATCH = 500;
const CHECKPOINT_BATCH = 1000;

/**
 * What revoking needs from the key-value store: delete these keys (sorted) in one revision. The
 * node wires it to an MVCC transaction; the deletions detach the keys through LeaseHooks.
 */
export interface LeaseKeyDeleter {
  deleteKeys(keys: Uint8Array[]): void;
}

/** A lease as a snapshot holds it (keys are re-attached from MVCC on restore). */
export interface LeaseRecord {
  id: bigint;
  ttlSeconds: bigint;
  /** Remaining TTL a checkpoint recorded (0: none). */
  remainingTtlSeconds: bigint;
}

/** What LeaseTimeToLive reports. */
export interface LeaseTimeToLive {
  id: bigint;
  /** Remaining seconds (truncated, as Go's int64(Duration.Seconds())). */
  ttlSeconds: bigint;
  grantedTtlSeconds: bigint;
  /** Attached keys, sorted. */
  keys: Uint8Array[];
}

/** A checkpoint the leader wants replicated: the lease's remaining TTL now. */
export interface LeaseCheckpoint {
  id: bigint;
  remainingTtlSeconds: bigint;
}

interface Lease {
  id: bigint;
  ttlSeconds: bigint;
  remainingTtlSeconds: bigint;
  /** Expiry (ms) while this member is primary; null = never (followers). */
  expiryMs: number | null;
  /** Attached keys by their keyId() string form (an IdMap: a lease may carry a million keys). */
  keys: IdMap<Uint8Array>;
}

/** Thrown by renew on a member that is not the leader (the node forwards the renew). */
export class NotPrimaryError extends Error {
  constructor() {
    super("not a primary lessor");
  }
}

/** Options fixed at start. */
export interface LessorOptions {
  /** etcd's MinLeaseTTL: ceil((3 * electionTicks / 2) * heartbeat) seconds. */
  minTtlSeconds: bigint;
  deleter: LeaseKeyDeleter;
  /** Checkpoint remaining TTLs (--experimental-enable-lease-checkpoint). */
  checkpoint?: boolean;
  checkpointIntervalMs?: number;
}

/** etcd's minimum lease TTL for a Raft timing: ceil(((3 * electionTicks) / 2) * heartbeat) s. */
export function minLeaseTtlSeconds(electionTicks: number, heartbeatMs: number): bigint {
  return BigInt(Math.ceil((Math.floor((3 * electionTicks) / 2) * heartbeatMs) / 1000));
}

/** The replicated set of leases plus the leader's expiry and checkpoint schedule. */
export class Lessor {
  readonly minTtlSeconds: bigint;
  #deleter: LeaseKeyDeleter;
  #leases = new Map<bigint, Lease>();
  #primary = false;
  #checkpoint: boolean;
  #checkpointIntervalMs: number;
  /** Leases whose revoke was asked for (ms); asked again after EXPIRED_LEASE_RETRY_MS. */
  #revokeAskedMs = new Map<bigint, number>();
  /** Next checkpoint time (ms) per lease, on the primary. */
  #checkpointAtMs = new Map<bigint, number>();

  constructor(options: LessorOptions) {
    this.minTtlSeconds = options.minTtlSeconds;
    this.#deleter = options.deleter;
    this.#checkpoint = options.checkpoint ?? false;
    this.#checkpointIntervalMs = options.checkpointIntervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS;
  }

  /** Whether this member is the leader's lessor (keeps expiries, renews). */
  get isPrimary(): boolean {
    return this.#primary;
  }

  // --- LeaseHooks (MVCC)

  /** Whether a lease exists. */
  exists(id: bigint): boolean {
    return this.#leases.has(id);
  }

  /** A key now carries the lease. */
  attach(id: bigint, key: Uint8Array): void {
    const lease = this.#leases.get(id);
    if (lease) lease.keys.set(keyId(key), key.slice());
  }

  /** A key no longer carries the lease. */
  detach(id: bigint, key: Uint8Array): void {
    this.#leases.get(id)?.keys.delete(keyId(key));
  }

  // --- applied requests (every member, deterministic)

  /**
   * LeaseGrant as applied: etcd's checks in its order (ID 0 → not found, TTL too large, exists),
   * TTL raised to the minimum. The primary starts the lease's clock at `nowMs`.
   */
  grant(id: bigint, ttlSeconds: bigint, nowMs: number): { id: bigint; ttlSeconds: bigint } {
    if (id === 0n) throw Errors.leaseNotFound();
    if (ttlSeconds > MAX_LEASE_TTL_SECONDS) throw Errors.leaseTTLTooLarge();
    if (this.#leases.has(id)) throw Errors.leaseExist();
    const ttl = ttlSeconds < this.minTtlSeconds ? this.minTtlSeconds : ttlSeconds;
    const lease: Lease = {
      id,
      ttlSeconds: ttl,
      remainingTtlSeconds: 0n,
      expiryMs: null,
      keys: new IdMap(),
    };
    this.#leases.set(id, lease);
    leasesGranted.inc();
    leaseTtls.observe(Number(ttl));
    if (this.#primary) {
      lease.expiryMs = nowMs + Number(ttl) * 1000;
      this.#scheduleCheckpoint(lease, nowMs);
    }
    return { id, ttlSeconds: ttl };
  }

  /** LeaseRevoke as applied: all attached keys deleted in one revision, then the lease. */
  revoke(id: bigint): void {
    const lease = this.#leases.get(id);
    if (!lease) throw Errors.leaseNotFound();
    const keys = [...lease.keys.values()].sort(compareBytes);
    if (keys.length > 0) this.#deleter.deleteKeys(keys);
    this.#leases.delete(id);
    this.#revokeAskedMs.delete(id);
    this.#checkpointAtMs.delete(id);
    leasesRevoked.inc();
  }

  /** LeaseCheckpoint as applied: records the remaining TTL (used by promote after a change). */
  checkpoint(id: bigint, remainingTtlSeconds: bigint, nowMs: number): void {
    const lease = this.#leases.get(id);
    if (!lease) return;
    lease.remainingTtlSeconds = remainingTtlSeconds;
    if (this.#primary) this.#scheduleCheckpoint(lease, nowMs);
  }

  // --- leader only

  /**
   * Renews (keep-alive) on the primary: expiry = now + TTL. Returns the TTL and whether a
   * checkpoint clearing the recorded remaining TTL should be proposed (etcd's clearRemainingTTL).
   * Throws NotPrimaryError on a follower and leaseNotFound for an unknown or expired lease.
   */
  renew(id: bigint, nowMs: number): { ttlSeconds: bigint; clearCheckpoint: boolean } {
    if (!this.#primary) throw new NotPrimaryError();
    const lease = this.#leases.get(id);
    if (!lease) throw Errors.leaseNotFound();
    // An expired lease is on its way to being revoked: it is gone for the client.
    if (lease.expiryMs !== null && lease.expiryMs <= nowMs) throw Errors.leaseNotFound();
    const clearCheckpoint = this.#checkpoint && lease.remainingTtlSeconds > 0n;
    lease.expiryMs = nowMs + Number(lease.ttlSeconds) * 1000;
    this.#revokeAskedMs.delete(id);
    leasesRenewed.inc();
    return { ttlSeconds: lease.ttlSeconds, clearCheckpoint };
  }

  /**
   * Becomes primary (this member leads and applied its term's first entry): every lease expires
   * `extendMs` + its remaining TTL (the checkpointed one, else the full TTL) from now. Without
   * checkpoints this is etcd 3.4's "remaining TTL reset on leader change".
   */
  promote(extendMs: number, nowMs: number): void {
    this.#primary = true;
    this.#revokeAskedMs.clear();
    this.#checkpointAtMs.clear();
    for (const lease of this.#leases.values()) {
      const remaining = lease.remainingTtlSeconds > 0n
        ? lease.remainingTtlSeconds
        : lease.ttlSeconds;
      lease.expiryMs = nowMs + extendMs + Number(remaining) * 1000;
      this.#scheduleCheckpoint(lease, nowMs);
    }
  }

  /** No longer the leader: leases never expire here until promoted again. */
  demote(): void {
    this.#primary = false;
    for (const lease of this.#leases.values()) lease.expiryMs = null;
    this.#revokeAskedMs.clear();
    this.#checkpointAtMs.clear();
  }

  /**
   * Leases whose time ran out, for the node to propose LeaseRevoke (primary only). A lease is
   * returned again only if it is still there EXPIRED_LEASE_RETRY_MS later (a lost proposal).
   */
  expired(nowMs: number): bigint[] {
    if (!this.#primary) return [];
    const out: bigint[] = [];
    for (const lease of this.#leases.values()) {
      if (out.length >= REVOKE_BATCH) break;
      if (lease.expiryMs === null || lease.expiryMs > nowMs) continue;
      const asked = this.#revokeAskedMs.get(lease.id);
      if (asked !== undefined && nowMs < asked + EXPIRED_LEASE_RETRY_MS) continue;
      this.#revokeAskedMs.set(lease.id, nowMs);
      out.push(lease.id);
    }
    leasesExpired.inc(out.length);
    return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** Checkpoints due now (primary with checkpointing on), as etcd's findDueScheduledCheckpoints. */
  dueCheckpoints(nowMs: number): LeaseCheckpoint[] {
    if (!this.#primary || !this.#checkpoint) return [];
    const out: LeaseCheckpoint[] = [];
    for (const [id, atMs] of this.#checkpointAtMs) {
      if (out.length >= CHECKPOINT_BATCH) break;
      if (atMs > nowMs) continue;
      this.#checkpointAtMs.delete(id);
      const lease = this.#leases.get(id);
      if (!lease || lease.expiryMs === null || lease.expiryMs <= nowMs) continue;
      const remaining = BigInt(Math.ceil((lease.expiryMs - nowMs) / 1000));
      if (remaining >= lease.ttlSeconds) continue;
      out.push({ id, remainingTtlSeconds: remaining });
    }
    return out;
  }

  // --- reads

  /** LeaseTimeToLive on the primary; null for an unknown lease. */
  timeToLive(id: bigint, nowMs: number): LeaseTimeToLive | null {
    const lease = this.#leases.get(id);
    if (!lease) return null;
    // A follower's lease never expires (etcd reports math.MaxInt64 ns as seconds).
    const remainingMs = lease.expiryMs === null ? 9223372036854 * 1000 : lease.expiryMs - nowMs;
    return {
      id,
      ttlSeconds: BigInt(Math.trunc(remainingMs / 1000)),
      grantedTtlSeconds: lease.ttlSeconds,
      keys: [...lease.keys.values()].sort(compareBytes),
    };
  }

  /** The keys attached to a lease (none for an unknown lease), in no particular order. */
  keys(id: bigint): Uint8Array[] {
    const lease = this.#leases.get(id);
    return lease ? [...lease.keys.values()] : [];
  }

  /** IDs of all leases, ascending. */
  leases(): bigint[] {
    return [...this.#leases.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** The replicated state, sorted by ID (snapshot). */
  records(): LeaseRecord[] {
    const records = this.leases().map((id) => {
      const l = this.#leases.get(id)!;
      return { id, ttlSeconds: l.ttlSeconds, remainingTtlSeconds: l.remainingTtlSeconds };
    });
    checkRecords(records);
    return records;
  }

  /** Replaces all leases with a snapshot's (keys come back as MVCC re-attaches them). */
  restore(records: readonly LeaseRecord[]): void {
    // The same checks as when the records were taken (records()): what a snapshot holds, or a
    // converted etcd backend, is what this lessor would have written.
    checkRecords(records);
    this.#leases.clear();
    this.#revokeAskedMs.clear();
    this.#checkpointAtMs.clear();
    this.#primary = false;
    for (const r of records) {
      this.#leases.set(r.id, {
        id: r.id,
        ttlSeconds: r.ttlSeconds,
        remainingTtlSeconds: r.remainingTtlSeconds,
        expiryMs: null,
        keys: new IdMap(),
      });
    }
  }

  /** Replaces the key deleter (the node's MVCC store changes when a snapshot is applied). */
  setDeleter(deleter: LeaseKeyDeleter): void {
    this.#deleter = deleter;
  }

  #scheduleCheckpoint(lease: Lease, nowMs: number): void {
    if (!this.#checkpoint) return;
    const remaining = lease.remainingTtlSeconds > 0n ? lease.remainingTtlSeconds : lease.ttlSeconds;
    if (remaining * 1000n > BigInt(this.#checkpointIntervalMs)) {
      this.#checkpointAtMs.set(lease.id, nowMs + this.#checkpointIntervalMs);
    }
  }
}

/** The invariants of persisted leases, checked where they are written and where they are read. */
function checkRecords(records: readonly LeaseRecord[]): void {
  const ids = new Set<bigint>();
  for (const r of records) {
    assert(!ids.has(r.id), `lease ${r.id} recorded twice`);
    ids.add(r.id);
    assert(r.ttlSeconds >= 0n, `lease ${r.id} has a negative TTL ${r.ttlSeconds}`);
    assert(
      r.remainingTtlSeconds >= 0n,
      `lease ${r.id} has a negative remaining TTL ${r.remainingTtlSeconds}`,
    );
  }
}
