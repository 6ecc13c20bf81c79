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
  /**
   * Sends a snapshot message (its `snapshot.data` empty) with its data streamed from `body`, on a
   * connection of its own so that heartbeats and appends do not queue behind it; the outcome is
   * reported through the node's reportSnapshot, and body.close() is called once, when it is sent
   * or given up. A transport without it is handed the data whole, in the message, by send().
   */
  sendSnapshot?(message: Message, body: SnapshotBody): void;
}

/** A snapshot message's data, read a chunk at a time (Transport.sendSnapshot). */
export interface SnapshotBody {
  /** Bytes in all. */
  readonly size: number;
  /**
   * The next chunk, or null after the last (each encoded when asked for, from the store, or by a
   * worker). Valid until the next call: chunks may share a buffer.
   */
  next(): Promise<Uint8Array | null>;
  /** Releases what the body holds (the store's view, the worker writing it). */
  close(): void;
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
