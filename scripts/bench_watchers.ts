/**
 * `deno task bench:watchers`: what idle watchers cost every write, against etcd 3.4.23 in the same
 * run (issue 15). Each member, one at a time, fresh and single on loopback: puts by --clients
 * writers (default 50) over 1000 keys with no watcher open, then the same with --watchers idle
 * single-key watchers (default 10,000) and --range-watchers idle prefix watchers (default 1,000)
 * open on keys and prefixes nothing writes, so that every put is checked against them and sent to
 * none (scripts/scale_bench -mode watchers, etcd's Go client). Reports puts/s and p99 without and
 * with, the slowdown, and the member's resident memory (VmRSS) a second after the puts without
 * watchers and a second after every watcher is open: their difference per watcher is what an idle
 * watcher costs.
 *
 * The watchers are held by a process of their own (`scale_bench -mode holdwatchers`), idle while
 * the writers run, so that what is measured is the member's cost: opened in the writers' own
 * process (`--same-process`, as before session 23) the writers ran 10-21% slower against detcd and
 * 5-8% against etcd, and 1% and 0% with the same watchers held apart (docs/benchmarks.md).
 *
 * Usage: deno task bench:watchers [--watchers N] [--range-watchers N] [--total N] [--clients N]
 *                                 [--only etcd|detcd] [--same-process]
 */
import { parseArgs } from "node:util";
import { type MemberKind, startMember } from "../tests/harness.ts";
import { rssMb, scaleBenchPath } from "./_ebench.ts";

const { values: flags } = parseArgs({
  options: {
    watchers: { type: "string", default: "10000" },
    "range-watchers": { type: "string", default: "1000" },
    total: { type: "string", default: "40000" },
    clients: { type: "string", default: "50" },
    only: { type: "string" },
    "same-process": { type: "boolean", default: false },
  },
});

interface WatchersResult {
  kind: MemberKind;
  qps_without: number;
  qps_with: number;
  p99_ms_without: number;
  p99_ms_with: number;
  errors: number;
  rss_mb_without: number;
  rss_mb_with: number;
}

async function measure(kind: MemberKind): Promise<WatchersResult> {
  const member = await startMember({ kind });
  try {
    const out = await new Deno.Command(await scaleBenchPath(), {
      args: [
        "-endpoints",
        member.endpoint,
        "-mode",
        "watchers",
        "-keys",
        "1000",
        "-clients",
        flags.clients!,
        "-total",
        flags.total!,
        "-watchers",
        flags.watchers!,
        "-rangewatchers",
        flags["range-watchers"]!,
        ...(flags["same-process"] ? [] : ["-holder"]),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const toWriters = out.stdin.getWriter();
    let holder: Deno.ChildProcess | null = null;
    // The holder's watchers, opened when the writers ask: resolves once every one is created.
    const holdWatchers = async (): Promise<void> => {
      holder = new Deno.Command(await scaleBenchPath(), {
        args: [
          "-endpoints",
          member.endpoint,
          "-mode",
          "holdwatchers",
          "-watchers",
          flags.watchers!,
          "-rangewatchers",
          flags["range-watchers"]!,
        ],
        stdin: "piped",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      let said = "";
      for await (const chunk of holder.stderr.pipeThrough(new TextDecoderStream())) {
        said += chunk;
        if (said.includes("mark: watchers open\n")) return;
      }
      throw new Error(`the watchers' holder ended: ${said}`);
    };
    const marks = new Map<string, number>();
    let stderr = "";
    const reading = (async () => {
      for await (const chunk of out.stderr.pipeThrough(new TextDecoderStream())) {
        stderr += chunk;
        if (!marks.has("open watchers") && stderr.includes("mark: open watchers\n")) {
          marks.set("open watchers", 0);
          try {
            await holdWatchers();
          } catch (e) {
            out.kill(); // it waits for word that will not come
            throw e;
          }
          await toWriters.write(new TextEncoder().encode("open\n"));
        }
        for (const mark of ["no watchers", "watchers open"]) {
          if (!marks.has(mark) && stderr.includes(`mark: ${mark}\n`)) {
            marks.set(mark, 0);
            await new Promise((r) => setTimeout(r, 1000));
            marks.set(mark, rssMb(member.pid()));
          }
        }
      }
    })();
    try {
      const [status, stdout] = await Promise.all([out.status, new Response(out.stdout).text()]);
      await reading;
      if (!status.success) throw new Error(`scale_bench: ${stderr}`);
      return {
        kind,
        ...JSON.parse(stdout.trim().split("\n").at(-1)!),
        rss_mb_without: marks.get("no watchers") ?? NaN,
        rss_mb_with: marks.get("watchers open") ?? NaN,
      };
    } finally {
      await toWriters.close().catch(() => {});
      const held = holder as Deno.ChildProcess | null;
      if (held !== null) {
        await held.stdin.close().catch(() => {});
        await held.status;
      }
    }
  } finally {
    await member.stop();
  }
}

const kinds: MemberKind[] = flags.only ? [flags.only as MemberKind] : ["etcd", "detcd"];
const results: WatchersResult[] = [];
for (const kind of kinds) {
  console.error(
    `${kind}: ${flags.total} puts without, then with ${flags.watchers} + ` +
      `${flags["range-watchers"]} idle watchers ...`,
  );
  results.push(await measure(kind));
}
const rows: [string, (r: WatchersResult) => string][] = [
  ["puts/s, no watchers", (r) => r.qps_without.toFixed(0)],
  ["puts/s, watchers open", (r) => r.qps_with.toFixed(0)],
  ["slowdown", (r) => `${((1 - r.qps_with / r.qps_without) * 100).toFixed(1)}%`],
  ["put p99, no watchers (ms)", (r) => r.p99_ms_without.toFixed(1)],
  ["put p99, watchers open (ms)", (r) => r.p99_ms_with.toFixed(1)],
  ["resident memory, no watchers (MB)", (r) => r.rss_mb_without.toFixed(1)],
  ["resident memory, watchers open (MB)", (r) => r.rss_mb_with.toFixed(1)],
  [
    "memory per idle watcher (bytes)",
    (r) =>
      (((r.rss_mb_with - r.rss_mb_without) * 1024 * 1024) /
        (Number(flags.watchers) + Number(flags["range-watchers"]))).toFixed(0),
  ],
  ["errors", (r) => String(r.errors)],
];
console.log(
  `| ${flags.watchers} + ${flags["range-watchers"]} idle watchers | ${
    results.map((r) => r.kind).join(" | ")
  } |`,
);
console.log(`|---|${results.map(() => "---").join("|")}|`);
for (const [label, f] of rows) console.log(`| ${label} | ${results.map(f).join(" | ")} |`);
