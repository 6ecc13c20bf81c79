import { create, toBinary } from "@bufbuild/protobuf";
import { RangeResponseSchema, ResponseHeaderSchema } from "../gen/etcdserverpb/rpc_pb.ts";
import { KeyValueSchema } from "../gen/mvccpb/kv_pb.ts";
import { assert, assertEquals } from "../core/testing.ts";
import { CHUNKED_MIN_BYTES, chunkedRange } from "./chunked_response.ts";
import { concatBytes } from "../core/bytes.ts";
import { MvccStore } from "../core/mvcc/mod.ts";
import { range, rangeEntries, STREAMED_MIN_KVS } from "../core/node/kv/mod.ts";
import { RangeRequestSchema } from "../gen/etcdserverpb/rpc_pb.ts";
import { MemoryDisk } from "../core/storage/memory_disk.ts";
import { RevisionLog } from "../core/storage/revision_log.ts";

const enc = new TextEncoder();

function response(keys: number, valueBytes: number, more: boolean, count: bigint) {
  const kvs = [];
  for (let i = 0; i < keys; i++) {
    kvs.push(create(KeyValueSchema, {
      key: enc.encode(`key-${i}`),
      value: new Uint8Array(valueBytes).fill(i & 0xff),
      createRevision: BigInt(i + 2),
      modRevision: BigInt(2 * i + 2),
      version: BigInt(i % 7),
      lease: i % 3 === 0 ? 0x1234_5678_9abcn : 0n,
    }));
  }
  const header = create(ResponseHeaderSchema, {
    clusterId: 0xcdf818194e3a8c32n,
    memberId: 0x8e9e05c52164694dn,
    revision: 123456n,
    raftTerm: 7n,
  });
  return create(RangeResponseSchema, { header, kvs, more, count });
}

for (
  const [keys, valueBytes, more, count] of [
    [5000, 256, false, 5000n],
    [3000, 400, true, 1_000_000n],
    [2, 1_000_000, false, 2n], // values larger than a chunk
    [60000, 0, true, 0n], // keys only, count 0 left out
  ] as const
) {
  Deno.test(`a large RangeResponse in chunks is toBinary's bytes (${keys} kvs of ${valueBytes} bytes, more ${more}, count ${count})`, async () => {
    const res = response(keys, valueBytes, more, count);
    const chunked = await chunkedRange(res);
    assert(chunked !== null, "large enough to be chunked");
    const expected = toBinary(RangeResponseSchema, res);
    assertEquals(chunked.size, expected.length);
    const bytes = concatBytes(...chunked.chunks());
    assertEquals(bytes.length, expected.length);
    assert(bytes.every((b, i) => b === expected[i]), "same bytes");
  });
}

Deno.test("a small RangeResponse is not chunked", () => {
  assertEquals(chunkedRange(response(10, 256, false, 10n)), null);
  const justBelow = Math.floor(CHUNKED_MIN_BYTES / 300) - 10;
  assertEquals(chunkedRange(response(justBelow, 256, false, BigInt(justBelow))), null);
});

Deno.test("a range over many keys is sent from its entries: toBinary's bytes of the range as it was, whatever was written meanwhile", async () => {
  const log = await RevisionLog.open(new MemoryDisk(), "/revs", () => {}, { segmentBytes: 65536 });
  for (
    const store of [new MvccStore(), new MvccStore(undefined, { revisions: log, cacheBytes: 0 })]
  ) {
    const keys = STREAMED_MIN_KVS + 500;
    for (let i = 0; i < keys; i += 100) {
      const tx = store.write();
      for (let j = i; j < i + 100; j++) {
        tx.put(
          enc.encode(`key-${String(j).padStart(5, "0")}`),
          new Uint8Array(j % 300).fill(j),
          BigInt(j % 3),
        );
      }
      tx.end();
    }
    await log.flush();
    const header = create(ResponseHeaderSchema, { clusterId: 7n, memberId: 9n, revision: 5n });
    const requests = [
      { key: enc.encode("key-"), rangeEnd: enc.encode("key."), keysOnly: false },
      { key: enc.encode("key-"), rangeEnd: enc.encode("key."), keysOnly: true },
      {
        key: enc.encode("key-00100"),
        rangeEnd: enc.encode("key."),
        limit: BigInt(STREAMED_MIN_KVS + 7),
      },
    ];
    for (const init of requests) {
      const req = create(RangeRequestSchema, init);
      const plain = range(store, req);
      plain.header = header;
      const expected = toBinary(RangeResponseSchema, plain);
      const streamed = range(store, req, true);
      streamed.header = header;
      const message = chunkedRange(streamed);
      assert(message instanceof Promise, "sized in slices");
      // Taken: nothing left for another taker.
      assertEquals(rangeEntries(streamed), undefined);
      const chunked = await message;
      for (let i = 0; i < 50; i++) {
        const tx = store.write();
        tx.deleteRange(enc.encode(`key-${String(i * 20).padStart(5, "0")}`), new Uint8Array(0));
        tx.put(enc.encode(`key-${String(i * 20 + 1).padStart(5, "0")}`), enc.encode("new"), 0n);
        tx.end();
      }
      assertEquals(chunked.size, expected.length);
      const bytes = concatBytes(...chunked.chunks());
      assertEquals(bytes.length, expected.length);
      assert(bytes.every((b, i) => b === expected[i]), "same bytes");
    }
  }
});

Deno.test("a range over many keys whose kvs are read is made of KeyValues, as the plain range", () => {
  const store = new MvccStore();
  const keys = STREAMED_MIN_KVS * 2;
  const tx = store.write();
  for (let i = 0; i < keys; i++) tx.put(enc.encode(`k${i}`), enc.encode(`v${i}`), 0n);
  tx.end();
  const req = create(RangeRequestSchema, { key: enc.encode("k"), rangeEnd: enc.encode("l") });
  const streamed = range(store, req, true);
  assertEquals(streamed.kvs, range(store, req).kvs);
  assertEquals(streamed.kvs.length, keys);
  // Its kvs made: it is an ordinary response now.
  assertEquals(rangeEntries(streamed), undefined);
  // A small one, and a sorted one, never were entries.
  const few = create(RangeRequestSchema, { key: enc.encode("k10"), rangeEnd: enc.encode("k11") });
  assert(STREAMED_MIN_KVS > range(store, few).kvs.length);
  assertEquals(rangeEntries(range(store, few, true)), undefined);
  const sorted = create(RangeRequestSchema, { ...req, sortOrder: 2 });
  assertEquals(rangeEntries(range(store, sorted, true)), undefined);
});
