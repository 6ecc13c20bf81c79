import { assertEquals } from "../testing.ts";
import { encodeConfChange } from "./codec.ts";
import {
  describeConfChange,
  describeEntry,
  describeMessage,
  describeSnapshot,
  describeTarget,
  quoteBytes,
} from "./describe.ts";
import { newMessage } from "./raft.ts";
import { ConfChangeType, type Entry, EntryType, MessageType } from "./types.ts";

const te = new TextEncoder();

function normal(term: number, index: number, data: string): Entry {
  return { term, index, type: EntryType.Normal, data: te.encode(data) };
}

function confChange(term: number, index: number, type: ConfChangeType, id: bigint): Entry {
  const data = encodeConfChange({ type, nodeId: id, context: new Uint8Array() });
  return { term, index, type: EntryType.ConfChange, data };
}

Deno.test("quoteBytes() quotes like Go's %q: printable ASCII kept, escapes, \\xNN for the rest", () => {
  const cases: [Uint8Array, string][] = [
    [new Uint8Array(), '""'],
    [te.encode("a b"), '"a b"'],
    [te.encode('q"\\'), '"q\\"\\\\"'],
    [new Uint8Array([0x0a, 0x09, 0x0d, 0x00, 0x7f, 0xff]), '"\\n\\t\\r\\x00\\x7f\\xff"'],
  ];
  for (const [data, want] of cases) assertEquals(quoteBytes(data), want);
});

Deno.test("describeTarget() prints hex IDs and None for no member, as etcd-io/raft", () => {
  assertEquals(describeTarget(0n), "None");
  assertEquals(describeTarget(3n), "3");
  assertEquals(describeTarget(0x8e9e05c52164694dn), "8e9e05c52164694d");
});

Deno.test("describeConfChange() uses etcd-io/raft's letters: v add, l learner, r remove, u update", () => {
  const cases: [ConfChangeType, string][] = [
    [ConfChangeType.AddNode, "v4"],
    [ConfChangeType.AddLearnerNode, "l4"],
    [ConfChangeType.RemoveNode, "r4"],
    [ConfChangeType.UpdateNode, "u4"],
  ];
  for (const [type, want] of cases) {
    assertEquals(describeConfChange({ type, nodeId: 4n, context: new Uint8Array() }), want);
  }
});

Deno.test("describeEntry() shows term/index, type and the data or the membership change", () => {
  assertEquals(describeEntry(normal(2, 4, "a")), '2/4 EntryNormal "a"');
  assertEquals(describeEntry(normal(2, 4, "")), '2/4 EntryNormal ""');
  assertEquals(describeEntry(normal(2, 4, "a"), () => ""), "2/4 EntryNormal");
  assertEquals(
    describeEntry(confChange(3, 7, ConfChangeType.AddLearnerNode, 4n)),
    "3/7 EntryConfChange l4",
  );
});

Deno.test("describeMessage() matches etcd-io/raft's DescribeMessage notation", () => {
  const vote = newMessage(MessageType.Vote, 2n, 1n, 2);
  vote.logTerm = 1;
  vote.index = 3;
  assertEquals(describeMessage(vote), "1->2 MsgVote Term:2 Log:1/3");

  const app = newMessage(MessageType.App, 3n, 1n, 2);
  app.logTerm = 1;
  app.index = 3;
  app.commit = 3;
  app.entries = [normal(2, 4, "a")];
  assertEquals(
    describeMessage(app),
    '1->3 MsgApp Term:2 Log:1/3 Commit:3 Entries:[2/4 EntryNormal "a"]',
  );

  app.entries = [normal(2, 4, ""), confChange(2, 5, ConfChangeType.RemoveNode, 2n)];
  assertEquals(
    describeMessage(app),
    "1->3 MsgApp Term:2 Log:1/3 Commit:3 Entries:[\n" +
      '  2/4 EntryNormal ""\n' +
      "  2/5 EntryConfChange r2\n" +
      "]",
  );

  const rejected = newMessage(MessageType.AppResp, 1n, 3n, 2);
  rejected.index = 3;
  rejected.reject = true;
  rejected.rejectHint = 1;
  assertEquals(describeMessage(rejected), "3->1 MsgAppResp Term:2 Log:0/3 Rejected (Hint: 1)");

  const heartbeat = newMessage(MessageType.Heartbeat, 2n, 1n, 2);
  heartbeat.commit = 5;
  heartbeat.context = te.encode("r1");
  assertEquals(
    describeMessage(heartbeat),
    '1->2 MsgHeartbeat Term:2 Log:0/0 Commit:5 Context:"r1"',
  );
});

Deno.test("describeMessage() puts a snapshot on its own line; an empty one is left out", () => {
  const snapshot = {
    metadata: { index: 9, term: 2, confState: { voters: [1n, 2n, 3n], learners: [4n] } },
    data: te.encode("{}"),
  };
  assertEquals(describeSnapshot(snapshot), "Index:9 Term:2 ConfState:Voters:[1 2 3] Learners:[4]");
  const m = newMessage(MessageType.Snap, 3n, 1n, 2);
  m.logTerm = 2;
  m.index = 9;
  m.snapshot = snapshot;
  assertEquals(
    describeMessage(m),
    "1->3 MsgSnap Term:2 Log:2/9\n  Snapshot: Index:9 Term:2 ConfState:Voters:[1 2 3] Learners:[4]",
  );
  m.snapshot = {
    metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } },
    data: te.encode(""),
  };
  assertEquals(describeMessage(m), "1->3 MsgSnap Term:2 Log:2/9");
});
