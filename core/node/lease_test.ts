/**
 * Leases through the node: single members on MemoryDisk and a 3-member cluster in one process
 * (messages handed over directly, a partition drops them, ticks driven by the test). Regression
 * tests are named after the etcd issues of ../shared/spec/known-failures.md they guard against.
 */
import { create } from "@bufbuild/protobuf";
import {
  LeaseGrantRequestSchema,
  LeaseTimeToLiveRequestSchema,
  PutRequestSchema,
  RangeRequestSchema,
  TxnRequestSchema,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { assert, assertEquals, assertRejects } from "../testing.ts";
import { Errors, EtcdError } from "../errors.ts";
import { silentLogger } from "../log.ts";
import type { Message } from "../raft/mod.ts";
import { MemoryDisk } from "../storage/mod.ts";
import { EtcdNode, type NodeConfig } from "./etcd_node.ts";
import { testConfig } from "./_testing.ts";
import type { Transport } from "./transport.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

const config = testConfig;

const put = (key: string, value: string, lease = 0n) =>
  create(PutRequestSchema, { key: enc.encode(key), value: enc.encode(value), lease });
const get = (key: string) =>
  create(RangeRequestSchema, { key: enc.encode(key), serializable: true });
const grant = (TTL: bigint, ID = 0n) => create(LeaseGrantRequestSchema, { TTL, ID });
const ttlReq = (ID: bigint, keys = false) => create(LeaseTimeToLiveRequestSchema, { ID, keys });

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
}

async function ticks(nodes: EtcdNode[], n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    for (const node of nodes) node.tick();
    await settle();
  }
}

/** Awaits a cluster request while time passes (followers learn commits from heartbeats). */
async function during<T>(nodes: EtcdNode[], p: Promise<T>): Promise<T> {
  let done = false;
  const settled = p.finally(() => (done = true));
  settled.catch(() => {});
  for (let i = 0; i < 200 && !done; i++) await ticks(nodes, 1);
  return await settled;
}

async function errorOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof EtcdError) return e.message;
    throw e;
  }
  return "no error";
}

Deno.test("grant: server IDs, client IDs, exists, minimum and too large TTL", async () => {
  const node = await EtcdNode.open(config(), new MemoryDisk(), silentLogger);
  const a = await node.leaseGrant(grant(60n));
  assert(a.ID > 0n);
  assertEquals(a.TTL, 60n);
  const b = await node.leaseGrant(grant(1n, 42n));
  assertEquals([b.ID, b.TTL], [42n, 2n]); // minimum TTL ceil(15 * 100 ms) = 2 s
  assertEquals(await errorOf(node.leaseGrant(grant(5n, 42n))), Errors.leaseExist().message);
  assertEquals(
    await errorOf(node.leaseGrant(grant(9000000001n))),
    Errors.leaseTTLTooLarge().message,
  );
  assertEquals(
    node.leaseLeases().leases.map((l) => l.ID),
    [42n, a.ID].sort((x, y) => x < y ? -1 : 1),
  );
  await node.stop();
});

Deno.test("put with an unknown lease fails; revoke deletes every key in one revision", async () => {
  const node = await EtcdNode.open(config(), new MemoryDisk(), silentLogger);
  await assertRejects(
    () => node.put(put("k", "v", 77n)),
    EtcdError,
    Errors.leaseNotFound().message,
  );
  const { ID } = await node.leaseGrant(grant(60n));
  await node.put(put("a", "1", ID));
  await node.put(put("b", "2", ID));
  await node.put(put("c", "3", ID));
  await node.put(put("c", "3")); // detached by an overwrite without lease
  const before = node.revision;
  const ttl = await node.leaseTimeToLive(ttlReq(ID, true));
  assertEquals(ttl.keys.map((k) => dec.decode(k)), ["a", "b"]);
  const r = await node.leaseRevoke(ID);
  assertEquals(r.header?.revision, BigInt(before + 1));
  assertEquals((await node.range(get("a"))).kvs.length, 0);
  assertEquals((await node.range(get("c"))).kvs.length, 1);
  assertEquals((await node.leaseTimeToLive(ttlReq(ID))).TTL, -1n);
  assertEquals(await errorOf(node.leaseRevoke(ID)), Errors.leaseNotFound().message);
  await node.stop();
});

Deno.test("a txn put with an unknown lease fails at apply, changing nothing", async () => {
  const node = await EtcdNode.open(config(), new MemoryDisk(), silentLogger);
  const { ID } = await node.leaseGrant(grant(60n));
  const txn = (lease: bigint) =>
    create(TxnRequestSchema, {
      success: [
        { request: { case: "requestPut", value: put("t1", "v", ID) } },
        { request: { case: "requestPut", value: put("t2", "v", lease) } },
      ],
    });
  const revision = node.revision;
  assertEquals(await errorOf(node.txn(txn(99n))), Errors.leaseNotFound().message);
  assertEquals(node.revision, revision);
  await node.txn(txn(ID));
  const t = await node.leaseTimeToLive(ttlReq(ID, true));
  assertEquals(t.keys.map((k) => dec.decode(k)), ["t1", "t2"]);
  await node.stop();
});

Deno.test("expiry: a kept-alive lease lives on, an abandoned one is revoked by the leader", async () => {
  const node = await EtcdNode.open(config(), new MemoryDisk(), silentLogger);
  const kept = (await node.leaseGrant(grant(2n))).ID;
  const left = (await node.leaseGrant(grant(2n))).ID;
  await node.put(put("kept", "v", kept));
  await node.put(put("left", "v", left));
  for (let i = 0; i < 60; i++) {
    if (i % 5 === 0) assertEquals(await node.leaseRenew(kept), 2n);
    await ticks([node], 1);
  }
  assertEquals((await node.range(get("kept"))).kvs.length, 1);
  assertEquals((await node.range(get("left"))).kvs.length, 0);
  assertEquals(await errorOf(node.leaseRenew(left)), Errors.leaseNotFound().message);
  await node.stop();
});

Deno.test("leases survive restarts from the WAL and from a snapshot (TTL reset, etcd 3.4)", async () => {
  const disk = new MemoryDisk();
  const node = await EtcdNode.open(config({ snapshotCount: 5 }), disk, silentLogger);
  const { ID } = await node.leaseGrant(grant(30n));
  await node.put(put("k", "v", ID));
  for (let i = 0; i < 8; i++) await node.put(put(`x${i}`, "v"));
  await ticks([node], 100); // 10 s of the 30 s TTL
  assertEquals((await node.leaseTimeToLive(ttlReq(ID))).TTL, 20n);
  await node.stop();
  const again = await EtcdNode.open(config({ snapshotCount: 5 }), disk, silentLogger);
  const t = await again.leaseTimeToLive(ttlReq(ID, true));
  // Promoted again: the full TTL plus the election timeout, truncated.
  assertEquals([t.TTL, t.grantedTTL, t.keys.map((k) => dec.decode(k))], [31n, 30n, ["k"]]);
  await again.leaseRevoke(ID);
  assertEquals((await again.range(get("k"))).kvs.length, 0);
  await again.stop();
});

Deno.test("#9395/#13491/#17132: with checkpoints the remaining TTL survives a restart", async () => {
  const disk = new MemoryDisk();
  const cfg = config({ leaseCheckpoint: true, leaseCheckpointIntervalMs: 2000 });
  const node = await EtcdNode.open(cfg, disk, silentLogger);
  const { ID } = await node.leaseGrant(grant(60n));
  await ticks([node], 200); // 20 s: checkpoints every 2 s
  assertEquals((await node.leaseTimeToLive(ttlReq(ID))).TTL, 40n);
  await node.stop();
  const again = await EtcdNode.open(cfg, disk, silentLogger);
  const remaining = (await again.leaseTimeToLive(ttlReq(ID))).TTL;
  // The last checkpoint (at most 2 s old) plus the election timeout; never the full 60 s.
  assert(remaining >= 40n && remaining <= 43n, `remaining ${remaining}`);
  // A keep-alive clears the checkpoint: the full TTL again.
  assertEquals(await again.leaseRenew(ID), 60n);
  await ticks([again], 1);
  assertEquals((await again.leaseTimeToLive(ttlReq(ID))).TTL, 59n);
  await again.stop();
});

// ---------------------------------------------------------------------------------------------
// Three members in one process

interface Cluster {
  nodes: EtcdNode[];
  /** Member IDs cut off from everyone else. */
  isolated: Set<bigint>;
  stopped: Set<bigint>;
  leader(): EtcdNode;
  all(): EtcdNode[];
}

async function startCluster(
  overrides: Partial<NodeConfig> = {},
  /** The members' monotonic clock (ms); absent, they have only their ticks. */
  monotonicMs?: () => number,
): Promise<Cluster> {
  const names = ["m1", "m2", "m3"];
  const initialCluster = names.map((n, i) => `${n}=http://127.0.0.1:${27380 + i}`).join(",");
  const byId = new Map<bigint, EtcdNode>();
  const isolated = new Set<bigint>();
  const stopped = new Set<bigint>();
  const transport = (): Transport => ({
    send(messages: readonly Message[]) {
      for (const m of messages) {
        if (isolated.has(m.from) || isolated.has(m.to)) continue;
        if (stopped.has(m.to) || stopped.has(m.from)) continue;
        const to = byId.get(m.to);
        if (to) queueMicrotask(() => to.step(structuredClone(m)));
      }
    },
    addPeer() {},
    updatePeer() {},
    removePeer() {},
    activeSince: () => 0,
  });
  const nodes: EtcdNode[] = [];
  for (let i = 0; i < 3; i++) {
    const env = {
      transport: transport(),
      seed: i + 1,
      monotonicMs,
      forwardLeaseRenew: (leader: bigint, id: bigint) => {
        const l = byId.get(leader);
        if (!l || isolated.has(leader) || stopped.has(leader)) {
          return Promise.reject(Errors.timeout());
        }
        return l.leaseRenewLocal(id);
      },
      forwardLeaseTimeToLive: (leader: bigint, req: ReturnType<typeof ttlReq>) => {
        const l = byId.get(leader);
        if (!l) return Promise.reject(Errors.timeout());
        return l.leaseTimeToLiveLocal(req);
      },
    };
    const node = await EtcdNode.open(
      config({
        name: names[i],
        dataDir: `d${i}`,
        initialAdvertisePeerUrls: [`http://127.0.0.1:${27380 + i}`],
        initialCluster,
        ...overrides,
      }),
      new MemoryDisk(),
      silentLogger,
      env,
    );
    byId.set(node.memberId, node);
    nodes.push(node);
  }
  const cluster: Cluster = {
    nodes,
    isolated,
    stopped,
    all: () => nodes.filter((n) => !stopped.has(n.memberId)),
    leader() {
      const leaders = cluster.all().filter((n) => n.isLeader && !isolated.has(n.memberId));
      assert(leaders.length === 1, `${leaders.length} leaders`);
      return leaders[0];
    },
  };
  for (let i = 0; i < 100 && !nodes.some((n) => n.isLeader); i++) await ticks(nodes, 1);
  await ticks(nodes, 5);
  return cluster;
}

async function stopCluster(c: Cluster): Promise<void> {
  for (const n of c.nodes) c.stopped.add(n.memberId);
  // A stopping leader tries to hand over leadership for two election timeouts: let time pass.
  await during(c.nodes, Promise.all(c.nodes.map((n) => n.stop())));
}

Deno.test("cluster: keep-alive through a follower; expiry deletes the keys on every member", async () => {
  const c = await startCluster();
  const leader = c.leader();
  const follower = c.nodes.find((n) => n !== leader)!;
  const kept = (await during(c.all(), follower.leaseGrant(grant(3n)))).ID;
  const left = (await during(c.all(), follower.leaseGrant(grant(3n)))).ID;
  await during(c.all(), follower.put(put("kept", "v", kept)));
  await during(c.all(), follower.put(put("left", "v", left)));
  for (let i = 0; i < 80; i++) {
    if (i % 10 === 0) assertEquals(await during(c.all(), follower.leaseRenew(kept)), 3n);
    await ticks(c.nodes, 1);
  }
  const t = await during(c.all(), follower.leaseTimeToLive(ttlReq(kept, true)));
  assertEquals([t.grantedTTL, t.keys.map((k) => dec.decode(k))], [3n, ["kept"]]);
  assert(t.TTL >= 1n && t.TTL <= 3n);
  for (const n of c.nodes) {
    assertEquals((await during(c.all(), n.range(get("left")))).kvs.length, 0);
    assertEquals((await during(c.all(), n.range(get("kept")))).kvs.length, 1);
    assertEquals(n.leaseLeases().leases.map((l) => l.ID), [kept]);
  }
  await stopCluster(c);
});

Deno.test("cluster: a lease kept alive survives a leader change (TTL reset as etcd 3.4)", async () => {
  const c = await startCluster();
  const old = c.leader();
  const follower = c.nodes.find((n) => n !== old)!;
  const { ID } = await during(c.all(), follower.leaseGrant(grant(3n)));
  await during(c.all(), follower.put(put("k", "v", ID)));
  c.stopped.add(old.memberId); // gone, like kill -9
  for (let i = 0; i < 100; i++) {
    if (i % 8 === 0) await during(c.all(), follower.leaseRenew(ID)).catch(() => {});
    await ticks(c.all(), 1);
  }
  const now = c.leader();
  assert(now !== old);
  for (const n of c.all()) assertEquals((await during(c.all(), n.range(get("k")))).kvs.length, 1);
  assertEquals((await during(c.all(), follower.leaseTimeToLive(ttlReq(ID)))).grantedTTL, 3n);
  c.stopped.delete(old.memberId);
  await stopCluster(c);
});

Deno.test("#15247/#12528: a deposed leader cannot revoke; the new leader keeps the lease", async () => {
  const c = await startCluster();
  const old = c.leader();
  const other = c.nodes.find((n) => n !== old)!;
  const { ID } = await during(c.all(), other.leaseGrant(grant(3n)));
  await during(c.all(), other.put(put("k", "v", ID)));
  assertEquals(await during(c.all(), other.leaseRenew(ID)), 3n);
  await ticks(c.nodes, 26);
  // Cut off 0.4 s before the lease runs out on the old leader, which still believes it leads
  // (check-quorum steps it down only after an election timeout): it proposes the revoke at its
  // old term, which can never commit. The others elect a leader and keep the lease alive.
  c.isolated.add(old.memberId);
  await ticks(c.nodes, 6);
  assert(old.isLeader, "the old leader had stepped down before the lease expired there");
  for (let i = 0; i < 80; i++) {
    if (i % 8 === 0) await during(c.nodes, other.leaseRenew(ID)).catch(() => {});
    await ticks(c.nodes, 1);
  }
  c.isolated.delete(old.memberId);
  for (let i = 0; i < 40; i++) {
    if (i % 8 === 0) await during(c.nodes, other.leaseRenew(ID)).catch(() => {});
    await ticks(c.nodes, 1);
  }
  assert(!old.isLeader);
  for (const n of c.nodes) {
    assertEquals((await n.range(get("k"))).kvs.length, 1, "the key was revoked");
    assertEquals(n.leaseLeases().leases.map((l) => l.ID), [ID]);
  }
  await stopCluster(c);
});

/** The request's answer if it comes without time passing (no tick), else a failed assertion. */
async function atOnce<T>(p: Promise<T>): Promise<T> {
  let answered = false;
  const settled = p.finally(() => (answered = true));
  settled.catch(() => {});
  await settle();
  assert(answered, "not answered without a round");
  return await settled;
}

Deno.test("leader's lease: renews answered without a round for half an election timeout after a confirmed one, never after", async () => {
  const c = await startCluster();
  const leader = c.leader();
  const { ID } = await during(c.all(), leader.leaseGrant(grant(60n)));
  // A renew asks for a ReadIndex round; a quorum confirms it.
  assertEquals(await during(c.all(), leader.leaseRenew(ID)), 60n);
  // Cut off, the leader still answers at once while its last confirmation is fresh (the round
  // started at most 2 ticks ago: 200 of the 500 ms window)...
  c.isolated.add(leader.memberId);
  await ticks(c.nodes, 2);
  assertEquals(await atOnce(leader.leaseRenew(ID)), 60n);
  // ...and not once half an election timeout (5 ticks) has passed since that round started: the
  // renew waits for a round no quorum answers, and fails.
  await ticks(c.nodes, 3);
  let answered = false;
  const late = leader.leaseRenew(ID).finally(() => (answered = true));
  late.catch(() => {});
  await ticks(c.nodes, 1);
  assert(!answered, "a renew 5 ticks after the last confirmed round was answered from the lease");
  assert(
    (await errorOf(during(c.nodes, late))) !== "no error",
    "a cut-off leader renewed a lease after its lease of leadership ran out",
  );
  await stopCluster(c);
});

Deno.test("leader's lease: time that passed without ticks (a paused process) ends it", async () => {
  let now = 0;
  const c = await startCluster({}, () => now);
  const leader = c.leader();
  const { ID } = await during(c.all(), leader.leaseGrant(grant(60n)));
  assertEquals(await during(c.all(), leader.leaseRenew(ID)), 60n);
  c.isolated.add(leader.memberId);
  assertEquals(await atOnce(leader.leaseRenew(ID)), 60n, "answered from the lease when fresh");
  // The event loop was held up for 2 s: no tick ran, the clock moved on.
  now += 2000;
  let answered = false;
  const late = leader.leaseRenew(ID).finally(() => (answered = true));
  late.catch(() => {});
  await settle();
  assert(!answered, "a renew after a 2 s pause was answered from the lease");
  assert((await errorOf(during(c.nodes, late))) !== "no error");
  await stopCluster(c);
});

Deno.test("cluster: with checkpoints the remaining TTL survives a leader change", async () => {
  const c = await startCluster({ leaseCheckpoint: true, leaseCheckpointIntervalMs: 1000 });
  const old = c.leader();
  const follower = c.nodes.find((n) => n !== old)!;
  const { ID } = await during(c.all(), follower.leaseGrant(grant(60n)));
  await ticks(c.nodes, 150); // 15 s
  c.stopped.add(old.memberId);
  for (let i = 0; i < 50 && !c.all().some((n) => n.isLeader); i++) await ticks(c.all(), 1);
  await ticks(c.all(), 3);
  const remaining = (await during(c.all(), follower.leaseTimeToLive(ttlReq(ID)))).TTL;
  // About 45 s left (plus the election timeout), not the full 60 s of etcd 3.4 without checkpoints.
  assert(remaining >= 38n && remaining <= 48n, `remaining ${remaining}`);
  c.stopped.delete(old.memberId);
  await stopCluster(c);
});

/** mulberry32: the test's own seeded randomness. */
function prng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n: number) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

Deno.test("seeded partitions: no lease revoked early after a renew; abandoned ones revoked in time", async () => {
  const heartbeatMs = 100;
  const electionMs = 1000;
  for (let seed = 1; seed <= 4; seed++) {
    const random = prng(seed);
    const c = await startCluster();
    const ttl = 3n;
    const leases: { id: bigint; lastAckMs: number; renewing: boolean; goneAtMs: number | null }[] =
      [];
    for (let i = 0; i < 4; i++) {
      const via = c.nodes[random(3)];
      const { ID } = await during(c.all(), via.leaseGrant(grant(ttl)));
      leases.push({ id: ID, lastAckMs: 0, renewing: true, goneAtMs: null });
    }
    let nowMs = 0;
    const step = async () => {
      await ticks(c.nodes, 1);
      nowMs += heartbeatMs;
      for (const l of leases) {
        if (
          l.goneAtMs === null &&
          c.nodes.some((n) => !n.leaseLeases().leases.some((x) => x.ID === l.id))
        ) {
          l.goneAtMs = nowMs;
        }
      }
    };
    // Chaos: random partitions of one member while clients renew through random members.
    for (let t = 0; t < 250; t++) {
      if (t % 40 === 0) {
        c.isolated.clear();
        if (random(2) === 0) c.isolated.add(c.nodes[random(3)].memberId);
      }
      if (t === 150) leases[0].renewing = false; // abandoned from here on
      for (const l of leases) {
        if (!l.renewing || l.goneAtMs !== null || random(8) !== 0) continue;
        const via = c.nodes[random(3)];
        const sentMs = nowMs;
        via.leaseRenew(l.id).then((got) => {
          if (got === ttl) l.lastAckMs = Math.max(l.lastAckMs, sentMs);
        }, () => {});
      }
      await step();
    }
    c.isolated.clear();
    for (let t = 0; t < 80; t++) await step();
    for (const l of leases) {
      if (l.goneAtMs === null) continue;
      const earliest = l.lastAckMs + Number(ttl) * 1000;
      assert(
        l.goneAtMs >= earliest,
        `seed ${seed}: lease ${l.id} revoked at ${l.goneAtMs} ms, before ${earliest} ms`,
      );
    }
    const abandoned = leases[0];
    assert(abandoned.goneAtMs !== null, `seed ${seed}: the abandoned lease was never revoked`);
    // Once the network healed (at 25 s) a leader is elected and promoted (TTL + election timeout)
    // and revokes through Raft: allow one more election timeout for the election itself.
    const healedMs = 25_000;
    assert(
      abandoned.goneAtMs <= healedMs + Number(ttl) * 1000 + 2 * electionMs,
      `seed ${seed}: the abandoned lease outlived its TTL (gone at ${abandoned.goneAtMs} ms)`,
    );
    await stopCluster(c);
  }
});
