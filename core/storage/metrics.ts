/** The storage's etcd metrics (etcd 3.4.23's names, help texts, types and buckets). */
import { exponentialBuckets, Gauge, Histogram } from "../metrics.ts";

/** etcd's disk histograms: 1 ms to 8.192 s. */
const DISK_BUCKETS = exponentialBuckets(0.001, 2, 14);

export const walFsyncSeconds = new Histogram(
  "etcd_disk_wal_fsync_duration_seconds",
  "The latency distributions of fsync called by WAL.",
  DISK_BUCKETS,
);
export const walWriteBytes = new Gauge(
  "etcd_disk_wal_write_bytes_total",
  "Total number of bytes written in WAL.",
);
export const backendCommitSeconds = new Histogram(
  "etcd_disk_backend_commit_duration_seconds",
  "The latency distributions of commit called by backend.",
  DISK_BUCKETS,
);

export const snapshotFsyncSeconds = new Histogram(
  "etcd_snap_fsync_duration_seconds",
  "The latency distributions of fsync called by snap.",
  DISK_BUCKETS,
);

walFsyncSeconds.touch();
snapshotFsyncSeconds.touch();
backendCommitSeconds.touch();
walWriteBytes.set(0);
