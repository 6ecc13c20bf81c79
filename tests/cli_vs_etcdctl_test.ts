/**
 * detcdctl against the real etcdctl 3.4.23, side by side on a real etcd 3.4.23.
 *
 * Every scenario is a script of command lines (with optional stdin and environment). It runs
 * once with `etcdctl` against a fresh etcd, then once with `deno run -A cli/main.ts` against
 * another fresh etcd started with the same name, URLs and token, so cluster and member IDs,
 * revisions and raft indexes are the same for both. stdout, stderr and exit codes of each step
 * must be identical after normalising what is legitimately different per run: log timestamps,
 * the random client id in log lines, and measured durations.
 *
 * Needs `etcd` and `etcdctl` 3.4.23 on PATH. Without them (or with another version) the test is
 * skipped, unless DETCD_REQUIRE_REFERENCE is `1` or `true`, in which case it fails.
 */

import assert from "node:assert/strict";
import { assertReference, freePort, requireReference } from "./harness.ts";

const repoRoot = new URL("..", import.meta.url).pathname;
const decoder = new TextDecoder();

interface Step {
  args: string[];
  stdin?: string;
  env?: Record<string, string>;
  /** Pass --endpoints for this step instead of ETCDCTL_ENDPOINTS (to test flags themselves). */
  noEndpointEnv?: boolean;
}

interface Outcome {
  stdout: string;
  stderr: string;
  code: number;
  /** Killed after STEP_TIMEOUT_MS: a failure even when both CLIs hang alike. */
  hung: boolean;
}

/** A step that has not ended after this long is killed and fails the scenario. */
const STEP_TIMEOUT_MS = 30_000;

function which(bin: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      const p = `${dir}/${bin}`;
      if (Deno.statSync(p).isFile) return p;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

const etcdBin = which("etcd");
const etcdctlBin = which("etcdctl");
/** Missing or not 3.4.23: ignored, unless DETCD_REQUIRE_REFERENCE (1 or true) makes it fail. */
const reference = requireReference();

/** A single-member etcd on 127.0.0.1 in its own temporary data directory. */
class Etcd {
  private proc?: Deno.ChildProcess;
  private dir?: string;
  constructor(
    readonly clientPort: number,
    readonly peerPort: number,
    readonly extraArgs: string[] = [],
  ) {}

  get endpoint(): string {
    return `127.0.0.1:${this.clientPort}`;
  }

  async start(): Promise<void> {
    this.dir = await Deno.makeTempDir({ prefix: "detcdctl-cmp-" });
    const client = `http://127.0.0.1:${this.clientPort}`;
    const peer = `http://127.0.0.1:${this.peerPort}`;
    this.proc = new Deno.Command(etcdBin!, {
      args: [
        "--name",
        "cmp",
        "--data-dir",
        `${this.dir}/data.etcd`,
        "--listen-client-urls",
        client,
        "--advertise-client-urls",
        client,
        "--listen-peer-urls",
        peer,
        "--initial-advertise-peer-urls",
        peer,
        "--initial-cluster",
        `cmp=${peer}`,
        "--initial-cluster-token",
        "detcdctl-cmp",
        ...this.extraArgs,
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = Date.now() + 30_000;
    // Healthy, and its startup proposals (member attributes, cluster version) applied: the
    // raft index must hold still, or the two runs would see different indexes.
    let lastIndex = -1;
    while (Date.now() < deadline) {
      const r = await new Deno.Command(etcdctlBin!, {
        args: [
          "--endpoints",
          this.endpoint,
          "--dial-timeout",
          "1s",
          "--command-timeout",
          "1s",
          "endpoint",
          "status",
          "-w",
          "json",
        ],
        stdout: "piped",
        stderr: "null",
      }).output();
      if (r.code === 0) {
        const out = decoder.decode(r.stdout);
        const m = /"raftIndex":(\d+)/.exec(out);
        // No "leader" field yet means no leader elected (zero values are omitted).
        const index = m && /"leader":\d+/.test(out) ? Number(m[1]) : -1;
        if (index >= 0 && index === lastIndex) return;
        lastIndex = index;
      }
      await new Promise((r) => setTimeout(r, 300));
    }
    throw new Error("etcd did not become healthy");
  }

  async stop(): Promise<void> {
    if (this.proc) {
      try {
        this.proc.kill("SIGKILL");
      } catch {
        // already gone
      }
      await this.proc.status;
      this.proc = undefined;
    }
    if (this.dir) {
      await Deno.remove(this.dir, { recursive: true });
      this.dir = undefined;
    }
  }
}

async function runStep(which: "etcdctl" | "detcdctl", step: Step, etcd: Etcd): Promise<Outcome> {
  const env: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "",
    HOME: Deno.env.get("HOME") ?? "/tmp",
    TZ: "UTC",
    ...step.env,
  };
  if (!step.noEndpointEnv && !("ETCDCTL_ENDPOINTS" in env)) env.ETCDCTL_ENDPOINTS = etcd.endpoint;
  for (const [k, v] of Object.entries(env)) env[k] = v.replaceAll("{EP}", etcd.endpoint);
  const args = step.args.map((a) => a.replaceAll("{EP}", etcd.endpoint));
  const cmd = which === "etcdctl"
    ? new Deno.Command(etcdctlBin!, {
      args,
      env,
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    })
    : new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${repoRoot}cli/main.ts`, ...args],
      env: { ...env, DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
      clearEnv: true,
      cwd: repoRoot,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    });
  const child = cmd.spawn();
  let hung = false;
  const timer = setTimeout(() => {
    hung = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // exited meanwhile
    }
  }, STEP_TIMEOUT_MS);
  try {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(step.stdin ?? "")).catch(() => {});
    await w.close().catch(() => {});
    const out = await child.output();
    return {
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
      code: out.code,
      hung,
    };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Removes what differs between two correct runs: times, client ids, measured durations, and
 * etcd's database file size (it grows in steps whose timing varies from run to run).
 */
export function normalise(s: string): string {
  return s
    .replace(/"dbSize":\d+/g, '"dbSize":N')
    .replace(/"dbSizeInUse":\d+/g, '"dbSizeInUse":N')
    .replace(/"DBSize" : \d+/g, '"DBSize" : N')
    .replace(/\b\d+(\.\d)? kB\b/g, "N kB")
    .replace(/"ts":"[^"]*"/g, '"ts":"TS"')
    .replace(/client-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, "client-UUID")
    .replace(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6} /gm, "DATE ")
    .replace(/took = [0-9.]+[µmn]?s/g, "took = DURATION")
    .replace(/"took":"[0-9.]+[µmn]?s"/g, '"took":"DURATION"')
    .replace(/"Took" : [0-9.]+[µmn]?s/g, '"Took" : DURATION')
    .replace(/\| +[0-9.]+[µmn]?s \|/g, "| DURATION |");
}

/** Drops grpc-go's internal log lines that `--debug` switches on. */
function stripGrpcDebug(s: string): string {
  return s.replace(/^(INFO|WARNING|ERROR): \d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[\w+\].*\n/gm, "");
}

/** Table columns holding durations change width with the duration; compare them loosely. */
function tableNormalise(s: string): string {
  if (!s.includes("TOOK")) return s;
  return s.split("\n").map((l) =>
    l.replace(/[-+| ]+/g, (m) => (m.includes("|") || m.includes("+") ? "|" : " "))
  ).join("\n");
}

async function runScenario(
  name: string,
  steps: Step[],
  etcdArgs: string[] = [],
): Promise<string[]> {
  const results: Record<"etcdctl" | "detcdctl", Outcome[]> = { etcdctl: [], detcdctl: [] };
  // The same ports for both runs: member IDs derive from peer URLs, and URLs are printed.
  const clientPort = freePort();
  const peerPort = freePort();
  for (const which of ["etcdctl", "detcdctl"] as const) {
    const etcd = new Etcd(clientPort, peerPort, etcdArgs);
    await etcd.start();
    try {
      for (const step of steps) results[which].push(await runStep(which, step, etcd));
    } finally {
      await etcd.stop();
    }
  }
  const diffs: string[] = [];
  steps.forEach((step, i) => {
    const a = results.etcdctl[i];
    const b = results.detcdctl[i];
    const label =
      `[${name} #${i}] ${step.env ? JSON.stringify(step.env) + " " : ""}etcdctl ${
        step.args.join(" ")
      }` +
      (step.stdin !== undefined ? ` <<< ${JSON.stringify(step.stdin)}` : "");
    for (const stream of ["stdout", "stderr"] as const) {
      // grpc-go's own debug log (--debug) is not reproduced; only etcdctl's lines are compared.
      const debug = (t: string) => step.args.includes("--debug") ? stripGrpcDebug(t) : t;
      const x = tableNormalise(normalise(debug(a[stream])));
      const y = tableNormalise(normalise(debug(b[stream])));
      if (x !== y) {
        diffs.push(
          `${label}\n  ${stream} etcdctl:  ${JSON.stringify(x)}\n  ${stream} detcdctl: ${
            JSON.stringify(y)
          }`,
        );
      }
    }
    if (a.code !== b.code) {
      diffs.push(`${label}\n  exit code etcdctl ${a.code}, detcdctl ${b.code}`);
    }
    for (const [ctl, outcome] of [["etcdctl", a], ["detcdctl", b]] as const) {
      if (outcome.hung) diffs.push(`${label}\n  ${ctl} hung (killed after ${STEP_TIMEOUT_MS} ms)`);
    }
  });
  return diffs;
}

const s = (...args: string[]): Step => ({ args });
const stdin = (input: string, ...args: string[]): Step => ({ args, stdin: input });

/** Every KV example of the user's guide, with every flag shown there. */
const guideKv: Step[] = [
  s("version"),
  s("put", "name", "cuiliang"),
  s("put", "location", "--", "-beijing"),
  s("put", "foo1", "bar1"),
  s("put", "foo2", "bar2"),
  s("put", "foo3", "bar3"),
  s("get", "name"),
  s("get", "location", "--print-value-only"),
  s("get", "foo", "foo3", "--print-value-only"),
  s("get", "--prefix", "foo", "--print-value-only"),
  s("get", "--prefix", "--limit=2", "foo", "--print-value-only"),
  s("get", "--prefix", "foo", "--print-value-only", "--order", "DESCEND"),
  s("get", "--prefix", "foo", "--hex"),
  s("get", "--from-key", "foo2"),
  s("get", "--prefix", "foo", "--keys-only"),
  s("get", "--prefix", "foo", "--sort-by", "VALUE", "--order", "DESCEND"),
  s("get", "--prefix", "foo", "--sort-by=create", "--order=ascend"),
  s("get", "--prefix", "foo", "--sort-by", "MODIFY"),
  s("get", "--prefix", "foo", "--sort-by", "VERSION", "--order", "DESCEND"),
  s("get", "--prefix", "foo", "--sort-by", "KEY", "--order", "DESCEND", "--limit", "1"),
  s("get", "name", "--consistency", "s"),
  s("get", "name", "--rev", "2"),
  s("put", "name", "kevin", "--prev-kv"),
  s("get", "name", "--rev", "2"),
  s("del", "name"),
  s("del", "foo1", "foo3"),
  s("del", "--prefix", "foo"),
  s("get", "--prefix", "foo"),
  s("put", "a", "1"),
  s("put", "b", "2"),
  s("del", "--prev-kv", "--from-key", "a"),
  stdin("from stdin\n", "put", "stdinkey"),
  s("get", "stdinkey"),
  s("put", "stdinkey", "--ignore-value", "--prev-kv"),
  s("put", "stdinkey", "x", "--ignore-lease"),
  s("put", "--", "-dash", "v"),
  s("get", "--", "-dash"),
  s("get", "", "--prefix", "--keys-only"),
  s("del", "", "--prefix"),
];

/** The same results in every output format. */
const formats: Step[] = [
  s("put", "k1", "v1"),
  s("put", "k2", "v2<&>\u00e9\n"),
  s("put", "k1", "v1b", "--prev-kv", "-w", "json"),
  s("put", "k3", "v3", "-w", "fields"),
  s("put", "k3", "v3", "--prev-kv", "-w", "fields"),
  s("put", "k4", "v4", "-w", "protobuf"),
  s("put", "k5", "v5", "-w", "table"),
  s("get", "k", "--prefix", "-w", "json"),
  s("get", "k", "--prefix", "-w", "fields"),
  s("get", "k", "--prefix", "-w", "protobuf"),
  s("get", "k", "--prefix", "-w", "table"),
  s("get", "k", "--prefix", "-w", "simple", "--hex"),
  s("get", "k", "--prefix", "-w", "json", "--hex"),
  s("get", "k1", "--write-out=json", "--print-value-only"),
  s("get", "nothing", "-w", "json"),
  s("get", "nothing", "-w", "fields"),
  s("get", "k", "--prefix", "--limit", "1", "-w", "fields"),
  s("get", "k", "--prefix", "--keys-only", "-w", "json"),
  s("del", "k4", "--prev-kv", "-w", "json"),
  s("del", "k3", "-w", "fields", "--prev-kv"),
  s("del", "k5", "-w", "protobuf"),
  s("del", "nothing", "-w", "table"),
  s("member", "list"),
  s("member", "list", "-w", "json"),
  s("member", "list", "-w", "fields"),
  s("member", "list", "-w", "table"),
  s("member", "list", "-w", "protobuf"),
  s("member", "list", "--hex", "-w", "json"),
  s("alarm", "list"),
  s("alarm", "list", "-w", "json"),
  s("alarm", "list", "-w", "table"),
  s("alarm", "list", "-w", "protobuf"),
  s("alarm", "disarm"),
  s("alarm", "disarm", "-w", "json"),
  s("alarm", "list", "extra"),
  s("endpoint", "status"),
  s("endpoint", "status", "-w", "json"),
  s("endpoint", "status", "-w", "fields"),
  s("endpoint", "status", "-w", "table"),
  s("endpoint", "status", "-w", "protobuf"),
  s("endpoint", "status", "--cluster", "-w", "table"),
  s("endpoint", "health"),
  s("endpoint", "health", "-w", "json"),
  s("endpoint", "health", "-w", "fields"),
  s("endpoint", "health", "-w", "table"),
  s("endpoint", "health", "--cluster"),
  s("endpoint", "health", "-w", "protobuf"),
  s("endpoint", "hashkv"),
  s("endpoint", "hashkv", "-w", "json"),
  s("endpoint", "hashkv", "-w", "fields"),
  s("endpoint", "hashkv", "-w", "table", "--cluster"),
  s("endpoint", "hashkv", "--rev", "3"),
  s("endpoint", "hashkv", "-w", "protobuf"),
  s("get", "k1", "-w", "yaml"),
];

/** Error cases: bad arguments, bad flags, server errors. */
const errors: Step[] = [
  s("put", "", "v"),
  s("get", ""),
  s("get", "foo", "--bogus"),
  s("get", "foo", "-x"),
  s("bogus"),
  s("gett", "foo"),
  s("get", "foo", "--sort-by", "bogus"),
  s("get", "foo", "--order", "sideways"),
  s("get", "foo", "--consistency", "x"),
  s("get", "foo", "--limit", "x"),
  s("get", "foo", "--prefix", "--from-key"),
  s("get", "foo", "bar", "--prefix"),
  s("get"),
  s("put"),
  s("put", "k", "--ignore-value", "v"),
  s("put", "k", "v", "--lease", "zz"),
  s("put", "k", "v", "--lease", "1234"),
  s("del"),
  s("del", "a", "b", "c"),
  s("put", "r", "1"),
  s("put", "r", "2"),
  s("put", "r", "3"),
  s("get", "r", "--rev", "100"),
  s("compaction", "3"),
  s("get", "r", "--rev", "2"),
  s("compaction", "2"),
  s("compaction", "100"),
  s("compaction", "x"),
  s("compaction"),
  s("compaction", "4", "--physical"),
  s("get", "r", "--rev", "4", "-w", "json"),
  s("txn", "extra"),
  s("get", "r", "--dial-timeout", "5"),
  s("get", "r", "--command-timeout", "abc"),
  s("get", "r", "-w"),
  s("get", "r", "---x"),
  s("get", "r", "--prefix=maybe"),
  s("member", "bogus"),
  s("help", "bogus"),
  s("get", "r", "--cert", ""),
  s("get", "r", "--cert", "/nonexistent"),
];

/** txn, non-interactive from stdin and with -i prompts. */
const txn: Step[] = [
  s("put", "key1", "1"),
  s("put", "key2", "some value"),
  stdin(
    'mod("key1") > "0"\n\nput key1 "overwrote-key1"\n\nput key1 "created-key1"\nput key2 "some extra key"\n\n',
    "txn",
  ),
  stdin(
    'mod("key1") > "0"\n\nput key1 "overwrote-key1"\n\nput key1 "created-key1"\n\n',
    "txn",
    "-i",
  ),
  stdin(
    'value("key1") = "overwrote-key1"\nver("key2") != "0"\n\nget key1\nget key --prefix\ndel key2\n\nput x y\n\n',
    "txn",
    "-w",
    "json",
  ),
  stdin(
    'create("key1") < "100"\nversion("nokey") = "0"\nc("key1") = "2"\nm("key1") != "1"\nval("key1") > "a"\n\nput key3 v3 --prev-kv\n\nget key1\n\n',
    "txn",
    "-w",
    "fields",
  ),
  stdin(
    'value("key1") = "nope"\n\nput a b\n\nget key1 --keys-only\ndel key3 --prev-kv\nput key4 \'quoted value\'\n\n',
    "txn",
  ),
  stdin('value("key1") = "nope"\n\n\nget key1\n\n', "txn", "-w", "protobuf"),
  stdin("\n\n\n", "txn"),
  stdin("\n\n\n", "txn", "--interactive"),
  stdin('mod("key1") > "0"\n', "txn"),
  stdin('mod("key1")>"0"\n\n\n\n', "txn"),
  stdin('foo("key1") = "0"\n\n\n\n', "txn"),
  stdin('mod("key1") = "x"\n\n\n\n', "txn"),
  stdin("nonsense\n\n\n\n", "txn"),
  stdin('mod("key1) = "1"\n\n\n\n', "txn"),
  stdin("\nbogus key1\n\n\n", "txn"),
  stdin("\nget\n\n\n", "txn"),
  stdin("\nput onlykey\n\n\n", "txn"),
  stdin("\nget k --prefix --from-key\n\n\n", "txn"),
  stdin("\nput k v --lease zz\n\n\n", "txn"),
  stdin("\np pk pv\ng pk\nd pk\n\n\n", "txn"),
  stdin('\nput "k\\x41" "v\\tv"\nget kA\n\n\n', "txn", "--hex"),
  stdin('\nput "" v\n\n\n', "txn"),
  stdin("\nput k1 v1\nput k1 v2\n\n\n", "txn"),
  stdin("\nput k v\n\n\n", "txn", "-w", "table"),
];

/** Global flags, their environment variables and endpoint handling. */
const flagsEnv: Step[] = [
  s("put", "fk", "fv"),
  { args: ["get", "fk", "-w", "json"], env: { ETCDCTL_WRITE_OUT: "fields" } },
  { args: ["get", "fk"], env: { ETCDCTL_WRITE_OUT: "json" } },
  { args: ["get", "fk"], env: { ETCDCTL_HEX: "true" } },
  { args: ["get", "fk"], env: { ETCDCTL_LIMIT: "1" } },
  { args: ["get", "fk"], env: { ETCDCTL_BOGUS: "1", ETCDCTL_API: "3" } },
  { args: ["get", "fk"], env: { ETCDCTL_DIAL_TIMEOUT: "abc" } },
  { args: ["get", "fk"], env: { ETCDCTL_WRITE_OUT: "xml" } },
  { args: ["get", "fk", "--endpoints", "{EP}"], env: { ETCDCTL_ENDPOINTS: "{EP}" } },
  { args: ["get", "fk", "--endpoints", "{EP}"], noEndpointEnv: true },
  { args: ["get", "fk", "--endpoints=127.0.0.1:1,{EP}"], noEndpointEnv: true },
  { args: ["--endpoints", "http://{EP}", "get", "fk"], noEndpointEnv: true },
  { args: ["put", "fk2", "v", "--endpoints", "127.0.0.1:1, {EP}"], noEndpointEnv: true },
  { args: ["get", "fk", "--debug"] },
  { args: ["endpoint", "status", "--debug", "--cluster"] },
  { args: ["version"], env: { ETCDCTL_BOGUS: "1" } },
  { args: ["get", "fk"], env: { ETCDCTL_API: "5" } },
  { args: ["get", "fk", "--user", "root:pw"] },
  { args: ["get", "fk", "--user", "root", "--password", "pw"] },
  { args: ["endpoint", "health"], env: { ETCDCTL_CLUSTER: "true" } },
  {
    args: [
      "-w",
      "json",
      "get",
      "fk",
      "--command-timeout=3s",
      "--dial-timeout",
      "1s",
      "--keepalive-time=3s",
    ],
  },
  { args: ["get", "fk", "--insecure-transport=false"] },
  { args: ["get", "fk", "--command-timeout", "1s"], env: { ETCDCTL_ENDPOINTS: "127.0.0.1:1" } },
  {
    args: ["endpoint", "status", "--command-timeout", "1s"],
    env: { ETCDCTL_ENDPOINTS: "127.0.0.1:1" },
  },
  {
    args: ["endpoint", "health", "--command-timeout", "1s"],
    env: { ETCDCTL_ENDPOINTS: "127.0.0.1:1" },
  },
  {
    args: ["member", "list", "--command-timeout", "1s"],
    env: { ETCDCTL_ENDPOINTS: "127.0.0.1:1" },
  },
];

/** Help pages. */
const help: Step[] = [
  s("--help"),
  s("help"),
  s("help", "get"),
  s("put", "--help"),
  s("get", "-h"),
  s("del", "--help"),
  s("txn", "--help"),
  s("compaction", "--help"),
  s("endpoint", "--help"),
  s("endpoint", "status", "--help"),
  s("endpoint", "health", "-h"),
  s("member"),
  s("member", "list", "--help"),
  s("version", "--help"),
  s("completion", "--help"),
  s("lease", "grant", "--help"),
  s("snapshot", "restore", "--help"),
  s("watch", "--help"),
];

/** A raised NOSPACE alarm (a tiny backend quota) as every alarm and status printer shows it. */
const alarms: Step[] = [
  { args: ["put", "big"], stdin: "x".repeat(20000) },
  s("put", "small", "v"),
  s("alarm", "list"),
  s("alarm", "list", "-w", "json"),
  s("alarm", "list", "-w", "protobuf"),
  s("endpoint", "status", "-w", "json"),
  s("endpoint", "status", "-w", "fields"),
  s("del", "big"),
  s("alarm", "disarm"),
  s("alarm", "list"),
];

const scenarios: [string, Step[], string[]?][] = [
  ["guide-kv", guideKv],
  ["formats", formats],
  ["errors", errors],
  ["txn", txn],
  ["flags-env", flagsEnv],
  ["help", help],
  ["alarms", alarms, ["--quota-backend-bytes=40000"]],
];

for (const [name, steps, etcdArgs] of scenarios) {
  Deno.test({
    name: `detcdctl matches etcdctl 3.4.23 byte for byte: ${name}`,
    ignore: reference.ignore,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      assertReference();
      const diffs = await runScenario(name, steps, etcdArgs);
      assert.equal(diffs.length, 0, `${diffs.length} differences:\n${diffs.join("\n")}`);
    },
  });
}
