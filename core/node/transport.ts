import type { Message } from "../raft/mod.ts";

/**
 * How a member reaches its peers. The server implements it over HTTP/2 between peer URLs; the
 * simulation implements it in memory. Sending never blocks and never throws: a message that cannot
 * be delivered is dropped (Raft retries), and the node is told through `reportUnreachable` /
 * `reportSnapshot` on the node.
 */
export interface Transport {
  send(messages: readonly Message[]): void;
  /** Starts (or re-targets) the connection to a member. */
  addPeer(id: bigint, peerUrls: readonly string[]): void;
  updatePeer(id: bigint, peerUrls: readonly string[]): void;
  removePeer(id: bigint): void;
  /**
   * Since when (node clock, ms) the peer has been continuously reachable, or null when it is not
   * reachable now. Strict reconfiguration checks count the members active for a while.
   */
  activeSince(id: bigint): number | null;
}

/** A transport that reaches nobody (a single member, or tests). */
export const noTransport: Transport = {
  send() {},
  addPeer() {},
  updatePeer() {},
  removePeer() {},
  activeSince() {
    return null;
  },
};
