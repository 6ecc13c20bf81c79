/**
 * A snapshot's file cut into etcd's chunks (32 KiB blobs, the last one shorter), each chunk's
 * buffer made by an allocator: the bytes alone, or the whole gRPC frame of the SnapshotResponse
 * that carries them. Shared by the event loop's writer (server/snapshot_service.ts) and the
 * worker's (server/snapshot_worker.ts).
 */
import { putUvarint, uvarintSize } from "../core/varint.ts";
import { GRPC_PREFIX_BYTES, putGrpcPrefix } from "../core/wire/mod.ts";

/** etcd's snapshotSendBufferSize. */
export const CHUNK_BYTES = 32 * 1024;

/** A chunk of the file: `blob` holds its bytes, inside `out`, what is handed on. */
export interface SnapshotChunk {
  out: Uint8Array;
  blob: Uint8Array;
}

/** Makes the buffer of the next chunk: `size` bytes of the file, `remaining` after them. */
export type ChunkAllocator = (size: number, remaining: number) => SnapshotChunk;

/** A chunk that is only the file's bytes. */
export const plainChunk: ChunkAllocator = (size) => {
  const bytes = new Uint8Array(size);
  return { out: bytes, blob: bytes };
};

/**
 * A chunk that is a whole gRPC frame of a SnapshotResponse {remaining_bytes = 2, blob = 3}
 * (protobuf's encoding, as toBinary writes it: a zero remaining_bytes left out), so that the
 * file's bytes are copied once, into the frame that goes out. The blob is the frame's tail.
 */
export const snapshotResponseFrame: ChunkAllocator = (size, remaining) => {
  const message = (remaining > 0 ? 1 + uvarintSize(remaining) : 0) + 1 + uvarintSize(size) + size;
  const out = new Uint8Array(GRPC_PREFIX_BYTES + message);
  putGrpcPrefix(out, message);
  let at = GRPC_PREFIX_BYTES;
  if (remaining > 0) {
    out[at++] = 0x10; // field 2, varint
    at = putUvarint(out, at, remaining);
  }
  out[at++] = 0x1a; // field 3, length-delimited
  at = putUvarint(out, at, size);
  return { out, blob: out.subarray(at) };
};

/**
 * The chunks of a file of `total` bytes written as `pages` (each page's bytes used before the
 * next is asked for). Yields null after each page: a place to let other work run.
 */
export function* fileChunks(
  pages: Iterable<Uint8Array>,
  total: number,
  allocate: ChunkAllocator,
): Generator<SnapshotChunk | null> {
  let done = 0;
  const next = () => {
    const size = Math.min(CHUNK_BYTES, total - done);
    done += size;
    return allocate(size, total - done);
  };
  let chunk = total > 0 ? next() : null;
  let filled = 0;
  for (const page of pages) {
    for (let at = 0; at < page.length;) {
      if (chunk === null) throw new Error("snapshot: the file is longer than planned");
      const n = Math.min(page.length - at, chunk.blob.length - filled);
      chunk.blob.set(page.subarray(at, at + n), filled);
      filled += n;
      at += n;
      if (filled === chunk.blob.length) {
        yield chunk;
        chunk = done < total ? next() : null;
        filled = 0;
      }
    }
    yield null;
  }
  if (chunk !== null) throw new Error("snapshot: the file is shorter than planned");
}
