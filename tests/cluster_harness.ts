/**
 * Multi-member clusters of real processes on 127.0.0.1, for tests that need more than one member:
 * membership changes, `--cluster` endpoint commands, leader transfer. Every member runs with
 * etcd's own flags (`--name --initial-advertise-peer-urls --listen-peer-urls --listen-client-urls
 * --advertise-client-urls --initial-cluster --initial-cluster-token --initial-cluster-state
 * --data-dir --heartbeat-interval --election-timeout`), so the same scenario runs against etcd
 * 3.4.23 or detcd by changing `kind`.
 *
 * Members start concurrently (an etcd member is ready only once a quorum has elected a leader and
 * it has published itself), then the cluster is ready when every member reports the same leader.
 * Data directories live under one temp dir per cluster; `stop()` ends every process it started
 * and removes every temp dir.
 */

import {
  freePort,
  KvClient,
  type Member,
  type MemberKind,
  startMember,
  type StartMemberOptions,
  TEST_TLS,
} from "./harness.ts";

/** Options of {@link startCluster}. */
export interface StartClusterOptions {
  kind: MemberKind;
  /** Number of voting members started with a static `--initial-cluster`. */
  size: number;
  /** Members are named `<namePrefix>1` .. `<namePrefix>N`; default "etcd" like the spec. */
  namePrefix?: string;
  /** `--initial-cluster-token`; default "detcd-test-cluster". */
  token?: string;
  /** `--heartbeat-interval` in ms; default 100 (etcd's default). */
  heartbeatIntervalMs?: number;
  /** `--election-timeout` in ms; default 1000 (etcd's default). */
  electionTimeoutMs?: number;
  /** More server flags for every member. */
  extraArgs?: string[];
  /** The peer URLs' scheme (default http; https needs the peer TLS flags in extraArgs). */
  peerScheme?: "http" | "https";
  /** Bound on each member's startup and on the wait for a leader; default 30 s (60 s detcd). */
  readyTimeoutMs?: number;
  /**
   * The members' ports (default fresh free ones). Member and cluster IDs are hashed from the peer
   * URLs and the token, so an etcd cluster and then a detcd cluster started on the same ports
   * with the same token show the same IDs and can be compared byte for byte.
   */
  ports?: readonly { clientPort: number; peerPort: number }[];
}

/** A member of a test cluster: a {@link Member} plus its peer URL. */
export interface ClusterMember extends Member {
  /** `http://127.0.0.1:<peerPort>` (https in TLS mode), advertised and listened on. */
  readonly peerUrl: string;
}

/** A running test cluster. */
export interface Cluster {
  readonly kind: MemberKind;
  readonly token: string;
  /** Members started by {@link startCluster} and {@link startJoiningMember}, in start order. */
  readonly members: ClusterMember[];
  /** The cluster's temp dir, parent of every member's data dir. */
  readonly dir: string;
  /** Timing flags every member gets. */
  readonly timingArgs: readonly string[];
  readonly extraArgs: readonly string[];
  readonly readyTimeoutMs: number;
  /** `127.0.0.1:<port>` of every running member, comma-joined for `--endpoints`. */
  endpoints(): string;
  /**
   * Waits until every running member (or those given) reports the same non-zero leader, and
   * returns that leader's member ID.
   */
  waitForLeader(members?: readonly Member[]): Promise<bigint>;
  /** Stops every member (SIGTERM, then SIGKILL) and removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

class ProcessCluster implements Cluster {
  readonly members: ClusterMember[] = [];
  private stopped = false;

  constructor(
    readonly kind: MemberKind,
    readonly token: string,
    readonly dir: string,
    readonly timingArgs: readonly string[],
    readonly extraArgs: readonly string[],
    readonly readyTimeoutMs: number,
  ) {}

  endpoints(): string {
    return this.members.filter((m) => m.running()).map((m) => m.endpoint).join(",");
  }

  async waitForLeader(members?: readonly Member[]): Promise<bigint> {
    const targets = members ?? this.members.filter((m) => m.running());
    const deadline = Date.now() + this.readyTimeoutMs;
    let last = "";
    while (Date.now() < deadline) {
      const leaders = await Promise.all(targets.map(async (m) => {
        const client = new KvClient(m.endpoint);
        const timer = setTimeout(() => client.close(), 2000);
        try {
          return (await client.status()).leader;
        } catch (error) {
          last = `${m.name}: ${(error as Error).message}`;
          return 0n;
        } finally {
          clearTimeout(timer);
          client.close();
        }
      }));
      if (leaders[0] !== 0n && leaders.every((l) => l === leaders[0])) return leaders[0];
      last ||= `leaders seen: ${leaders.map((l) => l.toString(16)).join(",")}`;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`no common leader after ${this.readyTimeoutMs} ms (${last})`);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(this.members.map((m) => m.stop()));
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

function asClusterMember(member: Member, scheme = TEST_TLS ? "https" : "http"): ClusterMember {
  return Object.assign(member, { peerUrl: `${scheme}://127.0.0.1:${member.peerPort}` });
}

/**
 * Starts an N-member cluster with a static `--initial-cluster` and waits for a leader. When another
 * process took one of the chosen ports before a member bound it, starts over with new ports.
 */
export async function startCluster(options: StartClusterOptions): Promise<Cluster> {
  for (let attempt = 1;; attempt++) {
    try {
      return await startClusterOnce(options);
    } catch (error) {
      const retry = options.ports === undefined && attempt < 3 &&
        /address already in use/i.test(`${error}`);
      if (!retry) throw error;
    }
  }
}

async function startClusterOnce(options: StartClusterOptions): Promise<Cluster> {
  const prefix = options.namePrefix ?? "etcd";
  const token = options.token ?? "detcd-test-cluster";
  const dir = await Deno.makeTempDir({ prefix: `detcd-cluster-${options.kind}-` });
  const timingArgs = [
    "--heartbeat-interval",
    String(options.heartbeatIntervalMs ?? 100),
    "--election-timeout",
    String(options.electionTimeoutMs ?? 1000),
  ];
  const readyTimeoutMs = options.readyTimeoutMs ?? (options.kind === "etcd" ? 30_000 : 60_000);
  const cluster = new ProcessCluster(
    options.kind,
    token,
    dir,
    timingArgs,
    options.extraArgs ?? [],
    readyTimeoutMs,
  );
  const planned = Array.from({ length: options.size }, (_, i) => ({
    name: `${prefix}${i + 1}`,
    clientPort: options.ports?.[i]?.clientPort ?? freePort(),
    peerPort: options.ports?.[i]?.peerPort ?? freePort(),
  }));
  const scheme = options.peerScheme ?? (TEST_TLS ? "https" : "http");
  const initialCluster = planned.map((p) => `${p.name}=${scheme}://127.0.0.1:${p.peerPort}`)
    .join(",");
  const started = await Promise.allSettled(planned.map((p) =>
    startMember({
      kind: options.kind,
      name: p.name,
      dataDir: `${dir}/${p.name}.etcd`,
      clientPort: p.clientPort,
      peerPort: p.peerPort,
      initialCluster,
      initialClusterState: "new",
      initialClusterToken: token,
      extraArgs: [...timingArgs, ...(options.extraArgs ?? [])],
      peerScheme: scheme,
      readyTimeoutMs,
    })
  ));
  for (const result of started) {
    if (result.status === "fulfilled") {
      cluster.members.push(asClusterMember(result.value, scheme));
    }
  }
  try {
    for (const result of started) if (result.status === "rejected") throw result.reason;
    await cluster.waitForLeader();
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}

/** Options of {@link startJoiningMember}. */
export interface JoinOptions {
  name: string;
  /**
   * The `--initial-cluster` the new member starts with: what `member add` printed as
   * ETCD_INITIAL_CLUSTER (names of unstarted members may be empty there, so pass it as given).
   */
  initialCluster: string;
  /** The peer port announced by `member add --peer-urls`; default a fresh free one. */
  peerPort?: number;
  clientPort?: number;
}

/**
 * Starts a member with `--initial-cluster-state existing` that joins `cluster` (after `member add`
 * announced its peer URL), adds it to `cluster.members` and waits until it serves.
 */
export async function startJoiningMember(
  cluster: Cluster,
  options: JoinOptions,
): Promise<ClusterMember> {
  const start: StartMemberOptions = {
    kind: cluster.kind,
    name: options.name,
    dataDir: `${cluster.dir}/${options.name}-${Date.now()}.etcd`,
    clientPort: options.clientPort ?? freePort(),
    peerPort: options.peerPort ?? freePort(),
    initialCluster: options.initialCluster,
    initialClusterState: "existing",
    initialClusterToken: cluster.token,
    extraArgs: [...cluster.timingArgs, ...cluster.extraArgs],
    readyTimeoutMs: cluster.readyTimeoutMs,
  };
  const member = asClusterMember(await startMember(start));
  cluster.members.push(member);
  return member;
}
