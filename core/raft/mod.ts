/**
 * Public surface of detcd's Raft: a deterministic state machine driven through RawNode, an
 * in-memory Storage, and the hand-written wire codec. Everything else in core/raft is internal.
 * It imports nothing outside core/raft but the two pure leaves core/bytes.ts and core/varint.ts.
 *
 * @example
 * ```ts
 * import {
 *   decodeConfChange,
 *   EntryType,
 *   MemoryStorage,
 *   RawNode,
 *   seededRandomInt,
 * } from "./mod.ts";
 *
 * const storage = new MemoryStorage();
 * const node = new RawNode({
 *   id: 1n,
 *   electionTicks: 10,
 *   heartbeatTicks: 1,
 *   storage,
 *   applied: 0,
 *   maxSizePerMsg: 1 << 20,
 *   maxInflightMsgs: 256,
 *   checkQuorum: true,
 *   preVote: true,
 *   randomInt: seededRandomInt(1),
 * });
 * // The Ready loop: persist, send rd.messages, apply committed entries, advance.
 * const drain = (n: RawNode) => {
 *   while (n.hasReady()) {
 *     const rd = n.ready();
 *     storage.append(rd.entries);
 *     for (const e of rd.committedEntries) {
 *       if (e.type === EntryType.ConfChange) n.applyConfChange(decodeConfChange(e.data));
 *     }
 *     n.advance(rd);
 *   }
 * };
 * node.bootstrap([{ id: 1n, context: new Uint8Array() }]);
 * drain(node); // the bootstrap membership entry commits
 * node.campaign(); // a single voter elects itself
 * drain(node);
 * node.status().lead; // 1n
 * ```
 *
 * @module
 */

export * from "./types.ts";
export { RawNode } from "./raw_node.ts";
export { seededRandomInt } from "./random.ts";
export { limitSize, MemoryStorage } from "./memory_storage.ts";
export {
  decodeConfChange,
  decodeConfState,
  decodeEntry,
  decodeHardState,
  decodeMessage,
  decodeSnapshot,
  decodeSnapshotMetadata,
  encodeConfChange,
  encodeConfState,
  encodeEntry,
  encodeHardState,
  encodeMessage,
  encodeSnapshot,
  encodeSnapshotMetadata,
  entrySize,
  RaftDecodeError,
} from "./codec.ts";
export { isLocalMessageType, isResponseMessageType, newMessage } from "./raft.ts";
export { RaftInvariantError } from "./log.ts";
