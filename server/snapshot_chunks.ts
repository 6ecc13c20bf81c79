/**
 * A snapshot's file cut into etcd's chunks (32 KiB blobs, the last one shorter), and the gRPC frame
 * of the SnapshotResponse that carries one. Shared by the event loop's writer
 * (server/snapshot_service.ts) and the worker's (server/snapshot_worker.ts).
 */
import { putUvarint, uvarintSize } from "../core/varint.ts";
import { GRPC_PREFIX_BYTES, putGrpcPrefix } from "../core/wire/mod.ts";

/** etcd's snapshotSendBufferSize. */
export const CHUNK_BYTES = 32 * 1024;

/**
 * A chunk of the file: its bytes (a view of a buffer reused for a later chunk: valid until the
 * next chunk is asked for) and how many bytes of the file come after it.
 */
export interface SnapshotChunk {
  blob: Uint8Array;
  remaining: number;
}

/**
 * Consecutive chunks of the file (a batch the worker filled, or one chunk): chunk i is `sizes[i]`
 * bytes, `blob(i)` (a view valid until the next part is asked for); `remaining` bytes of the file
 * come after the last.
 */
export interface SnapshotChunks {
  sizes: readonly number[];
  blob(i: number): Uint8Array;
  remaining: number;
}

/** Chunk i of `run` with the bytes of the file that come after it. */
export function* chunksOf(run: SnapshotChunks): Generator<SnapshotChunk> {
  let remaining = run.remaining;
  for (const size of run.sizes) remaining += size;
  for (let i = 0; i < run.sizes.length; i++) {
    remaining -= run.sizes[i];
    yield { blob: run.blob(i), remaining };
  }
}

/**
 * Bytes of the gRPC frame of a SnapshotResponse {remaining_bytes = 2, blob = 3} carrying `size`
 * bytes with `remaining` after them.
 */
export function snapshotResponseFrameSize(size: number, remaining: number): number {
  return GRPC_PREFIX_BYTES + snapshotResponseSize(size, remaining);
}

function snapshotResponseSize(size: number, remaining: number): number {
  return (remaining > 0 ? 1 + uvarintSize(remaining) : 0) + 1 + uvarintSize(size) + size;
}

/**
 * Writes the gRPC frame of the SnapshotResponse carrying `blob` into `into` at `at`
 * (snapshotResponseFrameSize bytes): protobuf's encoding, as toBinary writes it (a zero
 * remaining_bytes left out), so that the file's bytes are copied once, into what goes out.
 */
export function writeSnapshotResponseFrame(
  into: Uint8Array,
  at: number,
  blob: Uint8Array,
  remaining: number,
): void {
  const message = snapshotResponseSize(blob.length, remaining);
  putGrpcPrefix(into, message, at);
  at += GRPC_PREFIX_BYTES;
  if (remaining > 0) {
    into[at++] = 0x10; // field 2, varint
    at = putUvarint(into, at, remaining);
  }
  into[at++] = 0x1a; // field 3, length-delimited
  at = putUvarint(into, at, blob.length);
  into.set(blob, at);
}

/**
 * The chunks of a file of `total` bytes written as `pages` (each page's bytes used before the
 * next is asked for), chunk i filled in `bufferFor(i)` (at least CHUNK_BYTES; a buffer may be
 * given again once its chunk was taken). Yields null after each page: a place to let other work
 * run.
 */
export function* fileChunks(
  pages: Iterable<Uint8Array>,
  total: number,
  bufferFor: (chunk: number) => Uint8Array,
): Generator<SnapshotChunk | null> {
  let index = 0;
  let done = 0;
  let size = Math.min(CHUNK_BYTES, total);
  let buffer = size > 0 ? bufferFor(0) : null;
  let filled = 0;
  for (const page of pages) {
    for (let at = 0; at < page.length;) {
      if (buffer === null) throw new Error("snapshot: the file is longer than planned");
      const n = Math.min(page.length - at, size - filled);
      buffer.set(page.subarray(at, at + n), filled);
      filled += n;
      at += n;
      if (filled === size) {
        done += size;
        yield { blob: buffer.subarray(0, size), remaining: total - done };
        index++;
        size = Math.min(CHUNK_BYTES, total - done);
        buffer = size > 0 ? bufferFor(index) : null;
        filled = 0;
      }
    }
    yield null;
  }
  if (buffer !== null) throw new Error("snapshot: the file is shorter than planned");
}
