/**
 * Leases on a real 3-member detcd cluster (processes on 127.0.0.1), driven by real etcdctl
 * 3.4.23: keep-alive through a follower (forwarded to the leader over the peer port), a lease kept
 * alive survives kill -9 of the leader, and an abandoned lease expires with its keys deleted on
 * every member (the leader's revoke goes through Raft).
 */
import { assert, assertEquals } from "../core/testing.ts";
import { startCluster } from "./cluster_harness.ts";
import { KvClient, type Member, requireDetcd, runCtl, tlsCtlEnv } from "./harness.ts";

const detcd = requireDetcd();

async function statusOf(member: Member) {
  const client = new KvClient(member.endpoint);
  const timer = setTimeout(() => client.close(), 2000);
  try {
    return await client.status();
  } finally {
    clearTimeout(timer);
    client.close();
  }
}

async function ctl(member: Member, ...args: string[]): Promise<string> {
  const r = await runCtl("etcdctl", [`--endpoints=${member.endpoint}`, ...args]);
  assertEquals(r.code, 0, `etcdctl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test({
  name:
    "cluster leases: keep-alive through a follower survives kill -9 of the leader; expiry deletes keys on every member",
  ignore: detcd.ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const cluster = await startCluster({ kind: "detcd", size: 3 });
    let keeper: Deno.ChildProcess | null = null;
    try {
      const leaderId = await cluster.waitForLeader();
      const statuses = await Promise.all(cluster.members.map(statusOf));
      const leader = cluster.members[statuses.findIndex((s) => s.header?.memberId === leaderId)];
      const followers = cluster.members.filter((m) => m !== leader);
      const [f1, f2] = followers;

      const kept = /lease ([0-9a-f]+) granted with TTL\(4s\)/.exec(
        await ctl(f1, "lease", "grant", "4"),
      )![1];
      const left = /lease ([0-9a-f]+) granted with TTL\(3s\)/.exec(
        await ctl(f2, "lease", "grant", "3"),
      )![1];
      assertEquals(await ctl(f1, "put", `--lease=${kept}`, "kept", "v"), "OK\n");
      assertEquals(await ctl(f2, "put", `--lease=${left}`, "left", "v"), "OK\n");
      assertEquals(
        await ctl(leader, "lease", "list"),
        `found 2 leases\n${[kept, left].sort().join("\n")}\n`,
      );

      // A follower asks the leader for remaining TTLs (only the leader keeps expiries).
      const viaFollower = await ctl(f2, "lease", "timetolive", "--keys", left);
      assert(
        new RegExp(
          `^lease ${left} granted with TTL\\(3s\\), remaining\\([1-3]s\\), attached keys\\(\\[left\\]\\)\\n$`,
        )
          .test(viaFollower),
        viaFollower,
      );

      // etcdctl keeps the lease alive through a follower (every TTL/3 s).
      keeper = new Deno.Command("etcdctl", {
        args: [`--endpoints=${f1.endpoint}`, "lease", "keep-alive", kept],
        env: tlsCtlEnv(),
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const out: string[] = [];
      const reading = (async () => {
        const decoder = new TextDecoder();
        for await (const chunk of keeper!.stdout) out.push(decoder.decode(chunk));
      })();
      await sleep(2500);
      assert(out.join("").includes(`lease ${kept} keepalived with TTL(4)`), out.join(""));

      await leader.kill("SIGKILL");
      const survivors = followers;
      let newLeader = leaderId;
      const killedAt = Date.now();
      while (newLeader === leaderId && Date.now() - killedAt < 20_000) {
        newLeader = await cluster.waitForLeader(survivors);
        if (newLeader === leaderId) await sleep(100);
      }
      assert(newLeader !== leaderId, "a new leader was elected");
      // Well past the TTL and a new leader's grace: the abandoned lease must be gone, the kept one
      // still there.
      await sleep(8000);
      const before = out.join("").split("\n").filter((l) => l.includes("keepalived")).length;
      await sleep(3000);
      const after = out.join("").split("\n").filter((l) => l.includes("keepalived")).length;
      assert(after > before, `keep-alives continue after the leader change (${before} → ${after})`);
      for (const m of survivors) {
        assertEquals(await ctl(m, "get", "kept", "--consistency=s"), "kept\nv\n", m.name);
        assertEquals(await ctl(m, "get", "left", "--consistency=s"), "", m.name);
      }
      const ttl = await ctl(f2, "lease", "timetolive", "--keys", kept);
      assert(
        new RegExp(
          `^lease ${kept} granted with TTL\\(4s\\), remaining\\([1-5]s\\), attached keys\\(\\[kept\\]\\)\\n$`,
        )
          .test(ttl),
        ttl,
      );
      assertEquals(await ctl(f2, "lease", "timetolive", left), `lease ${left} already expired\n`);
      assertEquals(await ctl(f1, "lease", "list"), `found 1 leases\n${kept}\n`);
      keeper.kill("SIGKILL");
      await keeper.status;
      await reading.catch(() => {});
      keeper = null;
    } finally {
      if (keeper) {
        keeper.kill("SIGKILL");
        await keeper.status;
      }
      await cluster.stop();
    }
  },
});
