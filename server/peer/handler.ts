import type { MemberInfo } from "../../core/node/mod.ts";
import type { Message } from "../../core/raft/mod.ts";
import type { LeaseTtl } from "./_wire.ts";

/**
 * What the peer server and transport need from the member. One interface for both halves, so that
 * the member wires its node to the peer port in one place (server/server.ts) and neither half can
 * reach into the node past it.
 */
export interface PeerHandler {
  clusterId(): bigint;
  memberId(): bigint;
  members(): MemberInfo[];
  isRemoved(id: bigint): boolean;
  step(message: Message): void;
  /**
   * A snapshot message whose data arrives in chunks (its own connection): resolves once the data
   * is saved and the message stepped; rejects when it could not be.
   */
  receiveSnapshot(message: Message, size: number, chunks: AsyncIterable<Uint8Array>): Promise<void>;
  reportUnreachable(id: bigint): void;
  reportSnapshot(id: bigint, ok: boolean): void;
  /** A connection to the peer was refused (its process is gone). */
  reportPeerDown(id: bigint): void;
  /** Promotes a learner on the leader (forwarded by followers). */
  promote(id: bigint): Promise<void>;
  /** Renews a lease on the leader (forwarded keep-alives); resolves to its TTL. */
  leaseRenew(id: bigint): Promise<bigint>;
  /** A lease's remaining and granted TTL and keys on the leader; null for an unknown lease. */
  leaseTimeToLive(id: bigint): Promise<LeaseTtl | null>;
  /**
   * etcd's HashByRev: the hash of the key space at `revision` (0: the current one), with the
   * revision it is at and the compact revision; throws the compacted/future-revision EtcdError.
   */
  hashKV(revision: bigint): Promise<{ hash: number; revision: bigint; compactRevision: bigint }>;
  /** This member's own peer URLs (sent along so that peers can answer before they know it). */
  peerUrls(): string[];
  /**
   * A member opened its stream to this one. If this member's log does not know it yet (it was
   * added after the point the log reached), reach it at these URLs so that it can be answered
   * (etcd's remote); if it does and the connection to it waits for a retry, make it now.
   */
  learnSender(id: bigint, peerUrls: string[]): void;
}
