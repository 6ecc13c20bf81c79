import { assert, assertEquals, assertThrows } from "../testing.ts";
import {
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
import { seededRandomInt } from "./_testing.ts";
import { newMessage } from "./raft.ts";
import { ConfChangeType, type Entry, EntryType, type Message, MessageType } from "./types.ts";

const te = new TextEncoder();
const maxId = (1n << 64n) - 1n;

function fullMessage(): Message {
  const m = newMessage(MessageType.App, maxId, 0x8e9e05c52164694dn, 7);
  m.logTerm = 6;
  m.index = 2 ** 40;
  m.entries = [
    { term: 7, index: 2 ** 40 + 1, type: EntryType.Normal, data: te.encode("hello") },
    { term: 7, index: 2 ** 40 + 2, type: EntryType.ConfChange, data: new Uint8Array(300) },
    { term: 7, index: 2 ** 40 + 3, type: EntryType.Normal, data: new Uint8Array() },
  ];
  m.commit = Number.MAX_SAFE_INTEGER;
  m.snapshot = {
    metadata: { index: 9, term: 3, confState: { voters: [1n, maxId], learners: [2n ** 63n] } },
    data: te.encode("snap"),
  };
  m.reject = true;
  m.rejectHint = 12345;
  m.context = te.encode("ctx");
  return m;
}

Deno.test("codec: a message round-trips every field, including 64-bit member ids", () => {
  const m = fullMessage();
  assertEquals(decodeMessage(encodeMessage(m)), m);
});

Deno.test("codec: an empty message encodes to zero bytes and decodes to defaults", () => {
  const m = newMessage(MessageType.Hup, 0n, 0n, 0);
  assertEquals(encodeMessage(m).length, 0);
  assertEquals(decodeMessage(new Uint8Array()), m);
});

Deno.test("codec: entries, conf changes, hard states, conf states and snapshots round-trip", () => {
  const e: Entry = { term: 3, index: 99, type: EntryType.ConfChange, data: te.encode("x") };
  assertEquals(decodeEntry(encodeEntry(e)), e);
  assertEquals(encodeEntry(e).length, entrySize(e));
  const cc = { type: ConfChangeType.AddLearnerNode, nodeId: maxId, context: te.encode("{}") };
  assertEquals(decodeConfChange(encodeConfChange(cc)), cc);
  const hs = { term: 5, vote: 0xfedcba9876543210n, commit: 77 };
  assertEquals(decodeHardState(encodeHardState(hs)), hs);
  const cs = { voters: [1n, 2n, maxId], learners: [] };
  assertEquals(decodeConfState(encodeConfState(cs)), cs);
  const md = { index: 10, term: 2, confState: cs };
  assertEquals(decodeSnapshotMetadata(encodeSnapshotMetadata(md)), md);
  const snap = { metadata: md, data: te.encode("state") };
  assertEquals(decodeSnapshot(encodeSnapshot(snap)), snap);
});

Deno.test("codec: the wire format matches protobuf (etcd raftpb field numbers)", () => {
  // RaftHardState{term: 1, vote: 2, commit: 3}
  assertEquals([...encodeHardState({ term: 1, vote: 2n, commit: 3 })], [8, 1, 16, 2, 24, 3]);
  // RaftEntry{type: 1, term: 2, index: 300, data: "a"}
  assertEquals(
    [...encodeEntry({ term: 2, index: 300, type: EntryType.ConfChange, data: te.encode("a") })],
    [8, 1, 16, 2, 24, 0xac, 0x02, 34, 1, 97],
  );
  // Unpacked repeated voters are accepted too.
  assertEquals(decodeConfState(new Uint8Array([8, 1, 8, 2, 16, 3])), {
    voters: [1n, 2n],
    learners: [3n],
  });
});

Deno.test("codec: unknown fields are skipped", () => {
  const b = encodeHardState({ term: 4, vote: 0n, commit: 0 });
  const withUnknown = new Uint8Array([...b, 0x7a, 2, 0xff, 0xff, 0x7d, 1, 2, 3, 4]);
  assertEquals(decodeHardState(withUnknown), { term: 4, vote: 0n, commit: 0 });
});

Deno.test("codec: malformed input is rejected with RaftDecodeError", () => {
  const cases: [string, number[]][] = [
    ["truncated varint", [8, 0x80]],
    ["overlong varint", [8, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 1]],
    ["length beyond buffer", [0x3a, 10, 1]],
    ["wrong wire type", [0x0a, 0]],
    ["unknown message type", [8, 99]],
    ["field zero", [0, 1]],
    ["group wire type", [0x0b]],
    ["index too large", [0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]],
    ["bad bool", [0x50, 2]],
    ["nested entry truncated", [0x3a, 2, 0x10, 0x80]],
  ];
  for (const [name, bytes] of cases) {
    assertThrows(() => decodeMessage(new Uint8Array(bytes)), RaftDecodeError, undefined);
    void name;
  }
  assertThrows(() => decodeEntry(new Uint8Array([8, 5])), RaftDecodeError);
  assertThrows(() => decodeConfChange(new Uint8Array([16, 9])), RaftDecodeError);
});

Deno.test("codec: 64-bit member ids of every length round-trip; overflowing or long ones are refused", () => {
  const ids = [
    (1n << 49n) - 1n,
    1n << 49n,
    1n << 56n,
    (1n << 63n) - 1n,
    1n << 63n,
    maxId,
    ...Array.from({ length: 300 }, () => {
      const w = crypto.getRandomValues(new Uint32Array(2));
      return ((BigInt(w[0]) << 32n) | BigInt(w[1])) >> BigInt(w[1] % 16);
    }),
  ];
  for (const id of ids) {
    const m = newMessage(MessageType.Heartbeat, id, maxId - id, 3);
    assertEquals(decodeMessage(encodeMessage(m)), m, `id ${id.toString(16)}`);
  }
  // Field 2 (to): ten bytes whose last carries more than the 64th bit; eleven bytes; cut short.
  const cont = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
  for (const bytes of [[0x10, ...cont, 0x02], [0x10, ...cont, 0x81, 0x00], [0x10, ...cont]]) {
    assertThrows(() => decodeMessage(new Uint8Array(bytes)), RaftDecodeError);
  }
  assertEquals(decodeMessage(new Uint8Array([0x10, ...cont, 0x01])).to, maxId);
});

Deno.test("codec: random corruption never crashes with anything but RaftDecodeError", () => {
  const good = encodeMessage(fullMessage());
  const rnd = seededRandomInt(42);
  for (let i = 0; i < 5000; i++) {
    const b = good.slice(0, rnd(good.length + 1));
    const flips = rnd(4);
    for (let j = 0; j < flips && b.length > 0; j++) b[rnd(b.length)] = rnd(256);
    try {
      decodeMessage(b);
    } catch (e) {
      assert(e instanceof RaftDecodeError, `iteration ${i}: ${e}`);
    }
  }
});

Deno.test("codec: encoding rejects values the wire cannot carry", () => {
  const m = newMessage(MessageType.App, 1n, 2n, 1);
  m.index = -1;
  assertThrows(() => encodeMessage(m), RangeError);
  assertThrows(() => encodeHardState({ term: 1, vote: 1n << 64n, commit: 0 }), RangeError);
});
