/**
 * `deno task bench`: detcd against etcd 3.4.23, side by side, in one run, with the same load
 * generator (ebench, built on etcd's own Go client). Prints each workload's result for both and the
 * detcd/etcd ratio against the targets: throughput at least 0.7x etcd's, p99 latency at most 2x.
 *
 * Usage: deno task bench [--only etcd|detcd] [--quick] [--cold] [--rounds N] [--json FILE]
 *
 * Before measuring, each member gets the same warm-up (5000 puts, ranges and txns) unless --cold.
 *
 * --rounds N runs every workload N times (etcd, detcd, etcd, detcd, ...) and reports, per member,
 * the round with the median throughput: on a shared machine that is steadier than one round.
 *
 * ebench comes from DETCD_EBENCH (a built binary), else .bench/ebench, else it is built there with
 * build.sh from DETCD_EBENCH_SRC (default ../shared/bench next to the repository; needs Debian's
 * golang-go and golang-etcd-server-dev). Members are single, fresh, on loopback; workloads run one
 * at a time, etcd then detcd, so they never compete for the CPU.
 */

import { type Member, type MemberKind, startMember } from "../tests/harness.ts";
import { ebenchPath, type EbenchResult, runEbench as ebenchRun } from "./_ebench.ts";

function runEbench(ebench: string, member: Member, args: string[]): Promise<EbenchResult> {
  return ebenchRun(ebench, member.endpoint, args, member.kind);
}

/** A workload and how its ratio is judged. */
interface Workload {
  name: string;
  args: string[];
  /** "throughput": detcd/etcd qps should be ≥ 0.7; "latency": detcd/etcd p99 should be ≤ 2. */
  judge: "throughput" | "latency";
}

interface Options {
  only?: MemberKind;
  quick: boolean;
  /** Measure from a cold start: no warm-up traffic before the first workload. */
  cold: boolean;
  rounds: number;
  json?: string;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { quick: false, cold: false, rounds: 1 };
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
    } else if (flag === "--json") {
      options.json = value();
    } else {
      throw new Error(
        `unknown argument ${arg}\nusage: deno task bench [--only etcd|detcd] ` +
          "[--quick] [--cold] [--rounds N] [--json FILE]",
      );
    }
  }
  return options;
}

function workloads(quick: boolean): Workload[] {
  const scale = quick ? 4 : 1;
  const common = ["-keys", "1000", "-val", "256", "-timeout", "120s"];
  return [
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
      name: "txn (compare + put), 50 clients",
      args: ["-op", "txn", "-clients", "50", "-conns", "10", "-total", `${20_000 / scale}`],
      judge: "throughput",
    },
    {
      name: "put latency, 1 client",
      args: ["-op", "put", "-clients", "1", "-conns", "1", "-total", `${2_000 / scale}`],
      judge: "latency",
    },
  ].map((workload) => ({ ...workload, args: [...workload.args, ...common] }) as Workload);
}

/** The round with the median throughput (the lower middle one for an even count). */
function median(results: EbenchResult[]): EbenchResult | undefined {
  const sorted = [...results].sort((a, b) => a.qps - b.qps);
  return sorted[Math.floor((sorted.length - 1) / 2)];
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

async function main(): Promise<void> {
  const options = parseArgs(Deno.args);
  const kinds: MemberKind[] = options.only !== undefined ? [options.only] : ["etcd", "detcd"];
  const ebench = await ebenchPath();
  const plan = workloads(options.quick);
  const results = new Map<string, Partial<Record<MemberKind, EbenchResult>>>();
  const members: Member[] = [];
  const started = Date.now();
  try {
    for (const kind of kinds) members.push(await startMember({ kind, name: `bench-${kind}` }));
    console.error(
      `members: ${members.map((m) => `${m.kind} at ${m.endpoint}`).join(", ")}; ebench ${ebench}`,
    );
    if (!options.cold) {
      // Steady state, not start-up, is what the targets are about: every member gets the same
      // warm-up traffic (V8 compiles detcd's hot paths during the first thousands of requests;
      // etcd's Go code needs none, so this only removes a handicap). --cold skips it.
      for (const member of members) {
        for (const op of ["put", "range", "txn"]) {
          await runEbench(ebench, member, ["-op", op, "-total", "5000", "-keys", "1000"]);
        }
      }
    }
    for (const workload of plan) {
      const rounds: Partial<Record<MemberKind, EbenchResult[]>> = {};
      for (let round = 0; round < options.rounds; round++) {
        for (const member of members) {
          const result = await runEbench(ebench, member, workload.args);
          (rounds[member.kind] ??= []).push(result);
          console.error(`${member.kind.padEnd(5)} ${workload.name}: ${JSON.stringify(result)}`);
          if (result.errors > 0) {
            console.error(`  ${result.errors} errors, first: ${result.first_error ?? "?"}`);
          }
        }
      }
      const byKind: Partial<Record<MemberKind, EbenchResult>> = {};
      for (const kind of kinds) byKind[kind] = median(rounds[kind] ?? []);
      results.set(workload.name, byKind);
    }
  } finally {
    await Promise.all(members.map((member) => member.stop()));
  }

  const header = ["workload", "etcd", "detcd", "detcd/etcd", "target", "verdict"];
  const rows: string[][] = [header];
  for (const workload of plan) {
    const byKind = results.get(workload.name) ?? {};
    const etcd = byKind.etcd;
    const ours = byKind.detcd;
    if (workload.judge === "throughput") {
      const ratio = etcd && ours ? ours.qps / etcd.qps : undefined;
      rows.push([
        `${workload.name} (ops/s)`,
        fixed(etcd?.qps, 0),
        fixed(ours?.qps, 0),
        fixed(ratio, 2),
        ">= 0.70",
        ratio === undefined ? "-" : ratio >= 0.7 ? "ok" : "BELOW",
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
        "<= 2.00",
        p99 === undefined ? "-" : p99 <= 2 ? "ok" : "ABOVE",
      ]);
    }
  }
  console.log(renderTable(rows));
  console.log(
    `\n${Math.round((Date.now() - started) / 1000)} s, ${Deno.build.os}, ` +
      `${navigator.hardwareConcurrency} CPUs, ${options.quick ? "--quick" : "full"} run, ` +
      `${options.rounds} round(s) per member, median shown`,
  );
  if (options.json !== undefined) {
    await Deno.writeTextFile(
      options.json,
      JSON.stringify(
        { date: new Date().toISOString(), results: Object.fromEntries(results) },
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
