/**
 * `deno task bench:defrag`: defragment under writers, against etcd 3.4.23 in the same run (issue
 * 13, etcd #9222). Each member, one at a time, fresh and single on loopback: --keys keys of 64
 * bytes with 256-byte values loaded and the first half overwritten; then, while --clients writers
 * (default 50) put without pause, a compaction at the revision before them (half the stored data
 * is garbage then) and a `Defragment` (scripts/scale_bench -mode defrag): how long each took, the
 * db size before and after, and the writers' p99 and longest put before and from the compaction
 * to 1 s after the defragment.
 *
 * Usage: deno task bench:defrag [--keys N] [--clients N] [--only etcd|detcd] [--json FILE]
 */

import { parseArgs } from "node:util";
import { type MemberKind, startMember } from "../tests/harness.ts";
import { scaleBenchPath } from "./_ebench.ts";

const { values: flags } = parseArgs({
  options: {
    keys: { type: "string", default: "200000" },
    clients: { type: "string", default: "50" },
    only: { type: "string" },
    json: { type: "string" },
  },
});
const KEYS = Number(flags.keys);
const CLIENTS = Number(flags.clients);

interface DefragResult {
  kind: MemberKind;
  compact_seconds: number;
  seconds: number;
  db_before: number;
  db_in_use_before: number;
  db_after: number;
  db_in_use_after: number;
  writes_during: number;
  p99_ms_before: number;
  max_ms_before: number;
  p99_ms_during: number;
  max_ms_during: number;
  errors: number;
}

async function tool(args: string[]): Promise<Record<string, number>> {
  const out = await new Deno.Command(await scaleBenchPath(), {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  if (!out.success) throw new Error(`scale_bench ${args.join(" ")}: ${dec.decode(out.stderr)}`);
  return JSON.parse(dec.decode(out.stdout).trim().split("\n").at(-1)!);
}

async function measure(kind: MemberKind): Promise<DefragResult> {
  const member = await startMember({
    kind,
    // Big enough for the loaded keys; the default quota would be too, but say it.
    extraArgs: ["--quota-backend-bytes", String(8 * 1024 ** 3)],
    readyTimeoutMs: 120_000,
  });
  try {
    const ep = ["-endpoints", member.endpoint, "-keys", String(KEYS)];
    await tool([...ep, "-mode", "load"]);
    const r = await tool([...ep, "-mode", "defrag", "-clients", String(CLIENTS)]);
    return { kind, ...r } as unknown as DefragResult;
  } finally {
    await member.stop();
  }
}

const kinds: MemberKind[] = flags.only ? [flags.only as MemberKind] : ["etcd", "detcd"];
const results: DefragResult[] = [];
for (const kind of kinds) {
  console.error(`${kind}: loading ${KEYS} keys, then defragment under ${CLIENTS} writers ...`);
  results.push(await measure(kind));
}
const mb = (b: number) => (b / 1024 / 1024).toFixed(1);
const rows: [string, (r: DefragResult) => string][] = [
  ["compaction (s)", (r) => r.compact_seconds.toFixed(2)],
  ["defragment (s)", (r) => r.seconds.toFixed(2)],
  ["db size before (MB)", (r) => mb(r.db_before)],
  ["db in use before (MB)", (r) => mb(r.db_in_use_before)],
  ["db size after (MB)", (r) => mb(r.db_after)],
  ["db in use after (MB)", (r) => mb(r.db_in_use_after)],
  ["puts in that window", (r) => String(r.writes_during)],
  ["put p99 before (ms)", (r) => r.p99_ms_before.toFixed(1)],
  ["longest put before (ms)", (r) => r.max_ms_before.toFixed(1)],
  ["put p99 compaction to defragment + 1 s (ms)", (r) => r.p99_ms_during.toFixed(1)],
  ["longest put compaction to defragment + 1 s (ms)", (r) => r.max_ms_during.toFixed(1)],
  ["errors", (r) => String(r.errors)],
];
console.log(`| ${KEYS} keys | ${results.map((r) => r.kind).join(" | ")} |`);
console.log(`|---|${results.map(() => "---").join("|")}|`);
for (const [label, f] of rows) console.log(`| ${label} | ${results.map(f).join(" | ")} |`);
if (flags.json) await Deno.writeTextFile(flags.json, JSON.stringify(results, null, 2));
