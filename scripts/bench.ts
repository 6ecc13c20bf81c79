/**
 * `deno task bench`: detcd against etcd 3.4.23, side by side, in one run, with the same load
 * generator (ebench, built on etcd's own Go client). Prints each workload's result for both and the
 * detcd/etcd ratio against the targets: throughput at least 0.7x etcd's, p99 latency at most 2x.
 *
 * Usage: deno task bench [--only etcd|detcd] [--quick] [--cold] [--rounds N] [--auth]
 *   [--tls | --mtls] [--filter TEXT] [--json FILE]
 *
 * --filter TEXT runs only the workloads whose name contains TEXT (e.g. `--filter burst`).
 *
 * Before measuring, each member gets the same warm-up (5000 puts, ranges and txns) unless --cold.
 *
 * --rounds N runs every workload N times (etcd, detcd, etcd, detcd, ...) and reports, per member,
 * the round with the median throughput: on a shared machine that is steadier than one round.
 *
 * --auth measures with authentication on (issue 10). After each member starts, etcd's own etcdctl
 * sets up the same thing on both: user `root` (role root), role `bench` with readwrite on the prefix
 * ebench writes (`bench/`), user `bench` with that role, `auth enable`. Every workload then logs in
 * as `bench`, and the plan is: put and range with 50 clients (target: at least 1.0x etcd's
 * throughput), Authenticate with 50 clients (at least 1.0x), and a login burst: the put p99 of a
 * put workload alone against the same put workload while a second ebench sends 200 Authenticate
 * calls at once (200 clients, one call each); the burst should raise detcd's put p99 by at most
 * 1.5x. Both members' burst factors are shown; per member, the round with the median factor is shown.
 *
 * --tls measures over client TLS (issue 11): certificates are made once with openssl into a temp dir
 * (a CA, a server certificate with 127.0.0.1/localhost SANs, a client certificate; ECDSA P-256);
 * both members serve an https:// client URL with the same `--cert-file --key-file`, and ebench
 * trusts the CA (`-cacert`). --mtls adds client-certificate auth: `--trusted-ca-file
 * --client-cert-auth` on both members, ebench presents the client certificate (`-cert -key`). The
 * plan: put and range with 50 clients (target: at least 1.0x etcd's throughput), and the rate of
 * new TLS connections, measured against etcd without a target, by scripts/tls_handshake (Go,
 * standard library, built into .bench/): 16 dialers, each connection a full handshake with ALPN h2
 * and then closed; a second workload also sends the HTTP/2 preface and waits for the server's
 * SETTINGS frame, so that the server's side of the handshake (and its HTTP/2 set-up) is finished
 * before the connection counts. --tls/--mtls combine with --auth (the auth plan over TLS).
 *
 * The default plan: put (50 clients and 1 client), linearizable and serializable range, txn, watch
 * fan-out (100 watchers, events/s and delivery p99), lease keep-alive (ebench), and lease grant +
 * revoke pairs (scripts/lease_bench, built into .bench/ like scripts/scale_bench).
 *
 * ebench comes from DETCD_EBENCH (a built binary), else .bench/ebench, else it is built there with
 * build.sh from DETCD_EBENCH_SRC (default ../shared/bench next to the repository; needs Debian's
 * golang-go and golang-etcd-server-dev). Members are single, fresh, on loopback; workloads run one
 * at a time, etcd then detcd, so they never compete for the CPU.
 */

import { type Member, type MemberKind, runCtl, startMember } from "../tests/harness.ts";
import {
  ebenchPath,
  type EbenchResult,
  leaseBenchPath,
  runEbench as ebenchRun,
  runLeaseBench,
} from "./_ebench.ts";
import {
  type BenchCertificates,
  clientTlsFlags,
  etcdctlTlsFlags,
  handshakePath,
  makeBenchCertificates,
  memberTlsFlags,
  runHandshake,
  type TlsMode,
} from "./_tls_bench.ts";

/** Client flags every ebench and tls_handshake run gets (the TLS ones under --tls/--mtls). */
const clientFlags: string[] = [];

/** etcdctl flags for the members (the TLS ones under --tls/--mtls). */
const ctlFlags: string[] = [];

function runEbench(ebench: string, member: Member, args: string[]): Promise<EbenchResult> {
  return ebenchRun(ebench, member.endpoint, [...args, ...clientFlags], member.kind);
}

/** A workload and how its ratio is judged. */
interface Workload {
  name: string;
  args: string[];
  /**
   * "throughput": detcd/etcd qps should be ≥ target; "latency": detcd/etcd p99 should be ≤ target;
   * "burst": the put workload in `args` runs alone, then again during {@link BURST_ARGS}, and detcd's
   * p99 under the burst over its p99 alone should be ≤ target; "rate": detcd/etcd throughput is
   * shown without a target.
   */
  judge: "throughput" | "latency" | "burst" | "rate";
  target: number;
  /** What runs the workload: ebench (default), scripts/tls_handshake or scripts/lease_bench. */
  tool?: "ebench" | "handshake" | "lease";
}

interface Options {
  only?: MemberKind;
  quick: boolean;
  /** Measure from a cold start: no warm-up traffic before the first workload. */
  cold: boolean;
  rounds: number;
  /** Authentication on, the load generator logged in (see the module comment). */
  auth: boolean;
  /** Client TLS (`--tls`) or mutual TLS (`--mtls`) on both members (see the module comment). */
  tls?: TlsMode;
  /** Only the workloads whose name contains this text. */
  filter?: string;
  json?: string;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { quick: false, cold: false, rounds: 1, auth: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.includes("=") ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const value = () => inline ?? argv[++i];
    if (flag === "--only") {
      const kind = value();
      if (kind !== "etcd" && kind !== "detcd") throw new Error(`--only etcd|detcd, not ${kind}`);
      options.only = kind;
    } else if (flag === "--quick") {
      options.quick = true;
    } else if (flag === "--cold") {
      options.cold = true;
    } else if (flag === "--rounds") {
      options.rounds = Number(value());
      if (!Number.isInteger(options.rounds) || options.rounds < 1) {
        throw new Error("--rounds takes a positive integer");
      }
    } else if (flag === "--auth") {
      options.auth = true;
    } else if (flag === "--tls" || flag === "--mtls") {
      const mode = flag === "--tls" ? "tls" : "mtls";
      if (options.tls !== undefined && options.tls !== mode) {
        throw new Error("--tls and --mtls exclude each other");
      }
      options.tls = mode;
    } else if (flag === "--filter") {
      options.filter = value();
    } else if (flag === "--json") {
      options.json = value();
    } else {
      throw new Error(
        `unknown argument ${arg}\nusage: deno task bench [--only etcd|detcd] ` +
          "[--quick] [--cold] [--rounds N] [--auth] [--tls | --mtls] [--filter TEXT] [--json FILE]",
      );
    }
  }
  return options;
}

function workloads(quick: boolean): Workload[] {
  const scale = quick ? 4 : 1;
  const common = ["-keys", "1000", "-val", "256", "-timeout", "120s"];
  return ([
    {
      name: "put, 50 clients, 256 B values",
      args: ["-op", "put", "-clients", "50", "-conns", "10", "-total", `${40_000 / scale}`],
      judge: "throughput",
    },
    {
      name: "range (linearizable), 50 clients",
      args: ["-op", "range", "-clients", "50", "-conns", "10", "-total", `${40_000 / scale}`],
      judge: "throughput",
    },
    {
      name: "range (serializable), 50 clients",
      args: ["-op", "rangeser", "-clients", "50", "-conns", "10", "-total", `${40_000 / scale}`],
      judge: "throughput",
    },
    {
      name: "txn (compare + put), 50 clients",
      args: ["-op", "txn", "-clients", "50", "-conns", "10", "-total", `${20_000 / scale}`],
      judge: "throughput",
    },
    {
      name: "put latency, 1 client",
      args: ["-op", "put", "-clients", "1", "-conns", "1", "-total", `${2_000 / scale}`],
      judge: "latency",
    },
    {
      // ebench's watch: 100 watchers on one prefix, one writer; events/s and delivery latency.
      name: "watch fan-out, 100 watchers x 2,000 puts (events)",
      args: ["-op", "watch", "-clients", "100", "-conns", "10", "-total", `${2_000 / scale}`],
      judge: "throughput",
    },
    {
      name: "lease keep-alive, 50 clients",
      args: ["-op", "keepalive", "-clients", "50", "-conns", "10", "-total", `${40_000 / scale}`],
      judge: "throughput",
    },
    {
      // scripts/lease_bench: a LeaseGrant then a LeaseRevoke of it, the pair counted once.
      name: "lease grant + revoke, 50 clients (pairs)",
      args: ["-op", "grant-revoke", "-clients", "50", "-total", `${10_000 / scale}`],
      judge: "throughput",
      tool: "lease",
    },
  ] as const).map((workload) => ({
    ...workload,
    args: "tool" in workload ? [...workload.args] : [...workload.args, ...common],
    target: workload.judge === "throughput" ? 0.7 : 2,
  }));
}

/** The benchmark user's credentials (ebench `-user`/`-password`). */
const BENCH_USER = ["-user", "bench", "-password", "bench-pw"];

/** The login burst of the auth plan: 200 Authenticate calls sent at once, one per client. */
const BURST_ARGS = ["-op", "authenticate", "-clients", "200", "-conns", "10", "-total", "200"];

/** Puts of the burst workload's calibration round (see {@link calibrateBurst}). */
const BURST_CALIBRATION_PUTS = 20_000;

/** At least this many puts per burst round, so that a p99 rests on enough samples. */
const BURST_MIN_PUTS = 2_000;

/** The plan of --auth (issue 10): every workload logged in as the benchmark user. */
function authWorkloads(quick: boolean): Workload[] {
  const scale = quick ? 4 : 1;
  const common = ["-keys", "1000", "-val", "256", "-timeout", "120s", ...BENCH_USER];
  return ([
    {
      name: "put, 50 clients, auth",
      args: ["-op", "put", "-clients", "50", "-conns", "10", "-total", `${40_000 / scale}`],
      judge: "throughput",
      target: 1,
    },
    {
      name: "range (linearizable), 50 clients, auth",
      args: ["-op", "range", "-clients", "50", "-conns", "10", "-total", `${40_000 / scale}`],
      judge: "throughput",
      target: 1,
    },
    {
      name: "authenticate, 50 clients",
      args: ["-op", "authenticate", "-clients", "50", "-conns", "10", "-total", `${400 / scale}`],
      judge: "throughput",
      target: 1,
    },
    {
      // The number of puts is sized per member by calibrateBurst (ignoring --quick): the put run
      // should fit inside the burst, since what outlasts it dilutes the p99 with calm requests.
      // The table shows which share of the put run the burst overlapped.
      name: "put p99 during a burst of 200 logins, 50 clients",
      args: ["-op", "put", "-clients", "50", "-conns", "10"],
      judge: "burst",
      target: 1.5,
    },
  ] as const).map((workload) => ({ ...workload, args: [...workload.args, ...common] }));
}

/** The plan of --tls/--mtls (issue 11), over the TLS set-up of the mode (see the module comment). */
function tlsWorkloads(quick: boolean, mode: TlsMode): Workload[] {
  const scale = quick ? 4 : 1;
  const common = ["-keys", "1000", "-val", "256", "-timeout", "120s"];
  const label = mode === "mtls" ? "mTLS" : "TLS";
  const dialers = ["-conc", "16", "-total", `${4_000 / scale}`];
  return [
    {
      name: `put, 50 clients, ${label}`,
      args: [
        "-op",
        "put",
        "-clients",
        "50",
        "-conns",
        "10",
        "-total",
        `${40_000 / scale}`,
        ...common,
      ],
      judge: "throughput",
      target: 1,
    },
    {
      name: `range (linearizable), 50 clients, ${label}`,
      args: [
        ...["-op", "range", "-clients", "50", "-conns", "10", "-total", `${40_000 / scale}`],
        ...common,
      ],
      judge: "throughput",
      target: 1,
    },
    {
      name: `new ${label} connections (handshake), 16 dialers`,
      args: dialers,
      judge: "rate",
      target: 0,
      tool: "handshake",
    },
    {
      name: `new ${label} connections (handshake + HTTP/2 SETTINGS), 16 dialers`,
      args: [...dialers, "-h2"],
      judge: "rate",
      target: 0,
      tool: "handshake",
    },
  ];
}

/**
 * Turns authentication on through etcd's own etcdctl, the same way for both members: root (with
 * the root role), the benchmark user with readwrite on ebench's `bench/` prefix, `auth enable`.
 */
async function enableAuth(member: Member): Promise<void> {
  const steps: string[][] = [
    ["user", "add", "root", "--new-user-password=root-pw"],
    ["user", "grant-role", "root", "root"],
    ["role", "add", "bench"],
    ["role", "grant-permission", "bench", "--prefix=true", "readwrite", "bench/"],
    ["user", "add", "bench", "--new-user-password=bench-pw"],
    ["user", "grant-role", "bench", "bench"],
    ["auth", "enable"],
  ];
  for (const step of steps) {
    const result = await runCtl("etcdctl", [
      "--endpoints",
      member.endpoint,
      ...ctlFlags,
      ...step,
    ]);
    if (result.code !== 0) {
      throw new Error(
        `etcdctl ${step.join(" ")} against ${member.kind} failed (exit ${result.code}):\n` +
          `${result.stdout}${result.stderr}`,
      );
    }
  }
}

/** One round of a burst workload: the put workload alone, then during the burst. */
interface BurstRound {
  alone: EbenchResult;
  during: EbenchResult;
  burst: EbenchResult;
  /** The share of the measured put run (`during`) that the burst's measured run overlapped. */
  overlap: number;
}

/** Runs ebench and returns its result with the wall-clock window (ms) its clock measured. */
async function timedEbench(
  ebench: string,
  member: Member,
  args: string[],
): Promise<{ result: EbenchResult; from: number; to: number }> {
  const result = await runEbench(ebench, member, args);
  // ebench prints right after its last request; the process exit follows within milliseconds.
  const to = performance.now();
  return { result, from: to - result.seconds * 1000, to };
}

/**
 * One burst round on `member`: the put workload (`args` plus `-total puts`) alone, then again with
 * the burst. ebench logs its connections in before it starts its clock, and a login queued behind
 * 200 bcrypt checks would miss its dial timeout, so the put ebench starts first and the burst
 * follows once the put clients are logged in: after one and a half times as long as the alone run
 * took to connect (its wall time minus its measured time), at least that plus 500 ms. A round
 * whose put clients still could not log in is run again (twice at most).
 */
async function runBurst(
  ebench: string,
  member: Member,
  args: string[],
  puts: number,
  attempt = 1,
): Promise<BurstRound> {
  const putArgs = [...args, "-total", `${puts}`];
  const began = performance.now();
  const aloneRun = await timedEbench(ebench, member, putArgs);
  const connectMs = aloneRun.from - began;
  const putRun = timedEbench(ebench, member, putArgs);
  await new Promise((resolve) => setTimeout(resolve, Math.max(connectMs * 1.5, connectMs + 500)));
  const burstRun = timedEbench(ebench, member, [...BURST_ARGS, ...BENCH_USER]);
  const [putSettled, burstSettled] = await Promise.allSettled([putRun, burstRun]);
  if (putSettled.status === "rejected" || burstSettled.status === "rejected") {
    const error = putSettled.status === "rejected"
      ? putSettled.reason
      : (burstSettled as PromiseRejectedResult).reason;
    if (attempt < 3 && /connect: context deadline exceeded/.test(`${error}`)) {
      console.error(`${member.kind} burst round: the put clients could not log in in time, again`);
      return runBurst(ebench, member, args, puts, attempt + 1);
    }
    throw error;
  }
  const put = putSettled.value;
  const burst = burstSettled.value;
  const shared = Math.max(0, Math.min(put.to, burst.to) - Math.max(put.from, burst.from));
  return {
    alone: aloneRun.result,
    during: put.result,
    burst: burst.result,
    overlap: shared / Math.max(1, put.to - put.from),
  };
}

/**
 * How many puts fit inside a burst on `member`: one unmeasured burst round with
 * {@link BURST_CALIBRATION_PUTS} puts gives the put rate during the burst and the burst's length;
 * 80% of their product leaves a margin.
 */
async function calibrateBurst(ebench: string, member: Member, args: string[]): Promise<number> {
  const round = await runBurst(ebench, member, args, BURST_CALIBRATION_PUTS);
  const puts = Math.round(round.during.qps * round.burst.seconds * 0.8);
  console.error(
    `${member.kind.padEnd(5)} burst calibration: puts at ${round.during.qps.toFixed(0)}/s during ` +
      `a ${round.burst.seconds.toFixed(1)} s burst: ${Math.max(BURST_MIN_PUTS, puts)} puts a round`,
  );
  return Math.max(BURST_MIN_PUTS, puts);
}

/** The round whose `key` is the median (the lower middle one for an even count). */
function medianBy<T>(items: T[], key: (item: T) => number): T | undefined {
  const sorted = [...items].sort((a, b) => key(a) - key(b));
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

/** The round with the median throughput (the lower middle one for an even count). */
function median(results: EbenchResult[]): EbenchResult | undefined {
  return medianBy(results, (result) => result.qps);
}

function fixed(value: number | undefined, digits: number): string {
  return value === undefined || !Number.isFinite(value) ? "-" : value.toFixed(digits);
}

function renderTable(rows: string[][]): string {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  const line = (row: string[]) =>
    row.map((cell, column) =>
      column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column])
    )
      .join("  ");
  return [line(rows[0]), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(line)]
    .join("\n");
}

function logResult(kind: MemberKind, name: string, result: EbenchResult): void {
  console.error(`${kind.padEnd(5)} ${name}: ${JSON.stringify(result)}`);
  if (result.errors > 0) {
    console.error(`  ${result.errors} errors, first: ${result.first_error ?? "?"}`);
  }
}

/** A burst round's factor: put p99 during the burst over put p99 alone. */
function burstFactor(round: BurstRound): number {
  return round.during.p99_ms / round.alone.p99_ms;
}

async function main(): Promise<void> {
  const options = parseArgs(Deno.args);
  const kinds: MemberKind[] = options.only !== undefined ? [options.only] : ["etcd", "detcd"];
  const ebench = await ebenchPath();
  const plan =
    (options.auth
      ? authWorkloads(options.quick)
      : options.tls !== undefined
      ? tlsWorkloads(options.quick, options.tls)
      : workloads(options.quick))
      .filter((workload) => options.filter === undefined || workload.name.includes(options.filter));
  const handshake = plan.some((workload) => workload.tool === "handshake")
    ? await handshakePath()
    : undefined;
  const credentials = options.auth ? BENCH_USER : [];
  const results = new Map<string, Partial<Record<MemberKind, EbenchResult>>>();
  const bursts = new Map<string, Partial<Record<MemberKind, BurstRound>>>();
  const members: Member[] = [];
  const started = Date.now();
  let certs: BenchCertificates | undefined;
  try {
    const tls = options.tls;
    if (tls !== undefined) {
      certs = await makeBenchCertificates();
      clientFlags.push(...clientTlsFlags(tls, certs));
      ctlFlags.push(...etcdctlTlsFlags(tls, certs));
    }
    for (const kind of kinds) {
      const member = await startMember({
        kind,
        name: `bench-${kind}`,
        ...(tls !== undefined && certs !== undefined
          ? { clientScheme: "https" as const, extraArgs: memberTlsFlags(tls, certs) }
          : {}),
      });
      members.push(member);
      if (options.auth) await enableAuth(member);
    }
    console.error(
      `members: ${members.map((m) => `${m.kind} at ${m.clientUrl}`).join(", ")}; ebench ${ebench}` +
        (options.auth ? "; auth on, logged in as bench" : "") +
        (tls !== undefined ? `; ${tls}, certificates in ${certs?.dir}` : ""),
    );
    if (!options.cold) {
      // Steady state, not start-up, is what the targets are about: every member gets the same
      // warm-up traffic (V8 compiles detcd's hot paths during the first thousands of requests;
      // etcd's Go code needs none, so this only removes a handicap). --cold skips it.
      for (const member of members) {
        for (const op of ["put", "range", "txn"]) {
          await runEbench(ebench, member, [
            ...["-op", op, "-total", "5000", "-keys", "1000"],
            ...credentials,
          ]);
        }
        if (options.auth) {
          await runEbench(ebench, member, ["-op", "authenticate", "-total", "50", ...credentials]);
        }
        if (handshake !== undefined) {
          await runHandshake(handshake, member.endpoint, [
            ...["-conc", "16", "-total", "500", "-h2"],
            ...clientFlags,
          ], member.kind);
        }
      }
    }
    for (const workload of plan) {
      if (workload.judge === "burst") {
        const rounds: Partial<Record<MemberKind, BurstRound[]>> = {};
        const puts = new Map<Member, number>();
        for (const member of members) {
          puts.set(member, await calibrateBurst(ebench, member, workload.args));
        }
        for (let round = 0; round < options.rounds; round++) {
          for (const member of members) {
            const result = await runBurst(ebench, member, workload.args, puts.get(member)!);
            (rounds[member.kind] ??= []).push(result);
            logResult(member.kind, `${workload.name}, alone`, result.alone);
            logResult(member.kind, `${workload.name}, during the burst`, result.during);
            logResult(member.kind, `${workload.name}, the burst`, result.burst);
            console.error(
              `  the burst overlapped ${(result.overlap * 100).toFixed(0)}% of the put run`,
            );
          }
        }
        const byKind: Partial<Record<MemberKind, BurstRound>> = {};
        for (const kind of kinds) byKind[kind] = medianBy(rounds[kind] ?? [], burstFactor);
        bursts.set(workload.name, byKind);
        continue;
      }
      const rounds: Partial<Record<MemberKind, EbenchResult[]>> = {};
      for (let round = 0; round < options.rounds; round++) {
        for (const member of members) {
          const result = workload.tool === "handshake"
            ? await runHandshake(
              handshake!,
              member.endpoint,
              [...workload.args, ...clientFlags],
              member.kind,
            )
            : workload.tool === "lease"
            ? await runLeaseBench(
              await leaseBenchPath(),
              member.endpoint,
              workload.args,
              member.kind,
            )
            : await runEbench(ebench, member, workload.args);
          (rounds[member.kind] ??= []).push(result);
          logResult(member.kind, workload.name, result);
        }
      }
      const byKind: Partial<Record<MemberKind, EbenchResult>> = {};
      for (const kind of kinds) byKind[kind] = median(rounds[kind] ?? []);
      results.set(workload.name, byKind);
    }
  } finally {
    await Promise.all(members.map((member) => member.stop()));
    if (certs !== undefined) await Deno.remove(certs.dir, { recursive: true }).catch(() => {});
  }

  const header = ["workload", "etcd", "detcd", "detcd/etcd", "target", "verdict"];
  const rows: string[][] = [header];
  for (const workload of plan) {
    const target = workload.target.toFixed(2);
    if (workload.judge === "burst") {
      const byKind = bursts.get(workload.name) ?? {};
      const etcd = byKind.etcd;
      const ours = byKind.detcd;
      const pair = (round: BurstRound | undefined, pick: (round: BurstRound) => string) =>
        round ? pick(round) : "-";
      rows.push([
        `${workload.name}: put p99 alone (ms)`,
        fixed(etcd?.alone.p99_ms, 2),
        fixed(ours?.alone.p99_ms, 2),
        "",
        "",
        "",
      ]);
      rows.push([
        `  put p99 during the burst (ms)`,
        fixed(etcd?.during.p99_ms, 2),
        fixed(ours?.during.p99_ms, 2),
        "",
        "",
        "",
      ]);
      const factor = ours ? burstFactor(ours) : undefined;
      rows.push([
        `  burst factor (during / alone)`,
        etcd ? fixed(burstFactor(etcd), 2) : "-",
        fixed(factor, 2),
        "",
        `detcd <= ${target}`,
        factor === undefined ? "-" : factor <= workload.target ? "ok" : "ABOVE",
      ]);
      rows.push([
        `  put qps alone / during (ops/s)`,
        pair(etcd, (r) => `${fixed(r.alone.qps, 0)} / ${fixed(r.during.qps, 0)}`),
        pair(ours, (r) => `${fixed(r.alone.qps, 0)} / ${fixed(r.during.qps, 0)}`),
        "",
        "",
        "",
      ]);
      rows.push([
        `  put seconds during / burst seconds`,
        pair(etcd, (r) => `${fixed(r.during.seconds, 2)} / ${fixed(r.burst.seconds, 2)}`),
        pair(ours, (r) => `${fixed(r.during.seconds, 2)} / ${fixed(r.burst.seconds, 2)}`),
        "",
        "",
        "",
      ]);
      rows.push([
        `  share of the put run the burst overlapped`,
        pair(etcd, (r) => `${fixed(r.overlap * 100, 0)}%`),
        pair(ours, (r) => `${fixed(r.overlap * 100, 0)}%`),
        "",
        "",
        "",
      ]);
      rows.push([
        `  burst logins p50 / p99 (ms)`,
        pair(etcd, (r) => `${fixed(r.burst.p50_ms, 0)} / ${fixed(r.burst.p99_ms, 0)}`),
        pair(ours, (r) => `${fixed(r.burst.p50_ms, 0)} / ${fixed(r.burst.p99_ms, 0)}`),
        "",
        "",
        "",
      ]);
      continue;
    }
    const byKind = results.get(workload.name) ?? {};
    const etcd = byKind.etcd;
    const ours = byKind.detcd;
    if (workload.judge === "throughput" || workload.judge === "rate") {
      const ratio = etcd && ours ? ours.qps / etcd.qps : undefined;
      const rate = workload.judge === "rate";
      rows.push([
        `${workload.name} (${workload.tool === "handshake" ? "conns" : "ops"}/s)`,
        fixed(etcd?.qps, 0),
        fixed(ours?.qps, 0),
        fixed(ratio, 2),
        rate ? "" : `>= ${target}`,
        ratio === undefined || rate ? "-" : ratio >= workload.target ? "ok" : "BELOW",
      ]);
      rows.push([
        `  p50 / p99 latency (ms)`,
        etcd ? `${fixed(etcd.p50_ms, 2)} / ${fixed(etcd.p99_ms, 2)}` : "-",
        ours ? `${fixed(ours.p50_ms, 2)} / ${fixed(ours.p99_ms, 2)}` : "-",
        "",
        "",
        "",
      ]);
    } else {
      const p50 = etcd && ours ? ours.p50_ms / etcd.p50_ms : undefined;
      const p99 = etcd && ours ? ours.p99_ms / etcd.p99_ms : undefined;
      rows.push([
        `${workload.name}, p50 (ms)`,
        fixed(etcd?.p50_ms, 2),
        fixed(ours?.p50_ms, 2),
        fixed(p50, 2),
        "",
        "",
      ]);
      rows.push([
        `${workload.name}, p99 (ms)`,
        fixed(etcd?.p99_ms, 2),
        fixed(ours?.p99_ms, 2),
        fixed(p99, 2),
        `<= ${target}`,
        p99 === undefined ? "-" : p99 <= workload.target ? "ok" : "ABOVE",
      ]);
    }
  }
  console.log(renderTable(rows));
  console.log(
    `\n${Math.round((Date.now() - started) / 1000)} s, ${Deno.build.os}, ` +
      `${navigator.hardwareConcurrency} CPUs, ${options.quick ? "--quick" : "full"} run` +
      `${options.auth ? " with auth on" : ""}` +
      `${
        options.tls !== undefined ? ` over ${options.tls === "mtls" ? "mutual TLS" : "TLS"}` : ""
      }` +
      `, ${options.rounds} round(s) per member, median shown`,
  );
  if (options.json !== undefined) {
    await Deno.writeTextFile(
      options.json,
      JSON.stringify(
        {
          date: new Date().toISOString(),
          auth: options.auth,
          tls: options.tls ?? "none",
          results: Object.fromEntries(results),
          ...(options.auth ? { bursts: Object.fromEntries(bursts) } : {}),
        },
        null,
        2,
      ),
    );
  }
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    Deno.exit(1);
  }
}
