/** A member for the peer port's tests: answers nothing unless a test says otherwise. */
import type { PeerHandler } from "./handler.ts";

/**
 * A PeerHandler of member `id` in cluster `clusterId` that knows no members, steps nothing,
 * refuses snapshots, leases and promotions, and answers a zero hash; `overrides` script the rest.
 */
export function stubMember(
  id: bigint,
  clusterId: bigint,
  overrides: Partial<PeerHandler> = {},
): PeerHandler {
  return {
    clusterId: () => clusterId,
    memberId: () => id,
    members: () => [],
    isRemoved: () => false,
    step() {},
    receiveSnapshot: () => Promise.reject(new Error("no snapshots here")),
    reportUnreachable() {},
    reportSnapshot() {},
    reportPeerDown() {},
    promote: () => Promise.reject(new Error("not the leader")),
    leaseRenew: () => Promise.reject(new Error("not the leader")),
    leaseTimeToLive: () => Promise.resolve(null),
    hashKV: () => ({ hash: 0, revision: 0n, compactRevision: 0n }),
    peerUrls: () => [],
    learnSender() {},
    ...overrides,
  };
}
