/**
 * A NodeSnapshot read from where it lies (a snapshot file) without holding its MVCC store: the
 * other fields are small and decoded; field 1, the store's encoding (hundreds of MB with a large
 * key space), is left in place for MvccStore.restoreSteps to read a window at a time.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { type NodeSnapshot, NodeSnapshotSchema } from "../../gen/detcdpb/internal_pb.ts";
import { type ByteSource, sourceRange } from "../mvcc/mod.ts";

/** Protobuf wire types. */
const VARINT = 0;
const FIXED64 = 1;
const LEN = 2;
const FIXED32 = 5;

/** Bytes read at a time while the fields are walked. */
const WALK_WINDOW_BYTES = 64 * 1024;

/**
 * The NodeSnapshot in `source`: every field but `mvcc` decoded (it is left empty in `state`), and
 * the `mvcc` field's bytes as a range of the source. Fields may come in any order; throws on
 * anything that is not a NodeSnapshot's encoding.
 */
export function readNodeSnapshot(source: ByteSource): { state: NodeSnapshot; mvcc: ByteSource } {
  const window = new Uint8Array(WALK_WINDOW_BYTES);
  let windowAt = 0;
  let windowEnd = 0;
  const byteAt = (position: number): number => {
    if (position < windowAt || position >= windowEnd) {
      windowAt = position;
      windowEnd = position + source.readAt(window, position);
      if (position >= windowEnd) throw new Error("node snapshot truncated");
    }
    return window[position - windowAt];
  };
  const varintAt = (position: number): { value: number; end: number } => {
    // Up to ten bytes (any uint64; a length or a skipped value is what is used of it).
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      const b = byteAt(position + i);
      value += (b & 0x7f) * scale;
      if (b < 0x80) return { value, end: position + i + 1 };
      scale *= 0x80;
    }
    throw new Error("node snapshot: varint too long");
  };
  const copy = (from: number, to: number): Uint8Array => {
    const out = new Uint8Array(to - from);
    for (let at = 0; at < out.length;) {
      const n = source.readAt(out.subarray(at), from + at);
      if (n <= 0) throw new Error("node snapshot truncated");
      at += n;
    }
    return out;
  };
  const rest: Uint8Array[] = [];
  let mvcc: ByteSource | null = null;
  for (let position = 0; position < source.size;) {
    const start = position;
    const tag = varintAt(position);
    position = tag.end;
    const wireType = tag.value & 7;
    if (wireType === VARINT) {
      position = varintAt(position).end;
    } else if (wireType === FIXED64) {
      position += 8;
    } else if (wireType === FIXED32) {
      position += 4;
    } else if (wireType === LEN) {
      const length = varintAt(position);
      position = length.end + length.value;
      if (position > source.size) throw new Error("node snapshot truncated");
      if (tag.value >>> 3 === 1) {
        mvcc = sourceRange(source, length.end, length.value);
        continue;
      }
    } else {
      throw new Error(`node snapshot: wire type ${wireType}`);
    }
    if (position > source.size) throw new Error("node snapshot truncated");
    rest.push(copy(start, position));
  }
  let size = 0;
  for (const r of rest) size += r.length;
  const bytes = new Uint8Array(size);
  size = 0;
  for (const r of rest) {
    bytes.set(r, size);
    size += r.length;
  }
  return {
    state: fromBinary(NodeSnapshotSchema, bytes),
    mvcc: mvcc ?? { size: 0, readAt: () => 0 },
  };
}
