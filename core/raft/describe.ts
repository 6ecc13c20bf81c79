/**
 * One-line descriptions of Raft messages and entries in etcd-io/raft's notation (its util.go
 * DescribeMessage and DescribeEntry), e.g.
 *
 *     1->2 MsgApp Term:2 Log:1/3 Commit:3 Entries:[2/4 EntryNormal "a"]
 *
 * so that protocol traces (testdata/*.txt) and debug output read like etcd-io/raft's datadriven
 * testdata and a reviewer who knows one can read the other. Pure functions of their input.
 *
 * Differences from etcd-io/raft, where our types differ: there is no `Vote` field and no joint
 * consensus (a ConfState is `Voters:[..] Learners:[..]`), and a non-empty `context` (ReadIndex
 * requests, heartbeats that confirm them, the vote of a leader transfer) is shown as
 * `Context:"..."`, because following a ReadIndex round needs it.
 */

import { decodeConfChange, RaftDecodeError } from "./codec.ts";
import {
  type ConfChange,
  ConfChangeType,
  type ConfState,
  type Entry,
  EntryType,
  type Message,
  MessageType,
  type NodeId,
  none,
  type Snapshot,
} from "./types.ts";

/** Turns an entry's data into text; the default quotes it like Go's `%q`. */
export type EntryFormatter = (data: Uint8Array) => string;

const messageTypeNames: Record<MessageType, string> = {
  [MessageType.Hup]: "MsgHup",
  [MessageType.Beat]: "MsgBeat",
  [MessageType.Prop]: "MsgProp",
  [MessageType.App]: "MsgApp",
  [MessageType.AppResp]: "MsgAppResp",
  [MessageType.Vote]: "MsgVote",
  [MessageType.VoteResp]: "MsgVoteResp",
  [MessageType.Snap]: "MsgSnap",
  [MessageType.Heartbeat]: "MsgHeartbeat",
  [MessageType.HeartbeatResp]: "MsgHeartbeatResp",
  [MessageType.Unreachable]: "MsgUnreachable",
  [MessageType.SnapStatus]: "MsgSnapStatus",
  [MessageType.CheckQuorum]: "MsgCheckQuorum",
  [MessageType.TransferLeader]: "MsgTransferLeader",
  [MessageType.TimeoutNow]: "MsgTimeoutNow",
  [MessageType.ReadIndex]: "MsgReadIndex",
  [MessageType.ReadIndexResp]: "MsgReadIndexResp",
  [MessageType.PreVote]: "MsgPreVote",
  [MessageType.PreVoteResp]: "MsgPreVoteResp",
};

const entryTypeNames: Record<EntryType, string> = {
  [EntryType.Normal]: "EntryNormal",
  [EntryType.ConfChange]: "EntryConfChange",
};

const confChangeLetters: Record<ConfChangeType, string> = {
  [ConfChangeType.AddNode]: "v",
  [ConfChangeType.RemoveNode]: "r",
  [ConfChangeType.UpdateNode]: "u",
  [ConfChangeType.AddLearnerNode]: "l",
};

const goEscapes: Record<number, string> = {
  0x07: "\\a",
  0x08: "\\b",
  0x09: "\\t",
  0x0a: "\\n",
  0x0b: "\\v",
  0x0c: "\\f",
  0x0d: "\\r",
  0x22: '\\"',
  0x5c: "\\\\",
};

/**
 * Bytes as a Go `%q` string for ASCII (printable bytes as they are, the usual backslash escapes,
 * others as `\xNN`), so entry data in traces looks as in etcd-io/raft's. Bytes above 0x7f are
 * shown as `\xNN` too (Go would print valid UTF-8 as characters); traces use ASCII data.
 */
export function quoteBytes(data: Uint8Array): string {
  let out = '"';
  for (const b of data) {
    const escape = goEscapes[b];
    if (escape !== undefined) out += escape;
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\x${b.toString(16).padStart(2, "0")}`;
  }
  return out + '"';
}

/** A member ID as etcd-io/raft prints a message's ends: hex, or `None` for no member. */
export function describeTarget(id: NodeId): string {
  return id === none ? "None" : id.toString(16);
}

/** A membership change in etcd-io/raft's short form: `v4` add, `l4` learner, `r4` remove, `u4`. */
export function describeConfChange(cc: ConfChange): string {
  return `${confChangeLetters[cc.type] ?? "unknown"}${cc.nodeId}`;
}

/** An entry as `term/index EntryType data`, e.g. `2/4 EntryNormal "a"` or `2/5 EntryConfChange v4`. */
export function describeEntry(e: Entry, format: EntryFormatter = quoteBytes): string {
  let formatted: string;
  if (e.type === EntryType.ConfChange) {
    try {
      formatted = describeConfChange(decodeConfChange(e.data));
    } catch (error) {
      // As etcd-io/raft: an undecodable change is described by its decode error.
      if (!(error instanceof RaftDecodeError)) throw error;
      formatted = error.message;
    }
  } else {
    formatted = format(e.data);
  }
  const name = entryTypeNames[e.type] ?? `EntryType(${e.type})`;
  return `${e.term}/${e.index} ${name}${formatted === "" ? "" : ` ${formatted}`}`;
}

/** Voters and learners as `Voters:[1 2 3] Learners:[4]` (Go's slice notation). */
export function describeConfState(cs: ConfState): string {
  return `Voters:[${cs.voters.join(" ")}] Learners:[${cs.learners.join(" ")}]`;
}

/** A snapshot's metadata as `Index:9 Term:2 ConfState:Voters:[1 2 3] Learners:[]`. */
export function describeSnapshot(s: Snapshot): string {
  const m = s.metadata;
  return `Index:${m.index} Term:${m.term} ConfState:${describeConfState(m.confState)}`;
}

/**
 * A message as `from->to MsgType Term:t Log:logTerm/index` followed by what it carries
 * (`Rejected (Hint: n)`, `Commit:n`, `Context:"..."`, `Entries:[...]`, a snapshot). Several entries
 * and a snapshot go on lines of their own, indented, as in etcd-io/raft.
 */
export function describeMessage(m: Message, format: EntryFormatter = quoteBytes): string {
  const type = messageTypeNames[m.type] ?? `MessageType(${m.type})`;
  let out = `${describeTarget(m.from)}->${describeTarget(m.to)} ${type} Term:${m.term} ` +
    `Log:${m.logTerm}/${m.index}`;
  if (m.reject) out += ` Rejected (Hint: ${m.rejectHint})`;
  if (m.commit !== 0) out += ` Commit:${m.commit}`;
  if (m.context.length > 0) out += ` Context:${quoteBytes(m.context)}`;
  if (m.entries.length === 1) {
    out += ` Entries:[${describeEntry(m.entries[0], format)}]`;
  } else if (m.entries.length > 1) {
    out += " Entries:[";
    for (const e of m.entries) out += `\n  ${describeEntry(e, format)}`;
    out += "\n]";
  }
  if (m.snapshot !== null && m.snapshot.metadata.index !== 0) {
    out += `\n  Snapshot: ${describeSnapshot(m.snapshot)}`;
  }
  return out;
}
