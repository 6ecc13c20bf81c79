/**
 * Byte format of an MVCC snapshot: the revision, the compact revision and every stored revision
 * in order. Self-describing enough to reject foreign or truncated input loudly.
 *
 *   "DMVC" version(1) | uvarint revision | uvarint (compactMainRev + 1) | uvarint count |
 *   count x ( uvarint main | uvarint sub | u8 tombstone | uvarint len | KeyValue protobuf )
 *
 * A tombstone's KeyValue carries only the key.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type KeyValue, KeyValueSchema } from "../../gen/mvccpb/kv_pb.ts";
import { assert } from "../assert.ts";

/** One stored revision as it travels in a snapshot. */
export interface SnapshotEntry {
  main: number;
  sub: number;
  tombstone: boolean;
  kv: KeyValue;
}

/** What a snapshot holds. */
export interface DecodedSnapshot {
  revision: number;
  /** -1 when never compacted, as in etcd. */
  compactMainRev: number;
  entries: SnapshotEntry[];
}

const MAGIC = [0x44, 0x4d, 0x56, 0x43]; // "DMVC"
const FORMAT_VERSION = 1;

class Writer {
  #buf = new Uint8Array(1024);
  #len = 0;

  #ensure(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  byte(b: number): void {
    this.#ensure(1);
    this.#buf[this.#len++] = b;
  }

  uvarint(n: number): void {
    assert(Number.isSafeInteger(n) && n >= 0, "uvarint needs a non-negative safe integer");
    this.#ensure(10);
    while (n >= 0x80) {
      this.#buf[this.#len++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.#buf[this.#len++] = n;
  }

  bytes(b: Uint8Array): void {
    this.uvarint(b.length);
    this.#ensure(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
  }

  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

class Reader {
  #pos = 0;
  constructor(readonly buf: Uint8Array) {}

  get done(): boolean {
    return this.#pos >= this.buf.length;
  }

  byte(): number {
    assert(this.#pos < this.buf.length, "mvcc snapshot truncated");
    return this.buf[this.#pos++];
  }

  uvarint(): number {
    let n = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.byte();
      n += (b & 0x7f) * scale;
      if (b < 0x80) return n;
      scale *= 0x80;
    }
    throw new Error("mvcc snapshot: varint too long");
  }

  bytes(): Uint8Array {
    const len = this.uvarint();
    assert(this.#pos + len <= this.buf.length, "mvcc snapshot truncated");
    const out = this.buf.subarray(this.#pos, this.#pos + len);
    this.#pos += len;
    return out;
  }
}

/** Encodes a snapshot; entries must be in revision order. */
export function encodeSnapshotBytes(
  revision: number,
  compactMainRev: number,
  entries: readonly SnapshotEntry[],
): Uint8Array {
  const w = new Writer();
  for (const b of MAGIC) w.byte(b);
  w.byte(FORMAT_VERSION);
  w.uvarint(revision);
  w.uvarint(compactMainRev + 1);
  w.uvarint(entries.length);
  for (const e of entries) {
    w.uvarint(e.main);
    w.uvarint(e.sub);
    w.byte(e.tombstone ? 1 : 0);
    const kv = e.tombstone ? create(KeyValueSchema, { key: e.kv.key }) : e.kv;
    w.bytes(toBinary(KeyValueSchema, kv));
  }
  return w.finish();
}

/** Decodes encodeSnapshotBytes() output; throws on anything else. */
export function decodeSnapshotBytes(bytes: Uint8Array): DecodedSnapshot {
  const r = new Reader(bytes);
  for (const b of MAGIC) assert(r.byte() === b, "not an mvcc snapshot");
  assert(r.byte() === FORMAT_VERSION, "unsupported mvcc snapshot version");
  const revision = r.uvarint();
  const compactMainRev = r.uvarint() - 1;
  const count = r.uvarint();
  const entries: SnapshotEntry[] = [];
  for (let i = 0; i < count; i++) {
    const main = r.uvarint();
    const sub = r.uvarint();
    const tombstone = r.byte() === 1;
    const kv = fromBinary(KeyValueSchema, r.bytes());
    entries.push({ main, sub, tombstone, kv });
  }
  assert(r.done, "trailing bytes after mvcc snapshot");
  return { revision, compactMainRev, entries };
}
