/**
 * Maintenance.Snapshot: the member's applied state as etcd's backend database (a bbolt file with
 * etcd's buckets, so real `etcdctl snapshot status|restore` and real etcd read it), streamed in
 * 32 KiB chunks with `remaining_bytes`, then the SHA-256 of the database as a last message, as
 * etcd's v3rpc does. The state is captured in one synchronous step (one applied index). With auth
 * on, only a root user may take it.
 */

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
import { toEtcdBuckets } from "../core/snapshot/mod.ts";
import { type BoltBucket, crc32c, encodeBolt } from "../core/storage/mod.ts";
import { compareBytes } from "../core/bytes.ts";
import { Errors } from "../core/errors.ts";
import type { AnyMethod, StreamMethod } from "./grpc.ts";
import { maintenanceCaller } from "./callers.ts";

/** etcd's snapshotSendBufferSize. */
const CHUNK_BYTES = 32 * 1024;

/** The etcd backend file of a member's current applied state. */
export function snapshotDb(node: EtcdNode): Uint8Array {
  const state = node.backendState();
  // The bbolt transaction id only orders the two meta pages; the applied index keeps it growing.
  return encodeBolt(toEtcdBuckets(state), { txid: Math.max(2, state.consistentIndex) });
}

/**
 * Maintenance.Hash: etcd's hash of the whole backend (CRC-32C over every bucket's name and its
 * keys and values in bbolt's order, the consistent index left out), of this member's own backend.
 */
export function hashResponse(node: EtcdNode): HashResponse {
  const state = node.backendState();
  const buckets: BoltBucket[] = [...toEtcdBuckets(state)].sort((a, b) =>
    compareBytes(a.name, b.name)
  );
  let crc = 0;
  for (const bucket of buckets) {
    crc = crc32c(bucket.name, crc);
    const meta = new TextDecoder().decode(bucket.name) === "meta";
    const entries = [...bucket.entries].sort((a, b) => compareBytes(a[0], b[0]));
    for (const [key, value] of entries) {
      if (meta && new TextDecoder().decode(key) === "consistent_index") continue;
      crc = crc32c(key, crc);
      crc = crc32c(value, crc);
    }
  }
  return create(HashResponseSchema, { header: node.header(), hash: crc });
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
      const db = snapshotDb(node);
      const total = db.length;
      logger?.info("v3rpc/maintenance.go:139", "sending database snapshot to client", {
        "total-bytes": total,
      });
      const sha = createHash("sha256");
      for (let sent = 0; sent < total;) {
        const blob = db.subarray(sent, Math.min(total, sent + CHUNK_BYTES));
        sent += blob.length;
        sha.update(blob);
        await send(create(SnapshotResponseSchema, { remainingBytes: BigInt(total - sent), blob }));
      }
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
