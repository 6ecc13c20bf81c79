import { create, toBinary } from "@bufbuild/protobuf";
import { KeyValueSchema } from "../../gen/mvccpb/kv_pb.ts";
import { assertEquals, assertThrows } from "../testing.ts";
import { decodeSnapshotBytes } from "../mvcc/snapshot_codec.ts";
import type { BoltBucket } from "../storage/bbolt.ts";
import { EtcdDbError, fromEtcdBuckets, revisionKey } from "./etcd_db.ts";

const enc = new TextEncoder();

function put(key: Uint8Array, main: number, version: number): [Uint8Array, Uint8Array] {
  return [
    revisionKey(main, 0),
    toBinary(
      KeyValueSchema,
      create(KeyValueSchema, {
        key,
        value: enc.encode(`v${main}`),
        createRevision: BigInt(main - version + 1),
        modRevision: BigInt(main),
        version: BigInt(version),
      }),
    ),
  ];
}

function backend(keys: Array<[Uint8Array, Uint8Array]>, meta: Array<[string, Uint8Array]>) {
  const buckets: BoltBucket[] = [
    { name: enc.encode("key"), entries: keys },
    { name: enc.encode("meta"), entries: meta.map(([k, v]) => [enc.encode(k), v]) },
  ];
  return buckets;
}

Deno.test("a compaction etcd scheduled but did not finish is finished on restore, per binary key", () => {
  // Two keys that are not UTF-8 (they would both decode to U+FFFD) with revisions 2..5.
  const a = new Uint8Array([0xff]);
  const b = new Uint8Array([0xfe]);
  const restored = fromEtcdBuckets(backend(
    [put(a, 2, 1), put(b, 3, 1), put(a, 4, 2), put(b, 5, 2)],
    [["scheduledCompactRev", revisionKey(4, 0)], ["finishedCompactRev", revisionKey(2, 0)]],
  ));
  const snap = decodeSnapshotBytes(restored.mvcc);
  assertEquals(snap.compactMainRev, 4);
  // At or below 4 each key keeps its latest revision (a@4, b@3); above 4 everything stays.
  assertEquals(snap.entries.map((e) => e.main), [3, 4, 5]);
  assertEquals(restored.revision, 5);
});

Deno.test("restore refuses what is not etcd's backend or holds auth it would drop", () => {
  assertThrows(() => fromEtcdBuckets([]), EtcdDbError, 'no "key" or "meta" bucket');
  const withUser = [
    ...backend([], []),
    { name: enc.encode("authUsers"), entries: [[enc.encode("root"), new Uint8Array([1])]] },
  ] as BoltBucket[];
  assertThrows(() => fromEtcdBuckets(withUser), EtcdDbError, "authUsers");
  const enabled = [
    ...backend([], []),
    { name: enc.encode("auth"), entries: [[enc.encode("authEnabled"), new Uint8Array([1])]] },
  ] as BoltBucket[];
  assertThrows(() => fromEtcdBuckets(enabled), EtcdDbError, "auth enabled");
});
