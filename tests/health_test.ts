/**
 * /health and /version over HTTP/1.1, side by side with etcd 3.4.23: status, the headers that
 * matter, body; a raised NOSPACE alarm makes /health 503 unless `?exclude=NOSPACE`; methods other
 * than GET get 405 with `Allow: GET`.
 */
import assert from "node:assert/strict";
import {
  AlarmRequest_AlarmAction,
  AlarmRequestSchema,
  AlarmResponseSchema,
  AlarmType,
  StatusRequestSchema,
  StatusResponseSchema,
} from "../gen/etcdserverpb/rpc_pb.ts";
import { AuthClient, must } from "./auth_client.ts";
import {
  assertReference,
  freePort,
  type MemberKind,
  requireReference,
  runCtl,
  SHARED_MEMBER_NAME,
  SHARED_PEER_URL,
  startMember,
} from "./harness.ts";

const reference = requireReference();

async function http(url: string, method = "GET"): Promise<string> {
  const res = await fetch(url, { method });
  const keep = ["content-type", "allow", "x-content-type-options"];
  const headers = keep.flatMap((h) => res.headers.has(h) ? [`${h}: ${res.headers.get(h)}`] : []);
  return `${method} ${new URL(url).pathname}${new URL(url).search} -> ${res.status}\n${
    headers.join("\n")
  }\n${JSON.stringify(await res.text())}`;
}

/** Raises an alarm for the member `client` talks to. */
async function raiseAlarm(client: AuthClient, alarm: AlarmType): Promise<void> {
  const status = must(
    await client.unary(
      "/etcdserverpb.Maintenance/Status",
      StatusRequestSchema,
      StatusResponseSchema,
      {},
    ),
    "status",
  );
  must(
    await client.unary(
      "/etcdserverpb.Maintenance/Alarm",
      AlarmRequestSchema,
      AlarmResponseSchema,
      { action: AlarmRequest_AlarmAction.ACTIVATE, memberID: status.header!.memberId, alarm },
    ),
    `raise ${AlarmType[alarm]}`,
  );
}

Deno.test({
  name: "/health and /version answer as etcd 3.4.23's, alarms and ?exclude= included",
  ignore: reference.ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    assertReference();
    const runs: string[][] = [];
    for (const kind of ["etcd", "detcd"] as MemberKind[]) {
      const member = await startMember({
        kind,
        name: SHARED_MEMBER_NAME,
        advertisePeerUrl: SHARED_PEER_URL,
      });
      const client = new AuthClient(member.endpoint);
      try {
        const base = `http://${member.endpoint}`;
        const out = [
          await http(`${base}/health`),
          await http(`${base}/health`, "POST"),
          await http(`${base}/version`, "POST"),
        ];
        await raiseAlarm(client, AlarmType.NOSPACE);
        out.push(
          await http(`${base}/health`),
          await http(`${base}/health?exclude=NOSPACE`),
          await http(`${base}/health?exclude=CORRUPT`),
          await http(`${base}/health?exclude=CORRUPT&exclude=NOSPACE`),
        );
        runs.push(out);
      } finally {
        client.close();
        await member.stop();
      }
    }
    const [etcd, detcd] = runs;
    assert.deepEqual(detcd, etcd);
    assert.match(etcd[0], /-> 200\n[^]*"\{\\"health\\":\\"true\\"\}"$/);
    assert.match(etcd[3], /-> 503\n[^]*"\{\\"health\\":\\"false\\"\}\\n"$/);
    assert.match(etcd[4], /-> 200/);
  },
});

/** etcd 3.4.23's metric families that have no meaning in detcd, and why. */
const NOT_SERVED: [RegExp, string][] = [
  [/^go_/, "the Go runtime's (detcd's process_* families are served)"],
  [/^etcd_server_go_version$/, "the Go version the server was built with"],
  [/^etcd_debugging_store_/, "the v2 store (detcd serves the v3 API only)"],
  [/^etcd_grpc_proxy_/, "etcd's gRPC proxy, not part of a member"],
  [
    /^etcd_debugging_disk_backend_commit_(rebalance|spill|write)_duration_seconds$/,
    "phases of a bbolt B+tree commit; the revision log appends and syncs (etcd_disk_backend_commit_duration_seconds)",
  ],
];

Deno.test({
  name:
    "/metrics: every family detcd serves is etcd 3.4.23's (help, type, value format), the others have no meaning in detcd; a fresh member's values match",
  ignore: reference.ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    assertReference();
    const pages: Record<string, string> = {};
    for (const kind of ["etcd", "detcd"] as MemberKind[]) {
      const member = await startMember({ kind, extraArgs: ["--quota-backend-bytes", "0"] });
      try {
        // One client request on each side: etcd_server_client_requests_total has samples only
        // once a request came, and the harness's readiness probe (etcdctl endpoint health, used
        // when the ready line is slow on a loaded machine) may or may not have sent one.
        const probe = await runCtl("etcdctl", [`--endpoints=${member.endpoint}`, "get", "k"]);
        assert.equal(probe.code, 0, probe.stderr);
        // etcd sets its cluster version (and etcd_cluster_version appears) a moment after it
        // starts serving: read the page once it is there, on both sides alike.
        const deadline = Date.now() + 10_000;
        do {
          pages[kind] = await (await fetch(`${member.clientUrl}/metrics`)).text();
          if (pages[kind].includes("\netcd_cluster_version{")) break;
          await new Promise((r) => setTimeout(r, 100));
        } while (Date.now() < deadline);
      } finally {
        await member.stop();
      }
    }
    const families = (page: string) => {
      // A sample belongs to the family whose HELP line came last (a histogram's _bucket, _sum
      // and _count lines included).
      const out = new Map<string, string[]>();
      let current = "";
      for (const line of page.split("\n")) {
        const head = /^# (?:HELP|TYPE) (\S+)/.exec(line);
        if (head) current = head[1];
        else if (line === "") continue;
        out.set(current, [...(out.get(current) ?? []), line]);
      }
      return out;
    };
    const etcd = families(pages.etcd);
    const detcd = families(pages.detcd);
    assert.ok(detcd.size >= 50, `${detcd.size} families`);
    // Every family of etcd's that detcd leaves out is one without a meaning in detcd.
    const unexplained = [...etcd.keys()].filter((name) =>
      name !== "" && !detcd.has(name) && !NOT_SERVED.some(([pattern]) => pattern.test(name))
    );
    assert.deepEqual(unexplained, [], "etcd families detcd does not serve");
    // (Not the db sizes: etcd's own follow bbolt's commit timing, 20480 or 24576 bytes for two
    // identical fresh members, see normaliseOutput.)
    const sameValue = [
      "etcd_debugging_mvcc_current_revision",
      "etcd_server_has_leader",
      "etcd_server_is_leader",
      "etcd_server_quota_backend_bytes",
    ];
    for (const [name, lines] of detcd) {
      const theirs = etcd.get(name);
      assert.ok(theirs, `etcd has no ${name}`);
      // HELP and TYPE lines are the same; values where a fresh member's must be.
      assert.deepEqual(lines.slice(0, 2), theirs.slice(0, 2), name);
      if (sameValue.includes(name)) assert.deepEqual(lines, theirs, name);
      else assert.match(lines[2], /^\S+ [0-9.e+]+$/, name);
    }
    // The client request both got counts under the same labels (etcdctl's API version, unary).
    const labelsOf = (lines: string[]) => lines.slice(2).map((l) => l.replace(/ \S+$/, ""));
    const requests = "etcd_server_client_requests_total";
    assert.deepEqual(labelsOf(detcd.get(requests)!), labelsOf(etcd.get(requests)!));
    // A histogram's buckets are etcd's, bound for bound.
    const bounds = (lines: string[]) => {
      const first = lines.find((l) => l.includes("_bucket{"));
      const series = first?.replace(/,?le="[^"]*"/, "").replace(/ \S+$/, "");
      return lines.filter((l) =>
        l.includes("_bucket{") && l.replace(/,?le="[^"]*"/, "").replace(/ \S+$/, "") === series
      ).map((l) => /le="([^"]*)"/.exec(l)![1]);
    };
    let histograms = 0;
    for (const [name, lines] of detcd) {
      if (!lines.includes(`# TYPE ${name} histogram`)) continue;
      histograms++;
      assert.deepEqual(bounds(lines), bounds(etcd.get(name)!), `${name} buckets`);
    }
    assert.ok(histograms >= 10, `${histograms} histograms`);
    // In name order, as the Prometheus client writes them.
    const names = [...detcd.keys()];
    assert.deepEqual(names, [...names].sort());
    assert.ok(pages.detcd.includes("etcd_server_quota_backend_bytes 2.147483648e+09\n"));
  },
});

Deno.test({
  name:
    "/livez and /readyz as etcd 3.5 serves them: ok, ?verbose, a CORRUPT alarm fails readyz only, ?exclude=, GET only",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // etcd 3.4.23 has no such probes (404): this follows etcd 3.5's health.go, with no local
    // reference to run side by side.
    const member = await startMember({ kind: "detcd" });
    const client = new AuthClient(member.endpoint);
    try {
      const base = `http://${member.endpoint}`;
      assert.equal(
        await http(`${base}/livez`),
        'GET /livez -> 200\ncontent-type: text/plain; charset=utf-8\n"ok"',
      );
      assert.equal(
        await http(`${base}/readyz?verbose`),
        "GET /readyz?verbose -> 200\ncontent-type: text/plain; charset=utf-8\n" +
          JSON.stringify(
            "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\nreadyz check passed\n",
          ),
      );
      assert.match(await http(`${base}/readyz`, "POST"), /-> 405\n[^]*allow: GET\n/);
      await raiseAlarm(client, AlarmType.CORRUPT);
      assert.equal(
        await http(`${base}/readyz`),
        "GET /readyz -> 503\ncontent-type: text/plain; charset=utf-8\nx-content-type-options: nosniff\n" +
          JSON.stringify(
            "[-]data_corruption failed: alarm activated: CORRUPT\n[+]serializable_read ok\n" +
              "[+]linearizable_read ok\nreadyz check failed\n",
          ),
      );
      assert.match(await http(`${base}/readyz?exclude=data_corruption`), /-> 200\n[^]*"ok"$/);
      assert.match(await http(`${base}/livez`), /-> 200\n[^]*"ok"$/);
    } finally {
      client.close();
      await member.stop();
    }
  },
});

Deno.test({
  name:
    "--listen-metrics-urls serves /metrics and /health only; --metrics extensive adds grpc_server_handling_seconds, as etcd",
  ignore: reference.ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    assertReference();
    const runs: string[][] = [];
    for (const kind of ["etcd", "detcd"] as MemberKind[]) {
      const metricsPort = freePort();
      const member = await startMember({
        kind,
        name: SHARED_MEMBER_NAME,
        advertisePeerUrl: SHARED_PEER_URL,
        extraArgs: [
          "--metrics",
          "extensive",
          "--listen-metrics-urls",
          `http://127.0.0.1:${metricsPort}`,
        ],
      });
      try {
        const base = `http://127.0.0.1:${metricsPort}`;
        const put = await runCtl("etcdctl", [`--endpoints=${member.endpoint}`, "put", "a", "b"]);
        assert.equal(put.code, 0, put.stderr);
        const page = await (await fetch(`${base}/metrics`)).text();
        // The put's histogram: every label and the count; which buckets it fell in is timing.
        const putHistogram = page.split("\n").filter((l) =>
          l.startsWith("grpc_server_handling_seconds") && l.includes('grpc_method="Put"')
        ).map((l) =>
          /_sum|_bucket\{(?!.*le="\+Inf")/.test(l) ? l.replace(/ [0-9.e+-]+$/, " <N>") : l
        );
        runs.push([
          await http(`${base}/health`),
          await http(`${base}/version`),
          await http(`${base}/v3/kv/range`, "POST"),
          (await http(`${base}/metrics`)).split("\n").slice(0, 2).join("\n"),
          page.split("\n").filter((l) =>
            l.startsWith("# ") && l.includes("grpc_server_handling_seconds")
          )
            .join("\n"),
          ...putHistogram,
        ]);
      } finally {
        await member.stop();
      }
    }
    const [etcd, detcd] = runs;
    assert.deepEqual(detcd, etcd);
    assert.match(etcd[0], /-> 200\n/);
    assert.match(etcd[1], /-> 404\n/);
    assert.ok(etcd.some((l) => /^grpc_server_handling_seconds_count\{.*Put.*\} 1$/.test(l)));
  },
});
