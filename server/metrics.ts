/**
 * `/metrics`: the Prometheus text etcd 3.4.23 serves, for the families that have a meaning in
 * detcd: the registry's counters, gauges and histograms (core/metrics.ts, updated where the work
 * happens), the gRPC server's (server/grpc_metrics.ts), the values read from the node at scrape
 * time, and the process collector's. etcd's names, help texts, types, labels and buckets;
 * families in name order, samples in label order, values as Go's client formats them.
 */
import {
  Counter,
  type FamilySnapshot,
  Gauge,
  goFloat,
  registeredFamilies,
} from "../core/metrics.ts";
import { type EtcdNode, idHex } from "../core/node/mod.ts";
import { clusterVersion, SERVER_VERSION } from "../core/node/mod.ts";
import { grpcFamilies } from "./grpc_metrics.ts";

export { goFloat };

function gauge(name: string, help: string, value: number, labels: [string, string][] = []) {
  return {
    name,
    help,
    type: "gauge" as const,
    samples: [{ suffix: "", labels, value }],
  };
}

/** The node's state as etcd's gauges report it. */
function nodeFamilies(node: EtcdNode): FamilySnapshot[] {
  const status = node.status();
  const watchers = node.watchable.counts;
  return [
    gauge(
      "etcd_debugging_auth_revision",
      "The current revision of auth store.",
      Number(node.auth.store.revision),
    ),
    gauge(
      "etcd_cluster_version",
      "Which version is running. 1 for 'cluster_version' label with current cluster version",
      1,
      // Major and minor, as etcd sets it (the cluster version "3.4.0" reads "3.4").
      [["cluster_version", clusterVersion.split(".").slice(0, 2).join(".")]],
    ),
    gauge(
      "etcd_debugging_mvcc_compact_revision",
      "The revision of the last compaction in store.",
      node.compactRevision,
    ),
    gauge("etcd_debugging_mvcc_current_revision", "The current revision of store.", node.revision),
    gauge(
      "etcd_debugging_mvcc_db_total_size_in_bytes",
      "Total size of the underlying database physically allocated in bytes.",
      Number(status.dbSize),
    ),
    gauge("etcd_debugging_mvcc_keys_total", "Total number of keys.", node.keyCount),
    gauge(
      "etcd_debugging_mvcc_slow_watcher_total",
      "Total number of unsynced slow watchers.",
      watchers.unsynced + watchers.victims,
    ),
    gauge(
      "etcd_debugging_mvcc_watcher_total",
      "Total number of watchers.",
      watchers.synced + watchers.unsynced + watchers.victims,
    ),
    gauge(
      "etcd_mvcc_db_open_read_transactions",
      "The number of currently open read transactions",
      node.openReads,
    ),
    gauge(
      "etcd_mvcc_db_total_size_in_bytes",
      "Total size of the underlying database physically allocated in bytes.",
      Number(status.dbSize),
    ),
    gauge(
      "etcd_mvcc_db_total_size_in_use_in_bytes",
      "Total size of the underlying database logically in use in bytes.",
      Number(status.dbSizeInUse),
    ),
    gauge(
      "etcd_server_has_leader",
      "Whether or not a leader exists. 1 is existence, 0 is not.",
      node.leader !== 0n ? 1 : 0,
    ),
    gauge(
      "etcd_server_id",
      "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
      1,
      [["server_id", idHex(node.memberId)]],
    ),
    gauge(
      "etcd_server_is_leader",
      "Whether or not this member is a leader. 1 if is, 0 otherwise.",
      node.isLeader ? 1 : 0,
    ),
    gauge(
      "etcd_server_is_learner",
      "Whether or not this member is a learner. 1 if is, 0 otherwise.",
      status.isLearner ? 1 : 0,
    ),
    gauge(
      "etcd_server_proposals_applied_total",
      "The total number of consensus proposals applied.",
      Number(status.raftAppliedIndex),
    ),
    gauge(
      "etcd_server_proposals_committed_total",
      "The total number of consensus proposals committed.",
      Number(status.raftIndex),
    ),
    gauge(
      "etcd_server_proposals_pending",
      "The current number of pending proposals to commit.",
      node.pendingProposals,
    ),
    gauge(
      "etcd_server_quota_backend_bytes",
      "Current backend storage quota size in bytes.",
      node.quotaBackendBytes,
    ),
    gauge(
      "etcd_server_version",
      "Which version is running. 1 for 'server_version' label with current version.",
      1,
      [["server_version", SERVER_VERSION]],
    ),
  ];
}

/** What Prometheus' process collector reads from /proc (Linux); nothing where /proc is absent. */
function processFamilies(): FamilySnapshot[] {
  const out: FamilySnapshot[] = [
    gauge(
      "process_resident_memory_bytes",
      "Resident memory size in bytes.",
      Deno.memoryUsage().rss,
    ),
  ];
  try {
    const stat = Deno.readTextFileSync("/proc/self/stat");
    // The fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = 100; // USER_HZ
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    const startTicks = Number(fields[19]);
    const vsize = Number(fields[20]);
    const btime = Number(/^btime (\d+)$/m.exec(Deno.readTextFileSync("/proc/stat"))?.[1] ?? 0);
    const limits = Deno.readTextFileSync("/proc/self/limits");
    const limit = (name: string) => {
      const m = new RegExp(`^${name}\\s+(\\S+)`, "m").exec(limits);
      return m === null || m[1] === "unlimited" ? 18446744073709551615 : Number(m[1]);
    };
    let fds = 0;
    for (const _ of Deno.readDirSync("/proc/self/fd")) fds++;
    const maxFds = limit("Max open files");
    out.push(
      {
        name: "process_cpu_seconds_total",
        help: "Total user and system CPU time spent in seconds.",
        type: "counter",
        samples: [{ suffix: "", labels: [], value: (utime + stime) / ticks }],
      },
      gauge("process_max_fds", "Maximum number of open file descriptors.", maxFds),
      gauge("process_open_fds", "Number of open file descriptors.", fds),
      gauge(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        btime + startTicks / ticks,
      ),
      gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", vsize),
      gauge(
        "process_virtual_memory_max_bytes",
        "Maximum amount of virtual memory available in bytes.",
        limit("Max address space"),
      ),
      gauge("os_fd_limit", "The file descriptor limit.", maxFds),
      gauge("os_fd_used", "The number of used file descriptors.", fds),
    );
  } catch {
    // No /proc: only what Deno itself reports.
  }
  return out;
}

/** HELP text escaping of the text format. */
function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

/** Label value escaping of the text format. */
function escapeLabel(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

const scrapes = new Counter(
  "promhttp_metric_handler_requests_total",
  "Total number of scrapes by HTTP status code.",
);
for (const code of ["200", "500", "503"]) scrapes.touch({ code });
const scrapesInFlight = new Gauge(
  "promhttp_metric_handler_requests_in_flight",
  "Current number of scrapes being served.",
);

/** The metrics page of `node`. */
export function renderMetrics(node: EtcdNode): string {
  scrapesInFlight.set(1);
  try {
    return renderFamilies(node);
  } finally {
    scrapesInFlight.set(0);
    scrapes.incWith({ code: "200" });
  }
}

function renderFamilies(node: EtcdNode): string {
  const families = [
    ...registeredFamilies(),
    ...grpcFamilies(),
    ...nodeFamilies(node),
    ...processFamilies(),
  ];
  families.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const lines: string[] = [];
  for (const f of families) {
    if (f.samples.length === 0) continue;
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = s.labels.length === 0
        ? ""
        : `{${s.labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`;
      lines.push(`${f.name}${s.suffix}${labels} ${goFloat(s.value)}`);
    }
  }
  return lines.join("\n") + "\n";
}
