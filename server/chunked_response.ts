/**
 * Large unary responses written as they are encoded (etcd #12342: a range over a large key space
 * built its whole response in memory before sending). A RangeResponse carrying many KeyValues is
 * sized first (cheap: no bytes), then encoded in chunks of about CHUNK_BYTES that go out as the
 * client takes them, so the member never holds a second copy of the key space and keeps serving
 * between chunks. A range over many keys goes further: its response holds the range's entries
 * (positions in the store's columns), and no KeyValue object is made for them at all. The bytes
 * are the same as toBinary's.
 */
import { toBinary } from "@bufbuild/protobuf";
import { type RangeResponse, ResponseHeaderSchema } from "../gen/etcdserverpb/rpc_pb.ts";
import type { KeyValue } from "../gen/mvccpb/kv_pb.ts";
import { ByteWriter, keyValueSize, writeKeyValue } from "../core/mvcc/kv_codec.ts";
import { int64Size, uvarintSize } from "../core/varint.ts";
import type { RangeEntries } from "../core/mvcc/mod.ts";
import { rangeEntries } from "../core/node/kv/mod.ts";
import { Slicer } from "./slicer.ts";

/**
 * A response message to be written in pieces: its encoded size, then its bytes in order. close()
 * when it will not be written (or not to its end: returning from chunks() closes it too).
 */
export interface ChunkedMessage {
  readonly size: number;
  chunks(): Generator<Uint8Array>;
  close(): void;
}

/** Chunks of about this many bytes. */
const CHUNK_BYTES = 64 * 1024;

/** Responses estimated smaller than this are encoded at once (toBinary). */
export const CHUNKED_MIN_BYTES = 1024 * 1024;

/**
 * A RangeResponse as a ChunkedMessage when it is large (at least CHUNKED_MIN_BYTES, or its kvs
 * still the range's entries: see streamedRange()), else null. Fields in field-number order, as
 * toBinary writes them: header, kvs, more, count.
 */
export function chunkedRange(res: RangeResponse): ChunkedMessage | Promise<ChunkedMessage> | null {
  const entries = rangeEntries(res);
  if (entries !== undefined) return streamedRange(res, entries);
  const kvs = res.kvs;
  // An upper bound first (a KeyValue's fields other than key and value take at most 48 bytes):
  // most responses are small and need no exact sizing.
  let bound = 0;
  for (const kv of kvs) bound += kv.key.length + kv.value.length + 64;
  if (bound < CHUNKED_MIN_BYTES) return null;
  const source = kvsOf(kvs);
  let kvsBytes = 0;
  for (let i = 0; i < source.length; i++) kvsBytes += kvFieldBytes(source.size(i));
  if (kvsBytes < CHUNKED_MIN_BYTES) return null;
  return rangeMessage(res, source, kvsBytes);
}

/** A response's KeyValues as rangeMessage() writes them: a RangeEntries, or kvsOf() an array. */
type KvsSource = Pick<RangeEntries, "length" | "size" | "write" | "close">;

/** KeyValue objects as a KvsSource. */
function kvsOf(kvs: KeyValue[]): KvsSource {
  return {
    length: kvs.length,
    size: (i) => keyValueSize(kvs[i]),
    write: (w, i) => writeKeyValue(w, kvs[i]),
    close() {},
  };
}

/** The bytes of a `kvs` field holding a KeyValue of `size` bytes. */
function kvFieldBytes(size: number): number {
  return 1 + uvarintSize(size) + size;
}

/**
 * A RangeResponse whose kvs are still the range's entries: scanned and sized in slices (the
 * member serves between them), then encoded entry by entry as the chunks are taken, without a
 * KeyValue object per key.
 */
async function streamedRange(res: RangeResponse, entries: RangeEntries): Promise<ChunkedMessage> {
  let kvsBytes = 0;
  try {
    const slicer = new Slicer();
    while (!entries.scanned) {
      entries.scanSome();
      await slicer.pause();
    }
    for (let i = 0; i < entries.length; i++) {
      kvsBytes += kvFieldBytes(entries.size(i));
      if ((i & 1023) === 1023) await slicer.pause();
    }
  } catch (e) {
    entries.close();
    throw e;
  }
  return rangeMessage(res, entries, kvsBytes);
}

/**
 * The response written in chunks of about CHUNK_BYTES: header, each KeyValue of `kvs` (sized
 * `kvsBytes` as fields), then `more` and `count`. `kvs` is closed once written, or when the
 * message is closed unwritten.
 */
function rangeMessage(res: RangeResponse, kvs: KvsSource, kvsBytes: number): ChunkedMessage {
  const header = res.header ? toBinary(ResponseHeaderSchema, res.header) : null;
  const headBytes = header ? 1 + uvarintSize(header.length) + header.length : 0;
  const tailBytes = (res.more ? 2 : 0) + (res.count !== 0n ? 1 + int64Size(res.count) : 0);
  return {
    size: headBytes + kvsBytes + tailBytes,
    *chunks() {
      try {
        const w = new ByteWriter(CHUNK_BYTES + 1024);
        if (header) {
          w.byte(0x0a);
          w.bytes(header);
        }
        for (let i = 0; i < kvs.length; i++) {
          w.byte(0x12);
          w.uvarint(kvs.size(i));
          kvs.write(w, i);
          if (w.length >= CHUNK_BYTES) {
            yield w.finish();
            w.reset();
          }
        }
        if (res.more) {
          w.byte(0x18);
          w.byte(1);
        }
        if (res.count !== 0n) {
          w.byte(0x20);
          w.int64(res.count);
        }
        if (w.length > 0) yield w.finish();
      } finally {
        kvs.close();
      }
    },
    close() {
      kvs.close();
    },
  };
}
