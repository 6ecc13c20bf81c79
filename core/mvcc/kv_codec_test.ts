import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { KeyValueSchema } from "../../gen/mvccpb/kv_pb.ts";
import { keyId } from "../bytes.ts";
import {
  ByteReader,
  ByteWriter,
  keyOnlyKeyValueSize,
  keyValueSize,
  readKeyValue,
  writeKeyOnlyKeyValue,
  writeKeyValue,
} from "./kv_codec.ts";

const table = [
  { name: "empty", kv: create(KeyValueSchema) },
  { name: "key only (a tombstone)", kv: create(KeyValueSchema, { key: new Uint8Array([1, 2]) }) },
  {
    name: "typical",
    kv: create(KeyValueSchema, {
      key: new TextEncoder().encode("foo"),
      value: new TextEncoder().encode("bar"),
      createRevision: 2n,
      modRevision: 300n,
      version: 129n,
    }),
  },
  {
    name: "largest lease id and 2^53+ revisions",
    kv: create(KeyValueSchema, {
      key: new Uint8Array([0xff]),
      createRevision: 2n ** 53n + 1n,
      modRevision: 2n ** 62n,
      lease: 2n ** 63n - 1n,
    }),
  },
  {
    name: "around seven varint bytes (2^49), where decoding leaves its number fast path",
    kv: create(KeyValueSchema, {
      key: new Uint8Array([3]),
      createRevision: 2n ** 49n - 1n,
      modRevision: 2n ** 49n,
      version: 2n ** 49n + 1n,
      lease: 2n ** 56n - 1n,
    }),
  },
  {
    name: "negative int64s take ten bytes",
    kv: create(KeyValueSchema, { key: new Uint8Array([0]), version: -1n, lease: -(2n ** 63n) }),
  },
  {
    name: "multi-byte lengths",
    kv: create(KeyValueSchema, {
      key: new Uint8Array(200).fill(7),
      value: new Uint8Array(70000).fill(9),
    }),
  },
];

Deno.test("writeKeyValue is byte-identical to protobuf-es toBinary", () => {
  for (const t of table) {
    const w = new ByteWriter(4);
    writeKeyValue(w, t.kv);
    assert.deepEqual(w.finish(), toBinary(KeyValueSchema, t.kv), t.name);
    assert.equal(keyValueSize(t.kv), w.length, t.name);
  }
});

Deno.test("readKeyValue decodes what toBinary encodes, copying bytes out", () => {
  for (const t of table) {
    const bytes = toBinary(KeyValueSchema, t.kv);
    const kv = readKeyValue(new ByteReader(bytes), bytes.length);
    assert.deepEqual(kv, fromBinary(KeyValueSchema, bytes), t.name);
    if (kv.value.length > 0) assert.notEqual(kv.value.buffer, bytes.buffer, t.name);
  }
});

Deno.test("random 64-bit lease IDs and versions: written and read as protobuf-es does", () => {
  for (let i = 0; i < 500; i++) {
    const w32 = crypto.getRandomValues(new Uint32Array(3));
    const lease = BigInt.asIntN(64, (BigInt(w32[0]) << 32n) | BigInt(w32[1])) >>
      BigInt(w32[2] % 20);
    const kv = create(KeyValueSchema, {
      key: new Uint8Array([1]),
      lease,
      version: -lease,
      modRevision: BigInt(w32[2]),
    });
    const want = toBinary(KeyValueSchema, kv);
    const w = new ByteWriter(4);
    writeKeyValue(w, kv);
    assert.deepEqual(w.finish(), want, `lease ${lease}`);
    assert.deepEqual(
      readKeyValue(new ByteReader(want), want.length),
      fromBinary(KeyValueSchema, want),
    );
  }
});

Deno.test("readKeyValue rejects unknown fields and truncation", () => {
  assert.throws(() => readKeyValue(new ByteReader(new Uint8Array([0x38, 1])), 2));
  const bytes = toBinary(KeyValueSchema, table[2].kv);
  assert.throws(() => readKeyValue(new ByteReader(bytes.subarray(0, 4)), 4));
});

Deno.test("a key-only KeyValue from column fields is toBinary's encoding of it without its value", () => {
  const cases: [string, number, number, number, bigint][] = [
    ["a", 2, 2, 1, 0n],
    ["key/with/a/longer/name", 300, 70_000, 129, 0x1234_5678_9abcn],
    ["k".repeat(200), 2 ** 40, 2 ** 41, 2 ** 20, 7n],
  ];
  for (const [name, createRev, mod, version, lease] of cases) {
    const key = new TextEncoder().encode(name);
    const w = new ByteWriter(8);
    writeKeyOnlyKeyValue(w, key, createRev, mod, version, lease);
    const expected = toBinary(
      KeyValueSchema,
      create(KeyValueSchema, {
        key,
        createRevision: BigInt(createRev),
        modRevision: BigInt(mod),
        version: BigInt(version),
        lease,
      }),
    );
    assert.deepEqual(w.view(), expected, name);
    assert.equal(keyOnlyKeyValueSize(key.length, createRev, mod, version, lease), expected.length);
  }
});

Deno.test("a key-only KeyValue from a key's id is the same bytes as from the key: every byte value, long keys", () => {
  const keys = [
    Uint8Array.from({ length: 256 }, (_, i) => i), // every byte value, and a two-byte length
    new Uint8Array([0]),
    new Uint8Array([0x80, 0xff, 0x7f]),
    new TextEncoder().encode("k".repeat(20_000)),
  ];
  for (const key of keys) {
    const fromBytes = new ByteWriter(8);
    writeKeyOnlyKeyValue(fromBytes, key, 5, 9, 2, 3n);
    const fromId = new ByteWriter(8);
    writeKeyOnlyKeyValue(fromId, keyId(key), 5, 9, 2, 3n);
    assert.deepEqual(fromId.view(), fromBytes.view(), `key of ${key.length} bytes`);
    const decoded = fromBinary(KeyValueSchema, fromId.view());
    assert.deepEqual(decoded.key, key);
  }
});
