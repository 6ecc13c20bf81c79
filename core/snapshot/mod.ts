/**
 * detcd's applied state as etcd 3.4's backend database (the buckets of its bbolt file) and back:
 * what `snapshot save` streams, `snapshot status` hashes and `snapshot restore` reads, so that
 * snapshots move both ways between detcd and real etcd. Pure values in and out; the bbolt page
 * format itself is core/storage's (`encodeBolt`, `decodeBolt`).
 *
 * @example
 * ```ts
 * import { dbStatus, keyBucket, revisionKey } from "./mod.ts";
 * import { decodeBolt, encodeBolt } from "../storage/mod.ts";
 *
 * // A one-revision `key` bucket, written as etcd's bbolt file and read back as etcdctl would.
 * const file = encodeBolt([{ name: keyBucket, entries: [[revisionKey(2, 0), new Uint8Array()]] }]);
 * const { revision, totalKey } = dbStatus(decodeBolt(file)); // 2, 1
 * ```
 *
 * @module
 */
export {
  type BackendState,
  type DbStatus,
  dbStatus,
  EtcdDbError,
  etcdDbSources,
  etcdDbWriter,
  fromEtcdBuckets,
  keyBucket,
  type RestoredBackend,
  revisionKey,
  toEtcdBuckets,
} from "./etcd_db.ts";
