/** A member for the peer port's tests: answers nothing unless a test says otherwise. */
import * as net from "node:net";
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
    hashKV: () => Promise.resolve({ hash: 0, revision: 0n, compactRevision: 0n }),
    peerUrls: () => [],
    learnSender() {},
    ...overrides,
  };
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
