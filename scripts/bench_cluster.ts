/**
 * `deno task bench:cluster`: 3-member clusters of etcd 3.4.23 and of detcd on 127.0.0.1, measured
 * by the same load generator (ebench, on etcd's own Go client) in one run, alternating rounds:
 *
 *   - put throughput, 50 clients over 10 connections spread on all three members, 256 B values;
 *   - linearizable range throughput, same spread (followers ask the leader for a read index);
 *   - lease keep-alive, 50 clients (one lease each, KeepAliveOnce per request), all connected to
 *     the leader, then all to one follower (which forwards every renew to the leader);
 *   - time to a new leader after kill -9 of the leader (polling every member's Status each 10 ms),
 *     with the same --heartbeat-interval / --election-timeout for both.
 *
 * Usage: deno task bench:cluster [--rounds N] [--kills N] [--quick] [--heartbeat MS --election MS]
 *        [--json FILE]
 * ebench is found like scripts/bench.ts finds it (DETCD_EBENCH or .bench/ebench).
 */
import { type Cluster, startCluster } from "../tests/cluster_harness.ts";
import { KvClient, type Member, type MemberKind } from "../tests/harness.ts";
import { ebenchPath, type EbenchResult, median, runEbench } from "./_ebench.ts";

function ebench(path: string, endpoints: string, args: string[]): Promise<EbenchResult> {
  return runEbench(path, endpoints, args, "cluster");
}

interface Options {
  rounds: number;
  kills: number;
  quick: boolean;
  heartbeatMs: number;
  electionMs: number;
  json?: string;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { rounds: 3, kills: 3, quick: false, heartbeatMs: 100, electionMs: 1000 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    if (flag === "--rounds") o.rounds = Number(value());
    else if (flag === "--kills") o.kills = Number(value());
    else if (flag === "--quick") o.quick = true;
    else if (flag === "--heartbeat") o.heartbeatMs = Number(value());
    else if (flag === "--election") o.electionMs = Number(value());
    else if (flag === "--json") o.json = value();
    else {
      throw new Error(
        `unknown argument ${flag}\nusage: deno task bench:cluster [--rounds N] [--kills N] ` +
          "[--quick] [--heartbeat MS --election MS] [--json FILE]",
      );
    }
  }
  return o;
}

async function leaderOf(members: Member[]): Promise<bigint> {
  for (const m of members) {
    const c = new KvClient(m.endpoint);
    try {
      const s = await Promise.race([
        c.status(),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error("timeout")), 300)),
      ]);
      if (s.leader !== 0n) return s.leader;
    } catch {
      // next
    } finally {
      c.close();
    }
  }
  return 0n;
}

/** kill -9 of the leader; ms until a surviving member names a different, live leader. */
async function electionAfterKill(cluster: Cluster): Promise<number> {
  const leader = await cluster.waitForLeader();
  let victim: Member | undefined;
  for (const m of cluster.members) {
    const c = new KvClient(m.endpoint);
    try {
      if ((await c.status()).header?.memberId === leader) victim = m;
    } finally {
      c.close();
    }
  }
  if (!victim) throw new Error("leader not found among members");
  const survivors = cluster.members.filter((m) => m !== victim);
  await victim.kill("SIGKILL");
  const killedAt = performance.now();
  for (;;) {
    const now = await leaderOf(survivors);
    if (now !== 0n && now !== leader) break;
    if (performance.now() - killedAt > 30_000) {
      const tails = survivors.map((m) => `--- ${m.name}\n${m.logTail(1500)}`).join("\n");
      throw new Error(`no new leader within 30 s (last seen ${now.toString(16)})\n${tails}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  const elapsed = performance.now() - killedAt;
  await victim.restart();
  await cluster.waitForLeader();
  return elapsed;
}

async function main(): Promise<void> {
  const o = parseArgs(Deno.args);
  const path = await ebenchPath();
  const scale = o.quick ? 4 : 1;
  const common = ["-keys", "1000", "-val", "256", "-timeout", "120s", "-clients", "50", "-conns"];
  /** Where the clients connect: every member, the leader, or one follower. */
  type Target = "all" | "leader" | "follower";
  const workloads: { name: string; args: string[]; target: Target }[] = [
    {
      name: "put, 50 clients, 256 B",
      args: ["-op", "put", ...common, "10", "-total", `${40000 / scale}`],
      target: "all",
    },
    {
      name: "range (linearizable), 50 clients",
      args: ["-op", "range", ...common, "10", "-total", `${40000 / scale}`],
      target: "all",
    },
    {
      name: "lease keep-alive via the leader, 50 clients",
      args: ["-op", "keepalive", ...common, "10", "-total", `${40000 / scale}`],
      target: "leader",
    },
    {
      name: "lease keep-alive via a follower, 50 clients",
      args: ["-op", "keepalive", ...common, "10", "-total", `${40000 / scale}`],
      target: "follower",
    },
  ];
  const endpointsFor = async (cluster: Cluster, target: Target): Promise<string> => {
    if (target === "all") return cluster.endpoints();
    const leader = await cluster.waitForLeader();
    for (const m of cluster.members) {
      const client = new KvClient(m.endpoint);
      try {
        const isLeader = (await client.status()).header?.memberId === leader;
        if (isLeader === (target === "leader")) return m.endpoint;
      } finally {
        client.close();
      }
    }
    throw new Error(`no ${target} found`);
  };
  const kinds: MemberKind[] = ["etcd", "detcd"];
  const results = new Map<string, Record<MemberKind, EbenchResult[]>>();
  const elections: Record<MemberKind, number[]> = { etcd: [], detcd: [] };
  for (let round = 0; round < o.rounds; round++) {
    for (const kind of kinds) {
      const cluster = await startCluster({
        kind,
        size: 3,
        heartbeatIntervalMs: o.heartbeatMs,
        electionTimeoutMs: o.electionMs,
        namePrefix: `bench-${kind}-`,
      });
      try {
        const endpoints = cluster.endpoints();
        // Same warm-up for both (V8 compiles detcd's hot paths during the first requests).
        for (const op of ["put", "range"]) {
          await ebench(path, endpoints, ["-op", op, "-total", "5000", "-keys", "1000"]);
        }
        for (const w of workloads) {
          const r = await ebench(path, await endpointsFor(cluster, w.target), w.args);
          const entry = results.get(w.name) ?? { etcd: [], detcd: [] };
          entry[kind].push(r);
          results.set(w.name, entry);
          console.error(`round ${round + 1} ${kind.padEnd(5)} ${w.name}: ${JSON.stringify(r)}`);
        }
        if (round < o.kills) {
          const ms = await electionAfterKill(cluster);
          elections[kind].push(ms);
          console.error(
            `round ${round + 1} ${kind.padEnd(5)} new leader after kill -9: ${ms.toFixed(0)} ms`,
          );
        }
      } finally {
        await cluster.stop();
      }
    }
  }
  const rows: string[] = [
    `| workload | etcd | detcd | detcd/etcd |`,
    `|---|---|---|---|`,
  ];
  const summary: Record<string, unknown> = {};
  for (const [name, byKind] of results) {
    const e = median(byKind.etcd.map((r) => r.qps));
    const d = median(byKind.detcd.map((r) => r.qps));
    rows.push(`| ${name} (ops/s) | ${e.toFixed(0)} | ${d.toFixed(0)} | ${(d / e).toFixed(2)} |`);
    const ep99 = median(byKind.etcd.map((r) => r.p99_ms));
    const dp99 = median(byKind.detcd.map((r) => r.p99_ms));
    rows.push(
      `| ${name} p99 (ms) | ${ep99.toFixed(2)} | ${dp99.toFixed(2)} | ${
        (dp99 / ep99).toFixed(2)
      } |`,
    );
    summary[name] = { etcd: byKind.etcd, detcd: byKind.detcd };
  }
  if (elections.etcd.length > 0) {
    const e = median(elections.etcd);
    const d = median(elections.detcd);
    rows.push(
      `| new leader after kill -9 (ms, median of ${elections.etcd.length}) | ${e.toFixed(0)} | ` +
        `${d.toFixed(0)} | ${(d / e).toFixed(2)} |`,
    );
    summary.elections = elections;
  }
  console.log(
    `3-member clusters, --heartbeat-interval=${o.heartbeatMs} --election-timeout=${o.electionMs}, ` +
      `${o.rounds} rounds, medians, ${navigator.hardwareConcurrency} CPUs`,
  );
  console.log(rows.join("\n"));
  if (o.json) await Deno.writeTextFile(o.json, JSON.stringify(summary, null, 2));
}

await main();
