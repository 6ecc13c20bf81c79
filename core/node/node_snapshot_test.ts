import { create, toBinary } from "@bufbuild/protobuf";
import { NodeSnapshotSchema } from "../../gen/detcdpb/internal_pb.ts";
import { assertEquals, assertThrows } from "../testing.ts";
import { bytesSource, readSource } from "../bytes.ts";
import { readNodeSnapshot } from "./node_snapshot.ts";

const mvcc = new Uint8Array(200_000).map((_, i) => i * 7);
const snapshot = create(NodeSnapshotSchema, {
  mvcc,
  members: [{ id: 0x8e9e05c52164694dn, name: "m1", peerUrls: ["http://127.0.0.1:2380"] }],
  removed: [3n, 4n],
  clusterVersion: "3.4.0",
  voters: [0x8e9e05c52164694dn],
  learners: [9n],
  leases: [{ id: 7n, ttl: 60n, remainingTtl: 12n }],
  auth: { enabled: true, everEnabled: true, revision: 5n },
});

Deno.test("a node snapshot read from a source leaves its store in place and decodes the rest", () => {
  const withoutStore = toBinary(NodeSnapshotSchema, { ...snapshot, mvcc: new Uint8Array(0) });
  // Field 1 first (as protobuf-es writes it) and last (as a member frames its snapshots).
  const first = toBinary(NodeSnapshotSchema, snapshot);
  const field = new Uint8Array([0x0a, 0xc0, 0x9a, 0x0c]); // field 1, 200,000 bytes
  const last = new Uint8Array([...withoutStore, ...field, ...mvcc]);
  for (const bytes of [first, last]) {
    const read = readNodeSnapshot(bytesSource(bytes));
    assertEquals(readSource(read.mvcc), mvcc);
    assertEquals(toBinary(NodeSnapshotSchema, read.state), withoutStore);
  }
  // No store at all: an empty one.
  assertEquals(readNodeSnapshot(bytesSource(withoutStore)).mvcc.size, 0);
});

Deno.test("a node snapshot cut short or not a protobuf is refused", () => {
  const bytes = toBinary(NodeSnapshotSchema, snapshot);
  assertThrows(() => readNodeSnapshot(bytesSource(bytes.subarray(0, 1000))), Error, "truncated");
  assertThrows(() => readNodeSnapshot(bytesSource(new Uint8Array([0x0f, 1]))), Error, "wire type");
});
