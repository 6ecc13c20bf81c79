import { create, fromBinary } from "@bufbuild/protobuf";
import { NodeSnapshotSchema } from "../../gen/detcdpb/internal_pb.ts";
import {
  AlarmRequest_AlarmAction,
  AlarmRequestSchema,
  AlarmType,
  CompactionRequestSchema,
  DeleteRangeRequestSchema,
  LeaseGrantRequestSchema,
  PutRequestSchema,
  RangeRequestSchema,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { assert, assertEquals, assertRejects } from "../testing.ts";
import { silentLogger } from "../log.ts";
import { MemoryDisk } from "../storage/mod.ts";
import { Snapshotter } from "../storage/snapshot.ts";
import { decodeBolt, encodeBolt } from "../storage/bbolt.ts";
import { dbStatus, fromEtcdBuckets, toEtcdBuckets } from "../snapshot/etcd_db.ts";
import { EtcdNode } from "./etcd_node.ts";
import { encodeView } from "../mvcc/snapshot_codec.ts";
import { testConfig } from "./_testing.ts";
import { authSnapshotOf } from "./auth_record.ts";
import { RestoreError, restoreMember, type RestoreOptions } from "./restore.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

const config = testConfig;

/** The restore flags that produce the member `cfg` describes. */
function restoreOptions(cfg: ReturnType<typeof config>): RestoreOptions {
  return {
    name: cfg.name,
    dataDir: cfg.dataDir,
    initialCluster: cfg.initialCluster,
    initialClusterToken: cfg.initialClusterToken,
    initialAdvertisePeerUrls: cfg.initialAdvertisePeerUrls,
  };
}

const put = (key: string, value: string, lease = 0n) =>
  create(PutRequestSchema, { key: enc.encode(key), value: enc.encode(value), lease });

/** A member with history, a compaction, a tombstone, a lease with a key, and an alarm. */
async function populated(): Promise<EtcdNode> {
  const node = await EtcdNode.open(config(), new MemoryDisk(), silentLogger);
  await node.put(put("name", "cuiliang")); // 2
  await node.put(put("a", "1")); // 3
  await node.put(put("a", "2")); // 4
  await node.compact(create(CompactionRequestSchema, { revision: 3n }));
  await node.deleteRange(create(DeleteRangeRequestSchema, { key: enc.encode("a") })); // 5
  const lease = await node.leaseGrant(create(LeaseGrantRequestSchema, { TTL: 600n }));
  await node.put(put("leased", "x", lease.ID)); // 6
  await node.alarm(create(AlarmRequestSchema, {
    action: AlarmRequest_AlarmAction.ACTIVATE,
    memberID: node.memberId,
    alarm: AlarmType.NOSPACE,
  }));
  return node;
}

/** The populated member's state through etcd's backend format and back, and its member ID. */
async function populatedSnapshot() {
  const node = await populated();
  const restored = fromEtcdBuckets(decodeBolt(encodeBolt(toEtcdBuckets(node.backendState()))));
  await node.stop();
  return { restored, memberId: node.memberId };
}

/** Disarms the NOSPACE alarm `populated` raised (it comes back with a restore). */
async function disarmNoSpace(member: EtcdNode, memberId: bigint): Promise<void> {
  await member.alarm(create(AlarmRequestSchema, {
    action: AlarmRequest_AlarmAction.DEACTIVATE,
    memberID: memberId,
    alarm: AlarmType.NOSPACE,
  }));
}

Deno.test("snapshot as etcd's backend and back: same key space, history, leases and alarms", async () => {
  const node = await populated();
  const file = encodeBolt(toEtcdBuckets(node.backendState()));
  const status = dbStatus(decodeBolt(file));
  assertEquals(status.revision, 6);
  const restored = fromEtcdBuckets(decodeBolt(file));
  assertEquals(restored.revision, 6);
  assertEquals(restored.leases.length, 1);
  assertEquals(restored.alarms.map((a) => a.alarm), [AlarmType.NOSPACE]);
  assertEquals(
    restored.mvcc,
    encodeView(node.backendState().mvcc),
    "the MVCC state survives byte for byte",
  );
  await node.stop();
});

Deno.test("restore: a new single-member cluster starts like etcd's restored member", async () => {
  const node = await populated();
  const restored = fromEtcdBuckets(decodeBolt(encodeBolt(toEtcdBuckets(node.backendState()))));
  const leaseId = node.leaseLeases().leases[0].ID;
  await node.stop();

  const disk = new MemoryDisk();
  const cfg = config({
    name: "etcd2",
    dataDir: "restored",
    initialCluster: "etcd1=http://127.0.0.1:1,etcd2=http://127.0.0.1:2,etcd3=http://127.0.0.1:3",
    initialAdvertisePeerUrls: ["http://127.0.0.1:2"],
  });
  const result = await restoreMember(disk, restoreOptions(cfg), restored);
  assertEquals(result.members.length, 3);

  // A second restore into the same dir is refused: a restore never overwrites a member.
  await assertRejects(
    () => restoreMember(disk, restoreOptions(cfg), restored),
    RestoreError,
    'data-dir "restored" exists',
  );

  const member = await EtcdNode.open(cfg, disk, silentLogger);
  assertEquals(member.memberId, result.memberId);
  assertEquals(member.members().map((m) => m.name).sort(), ["etcd1", "etcd2", "etcd3"]);
  const s = member.status();
  assertEquals([s.raftTerm, s.raftIndex, s.raftAppliedIndex], [1n, 3n, 3n]);
  assertEquals(s.header?.revision, 6n);
  assertEquals(s.errors, [`memberID:${node.memberId} alarm:NOSPACE `]);
  const got = await member.range(create(RangeRequestSchema, {
    key: enc.encode("name"),
    serializable: true,
  }));
  assertEquals(got.kvs.map((kv) => dec.decode(kv.value)), ["cuiliang"]);
  const old = await member.range(create(RangeRequestSchema, {
    key: enc.encode("a"),
    revision: 4n,
    serializable: true,
  }));
  assertEquals(old.kvs.map((kv) => dec.decode(kv.value)), ["2"], "history kept after restore");
  assertEquals(member.leaseLeases().leases.map((l) => l.ID), [leaseId]);
  await member.stop();
});

Deno.test("restore: a single member elects itself, serves and writes on from the snapshot's revision", async () => {
  const { restored, memberId } = await populatedSnapshot();
  const disk = new MemoryDisk();
  const cfg = config({ dataDir: "single" });
  await restoreMember(disk, restoreOptions(cfg), restored);
  const member = await EtcdNode.open(cfg, disk, silentLogger);
  await member.waitReady();
  // etcd 3.4.23 after `snapshot restore` of one member: raft term 2, raft index 4.
  const s = member.status();
  assertEquals([s.raftTerm, s.raftIndex, s.raftAppliedIndex], [2n, 4n, 4n]);
  await disarmNoSpace(member, memberId);
  const r = await member.put(put("after", "restore"));
  assertEquals(r.header?.revision, 7n);
  await member.stop();
});

Deno.test("restore and start with --wal-dir: the WAL lives in its own directory", async () => {
  const { restored, memberId } = await populatedSnapshot();
  const disk = new MemoryDisk();
  const cfg = config({ dataDir: "withwal", walDir: "separate/wal" });
  await restoreMember(disk, { ...restoreOptions(cfg), walDir: cfg.walDir }, restored);
  assert((await disk.list("separate/wal")).length > 0, "no WAL in --wal-dir");
  assertEquals(await disk.list("withwal/member/wal"), [], "a WAL in the data dir too");
  const member = await EtcdNode.open(cfg, disk, silentLogger);
  await member.waitReady();
  await disarmNoSpace(member, memberId);
  const r = await member.put(put("after", "restore"));
  assertEquals(r.header?.revision, 7n);
  await member.stop();
  // Restarted from the same dirs, the write is there.
  const again = await EtcdNode.open(cfg, disk, silentLogger);
  const got = await again.range(
    create(RangeRequestSchema, { key: enc.encode("after"), serializable: true }),
  );
  assertEquals(got.kvs.map((kv) => dec.decode(kv.value)), ["restore"]);
  await again.stop();
});

Deno.test("restore carries the auth state into the member's snapshot unchanged, as etcd's restore keeps its auth buckets", async () => {
  // etcd 3.4.23's auth buckets (auth enabled, revision 28, users cn/root/u, roles r/r2/r3/root).
  const json = JSON.parse(
    await Deno.readTextFile(
      new URL("../auth/testdata/etcd_3.4.23_auth_buckets.json", import.meta.url),
    ),
  ) as Record<string, [string, string][]>;
  const fromHex = (h: string) => new Uint8Array((h.match(/../g) ?? []).map((x) => parseInt(x, 16)));
  const restored = fromEtcdBuckets([
    { name: enc.encode("key"), entries: [] },
    { name: enc.encode("meta"), entries: [] },
    ...Object.entries(json).map(([name, entries]) => ({
      name: enc.encode(name),
      entries: entries.map(([k, v]): [Uint8Array, Uint8Array] => [fromHex(k), fromHex(v)]),
    })),
  ]);
  const disk = new MemoryDisk();
  const cfg = config({ dataDir: "withauth" });
  await restoreMember(disk, restoreOptions(cfg), restored);
  const snap = await new Snapshotter(disk, "withauth/member/snap").loadNewest(() => {});
  assert(snap !== null, "no snapshot written");
  const state = fromBinary(NodeSnapshotSchema, snap.data);
  assert(state.auth !== undefined, "the snapshot has no auth record");
  const auth = authSnapshotOf(state.auth);
  assertEquals([auth.enabled, auth.everEnabled, auth.revision], [true, true, 28]);
  assertEquals(auth, restored.auth);
});
