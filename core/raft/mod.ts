/**
 * Public surface of detcd's Raft: a deterministic state machine driven through RawNode, an
 * in-memory Storage, and the hand-written wire codec. Everything else in core/raft is internal.
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
