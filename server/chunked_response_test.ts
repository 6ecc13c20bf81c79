import { create, toBinary } from "@bufbuild/protobuf";
import { RangeResponseSchema, ResponseHeaderSchema } from "../gen/etcdserverpb/rpc_pb.ts";
import { KeyValueSchema } from "../gen/mvccpb/kv_pb.ts";
import { assert, assertEquals } from "../core/testing.ts";
import { CHUNKED_MIN_BYTES, chunkedRange } from "./chunked_response.ts";
import { concatBytes } from "../core/bytes.ts";

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
  Deno.test(`a large RangeResponse in chunks is toBinary's bytes (${keys} kvs of ${valueBytes} bytes, more ${more}, count ${count})`, () => {
    const res = response(keys, valueBytes, more, count);
    const chunked = chunkedRange(res);
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
