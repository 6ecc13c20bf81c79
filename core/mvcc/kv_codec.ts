/**
 * Hand-rolled protobuf encoding of mvccpb.KeyValue, byte-identical to toBinary(KeyValueSchema)
 * (fields in number order, proto3 zero values omitted). Snapshots and HashKV encode every stored
 * revision; doing it without reflection or per-message allocation makes them several times faster.
 */
import { create } from "@bufbuild/protobuf";
import { type KeyValue, KeyValueSchema } from "../../gen/mvccpb/kv_pb.ts";
import { assert } from "../assert.ts";
import { writeIdBytes } from "../bytes.ts";
import { int64Size, putInt64, putUvarint, uvarintSize } from "../varint.ts";

const TWO_64 = 1n << 64n;
const TWO_63 = 1n << 63n;

/** A growable byte buffer. */
export class ByteWriter {
  #buf: Uint8Array;
  #len = 0;

  constructor(initialBytes = 1024) {
    this.#buf = new Uint8Array(initialBytes);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#len;
  }

  /** Forgets the content, keeping the buffer. */
  reset(): void {
    this.#len = 0;
  }

  #ensure(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  /** One byte. */
  byte(b: number): void {
    this.#ensure(1);
    this.#buf[this.#len++] = b;
  }

  /** Unsigned varint of a non-negative safe integer. */
  uvarint(n: number): void {
    assert(Number.isSafeInteger(n) && n >= 0, "uvarint needs a non-negative safe integer");
    this.#ensure(10);
    this.#len = putUvarint(this.#buf, this.#len, n);
  }

  /** Varint of an int64 (negative values take ten bytes, as in protobuf). */
  int64(v: bigint): void {
    this.#ensure(10);
    this.#len = putInt64(this.#buf, this.#len, v);
  }

  /** Raw bytes. */
  raw(b: Uint8Array): void {
    this.#ensure(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
  }

  /** Length-prefixed bytes. */
  bytes(b: Uint8Array): void {
    this.uvarint(b.length);
    this.raw(b);
  }

  /**
   * Length-prefixed bytes of a key given as its id (core/bytes.ts keyId: a character per byte),
   * written straight from the string: no array per key.
   */
  idBytes(id: string): void {
    this.uvarint(id.length);
    this.#ensure(id.length);
    this.#len = writeIdBytes(id, this.#buf, this.#len);
  }

  /** A view of the bytes written (valid until the next write or reset). */
  view(): Uint8Array {
    return this.#buf.subarray(0, this.#len);
  }

  /** A copy of the bytes written. */
  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

/** Writes kv's protobuf encoding (without a length prefix). */
export function writeKeyValue(w: ByteWriter, kv: KeyValue): void {
  if (kv.key.length > 0) {
    w.byte(0x0a);
    w.bytes(kv.key);
  }
  if (kv.createRevision !== 0n) {
    w.byte(0x10);
    w.int64(kv.createRevision);
  }
  if (kv.modRevision !== 0n) {
    w.byte(0x18);
    w.int64(kv.modRevision);
  }
  if (kv.version !== 0n) {
    w.byte(0x20);
    w.int64(kv.version);
  }
  if (kv.value.length > 0) {
    w.byte(0x2a);
    w.bytes(kv.value);
  }
  if (kv.lease !== 0n) {
    w.byte(0x30);
    w.int64(kv.lease);
  }
}

/** Number of bytes writeKeyValue() produces. */
export function keyValueSize(kv: KeyValue): number {
  let n = 0;
  if (kv.key.length > 0) n += 1 + uvarintSize(kv.key.length) + kv.key.length;
  if (kv.createRevision !== 0n) n += 1 + int64Size(kv.createRevision);
  if (kv.modRevision !== 0n) n += 1 + int64Size(kv.modRevision);
  if (kv.version !== 0n) n += 1 + int64Size(kv.version);
  if (kv.value.length > 0) n += 1 + uvarintSize(kv.value.length) + kv.value.length;
  if (kv.lease !== 0n) n += 1 + int64Size(kv.lease);
  return n;
}

/**
 * writeKeyValue() of a stored put's KeyValue without its value, from its fields as the store's
 * columns hold them (revisions and version are positive: every field is written). The key as
 * bytes, or as its id (core/bytes.ts keyId).
 */
export function writeKeyOnlyKeyValue(
  w: ByteWriter,
  key: Uint8Array | string,
  createRevision: number,
  modRevision: number,
  version: number,
  lease: bigint,
): void {
  w.byte(0x0a);
  if (typeof key === "string") w.idBytes(key);
  else w.bytes(key);
  w.byte(0x10);
  w.uvarint(createRevision);
  w.byte(0x18);
  w.uvarint(modRevision);
  w.byte(0x20);
  w.uvarint(version);
  if (lease !== 0n) {
    w.byte(0x30);
    w.int64(lease);
  }
}

/** Number of bytes writeKeyOnlyKeyValue() produces for a key of `keyBytes` bytes. */
export function keyOnlyKeyValueSize(
  keyBytes: number,
  createRevision: number,
  modRevision: number,
  version: number,
  lease: bigint,
): number {
  return 1 + uvarintSize(keyBytes) + keyBytes + 1 + uvarintSize(createRevision) + 1 +
    uvarintSize(modRevision) + 1 + uvarintSize(version) +
    (lease === 0n ? 0 : 1 + int64Size(lease));
}

/** Reads protobuf from a byte array. */
export class ByteReader {
  pos = 0;
  constructor(readonly buf: Uint8Array, readonly end: number = buf.length) {}

  /** One byte. */
  byte(): number {
    assert(this.pos < this.end, "truncated input");
    return this.buf[this.pos++];
  }

  /** Unsigned varint as a safe integer. */
  uvarint(): number {
    let n = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.byte();
      n += (b & 0x7f) * scale;
      if (b < 0x80) {
        assert(Number.isSafeInteger(n), "varint beyond 2^53");
        return n;
      }
      scale *= 0x80;
    }
    throw new Error("varint too long for a safe integer");
  }

  /** Varint as an int64. */
  int64(): bigint {
    // Revisions, versions and most lease IDs fit seven bytes (2^49): add them up as a number.
    let n = 0;
    let scale = 1;
    const start = this.pos;
    for (let i = 0; i < 7; i++) {
      const b = this.byte();
      n += (b & 0x7f) * scale;
      if (b < 0x80) return BigInt(n);
      scale *= 0x80;
    }
    // Random 64-bit lease IDs: the bits above 49 (at most 15) gathered in a number too, then one
    // bigint made of the two parts (the bits past the 64th, as protobuf's decoders, dropped).
    let high = 0;
    scale = 1;
    for (let i = 7; i < 10; i++) {
      const b = this.byte();
      high += (b & 0x7f) * scale;
      if (b < 0x80) {
        const u = (BigInt(high & 0x7fff) << 49n) | BigInt(n);
        return u >= TWO_63 ? u - TWO_64 : u;
      }
      scale *= 0x80;
    }
    this.pos = start;
    throw new Error("varint too long");
  }

  /** Length-prefixed bytes, as a view. */
  bytes(): Uint8Array {
    const len = this.uvarint();
    assert(this.pos + len <= this.end, "truncated input");
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
}

/** A copy of a view, so that a decoded value does not pin its input. */
const sliceCopy = (view: Uint8Array): Uint8Array => view.slice();

/**
 * Decodes a KeyValue from r up to `end`; bytes fields are copied (by `copy`: a plain slice unless
 * the caller keeps them somewhere, e.g. the store's arena) so the result does not pin the input.
 * Only the six KeyValue fields are accepted.
 */
export function readKeyValue(
  r: ByteReader,
  end: number,
  copy: (view: Uint8Array) => Uint8Array = sliceCopy,
): KeyValue {
  const kv = create(KeyValueSchema);
  while (r.pos < end) {
    const tag = r.byte();
    switch (tag) {
      case 0x0a:
        kv.key = copy(r.bytes());
        break;
      case 0x10:
        kv.createRevision = r.int64();
        break;
      case 0x18:
        kv.modRevision = r.int64();
        break;
      case 0x20:
        kv.version = r.int64();
        break;
      case 0x2a:
        kv.value = copy(r.bytes());
        break;
      case 0x30:
        kv.lease = r.int64();
        break;
      default:
        throw new Error(`unexpected KeyValue field tag ${tag}`);
    }
  }
  assert(r.pos === end, "KeyValue overruns its length");
  return kv;
}
