/**
 * Maintenance.Snapshot: the member's applied state as etcd's backend database (a bbolt file with
 * etcd's buckets, so real `etcdctl snapshot status|restore` and real etcd read it), streamed in
 * 32 KiB chunks with `remaining_bytes`, then the SHA-256 of the database as a last message, as
 * etcd's v3rpc does. The state is captured at once (one applied index; the MVCC store as a view,
 * not a copy), then the file is planned and written page by page in slices while the member goes
 * on serving (docs/adr/0010-storage-that-scales.md). With auth on, only a root user may take it.
 */

import { backendSnapshotSeconds, hashSeconds } from "../core/node/metrics.ts";
import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import {
  type HashResponse,
  HashResponseSchema,
  Maintenance,
  SnapshotRequestSchema,
  SnapshotResponseSchema,
} from "../gen/etcdserverpb/rpc_pb.ts";
import type { EtcdNode } from "../core/node/mod.ts";
import type { Logger } from "../core/log.ts";
import { etcdDbSources, etcdDbWriter } from "../core/snapshot/mod.ts";
import { crc32c } from "../core/storage/mod.ts";
import { putUvarint, uvarintSize } from "../core/varint.ts";
import { GRPC_PREFIX_BYTES, putGrpcPrefix } from "../core/wire/mod.ts";
import { Errors } from "../core/errors.ts";
import type { AnyMethod, StreamMethod } from "./grpc.ts";
import { maintenanceCaller } from "./callers.ts";
import { Slicer } from "./slicer.ts";

/** etcd's snapshotSendBufferSize. */
const CHUNK_BYTES = 32 * 1024;

/** A chunk of the file: `blob` holds its bytes, inside `out`, what is handed on. */
export interface SnapshotChunk {
  out: Uint8Array;
  blob: Uint8Array;
}

/** Makes the buffer of the next chunk: `size` bytes of the file, `remaining` after them. */
export type ChunkAllocator = (size: number, remaining: number) => SnapshotChunk;

/** A chunk that is only the file's bytes. */
const plainChunk: ChunkAllocator = (size) => {
  const bytes = new Uint8Array(size);
  return { out: bytes, blob: bytes };
};

/**
 * A chunk that is a whole gRPC frame of a SnapshotResponse {remaining_bytes = 2, blob = 3}
 * (protobuf's encoding, as toBinary writes it: a zero remaining_bytes left out), so that the
 * file's bytes are copied once, into the frame that goes out.
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
 * The etcd backend file of a member's applied state at this moment, as chunks of `CHUNK_BYTES`
 * (the last one shorter): the view is taken at once (one applied index), then the file is planned
 * and written page by page in slices, so the member keeps serving and memory stays bounded by what
 * the consumer has not taken yet. Yields the file's total size first; `allocate` makes each
 * chunk's buffer.
 */
export async function* snapshotDbChunks(
  node: EtcdNode,
  allocate: ChunkAllocator = plainChunk,
): AsyncGenerator<{ total: number } | SnapshotChunk> {
  const state = node.backendState();
  try {
    const writer = etcdDbWriter(state);
    const slicer = new Slicer();
    for (const _ of writer.plan()) await slicer.pause();
    const total = writer.size;
    yield { total };
    let done = 0;
    const next = () => {
      const size = Math.min(CHUNK_BYTES, total - done);
      done += size;
      return allocate(size, total - done);
    };
    let chunk = total > 0 ? next() : null;
    let filled = 0;
    for (const page of writer.pages()) {
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
      await slicer.pause();
    }
    if (chunk !== null) throw new Error("snapshot: the file is shorter than planned");
  } finally {
    state.mvcc.close?.(); // whether sent whole or the client went away
  }
}

/**
 * Maintenance.Hash: etcd's hash of the whole backend (CRC-32C over every bucket's name and its
 * keys and values in bbolt's order, the consistent index left out), of this member's own backend,
 * from one view, computed in slices.
 */
export async function hashResponse(node: EtcdNode): Promise<HashResponse> {
  const timed = hashSeconds.startTimer();
  try {
    return await backendHash(node);
  } finally {
    timed();
  }
}

async function backendHash(node: EtcdNode): Promise<HashResponse> {
  const state = node.backendState();
  const sources = etcdDbSources(state);
  const header = node.header();
  const slicer = new Slicer();
  const consistentIndex = new TextEncoder().encode("consistent_index");
  const meta = new TextEncoder().encode("meta");
  let crc = 0;
  try {
    for (const source of sources) {
      crc = crc32c(source.name, crc);
      const isMeta = sameBytes(source.name, meta);
      for (let i = 0; i < source.length; i++) {
        const key = source.key(i);
        if (isMeta && sameBytes(key, consistentIndex)) continue;
        crc = crc32c(key, crc);
        crc = crc32c(source.value(i), crc);
        if ((i & 1023) === 1023) await slicer.pause();
      }
    }
  } finally {
    state.mvcc.close?.();
  }
  return create(HashResponseSchema, { header, hash: crc });
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export function snapshotMethod(node: EtcdNode, logger?: Logger): [string, AnyMethod] {
  const method: StreamMethod<typeof SnapshotRequestSchema, typeof SnapshotResponseSchema> = {
    kind: "stream",
    input: SnapshotRequestSchema,
    output: SnapshotResponseSchema,
    async handle(requests, send, ctx) {
      if (node.isLearner) throw Errors.notSupportedForLearner();
      if (ctx.headers["hasleader"] === "true" && node.leader === 0n) throw Errors.noLeader();
      // The whole key space and every user's password hash: root only when auth is on.
      await maintenanceCaller(node, ctx, "admin");
      for await (const _ of requests) break; // one SnapshotRequest, no fields
      const started = performance.now();
      const sha = createHash("sha256");
      let total = 0;
      let sent = 0;
      // Over gRPC each chunk is built as the frame that goes out (one copy of the file's bytes).
      const sendFrame = send.frame;
      const chunks = snapshotDbChunks(node, sendFrame ? snapshotResponseFrame : undefined);
      for await (const part of chunks) {
        if ("total" in part) {
          total = part.total;
          logger?.info("v3rpc/maintenance.go:139", "sending database snapshot to client", {
            "total-bytes": total,
          });
          continue;
        }
        sent += part.blob.length;
        sha.update(part.blob);
        if (sendFrame) {
          await sendFrame(part.out);
        } else {
          const remainingBytes = BigInt(total - sent);
          await send(create(SnapshotResponseSchema, { remainingBytes, blob: part.blob }));
        }
        if (ctx.signal.aborted) return;
      }
      backendSnapshotSeconds.observe((performance.now() - started) / 1000);
      const digest = new Uint8Array(sha.digest());
      logger?.info("v3rpc/maintenance.go:177", "sending database sha256 checksum to client", {
        "total-bytes": total,
        "checksum-size": digest.length,
      });
      await send(create(SnapshotResponseSchema, { remainingBytes: 0n, blob: digest }));
      logger?.info("v3rpc/maintenance.go:191", "successfully sent database snapshot to client", {
        "total-bytes": total,
        took: `${Math.round(performance.now() - started)}ms`,
      });
    },
  };
  return [`/${Maintenance.typeName}/${Maintenance.method.snapshot.name}`, method];
}
