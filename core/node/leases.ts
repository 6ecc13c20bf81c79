/**
 * The member's lease duties outside apply: keep-alives (renewed by the leader, forwarded to it by
 * followers), TimeToLive (only the leader knows remaining TTLs), the leader's expiry revokes and
 * checkpoints each tick, and the lessor's promotion when a new leader applies its term's first
 * entry. Grants and revokes are plain proposals (EtcdNode); their effect is applied by the apply
 * chain on every member.
 */
import { create } from "@bufbuild/protobuf";
import {
  type LeaseCheckpointRequest,
  LeaseCheckpointRequestSchema,
  type LeaseLeasesResponse,
  LeaseLeasesResponseSchema,
  LeaseRevokeRequestSchema,
  LeaseStatusSchema,
  type LeaseTimeToLiveRequest,
  type LeaseTimeToLiveResponse,
  LeaseTimeToLiveResponseSchema,
  type ResponseHeader,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { Errors, EtcdError, isEtcdError } from "../errors.ts";
import { type Lessor, NotPrimaryError } from "../lease/mod.ts";
import { none } from "../raft/mod.ts";
import type { OperationOf, Responses } from "./apply/mod.ts";
import type { NodeEnvironment } from "./config.ts";

type LeaseProposal = OperationOf<"leaseRevoke" | "leaseCheckpoint">;

/** What the lease duties need of the member (EtcdNode provides it). */
export interface LeaseHost {
  readonly lessor: Lessor;
  readonly env: NodeEnvironment;
  /** Ticks of the Raft clock since the member started. */
  ticks(): number;
  /** One tick in ms (the lessor's clock counts ticks). */
  readonly heartbeatMs: number;
  /** etcd's request timeout, in ticks. */
  readonly requestTimeoutTicks: number;
  isLeader(): boolean;
  /** The known leader (none when there is none). */
  leader(): bigint;
  /** Raft's current term (leader-only proposals carry it). */
  raftTerm(): number;
  /** Whether the member stopped or failed (no more waiting). */
  closed(): boolean;
  header(): ResponseHeader;
  /** Resolves once a read started now may be served from the applied state. */
  linearizableRead(): Promise<void> | void;
  /** Resolves once this member is known to still lead (see EtcdNode's #confirmLeadership). */
  confirmLeadership(): Promise<void> | void;
  /** Proposes a leader-only lease request of `leaderTerm`. */
  propose<K extends LeaseProposal["case"]>(
    operation: OperationOf<K>,
    leaderTerm: number,
  ): Promise<Responses[K]>;
}

/** Keep-alive, TimeToLive and the leader's lease ticks of one member. */
export class NodeLeases {
  readonly #host: LeaseHost;
  /** Callers waiting for the next tick (a forwarded keep-alive retrying). */
  #tickWaiters: (() => void)[] = [];

  constructor(host: LeaseHost) {
    this.#host = host;
  }

  /** The lessor's clock: ticks since this member started, in ms (never the wall clock). */
  nowMs(): number {
    return this.#host.ticks() * this.#host.heartbeatMs;
  }

  /** Wakes the keep-alives waiting for a tick (each tick, and when the member stops). */
  wakeWaiters(): void {
    for (const resolve of this.#tickWaiters.splice(0)) resolve();
  }

  /**
   * Keep-alive: the leader renews and answers the TTL; a follower forwards to the leader (etcd's
   * POST /leases over the peer port). Unknown or expired leases reject with leaseNotFound.
   */
  async renew(id: bigint): Promise<bigint> {
    const host = this.#host;
    // Like etcd, a follower keeps trying (a leader that died, an election) until the request
    // timeout; only the leader's "lease not found" is final.
    const deadline = host.ticks() + host.requestTimeoutTicks;
    while (true) {
      if (host.isLeader()) return await this.renewLocal(id);
      const forward = host.env.forwardLeaseRenew;
      if (!forward) throw Errors.notLeader();
      if (host.leader() !== none) {
        try {
          return await forward(host.leader(), id);
        } catch (e) {
          if (isEtcdError(e, Errors.leaseNotFound)) throw e;
        }
      }
      if (host.closed()) throw Errors.stopped();
      if (host.ticks() >= deadline) throw Errors.timeout();
      await new Promise<void>((resolve) => this.#tickWaiters.push(resolve));
    }
  }

  /** Renews on this member only (the leader's side of a forwarded keep-alive). */
  async renewLocal(id: bigint): Promise<bigint> {
    const host = this.#host;
    // Confirm leadership first, as etcd 3.5's ensureLeadership does: a leader cut off from the
    // others must not acknowledge renews that the next leader never hears of (etcd #15247). A
    // ReadIndex round confirmed less than half an election timeout ago is enough (ADR 0006);
    // else one is asked for, batched with other reads. A leader elected but without its term's
    // first entry applied yet waits for it there (the lessor is not primary before).
    if (!host.lessor.isPrimary) await host.linearizableRead();
    else await host.confirmLeadership();
    let renewed;
    try {
      renewed = host.lessor.renew(id, this.nowMs());
    } catch (e) {
      if (e instanceof NotPrimaryError) throw Errors.notLeader();
      throw e;
    }
    if (renewed.clearCheckpoint) {
      // The next leader restores a checkpointed lease with its remaining TTL: the renew is
      // answered once the checkpoint's clearing is applied (etcd waits for it too), so that no
      // leader elected after the answer cuts the lease short. If it cannot commit, the renew
      // fails and the client asks again (of the next leader).
      await host.propose({
        case: "leaseCheckpoint",
        value: create(LeaseCheckpointRequestSchema, {
          checkpoints: [{ ID: id, remainingTTL: 0n }],
        }),
      }, host.raftTerm());
    }
    return renewed.ttlSeconds;
  }

  /**
   * Lease.LeaseTimeToLive: only the leader knows remaining TTLs, so a follower asks it. An unknown
   * lease answers TTL -1 (etcdctl: "already expired"), as etcd's v3rpc does.
   */
  async timeToLive(req: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse> {
    const host = this.#host;
    let resp: LeaseTimeToLiveResponse;
    if (!host.isLeader()) {
      const forward = host.env.forwardLeaseTimeToLive;
      if (!forward || host.leader() === none) throw Errors.noLeader();
      try {
        resp = await forward(host.leader(), req);
      } catch (e) {
        // The leader could not be reached: etcd gives up with a timeout, which clients retry.
        if (e instanceof EtcdError) throw e;
        throw Errors.timeout();
      }
    } else {
      resp = await this.timeToLiveLocal(req);
    }
    resp.header = host.header();
    return resp;
  }

  /** LeaseTimeToLive from this member's lessor (the leader's side of a forwarded request). */
  async timeToLiveLocal(req: LeaseTimeToLiveRequest): Promise<LeaseTimeToLiveResponse> {
    const host = this.#host;
    if (host.isLeader() && !host.lessor.isPrimary) await host.linearizableRead();
    const ttl = host.lessor.timeToLive(req.ID, this.nowMs());
    if (ttl === null) {
      return create(LeaseTimeToLiveResponseSchema, { header: host.header(), ID: req.ID, TTL: -1n });
    }
    return create(LeaseTimeToLiveResponseSchema, {
      header: host.header(),
      ID: req.ID,
      TTL: ttl.ttlSeconds,
      grantedTTL: ttl.grantedTtlSeconds,
      keys: req.keys ? ttl.keys : [],
    });
  }

  /** Lease.LeaseLeases: this member's leases (etcd answers from the local lessor), by ID. */
  leases(): LeaseLeasesResponse {
    return create(LeaseLeasesResponseSchema, {
      header: this.#host.header(),
      leases: this.#host.lessor.leases().map((id) => create(LeaseStatusSchema, { ID: id })),
    });
  }

  /**
   * The leader applied its term's first entry: from now on it keeps lease expiries, each extended
   * by an election timeout (etcd's lessor.Promote(electionTimeout)).
   */
  promote(electionTimeoutMs: number): void {
    this.#host.lessor.promote(electionTimeoutMs, this.nowMs());
  }

  /** This member stopped leading: only the leader keeps expiries (etcd's Demote). */
  demote(): void {
    this.#host.lessor.demote();
  }

  /**
   * The leader's lease duties each tick: propose LeaseRevoke for expired leases (through Raft,
   * never locally: a deposed leader's proposal cannot commit) and due checkpoints.
   */
  tick(): void {
    const host = this.#host;
    if (!host.isLeader() || !host.lessor.isPrimary) return;
    const nowMs = this.nowMs();
    for (const id of host.lessor.expired(nowMs)) {
      // Only this leader's term may commit it: if it is deposed meanwhile, the revoke is void.
      host.propose(
        { case: "leaseRevoke", value: create(LeaseRevokeRequestSchema, { ID: id }) },
        host.raftTerm(),
      ).catch(() => {});
    }
    const checkpoints = host.lessor.dueCheckpoints(nowMs);
    if (checkpoints.length > 0) {
      const value: LeaseCheckpointRequest = create(LeaseCheckpointRequestSchema, {
        checkpoints: checkpoints.map((c) => ({ ID: c.id, remainingTTL: c.remainingTtlSeconds })),
      });
      host.propose({ case: "leaseCheckpoint", value }, host.raftTerm()).catch(() => {});
    }
  }
}
