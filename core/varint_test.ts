import assert from "node:assert/strict";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import {
  int64Size,
  putInt64,
  putUvarint,
  putUvarint64,
  uvarint64Size,
  uvarintSize,
} from "./varint.ts";

const numbers = [
  0,
  1,
  0x7f,
  0x80,
  0x3fff,
  0x4000,
  0x1fffff,
  0x200000,
  0xfffffff,
  0x10000000,
  2 ** 31,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 35 + 7,
  2 ** 49,
  Number.MAX_SAFE_INTEGER,
];
const bigints = [
  ...numbers.map(BigInt),
  2n ** 53n,
  2n ** 56n - 1n,
  2n ** 63n,
  2n ** 64n - 1n,
  2n ** 56n,
  2n ** 63n - 1n,
  0xaa25f76279e90820n, // a member ID
  0x694d7c1b5ea1b004n, // a lease ID
  (1n << 32n) + 0x7fn,
  (0x7fn << 32n) | 0xffffffffn,
  // Random 64-bit values, as member and lease IDs are.
  ...Array.from({ length: 200 }, () => {
    const words = crypto.getRandomValues(new Uint32Array(2));
    return (BigInt(words[0]) << BigInt(words[1] % 33)) | BigInt(words[1]);
  }),
  ...Array.from({ length: 200 }, () => {
    const words = crypto.getRandomValues(new Uint32Array(2));
    return (BigInt(words[0]) << 32n) | BigInt(words[1]);
  }),
];

Deno.test("uvarintSize and putUvarint match protobuf's uint64 varint for safe integers", () => {
  for (const n of numbers) {
    const want = new BinaryWriter().uint64(n).finish();
    const out = new Uint8Array(uvarintSize(n) + 2);
    const end = putUvarint(out, 1, n);
    assert.equal(uvarintSize(n), want.length, `size of ${n}`);
    assert.equal(end, 1 + want.length, `end of ${n}`);
    assert.deepEqual(out.subarray(1, end), want, `bytes of ${n}`);
  }
});

Deno.test("uvarint64Size and putUvarint64 match protobuf's uint64 varint up to 2^64 - 1", () => {
  for (const v of bigints) {
    const want = new BinaryWriter().uint64(v).finish();
    const out = new Uint8Array(uvarint64Size(v));
    assert.equal(uvarint64Size(v), want.length, `size of ${v}`);
    assert.equal(putUvarint64(out, 0, v), want.length, `end of ${v}`);
    assert.deepEqual(out, want, `bytes of ${v}`);
  }
});

Deno.test("int64Size and putInt64 match protobuf's int64: negative values take ten bytes", () => {
  const values = [...bigints.filter((v) => v < 2n ** 63n), -1n, -2n, -(2n ** 32n), -(2n ** 63n)];
  for (const v of values) {
    const want = new BinaryWriter().int64(v).finish();
    const out = new Uint8Array(int64Size(v));
    assert.equal(int64Size(v), want.length, `size of ${v}`);
    assert.equal(putInt64(out, 0, v), want.length, `end of ${v}`);
    assert.deepEqual(out, want, `bytes of ${v}`);
  }
  assert.equal(int64Size(-1n), 10);
});
