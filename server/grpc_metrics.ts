/**
 * The gRPC server's metrics as etcd 3.4.23 exposes them (go-grpc-prometheus and etcd's codec and
 * interceptors): calls started and handled per method and code, stream messages, bytes, and client
 * requests by `client-api-version`. Counted in plain numbers per method on the hot path; turned into
 * Prometheus families only when /metrics is read.
 */
import type { DescMethod } from "@bufbuild/protobuf";
import { GrpcCode, type GrpcCodeValue } from "../core/errors.ts";
import { type FamilySnapshot, goFloat, type Sample } from "../core/metrics.ts";
import { etcdServiceDescriptors } from "./service_descriptors.ts";

/** One method's counters. */
export interface MethodStats {
  service: string;
  method: string;
  type: "unary" | "server_stream" | "client_stream" | "bidi_stream";
  started: number;
  received: number;
  sent: number;
  /** Calls handled, by gRPC code. */
  handled: number[];
  /** Handling time histogram (--metrics extensive): counts per bucket, sum in seconds. */
  latency: { counts: number[]; sum: number; count: number };
}

/** Prometheus' DefBuckets, go-grpc-prometheus' handling-time buckets. */
const HANDLING_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
let handlingHistogram = false;

/** Client calls started, every protocol (a sign of activity for work done when quiet). */
let callsStarted = 0;

/** Client calls started so far. */
export function callsStartedTotal(): number {
  return callsStarted;
}

/** Counts a client call that callStarted() does not see (Connect). */
export function noteCall(): void {
  callsStarted++;
}

/** --metrics extensive: time every call (grpc_server_handling_seconds). */
export function enableHandlingTimeHistogram(): void {
  handlingHistogram = true;
}

const CODE_NAMES = Object.keys(GrpcCode) as (keyof typeof GrpcCode)[];

const stats = new Map<string, MethodStats>();
let receivedBytes = 0;
let sentBytes = 0;
/** Client requests by `client-api-version`, unary and stream apart. */
const clientRequests = { unary: new Map<string, number>(), stream: new Map<string, number>() };

const TYPE_OF: Record<DescMethod["methodKind"], MethodStats["type"]> = {
  unary: "unary",
  server_streaming: "server_stream",
  client_streaming: "client_stream",
  bidi_streaming: "bidi_stream",
};

// Every method starts at zero for every code, as go-grpc-prometheus initialises them.
for (const service of etcdServiceDescriptors) {
  for (const m of service.methods as DescMethod[]) {
    stats.set(`/${service.typeName}/${m.name}`, {
      service: service.typeName,
      method: m.name,
      type: TYPE_OF[m.methodKind],
      started: 0,
      received: 0,
      sent: 0,
      handled: CODE_NAMES.map(() => 0),
      latency: { counts: HANDLING_BUCKETS.map(() => 0), sum: 0, count: 0 },
    });
  }
}

/** The counters of the method at `path` (undefined for a path that is no method). */
export function methodStats(path: string): MethodStats | undefined {
  return stats.get(path);
}

/**
 * A call begins: started, and etcd's client request count by the client's API version. Returns
 * the start time for callHandled.
 */
export function callStarted(
  s: MethodStats | undefined,
  headers: Readonly<Record<string, string | string[] | undefined>>,
): number {
  callsStarted++;
  const now = handlingHistogram ? performance.now() : 0;
  if (s === undefined) return now;
  s.started++;
  const v = headers["client-api-version"];
  const version = (Array.isArray(v) ? v[0] : v) ?? "unknown";
  const counts = s.type === "unary" ? clientRequests.unary : clientRequests.stream;
  counts.set(version, (counts.get(version) ?? 0) + 1);
  return now;
}

/** A request message of `bytes` arrived. */
export function messageReceived(s: MethodStats | undefined, bytes: number): void {
  receivedBytes += bytes;
  if (s !== undefined) s.received++;
}

/** A response message of `bytes` went out. */
export function messageSent(s: MethodStats | undefined, bytes: number): void {
  sentBytes += bytes;
  if (s !== undefined) s.sent++;
}

/** A call that started at `startedMs` (callStarted's answer) ended with `code`. */
export function callHandled(
  s: MethodStats | undefined,
  code: GrpcCodeValue,
  startedMs: number,
): void {
  if (s === undefined) return;
  s.handled[code]++;
  if (!handlingHistogram) return;
  const seconds = (performance.now() - startedMs) / 1000;
  const h = s.latency;
  for (let i = 0; i < HANDLING_BUCKETS.length; i++) {
    if (seconds <= HANDLING_BUCKETS[i]) h.counts[i]++;
  }
  h.sum += seconds;
  h.count++;
}

function methodLabels(s: MethodStats): [string, string][] {
  return [["grpc_method", s.method], ["grpc_service", s.service], ["grpc_type", s.type]];
}

/** The families, in the registry's form. */
export function grpcFamilies(): FamilySnapshot[] {
  const all = [...stats.values()];
  const byLabels = (a: MethodStats, b: MethodStats) =>
    a.method !== b.method ? (a.method < b.method ? -1 : 1) : a.service < b.service ? -1 : 1;
  all.sort(byLabels);
  const perMethod = (pick: (s: MethodStats) => number): Sample[] =>
    all.map((s) => ({ suffix: "", labels: methodLabels(s), value: pick(s) }));
  const handled: Sample[] = [];
  const codes = CODE_NAMES.map((name, code) => ({ name, code }))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const { name, code } of codes) {
    for (const s of all) {
      handled.push({
        suffix: "",
        labels: [["grpc_code", name], ...methodLabels(s)],
        value: s.handled[code],
      });
    }
  }
  const requests: Sample[] = (["stream", "unary"] as const).flatMap((type) =>
    [...clientRequests[type].entries()].map(([version, value]): Sample => ({
      suffix: "",
      labels: [["client_api_version", version], ["type", type]],
      value,
    }))
  ).sort((a, b) =>
    a.labels[0][1] !== b.labels[0][1]
      ? (a.labels[0][1] < b.labels[0][1] ? -1 : 1)
      : a.labels[1][1] < b.labels[1][1]
      ? -1
      : 1
  );
  const histograms: FamilySnapshot[] = handlingHistogram
    ? [{
      name: "grpc_server_handling_seconds",
      help:
        "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
      type: "histogram",
      samples: all.flatMap((s): Sample[] => [
        ...HANDLING_BUCKETS.map((le, i): Sample => ({
          suffix: "_bucket",
          labels: [...methodLabels(s), ["le", goFloat(le)]],
          value: s.latency.counts[i],
        })),
        { suffix: "_bucket", labels: [...methodLabels(s), ["le", "+Inf"]], value: s.latency.count },
        { suffix: "_sum", labels: methodLabels(s), value: s.latency.sum },
        { suffix: "_count", labels: methodLabels(s), value: s.latency.count },
      ]),
    }]
    : [];
  return [
    ...histograms,
    {
      name: "etcd_network_client_grpc_received_bytes_total",
      help: "The total number of bytes received from grpc clients.",
      type: "counter",
      samples: [{ suffix: "", labels: [], value: receivedBytes }],
    },
    {
      name: "etcd_network_client_grpc_sent_bytes_total",
      help: "The total number of bytes sent to grpc clients.",
      type: "counter",
      samples: [{ suffix: "", labels: [], value: sentBytes }],
    },
    {
      name: "etcd_server_client_requests_total",
      help: "The total number of client requests per client version.",
      type: "counter",
      samples: requests,
    },
    {
      name: "grpc_server_handled_total",
      help: "Total number of RPCs completed on the server, regardless of success or failure.",
      type: "counter",
      samples: handled,
    },
    {
      name: "grpc_server_msg_received_total",
      help: "Total number of RPC stream messages received on the server.",
      type: "counter",
      samples: perMethod((s) => s.received),
    },
    {
      name: "grpc_server_msg_sent_total",
      help: "Total number of gRPC stream messages sent by the server.",
      type: "counter",
      samples: perMethod((s) => s.sent),
    },
    {
      name: "grpc_server_started_total",
      help: "Total number of RPCs started on the server.",
      type: "counter",
      samples: perMethod((s) => s.started),
    },
  ];
}
