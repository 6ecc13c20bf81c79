/**
 * The member's own etcd metrics (names, help texts and types of etcd 3.4.23), updated where the
 * work happens; server/metrics.ts adds the values read from the node at scrape time.
 */
import { Counter, exponentialBuckets, Gauge, Histogram } from "../metrics.ts";

export const leaderChanges = new Counter(
  "etcd_server_leader_changes_seen_total",
  "The number of leader changes seen.",
);
export const proposalsFailed = new Counter(
  "etcd_server_proposals_failed_total",
  "The total number of failed proposals seen.",
);
export const slowApplies = new Counter(
  "etcd_server_slow_apply_total",
  "The total number of slow apply requests (likely overloaded from slow disk).",
);
export const readIndexesFailed = new Counter(
  "etcd_server_read_indexes_failed_total",
  "The total number of failed read indexes seen.",
);
export const slowReadIndexes = new Counter(
  "etcd_server_slow_read_indexes_total",
  "The total number of pending read indexes not in sync with leader's or timed out read index requests.",
);
export const learnerPromoteSuccesses = new Counter(
  "etcd_server_learner_promote_successes",
  "The total number of successful learner promotions while this member is leader.",
);
/** etcd keeps each mvcc counter under its current name and its older etcd_debugging_ one. */
function twin(what: string, help: string): { inc(): void } {
  const current = new Counter(`etcd_mvcc_${what}_total`, help);
  const old = new Counter(`etcd_debugging_mvcc_${what}_total`, help);
  current.touch();
  old.touch();
  return {
    inc() {
      current.inc();
      old.inc();
    },
  };
}
export const mvccPuts = twin("put", "Total number of puts seen by this member.");
export const mvccRanges = twin("range", "Total number of ranges seen by this member.");
export const mvccDeletes = twin("delete", "Total number of deletes seen by this member.");
export const mvccTxns = twin("txn", "Total number of txns seen by this member.");

for (
  const c of [
    leaderChanges,
    proposalsFailed,
    slowApplies,
    readIndexesFailed,
    slowReadIndexes,
    learnerPromoteSuccesses,
  ]
) c.touch();

export const hashSeconds = new Histogram(
  "etcd_mvcc_hash_duration_seconds",
  "The latency distribution of storage hash operation.",
  exponentialBuckets(0.01, 2, 15),
);
export const hashRevSeconds = new Histogram(
  "etcd_mvcc_hash_rev_duration_seconds",
  "The latency distribution of storage hash by revision operation.",
  exponentialBuckets(0.01, 2, 15),
);
export const defragSeconds = new Histogram(
  "etcd_disk_backend_defrag_duration_seconds",
  "The latency distribution of backend defragmentation.",
  exponentialBuckets(0.1, 2, 13),
);
export const defragInflight = new Gauge(
  "etcd_disk_defrag_inflight",
  "Whether or not defrag is active on the member. 1 means active, 0 means not.",
);
export const heartbeatSendFailures = new Counter(
  "etcd_server_heartbeat_send_failures_total",
  "The total number of leader heartbeat send failures (likely overloaded from slow disk).",
);
heartbeatSendFailures.touch();
export const snapshotMarshallingSeconds = new Histogram(
  "etcd_debugging_snap_save_marshalling_duration_seconds",
  "The marshalling cost distributions of save called by snapshot.",
  exponentialBuckets(0.001, 2, 14),
);
/** A follower's save of a leader's snapshot (etcd's .snap.db; here the restored revision log). */
export const receivedSnapshotSaveSeconds = new Histogram(
  "etcd_snap_db_save_total_duration_seconds",
  "The total latency distributions of v3 snapshot save",
  exponentialBuckets(0.1, 2, 10),
);
export const receivedSnapshotFsyncSeconds = new Histogram(
  "etcd_snap_db_fsync_duration_seconds",
  "The latency distributions of fsyncing .snap.db file",
  exponentialBuckets(0.001, 2, 14),
);
export const snapshotSaveSeconds = new Histogram(
  "etcd_debugging_snap_save_total_duration_seconds",
  "The total latency distributions of save called by snapshot.",
  exponentialBuckets(0.001, 2, 14),
);
for (
  const h of [
    hashSeconds,
    hashRevSeconds,
    defragSeconds,
    snapshotSaveSeconds,
    snapshotMarshallingSeconds,
    receivedSnapshotSaveSeconds,
    receivedSnapshotFsyncSeconds,
  ]
) {
  h.touch();
}
defragInflight.set(0);

export const totalPutBytes = new Gauge(
  "etcd_debugging_mvcc_total_put_size_in_bytes",
  "The total size of put kv pairs seen by this member.",
);
totalPutBytes.set(0);
export const snapshotApplyInProgress = new Gauge(
  "etcd_server_snapshot_apply_in_progress_total",
  "1 if the server is applying the incoming snapshot. 0 if none.",
);
snapshotApplyInProgress.set(0);
export const backendSnapshotSeconds = new Histogram(
  "etcd_disk_backend_snapshot_duration_seconds",
  "The latency distribution of backend snapshots.",
  exponentialBuckets(0.01, 2, 17),
);
backendSnapshotSeconds.touch();
