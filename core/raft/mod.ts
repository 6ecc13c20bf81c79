/**
 * Public surface of detcd's Raft: a deterministic state machine driven through RawNode, an
 * in-memory Storage, the hand-written wire codec, and one-line descriptions of messages in
 * etcd-io/raft's notation for logs and traces. Everything else in core/raft is internal.
 * It imports nothing outside core/raft but the two pure leaves core/bytes.ts and core/varint.ts.
 *
 * Raft here does no I/O and reads no clock: the caller ticks it, steps it with peers' messages,
 * and runs the Ready loop (persist, apply, send, advance), so a whole cluster can run inside one
 * process under a simulated clock and network. The protocol scenarios under `testdata/` show the
 * messages of each step (`1->2 MsgApp Term:2 Log:1/3 Commit:3 Entries:[...]`).
 *
 * @example A single-member cluster elects itself and commits a proposal
 * ```ts
 * import { EntryType, MemoryStorage, RawNode, seededRandomInt } from "./mod.ts";
 *
 * const storage = new MemoryStorage();
 * const node = new RawNode({
 *   id: 1n,
 *   electionTicks: 10,
 *   heartbeatTicks: 1,
 *   storage,
 *   applied: 0,
 *   maxSizePerMsg: 1024 * 1024,
 *   maxInflightMsgs: 256,
 *   checkQuorum: false,
 *   preVote: false,
 *   randomInt: seededRandomInt(1),
 * });
 * const applied: string[] = [];
 * // The Ready loop: persist first (a real member syncs its WAL here), apply, send, advance.
 * const handleReadies = () => {
 *   while (node.hasReady()) {
 *     const rd = node.ready();
 *     storage.append(rd.entries);
 *     if (rd.hardState !== null) storage.setHardState(rd.hardState);
 *     for (const e of rd.committedEntries) {
 *       if (e.type === EntryType.Normal && e.data.length > 0) {
 *         applied.push(new TextDecoder().decode(e.data));
 *       }
 *     }
 *     // rd.messages would go to the peers here (there are none).
 *     node.advance(rd);
 *   }
 * };
 * node.bootstrap([{ id: 1n, context: new Uint8Array() }]);
 * handleReadies();
 * node.campaign();
 * node.propose(new TextEncoder().encode("hello"));
 * handleReadies();
 * // applied is now ["hello"]
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
export {
  describeEntry,
  describeMessage,
  describeSnapshot,
  type EntryFormatter,
} from "./describe.ts";
