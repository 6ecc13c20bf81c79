/** The MVCC store's etcd metrics (etcd 3.4.23's names, help texts, types and buckets). */
import { Counter, exponentialBuckets, Gauge, Histogram } from "../metrics.ts";

export const compactionKeys = new Counter(
  "etcd_debugging_mvcc_db_compaction_keys_total",
  "Total number of db keys compacted.",
);
export const compactionMilliseconds = new Histogram(
  "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds",
  "Bucketed histogram of db compaction total duration.",
  exponentialBuckets(100, 2, 14),
  "milliseconds",
);
compactionKeys.touch();
compactionMilliseconds.touch();
export const dbCompactionPauseMilliseconds = new Histogram(
  "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds",
  "Bucketed histogram of db compaction pause duration.",
  exponentialBuckets(1, 2, 13),
  "milliseconds",
);
export const indexCompactionPauseMilliseconds = new Histogram(
  "etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds",
  "Bucketed histogram of index compaction pause duration.",
  exponentialBuckets(0.5, 2, 14),
  "milliseconds",
);
dbCompactionPauseMilliseconds.touch();
indexCompactionPauseMilliseconds.touch();

/** Events handed to watchers (etcd 3.4 only ever adds to this gauge, as here). */
export const pendingEvents = new Gauge(
  "etcd_debugging_mvcc_pending_events_total",
  "Total number of pending events to be sent.",
);
pendingEvents.set(0);
