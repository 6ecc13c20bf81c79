/**
 * `/metrics`: the Prometheus text etcd 3.4.23 serves, for the families that have a meaning in detcd
 * so far (issue 13 lists the rest), with etcd's names, help texts and types, families in name order
 * and values formatted as Go's Prometheus client formats them (`2.147483648e+09`).
 */
import type { EtcdNode } from "../core/node/mod.ts";

interface Family {
  name: string;
  help: string;
  type: "gauge" | "counter";
  value: number;
}

/** The metrics page of `node`. */
export function renderMetrics(node: EtcdNode): string {
  const status = node.status();
  const families: Family[] = [
    {
      name: "etcd_debugging_mvcc_current_revision",
      help: "The current revision of store.",
      type: "gauge",
      value: node.revision,
    },
    {
      name: "etcd_debugging_mvcc_db_total_size_in_bytes",
      help: "Total size of the underlying database physically allocated in bytes.",
      type: "gauge",
      value: Number(status.dbSize),
    },
    {
      name: "etcd_mvcc_db_total_size_in_bytes",
      help: "Total size of the underlying database physically allocated in bytes.",
      type: "gauge",
      value: Number(status.dbSize),
    },
    {
      name: "etcd_mvcc_db_total_size_in_use_in_bytes",
      help: "Total size of the underlying database logically in use in bytes.",
      type: "gauge",
      value: Number(status.dbSizeInUse),
    },
    {
      name: "etcd_server_has_leader",
      help: "Whether or not a leader exists. 1 is existence, 0 is not.",
      type: "gauge",
      value: node.leader !== 0n ? 1 : 0,
    },
    {
      name: "etcd_server_is_leader",
      help: "Whether or not this member is a leader. 1 if is, 0 otherwise.",
      type: "gauge",
      value: node.isLeader ? 1 : 0,
    },
    {
      name: "etcd_server_proposals_applied_total",
      help: "The total number of consensus proposals applied.",
      type: "gauge",
      value: Number(status.raftAppliedIndex),
    },
    {
      name: "etcd_server_quota_backend_bytes",
      help: "Current backend storage quota size in bytes.",
      type: "gauge",
      value: node.quotaBackendBytes,
    },
    {
      name: "process_resident_memory_bytes",
      help: "Resident memory size in bytes.",
      type: "gauge",
      value: Deno.memoryUsage().rss,
    },
  ];
  families.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const lines: string[] = [];
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
    lines.push(`${f.name} ${goFloat(f.value)}`);
  }
  return lines.join("\n") + "\n";
}

/**
 * Go's strconv.FormatFloat(v, 'g', -1, 64), as the Prometheus client writes sample values: the
 * shortest digits, in exponent form when the exponent is below -4 or at least 6 (`20480`,
 * `2.147483648e+09`, `1e+06`, `1e-05`).
 */
export function goFloat(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v === 0) return Object.is(v, -0) ? "-0" : "0";
  const [mantissa, exponent] = v.toExponential().split("e");
  const exp = Number(exponent);
  if (exp < -4 || exp >= 6) {
    const sign = exp < 0 ? "-" : "+";
    return `${mantissa}e${sign}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  return String(v);
}
