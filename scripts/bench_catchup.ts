/**
 * `deno task bench:catchup`: a follower that fell behind a compacted log catches up from a
 * snapshot the leader sends (issue 12: "snapshots sent to followers stream ... with bounded
 * memory"), etcd 3.4.23 and detcd in the same run. For each kind, a 3-member cluster on loopback
 * with `--snapshot-count 10000`:
 *
 * 1. one follower is stopped (SIGTERM);
 * 2. --keys distinct keys of 64 bytes with 256-byte values are written through the leader
 *    (scripts/scale_bench, etcd's own Go client): the leader's log is compacted far past the
 *    stopped follower, so only a snapshot can bring it back;
 * 3. the follower is started again with a probe on the leader (a serializable Get every 10 ms),
 *    both processes' resident memory sampled every 50 ms, until the follower's revision is the
 *    leader's;
 * 4. reported: the time to catch up, the leader's and the follower's peak resident memory (and
 *    the leader's before), the follower's resident memory after, and the probe's p99 and max on the
 *    leader while the snapshot went out (the "normal" probe p99 is taken before the restart);
 * 5. the follower is restarted once more, from the snapshot it received (detcd: a full snapshot
 *    file, read by position), until it answers at the leader's revision: the time, and its
 *    resident memory 3 s later.
 *
 * Usage: deno task bench:catchup [--keys N] [--only etcd|detcd] [--json FILE]
 */

import { parseArgs } from "node:util";
import { startCluster } from "../tests/cluster_harness.ts";
import { KvClient, type Member, type MemberKind, sleep } from "../tests/harness.ts";
import { rssMb, scaleBenchPath, startProbe } from "./_ebench.ts";

const { values: flags } = parseArgs({
  options: {
    keys: { type: "string", default: "200000" },
    only: { type: "string" },
    json: { type: "string" },
  },
});
const KEYS = Number(flags.keys);
const SCALE_BENCH = await scaleBenchPath();

interface CatchUpResult {
  kind: MemberKind;
  keys: number;
  loadPutsPerSec: number;
  leaderRssBeforeMb: number;
  probeP99Ms: number;
  catchUpSec: number;
  leaderPeakRssMb: number;
  followerPeakRssMb: number;
  followerRssAfterMb: number;
  catchUpProbeP99Ms: number;
  catchUpProbeMaxMs: number;
  restartSec: number;
  restartedRssMb: number;
}

async function tool(args: string[]): Promise<string> {
  const out = await new Deno.Command(SCALE_BENCH, {
    args,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`scale_bench ${args.join(" ")} failed`);
  return new TextDecoder().decode(out.stdout);
}

async function revisionOf(member: Member): Promise<bigint> {
  const client = new KvClient(member.endpoint);
  const timer = setTimeout(() => client.close(), 2000);
  try {
    return (await client.status()).header?.revision ?? -1n;
  } catch {
    return -1n;
  } finally {
    clearTimeout(timer);
    client.close();
  }
}

async function measure(kind: MemberKind): Promise<CatchUpResult> {
  const cluster = await startCluster({
    kind,
    size: 3,
    extraArgs: ["--snapshot-count", "10000", "--quota-backend-bytes", String(8 * 1024 ** 3)],
    readyTimeoutMs: 600_000,
  });
  try {
    const leaderId = await cluster.waitForLeader();
    const statuses = await Promise.all(cluster.members.map(async (m) => {
      const c = new KvClient(m.endpoint);
      try {
        return (await c.status()).header?.memberId;
      } finally {
        c.close();
      }
    }));
    const leader = cluster.members[statuses.indexOf(leaderId)];
    const follower = cluster.members.find((m) => m !== leader)!;
    await follower.kill("SIGTERM");
    console.error(`${kind}: loading ${KEYS} keys with a follower down...`);
    const loaded = JSON.parse(
      await tool(["-mode", "load", "-endpoints", leader.endpoint, "-keys", String(KEYS)]),
    );
    const target = await revisionOf(leader);
    await sleep(3000);
    const leaderRssBeforeMb = rssMb(leader.pid());
    const idle = startProbe(SCALE_BENCH, leader, 5);
    await sleep(5500);
    const normal = await idle.end();

    console.error(`${kind}: restarting the follower...`);
    const during = startProbe(SCALE_BENCH, leader, 600);
    let leaderPeak = rssMb(leader.pid());
    let followerPeak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        leaderPeak = Math.max(leaderPeak, rssMb(leader.pid()));
        try {
          if (follower.running()) followerPeak = Math.max(followerPeak, rssMb(follower.pid()));
        } catch {
          // between incarnations
        }
        await sleep(50);
      }
    })();
    const started = performance.now();
    await follower.restart();
    const deadline = Date.now() + 600_000;
    while ((await revisionOf(follower)) < target) {
      if (Date.now() > deadline) throw new Error(`${kind}: the follower did not catch up`);
      await sleep(50);
    }
    const catchUpSec = (performance.now() - started) / 1000;
    sampling = false;
    await sampler;
    const caught = await during.end();
    await sleep(3000);
    const followerRssAfterMb = rssMb(follower.pid());
    console.error(`${kind}: restarting the follower from its snapshot...`);
    const again = performance.now();
    await follower.restart();
    while ((await revisionOf(follower)) < target) {
      if (Date.now() > deadline) throw new Error(`${kind}: the follower did not come back`);
      await sleep(50);
    }
    const restartSec = (performance.now() - again) / 1000;
    await sleep(3000);
    return {
      kind,
      keys: KEYS,
      loadPutsPerSec: loaded.qps,
      leaderRssBeforeMb,
      probeP99Ms: normal.p99_ms,
      catchUpSec,
      leaderPeakRssMb: leaderPeak,
      followerPeakRssMb: followerPeak,
      followerRssAfterMb,
      catchUpProbeP99Ms: caught.p99_ms,
      catchUpProbeMaxMs: caught.max_ms,
      restartSec,
      restartedRssMb: rssMb(follower.pid()),
    };
  } finally {
    await cluster.stop();
  }
}

const kinds: MemberKind[] = flags.only ? [flags.only as MemberKind] : ["etcd", "detcd"];
const results: CatchUpResult[] = [];
for (const kind of kinds) results.push(await measure(kind));
if (flags.json) await Deno.writeTextFile(flags.json, JSON.stringify(results, null, 2));

const rows: [string, keyof CatchUpResult, number][] = [
  ["puts/s while loading", "loadPutsPerSec", 0],
  ["leader resident memory before (MB)", "leaderRssBeforeMb", 0],
  ["probe p99 on the leader before (ms)", "probeP99Ms", 2],
  ["follower restart to caught up (s)", "catchUpSec", 1],
  ["leader peak resident memory (MB)", "leaderPeakRssMb", 0],
  ["follower peak resident memory (MB)", "followerPeakRssMb", 0],
  ["follower resident memory after (MB)", "followerRssAfterMb", 0],
  ["probe p99 on the leader during (ms)", "catchUpProbeP99Ms", 2],
  ["probe max on the leader during (ms)", "catchUpProbeMaxMs", 1],
  ["follower restart from its snapshot (s)", "restartSec", 1],
  ["follower resident memory after it (MB)", "restartedRssMb", 0],
];
const pad = (s: string, n: number) => s.padStart(n);
console.log(
  `| ${KEYS} keys | ${kinds.join(" | ")} |${results.length === 2 ? " detcd/etcd |" : ""}`,
);
console.log(
  `| --- | ${kinds.map(() => "---:").join(" | ")} |${results.length === 2 ? " ---: |" : ""}`,
);
for (const [label, field, digits] of rows) {
  const values = results.map((r) => r[field] as number);
  const ratio = values.length === 2 ? ` ${(values[1] / values[0]).toFixed(2)}x |` : "";
  console.log(`| ${label} | ${values.map((v) => pad(v.toFixed(digits), 8)).join(" | ")} |${ratio}`);
}
