/**
 * `deno task bench:scale`: how detcd's cost grows with data, against etcd 3.4.23 in the same run
 * (issue 12). Each member, one at a time, fresh and single on loopback:
 *
 * 1. idle resident memory (VmRSS of the server process, 3 s after it serves);
 * 2. loads --keys distinct keys of 64 bytes with 256-byte values (scripts/scale_bench, etcd's own Go
 *    client, 64 writers) and reports puts/s;
 * 3. resident memory loaded (after 3 s), and again 20 s later with the probe running (the member
 *    quiet, its collector caught up), with the probe's longest wait in those 20 s;
 * 4. a keys-only listing of every key (`etcdctl get --prefix --keys-only`, output discarded),
 *    with the probe running (how long the member stopped answering while it built and sent it);
 * 5. --snapshots rounds (3 by default) of: 3 s quiet, the probe alone for 5 s (one serializable
 *    Get every 10 ms, the "normal"), then `etcdctl snapshot save` with the probe running and the
 *    member's RSS sampled every 50 ms;
 * 6. of those rounds: the save's median time (each bounded by --snapshot-timeout), whether every
 *    save completed, the file's size, the peak RSS, and the probe's p99 and max idle and during
 *    the saves, each over the rounds' probes pooled (one save of 1M keys is ~250 probes: alone,
 *    its p99 is its third-longest wait). The probe starts PROBE_LEAD_MS before what it measures,
 *    so that it covers the start of it;
 * 7. the data dir's size on disk;
 * 8. restart to healthy (SIGTERM, start on the same data dir, until a Get succeeds) and the RSS
 *    3 s after.
 *
 * Usage: deno task bench:scale [--keys N] [--only etcd|detcd] [--snapshot-timeout SECONDS]
 *   [--snapshots N] [--nice=N] [--json FILE]
 *
 * --nice=N (with "=": a negative value is no option): every thread of each member, etcd and detcd
 * alike, at nice N once it serves and again once it serves after its restart (the restart itself
 * runs at nice 0), as a unit file's `Nice=` would run it (openSUSE's etcd.service ships
 * `Nice=-10`); the load, the probe and etcdctl stay at nice 0. Below 0 needs root. On a small
 * machine the snapshot's probe waits mostly for a CPU (docs/benchmarks.md, session 29): this shows
 * what a member given the CPU's priority answers.
 *
 * scripts/scale_bench is built into .bench/scale_bench (needs Debian's golang-go and
 * golang-etcd-server-dev) unless DETCD_SCALE_BENCH names a built binary.
 */

import { parseArgs } from "node:util";
import { type MemberKind, sleep, startMember } from "../tests/harness.ts";
import {
  median,
  pooledProbe,
  type ProbeResult,
  rssMb,
  scaleBenchPath,
  startProbe,
} from "./_ebench.ts";

const { values: flags } = parseArgs({
  options: {
    keys: { type: "string", default: "200000" },
    only: { type: "string" },
    "snapshot-timeout": { type: "string", default: "300" },
    json: { type: "string" },
    nice: { type: "string" },
    snapshots: { type: "string", default: "3" },
  },
});
const KEYS = Number(flags.keys);
const SNAPSHOT_TIMEOUT_MS = Number(flags["snapshot-timeout"]) * 1000;
const SNAPSHOTS = Number(flags.snapshots);
if (!Number.isInteger(SNAPSHOTS) || SNAPSHOTS < 1) {
  throw new Error(`--snapshots: a whole number of at least 1, not ${flags.snapshots}`);
}
const NICE = flags.nice === undefined ? undefined : Number(flags.nice);
if (NICE !== undefined && (!Number.isInteger(NICE) || NICE < -20 || NICE > 19)) {
  throw new Error(`--nice: an integer from -20 to 19, not ${flags.nice}`);
}

/** Every thread of `pid` at nice NICE (setpriority applies to one thread: each task in turn). */
async function renice(pid: number): Promise<void> {
  if (NICE === undefined) return;
  const tids = [...Deno.readDirSync(`/proc/${pid}/task`)].map((t) => t.name);
  const out = await new Deno.Command("renice", { args: ["-n", String(NICE), "-p", ...tids] })
    .output();
  if (!out.success) throw new Error(`renice: ${new TextDecoder().decode(out.stderr)}`);
}

/** How long a probe runs before the operation it measures starts. */
const PROBE_LEAD_MS = 500;

async function duMb(path: string): Promise<number> {
  const out = await new Deno.Command("du", { args: ["-sb", path] }).output();
  return Number(new TextDecoder().decode(out.stdout).split("\t")[0]) / 1e6;
}

async function run(
  cmd: string,
  args: string[],
  timeoutMs: number,
): Promise<{ ok: boolean; ms: number; stdout: string; stderr: string }> {
  const started = performance.now();
  const child = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  const dec = new TextDecoder();
  return {
    ok: out.success,
    ms: performance.now() - started,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

interface ScaleResult {
  kind: MemberKind;
  keys: number;
  idleRssMb: number;
  loadPutsPerSec: number;
  loadedRssMb: number;
  settledRssMb: number;
  settlingProbeMaxMs: number;
  keysOnlyListSec: number;
  listProbeP99Ms: number;
  listProbeMaxMs: number;
  probeP99Ms: number;
  probeMaxMs: number;
  snapshotOk: boolean;
  snapshotSec: number;
  snapshotSecs: number[];
  snapshotMb: number;
  snapshotPeakRssMb: number;
  snapshotProbeP99Ms: number;
  snapshotProbeMaxMs: number;
  dataDirMb: number;
  restartSec: number;
  restartedRssMb: number;
}

async function measure(kind: MemberKind, tool: string): Promise<ScaleResult> {
  const member = await startMember({
    kind,
    extraArgs: ["--quota-backend-bytes", String(8 * 1024 ** 3)],
    readyTimeoutMs: 600_000,
  });
  const dir = await Deno.makeTempDir({ prefix: "detcd-scale-" });
  try {
    await renice(member.pid());
    await sleep(3000);
    const idleRssMb = rssMb(member.pid());
    console.error(`${kind}: loading ${KEYS} keys...`);
    const load = await run(tool, [
      "-mode",
      "load",
      "-endpoints",
      member.endpoint,
      "-keys",
      String(KEYS),
    ], 3_600_000);
    if (!load.ok) throw new Error(`load failed: ${load.stderr}`);
    const loaded = JSON.parse(load.stdout);
    await sleep(3000);
    const loadedRssMb = rssMb(member.pid());
    // The member left alone for 20 s with the probe running: what a loaded, quiet member holds
    // once its collector has caught up, and how long the requests wait meanwhile.
    console.error(`${kind}: settling...`);
    const settlingProbe = startProbe(tool, member, 25);
    await sleep(20_000);
    const settling = await settlingProbe.end();
    const settledRssMb = rssMb(member.pid());
    console.error(`${kind}: listing...`);
    // The probe answering before the listing starts (a Go process takes a moment to connect).
    const listProbe = startProbe(tool, member, 600);
    await sleep(PROBE_LEAD_MS);
    const list = await run("etcdctl", [
      "--endpoints",
      member.endpoint,
      "--command-timeout=600s",
      "get",
      "scale/",
      "--prefix",
      "--keys-only",
    ], 600_000);
    const listing = await listProbe.end();
    if (!list.ok) throw new Error(`listing failed: ${list.stderr}`);

    // SNAPSHOTS rounds of: a quiet pause, the probe alone for 5 s (the "normal"), then `snapshot
    // save` with the probe running. Each p99 is taken over the rounds' probes pooled: one save of
    // 1M keys is ~250 probes, whose p99 is their third-longest wait.
    const idleProbes: ProbeResult[] = [];
    const snapProbes: ProbeResult[] = [];
    const snapSecs: number[] = [];
    let snapOk = true;
    let snapshotMb = 0;
    let peak = 0;
    for (let round = 1; round <= SNAPSHOTS && snapOk; round++) {
      await sleep(3000);
      const idleProbe = startProbe(tool, member, 5);
      await sleep(5500);
      idleProbes.push(await idleProbe.end());

      console.error(`${kind}: snapshot save ${round}/${SNAPSHOTS}...`);
      const probe = startProbe(tool, member, SNAPSHOT_TIMEOUT_MS / 1000 + 10);
      await sleep(PROBE_LEAD_MS);
      peak = Math.max(peak, rssMb(member.pid()));
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          peak = Math.max(peak, rssMb(member.pid()));
          await sleep(50);
        }
      })();
      const file = `${dir}/snap.db`;
      const snap = await run(
        "etcdctl",
        ["--endpoints", member.endpoint, "snapshot", "save", file],
        SNAPSHOT_TIMEOUT_MS,
      );
      sampling = false;
      await sampler;
      snapProbes.push(await probe.end());
      snapOk = snap.ok;
      if (snap.ok) {
        snapSecs.push(snap.ms / 1000);
        snapshotMb = (await Deno.stat(file)).size / 1e6;
        await Deno.remove(file);
      } else {
        console.error(`${kind}: snapshot save failed: ${snap.stderr.slice(-500)}`);
      }
    }
    const normal = pooledProbe(idleProbes);
    const during = pooledProbe(snapProbes);

    const dataDirMb = await duMb(member.dataDir);
    console.error(`${kind}: restart...`);
    const started = performance.now();
    await member.restart();
    for (;;) {
      const get = await run("etcdctl", [
        "--endpoints",
        member.endpoint,
        "get",
        "scale/",
        "--prefix",
        "--limit=1",
        "--keys-only",
      ], 30_000);
      if (get.ok && get.stdout.startsWith("scale/")) break;
      await sleep(100);
    }
    const restartSec = (performance.now() - started) / 1000;
    await renice(member.pid());
    await sleep(3000);
    return {
      kind,
      keys: KEYS,
      idleRssMb,
      loadPutsPerSec: loaded.qps,
      loadedRssMb,
      settledRssMb,
      settlingProbeMaxMs: settling.max_ms,
      keysOnlyListSec: list.ms / 1000,
      listProbeP99Ms: listing.p99_ms,
      listProbeMaxMs: listing.max_ms,
      probeP99Ms: normal.p99_ms,
      probeMaxMs: normal.max_ms,
      snapshotOk: snapOk,
      snapshotSec: snapOk ? median(snapSecs) : SNAPSHOT_TIMEOUT_MS / 1000,
      snapshotSecs: snapSecs,
      snapshotMb,
      snapshotPeakRssMb: peak,
      snapshotProbeP99Ms: during.p99_ms,
      snapshotProbeMaxMs: during.max_ms,
      dataDirMb,
      restartSec,
      restartedRssMb: rssMb(member.pid()),
    };
  } finally {
    await member.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

const tool = await scaleBenchPath();
const kinds: MemberKind[] = flags.only ? [flags.only as MemberKind] : ["etcd", "detcd"];
const results: ScaleResult[] = [];
for (const kind of kinds) {
  const r = await measure(kind, tool);
  console.error(JSON.stringify(r));
  results.push(r);
}

const rows: Array<[string, keyof ScaleResult, number]> = [
  ["idle resident memory (MB)", "idleRssMb", 0],
  ["puts/s while loading", "loadPutsPerSec", 0],
  ["resident memory, loaded (MB)", "loadedRssMb", 0],
  ["resident memory, loaded, 20 s later (MB)", "settledRssMb", 0],
  ["probe Get max in those 20 s (ms)", "settlingProbeMaxMs", 1],
  ["keys-only listing of all keys (s)", "keysOnlyListSec", 2],
  ["probe Get p99 during the listing (ms)", "listProbeP99Ms", 1],
  ["probe Get max during the listing (longest stall, ms)", "listProbeMaxMs", 1],
  ["probe Get p99, idle (ms)", "probeP99Ms", 1],
  ["probe Get max, idle (ms)", "probeMaxMs", 1],
  ["`snapshot save` time (s, median)", "snapshotSec", 2],
  ["snapshot file (MB)", "snapshotMb", 0],
  ["peak resident memory during snapshot (MB)", "snapshotPeakRssMb", 0],
  ["probe Get p99 during snapshot (ms)", "snapshotProbeP99Ms", 1],
  ["probe Get max during snapshot (longest stall, ms)", "snapshotProbeMaxMs", 1],
  ["data dir on disk (MB)", "dataDirMb", 0],
  ["restart to healthy (s)", "restartSec", 2],
  ["resident memory after restart (MB)", "restartedRssMb", 0],
];
const byKind = (k: MemberKind) => results.find((r) => r.kind === k);
const e = byKind("etcd");
const d = byKind("detcd");
const niced = NICE === undefined ? "" : `, both members at nice ${NICE}`;
console.log(
  `\n${KEYS} keys (64-byte keys, 256-byte values, ${SNAPSHOTS} snapshot round(s)${niced})\n`,
);
console.log("| | etcd 3.4.23 | detcd | detcd/etcd |");
console.log("|---|---:|---:|---:|");
for (const [label, field, digits] of rows) {
  const ev = e?.[field] as number | undefined;
  const dv = d?.[field] as number | undefined;
  const fmt = (v: number | undefined) => v === undefined ? "-" : v.toFixed(digits);
  const ratio = ev && dv !== undefined ? `${(dv / ev).toFixed(2)}x` : "-";
  console.log(`| ${label} | ${fmt(ev)} | ${fmt(dv)} | ${ratio} |`);
}
for (const r of results) {
  if (!r.snapshotOk) console.log(`\n${r.kind}: snapshot save did NOT complete`);
}
if (flags.json) await Deno.writeTextFile(flags.json, JSON.stringify(results, null, 2));
