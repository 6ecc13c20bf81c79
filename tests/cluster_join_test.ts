/**
 * Start-up refusals when joining a cluster, side by side with etcd 3.4.23: the same wrong
 * configuration must make detcd exit non-zero with etcd's message, and leave the cluster unharmed.
 *
 *   - `--initial-cluster-state existing` with an `--initial-cluster` that lists fewer members than
 *     the cluster has: "member count is unequal" (the user's guide, section 更新成员);
 *   - the same with a peer URL the cluster does not know: "PeerURLs: no match found ...";
 *   - a member of a running cluster started again as `new` on an empty data dir: "member <id> has
 *     already been bootstrapped".
 */
import { assert, assertEquals } from "../core/testing.ts";
import { type Cluster, startCluster } from "./cluster_harness.ts";
import { MemberAddRequestSchema, MemberAddResponseSchema } from "../gen/etcdserverpb/rpc_pb.ts";
import {
  assertReference,
  freePort,
  KvClient,
  type MemberKind,
  requireReference,
  startMember,
  TEST_TLS,
} from "./harness.ts";

/** The peer URLs' scheme (https in `deno task test:tls`). */
const SCHEME = TEST_TLS ? "https" : "http";

const reference = requireReference();

async function failedStart(
  cluster: Cluster,
  name: string,
  initialCluster: string,
  state: "new" | "existing",
  peerPort: number,
): Promise<string> {
  try {
    const m = await startMember({
      kind: cluster.kind,
      name,
      dataDir: `${cluster.dir}/${name}-${Date.now()}.etcd`,
      clientPort: freePort(),
      peerPort,
      initialCluster,
      initialClusterState: state,
      initialClusterToken: cluster.token,
      extraArgs: [...cluster.timingArgs],
      readyTimeoutMs: 20_000,
    });
    await m.stop();
    throw new Error(`${cluster.kind} started ${name} although its configuration is wrong`);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    assert(message.includes("exited with code 1"), `${cluster.kind} exits with code 1: ${message}`);
    return message;
  }
}

for (const kind of ["etcd", "detcd"] as MemberKind[]) {
  Deno.test({
    name: `joining with a wrong --initial-cluster fails like etcd [${kind}]`,
    ignore: reference.ignore,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      assertReference();
      const cluster = await startCluster({ kind, size: 3, token: "join-test" });
      const client = new KvClient(cluster.members[1].endpoint);
      try {
        const peerPort = freePort();
        const peerUrl = `${SCHEME}://127.0.0.1:${peerPort}`;
        // etcd refuses membership changes until every voter has been connected for 5 s.
        await new Promise((r) => setTimeout(r, 5500));
        await client.call(
          "/etcdserverpb.Cluster/MemberAdd",
          MemberAddRequestSchema,
          MemberAddResponseSchema,
          { peerURLs: [peerUrl], isLearner: true },
        );
        const existing = cluster.members.map((m) => `${m.name}=${m.peerUrl}`);

        // One member left out: 3 listed, 4 in the cluster.
        const unequal = await failedStart(
          cluster,
          "etcd4",
          [...existing.slice(1), `etcd4=${peerUrl}`].join(","),
          "existing",
          peerPort,
        );
        assert(unequal.includes("member count is unequal"), unequal);
        assert(unequal.includes("error validating peerURLs {ClusterID:"), unequal);

        // Right count, but a peer URL the cluster does not have.
        const stray = `${SCHEME}://127.0.0.1:${freePort()}`;
        const noMatch = await failedStart(
          cluster,
          "etcd4",
          [...existing.slice(1), `etcd1=${stray}`, `etcd4=${peerUrl}`].join(","),
          "existing",
          peerPort,
        );
        assert(noMatch.includes("PeerURLs: no match found for existing member"), noMatch);

        // A member whose data dir was lost, started again as new at the same peer URL.
        const first = cluster.members[0];
        await first.kill("SIGKILL");
        const again = await failedStart(
          cluster,
          first.name,
          existing.join(","),
          "new",
          first.peerPort,
        );
        assert(again.includes("has already been bootstrapped"), again);

        // The cluster is unharmed: two of its three voters are up, elect a leader and take writes
        // (etcd may need a new election, since the killed member may have been the leader).
        const leader = await cluster.waitForLeader(cluster.members.slice(1));
        assert(leader !== 0n, "the cluster still has a leader");
        let written = false;
        for (let attempt = 0; attempt < 5 && !written; attempt++) {
          written = await client.put("after", "refusals").then(() => true, () => false);
        }
        assertEquals(written, true, "a write after the refusals succeeds");
      } finally {
        client.close();
        await cluster.stop();
      }
    },
  });
}
