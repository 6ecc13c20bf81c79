/**
 * `deno task cluster`: a local 3-member cluster (clients on 2379/22379/32379, peers on
 * 2380/22380/32380). Members need Raft replication to form a cluster, which is not built yet
 * (issue 4); until then this says so instead of starting three unrelated single members.
 */
console.error(
  "deno task cluster: detcd cannot form multi-member clusters yet (Raft replication is not " +
    "implemented). Run a single member with `deno task start`.",
);
Deno.exit(1);
