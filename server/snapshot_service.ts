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
import { backendBuckets, type BackendState, backendTxid } from "../core/snapshot/etcd_db.ts";
import type { StoredColumns } from "../core/mvcc/snapshot_codec.ts";
import { crc32c } from "../core/storage/mod.ts";
import { Errors } from "../core/errors.ts";
import type { AnyMethod, StreamMethod } from "./grpc.ts";
import { maintenanceCaller } from "./callers.ts";
import { PACED_SLICE_MS, Slicer } from "./slicer.ts";
import {
  CHUNK_BYTES,
  chunksOf,
  fileChunks,
  type SnapshotChunks,
  snapshotResponseFrameSize,
  writeSnapshotResponseFrame,
} from "./snapshot_chunks.ts";
import { ringSlot } from "./snapshot_protocol.ts";
import { SnapshotWorker, snapshotWorkers, stepped } from "./snapshot_writer.ts";

export { type SnapshotChunks } from "./snapshot_chunks.ts";
export { snapshotWorkers };

/** A snapshot file's size, the first thing known of it, and who writes it. */
export interface SnapshotSize {
  total: number;
  /** Written by a worker (else on the event loop). */
  inWorker: boolean;
}

/** The SHA-256 of the whole file, after its last chunk (etcd sends it as a last message). */
export interface SnapshotDigest {
  sha256: Uint8Array;
}

/** What snapshotDbChunks yields: the size, the chunks (in runs), the digest. */
export type SnapshotPart = SnapshotSize | SnapshotChunks | SnapshotDigest;

/** How a snapshot's file is written. */
export interface SnapshotDbOptions {
  /** On the event loop, in slices, even where a worker could write it. */
  inThread?: boolean;
  logger?: Logger;
}

/**
 * The etcd backend file of a member's applied state at this moment, as chunks of `CHUNK_BYTES`
 * (the last one shorter; each valid until the next is asked for): the view is taken at once (one
 * applied index), then the file is planned and written page by page, so the member keeps serving
 * and memory stays bounded by what the consumer has not taken yet. Where the store's records are
 * all in the revision log's files, a worker writes it (server/snapshot_worker.ts) and the event
 * loop only passes the chunks on; else (a store in memory) the event loop writes it in slices.
 * Yields the file's total size first, its SHA-256 last.
 */
export async function* snapshotDbChunks(
  node: EtcdNode,
  options: SnapshotDbOptions = {},
): AsyncGenerator<SnapshotPart> {
  const state = node.backendState();
  let worker: SnapshotWorker | null = null;
  try {
    const slicer = new Slicer();
    let columns: StoredColumns | null | undefined = null;
    if (!options.inThread && state.mvcc.storedColumns) {
      worker = new SnapshotWorker();
      const into = await worker.memory(state.mvcc.length);
      columns = await stepped(
        state.mvcc.storedColumns(into ?? undefined),
        new Slicer(PACED_SLICE_MS),
      );
    }
    if (worker && columns) {
      const chunks = workerChunks(worker, state, columns);
      let first: IteratorResult<SnapshotPart>;
      try {
        first = await chunks.next();
      } catch (e) {
        // The worker could not start (its module missing from a build): the event loop writes it.
        options.logger?.warn("detcd/snapshot_service.ts", "snapshot worker failed to start", {
          error: e instanceof Error ? e.message : String(e),
        });
        first = { done: true, value: undefined };
      }
      if (!first.done) {
        try {
          yield first.value;
          yield* chunks;
        } finally {
          await chunks.return(undefined); // a consumer gone after the size: the worker ends too
        }
        return;
      }
    }
    worker?.end(); // a store in memory, or no worker: the event loop writes it
    const writer = etcdDbWriter(state);
    for (const _ of writer.plan()) await slicer.pause();
    const total = writer.size;
    yield { total, inWorker: false };
    const buffer = new Uint8Array(CHUNK_BYTES);
    const sha = createHash("sha256");
    for (const chunk of fileChunks(writer.pages(), total, () => buffer)) {
      if (chunk === null) {
        await slicer.pause();
        continue;
      }
      sha.update(chunk.blob);
      const { blob, remaining } = chunk;
      yield { sizes: [blob.length], blob: () => blob, remaining };
    }
    yield { sha256: new Uint8Array(sha.digest()) };
  } finally {
    worker?.end();
    state.mvcc.close?.(); // whether sent whole or the client went away
  }
}

/**
 * The chunks of `state`'s file as the worker writes them from `columns`: the size first, then
 * each batch the worker filled (views of its ring slots, valid until the next part is asked for),
 * then the digest. The worker ends with the generator.
 */
async function* workerChunks(
  worker: SnapshotWorker,
  state: BackendState,
  columns: StoredColumns,
): AsyncGenerator<SnapshotPart> {
  const format = {
    kind: "etcd-db",
    buckets: backendBuckets(state),
    txid: backendTxid(state),
  } as const;
  let remaining = 0;
  for await (const part of worker.batches(format, columns)) {
    if ("total" in part) {
      remaining = part.total;
      yield { total: part.total, inWorker: true };
    } else if ("sizes" in part) {
      for (const size of part.sizes) remaining -= size;
      const { ring, first, sizes } = part;
      yield { sizes, blob: (i) => ringSlot(ring, first + i, sizes[i]), remaining };
    } else {
      if (part.sha256 === null) throw new Error("snapshot: no checksum");
      yield { sha256: part.sha256 };
    }
  }
}

/** How long chunks are passed on before the event loop is let turn (measured at 1M keys). */
const SEND_SLICE_MS = 1;

/**
 * A chunk's SnapshotResponse frame, written where the connection says (send.frameWithNow): one
 * object and one fill function for all of a snapshot's chunks, not a closure and a promise each.
 */
class ChunkFrame {
  blob: Uint8Array = new Uint8Array(0);
  remaining = 0;
  readonly fill = (into: Uint8Array, at: number): void =>
    writeSnapshotResponseFrame(into, at, this.blob, this.remaining);

  get size(): number {
    return snapshotResponseFrameSize(this.blob.length, this.remaining);
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
      let total = 0;
      let digest: Uint8Array | null = null;
      // Over gRPC each chunk is written as its frame straight into the connection's output.
      const { frameWithNow, drained } = send;
      const frame = new ChunkFrame();
      const sending = new Slicer(SEND_SLICE_MS, "immediate");
      const chunks = snapshotDbChunks(node, { logger });
      for await (const part of chunks) {
        if ("total" in part) {
          total = part.total;
          logger?.info("v3rpc/maintenance.go:139", "sending database snapshot to client", {
            "total-bytes": total,
          });
          continue;
        }
        if ("sha256" in part) {
          digest = part.sha256;
          continue;
        }
        for (const { blob, remaining } of chunksOf(part)) {
          if (frameWithNow && drained) {
            frame.blob = blob;
            frame.remaining = remaining;
            if (!frameWithNow(frame.size, frame.fill)) await drained();
          } else {
            // The chunk's buffer is reused for a later chunk: the message gets its own copy.
            const remainingBytes = BigInt(remaining);
            await send(create(SnapshotResponseSchema, { remainingBytes, blob: blob.slice() }));
          }
          if (ctx.signal.aborted) return;
          // A socket that takes everything at once lets this loop go from chunk to chunk without
          // the event loop turning: let requests in between.
          if (sending.due()) await sending.pause();
        }
      }
      if (digest === null) throw new Error("snapshot: no checksum");
      backendSnapshotSeconds.observe((performance.now() - started) / 1000);
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
