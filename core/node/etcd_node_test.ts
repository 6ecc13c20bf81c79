import { create } from "@bufbuild/protobuf";
import {
  CompactionRequestSchema,
  PutRequestSchema,
  RangeRequestSchema,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { assert, assertEquals, assertRejects } from "../testing.ts";
import { Errors, EtcdError, isEtcdError } from "../errors.ts";
import { silentLogger } from "../log.ts";
import { type AppendFile, MemoryDisk } from "../storage/mod.ts";
import { type Message, MessageType } from "../raft/mod.ts";
import { EtcdNode } from "./etcd_node.ts";
import { testConfig } from "./_testing.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

const config = testConfig;

const put = (key: string, value: string) =>
  create(PutRequestSchema, { key: enc.encode(key), value: enc.encode(value) });
const get = (key: string) => create(RangeRequestSchema, { key: enc.encode(key) });

Deno.test("a fresh member starts like etcd: term 2, raft index 4, revision 1, etcd's IDs", async () => {
  const node = await EtcdNode.open(config(), new MemoryDisk(), silentLogger);
  const s = node.status();
  assertEquals([s.raftTerm, s.raftIndex, s.raftAppliedIndex], [2n, 4n, 4n]);
  assertEquals(s.header?.revision, 1n);
  assertEquals(node.memberId.toString(16), "8876210cd96651c6");
  assertEquals(node.clusterId.toString(16), "7e1de051b63089b8");
  await node.stop();
});

Deno.test("each write takes one raft index and one revision; the reply header has both", async () => {
  const node = await EtcdNode.open(config(), new MemoryDisk(), silentLogger);
  const r = await node.put(put("a", "1"));
  assertEquals(r.header?.revision, 2n);
  assertEquals(node.status().raftIndex, 5n);
  await node.stop();
});

Deno.test("a restart recovers every acknowledged write and bumps the term like etcd", async () => {
  const disk = new MemoryDisk();
  const node = await EtcdNode.open(config(), disk, silentLogger);
  await Promise.all(Array.from({ length: 50 }, (_, i) => node.put(put(`k${i}`, `v${i}`))));
  await node.put(put("k0", "again"));
  disk.crash(); // nothing acknowledged may depend on unsynced bytes
  const again = await EtcdNode.open(config(), disk, silentLogger);
  assertEquals(again.revision, 52);
  const kv = (await again.range(get("k0"))).kvs[0];
  assertEquals(dec.decode(kv.value), "again");
  assertEquals(kv.version, 2n);
  const s = again.status();
  assertEquals([s.raftTerm, s.raftIndex], [3n, 4n + 51n + 2n]);
});

Deno.test("concurrent writes share syncs and are applied in proposal order", async () => {
  const node = await EtcdNode.open(config(), new MemoryDisk(), silentLogger);
  const replies = await Promise.all(
    Array.from({ length: 200 }, (_, i) => node.put(put("same", String(i)))),
  );
  assertEquals(replies.map((r) => Number(r.header?.revision)), replies.map((_, i) => i + 2));
  assertEquals(dec.decode((await node.range(get("same"))).kvs[0].value), "199");
  await node.stop();
});

Deno.test("a request over --max-request-bytes is refused and changes nothing", async () => {
  const node = await EtcdNode.open(
    config({ maxRequestBytes: 100 }),
    new MemoryDisk(),
    silentLogger,
  );
  await assertRejects(
    () => node.put(put("big", "x".repeat(200))),
    EtcdError,
    "request is too large",
  );
  assertEquals(node.revision, 1);
  assertEquals(node.status().raftIndex, 4n);
  await node.stop();
});

Deno.test("compaction survives a restart through the log and snapshot", async () => {
  const disk = new MemoryDisk();
  const node = await EtcdNode.open(config({ snapshotCount: 3 }), disk, silentLogger);
  for (let i = 0; i < 5; i++) await node.put(put("k", String(i)));
  await node.compact(create(CompactionRequestSchema, { revision: 4n }));
  await node.put(put("k", "last"));
  await node.stop();
  const again = await EtcdNode.open(config({ snapshotCount: 3 }), disk, silentLogger);
  assertEquals(again.revision, 7);
  await assertRejects(
    () =>
      Promise.resolve(
        again.range(create(RangeRequestSchema, { key: enc.encode("k"), revision: 3n })),
      ),
    EtcdError,
    "compacted",
  );
  assertEquals(dec.decode((await again.range(get("k"))).kvs[0].value), "last");
});

Deno.test("a failed WAL write refuses further writes instead of acknowledging them", async () => {
  const disk = new MemoryDisk();
  // The bootstrap write succeeds; every later WAL write fails like a full disk (ENOSPC).
  const n2 = await EtcdNode.open(config(), {
    ...bindAll(disk),
    openAppend: async (path: string) => {
      const f = await disk.openAppend(path);
      let writes = 0;
      return {
        ...f,
        write: (d: Uint8Array) => {
          if (++writes > 1) {
            return Promise.reject(new Error("No space left on device (os error 28)"));
          }
          return f.write(d);
        },
      };
    },
  }, silentLogger);
  await assertRejects(() => n2.put(put("x", "1")), EtcdError, "server stopped");
  await assertRejects(() => n2.put(put("y", "1")), EtcdError, "server stopped");
  assertEquals((await n2.range(get("x"))).kvs.length, 0);
  assert(n2.status().errors[0].includes("No space left"));
  await n2.stop();
});

function bindAll(disk: MemoryDisk) {
  return {
    readFile: disk.readFile.bind(disk),
    writeFileAtomic: disk.writeFileAtomic.bind(disk),
    openAppend: disk.openAppend.bind(disk),
    openRead: disk.openRead.bind(disk),
    truncate: disk.truncate.bind(disk),
    list: disk.list.bind(disk),
    remove: disk.remove.bind(disk),
    rename: disk.rename.bind(disk),
    mkdirp: disk.mkdirp.bind(disk),
    syncDir: disk.syncDir.bind(disk),
  };
}

Deno.test("etcd #14370: the last acknowledged write survives a crash right after its reply", async () => {
  const disk = new MemoryDisk({ preallocate: true });
  const node = await EtcdNode.open(config(), disk, silentLogger);
  await node.put(put("first", "1"));
  const last = await node.put(put("last", "acknowledged"));
  disk.crash();
  const again = await EtcdNode.open(config(), disk, silentLogger);
  assertEquals(dec.decode((await again.range(get("last"))).kvs[0].value), "acknowledged");
  assertEquals(BigInt(again.revision), last.header!.revision);
});

Deno.test("etcd #17780: revision never goes backwards across a crash right after compaction", async () => {
  const disk = new MemoryDisk({ preallocate: true });
  const node = await EtcdNode.open(config({ snapshotCount: 4 }), disk, silentLogger);
  for (let i = 0; i < 6; i++) await node.put(put(`k${i}`, "v"));
  await node.compact(create(CompactionRequestSchema, { revision: 7n }));
  const before = node.revision;
  disk.crash();
  const again = await EtcdNode.open(config({ snapshotCount: 4 }), disk, silentLogger);
  assert(again.revision >= before, `revision ${again.revision} < ${before}`);
  await assertRejects(
    () =>
      Promise.resolve(
        again.range(create(RangeRequestSchema, { key: enc.encode("k0"), revision: 6n })),
      ),
    EtcdError,
    "compacted",
  );
});

Deno.test("alarms go through the log; NOSPACE refuses puts until disarmed, across a snapshot restart", async () => {
  const { AlarmRequestSchema, AlarmRequest_AlarmAction, AlarmType, DeleteRangeRequestSchema } =
    await import("../../gen/etcdserverpb/rpc_pb.ts");
  const disk = new MemoryDisk();
  const node = await EtcdNode.open(config({ snapshotCount: 2 }), disk, silentLogger);
  const alarm = (action: number, type = AlarmType.NOSPACE) =>
    create(AlarmRequestSchema, { action, memberID: node.memberId, alarm: type });
  const listed = await node.alarm(alarm(AlarmRequest_AlarmAction.GET, AlarmType.NONE));
  assertEquals(listed.alarms.length, 0);
  assertEquals(node.status().raftIndex, 5n); // listing took an index, as in etcd
  await node.alarm(alarm(AlarmRequest_AlarmAction.ACTIVATE));
  await assertRejects(() => node.put(put("a", "1")), EtcdError, "database space exceeded");
  await node.deleteRange(create(DeleteRangeRequestSchema, { key: enc.encode("a") }));
  await node.put(put("b", "1")).catch(() => {});
  await node.stop();
  const again = await EtcdNode.open(config({ snapshotCount: 2 }), disk, silentLogger);
  const after = await again.alarm(alarm(AlarmRequest_AlarmAction.GET, AlarmType.NONE));
  assertEquals(after.alarms.map((a) => a.alarm), [AlarmType.NOSPACE]);
  assertEquals(again.status().errors, [`memberID:${again.memberId} alarm:NOSPACE `]);
  await again.alarm(alarm(AlarmRequest_AlarmAction.DEACTIVATE));
  const ok = await again.put(put("a", "2"));
  assertEquals(ok.header!.revision, BigInt(again.revision));
});

Deno.test("a corrupt newest snapshot falls back to the previous one and loses nothing", async () => {
  const disk = new MemoryDisk();
  const cfg = config({ snapshotCount: 3, walSegmentBytes: 1 });
  const node = await EtcdNode.open(cfg, disk, silentLogger);
  for (let i = 0; i < 12; i++) await node.put(put(`k${i}`, `v${i}`));
  await node.stop();
  const segments = await disk.list("data/member/wal");
  assert(
    !segments.some((s) => s.endsWith("0000000000000001.wal")),
    `nothing released: ${segments}`,
  );
  const snaps = await disk.list("data/member/snap");
  assert(snaps.length >= 2, `expected several snapshots, got ${snaps}`);
  const newest = snaps.sort().at(-1)!;
  disk.corrupt(`data/member/snap/${newest}`, 40, enc.encode("garbage"));
  const again = await EtcdNode.open(cfg, disk, silentLogger);
  assertEquals(again.revision, 13);
  for (let i = 0; i < 12; i++) {
    assertEquals(dec.decode((await again.range(get(`k${i}`))).kvs[0].value), `v${i}`);
  }
});

Deno.test("a snapshot is written in the background from the state at its index while writes go on", async () => {
  const disk = new MemoryDisk();
  // Every pause of the background snapshot waits until the test lets it go on.
  let paused = 0;
  let release: () => void = () => {};
  let gate = new Promise<void>((r) => (release = r));
  const pause = () => {
    paused++;
    return gate;
  };
  const node = await EtcdNode.open(config({ snapshotCount: 20 }), disk, silentLogger, { pause });
  for (let i = 0; i < 40; i++) await node.put(put(`k${i}`, "before"));
  assert(paused > 0, "a snapshot started and is waiting in a pause");
  // Acknowledged writes while the snapshot waits: the member is not held up by it.
  for (let i = 0; i < 40; i++) await node.put(put(`k${i}`, "after"));
  const files = async () =>
    (await disk.list("data/member/snap")).filter((f) => f.endsWith(".snap"));
  assertEquals(await files(), [], "nothing saved yet");
  const applied = Number(node.status().raftAppliedIndex);
  release();
  gate = Promise.resolve();
  await node.stop(); // waits for the snapshot
  const saved = await files();
  assertEquals(saved.length, 1);
  const snapIndex = parseInt(saved[0].slice(17, 33), 16);
  assert(snapIndex <= applied - 40, `snapshot at ${snapIndex}, before the 40 later writes`);
  // The snapshot holds the index it was taken at, not the writes made while it was written...
  const again = await EtcdNode.open(config({ snapshotCount: 20 }), disk, silentLogger);
  // ...and the WAL after it brings the member to its last write.
  assertEquals(again.revision, 81);
  for (const i of [0, 17, 39]) {
    assertEquals(dec.decode((await again.range(get(`k${i}`))).kvs[0].value), "after");
  }
  await again.stop();
});

Deno.test("a failing snapshot save does not stop writes and is retried a tenth of --snapshot-count later, not at once", async () => {
  const disk = new MemoryDisk();
  let failing = true;
  let attempts = 0;
  const node = await EtcdNode.open(config({ snapshotCount: 100 }), {
    ...bindAll(disk),
    writeFileAtomic: (path: string, data: Uint8Array) => {
      if (!path.endsWith(".snap")) return disk.writeFileAtomic(path, data);
      attempts++;
      return failing
        ? Promise.reject(new Error("ENOSPC: no space left on device"))
        : disk.writeFileAtomic(path, data);
    },
  }, silentLogger);
  for (let i = 0; i < 160; i++) await node.put(put(`k${i}`, "v"));
  // Due from index 100 on; one attempt per ten entries, not one per entry.
  assert(attempts >= 3 && attempts <= 8, `${attempts} attempts`);
  failing = false;
  for (let i = 0; i < 20; i++) await node.put(put(`k${i}`, "again"));
  await node.stop();
  const snaps = (await disk.list("data/member/snap")).filter((f) => f.endsWith(".snap"));
  assertEquals(snaps.length, 1, "saved once the disk took it");
});

Deno.test("db_size is the revision log's bytes, db_size_in_use what compaction left of them", async () => {
  const node = await EtcdNode.open(config(), new MemoryDisk(), silentLogger);
  const fresh = node.status();
  // etcd's fresh backend: a 20 KiB file, 16 KiB in use.
  assertEquals([fresh.dbSize, fresh.dbSizeInUse], [20480n, 16384n]);
  const value = "v".repeat(2000);
  for (let i = 0; i < 50; i++) await node.put(put("same", value + i));
  const loaded = node.status();
  assert(loaded.dbSize >= 20480n + 50n * 2000n - 4096n, `dbSize ${loaded.dbSize}`);
  assertEquals(loaded.dbSizeInUse, loaded.dbSize - 4096n);
  await node.compact(create(CompactionRequestSchema, { revision: BigInt(node.revision) }));
  const compacted = node.status();
  // One revision of the key is left in use; the file keeps its size until rewritten.
  assertEquals(compacted.dbSize, loaded.dbSize);
  assert(compacted.dbSizeInUse <= 16384n + 4096n, `in use ${compacted.dbSizeInUse}`);
  // Defragment rewrites the garbage away while the member serves: what is left is in use.
  const revision = BigInt(node.revision);
  const [reply] = await Promise.all([node.defragment(), node.put(put("during", "defrag"))]);
  assert(reply.header!.revision >= revision, `header revision ${reply.header?.revision}`);
  const defragmented = node.status();
  assertEquals(defragmented.dbSize, defragmented.dbSizeInUse + 4096n);
  assert(defragmented.dbSize < compacted.dbSize / 4n, `dbSize ${defragmented.dbSize}`);
  assertEquals(dec.decode((await node.range(get("same"))).kvs[0].value), value + 49);
  assertEquals(dec.decode((await node.range(get("during"))).kvs[0].value), "defrag");
  await node.stop();
});

Deno.test("a member restarts from a checkpoint: no values in its snapshot, its revision log reopened as it is, a crash after a defragment loses nothing", async () => {
  const disk = new MemoryDisk({ preallocate: true });
  const cfg = config({ snapshotCount: 10 });
  const node = await EtcdNode.open(cfg, disk, silentLogger);
  const value = (i: number) => `${i} `.padEnd(2000, "v");
  for (let i = 0; i < 40; i++) await node.put(put(`k${i % 10}`, value(i)));
  await node.compact(create(CompactionRequestSchema, { revision: 25n }));
  await node.defragment();
  const status = node.status();
  assertEquals(status.dbSize, status.dbSizeInUse + 4096n);
  let last = await node.put(put("k0", value(40)));
  for (let i = 41; i < 47; i++) last = await node.put(put(`k${i % 10}`, value(i)));
  const snaps = (await disk.list("data/member/snap")).filter((f) => f.endsWith(".snap"));
  assert(snaps.length > 0, "a snapshot was saved");
  for (const name of snaps) {
    const size = (await disk.readFile(`data/member/snap/${name}`))!.length;
    assert(size < 2000 * 3, `${name}: ${size} bytes, the values are not in it`);
  }
  const segmentsBefore = await disk.list("data/member/revs");
  disk.crash();

  const again = await EtcdNode.open(cfg, disk, silentLogger);
  assertEquals(BigInt(again.revision), last.header!.revision);
  const segmentsAfter = await disk.list("data/member/revs");
  assert(
    segmentsBefore.some((s) => segmentsAfter.includes(s)),
    `reopened, not rebuilt: ${segmentsBefore} then ${segmentsAfter}`,
  );
  for (let k = 0; k < 10; k++) {
    const latest = k <= 6 ? 40 + k : 30 + k;
    assertEquals(dec.decode((await again.range(get(`k${k}`))).kvs[0].value), value(latest));
  }
  // History above the compact revision is still there: k5 as of revision 30.
  const old = await again.range(
    create(RangeRequestSchema, { key: enc.encode("k5"), revision: 30n }),
  );
  assertEquals(dec.decode(old.kvs[0].value), value(25));
  await again.stop();
});

Deno.test("--quota-backend-bytes: past it a put answers NOSPACE and raises the alarm; deletes, compaction and defragment work; after a disarm writes resume", async () => {
  const { AlarmRequestSchema, AlarmRequest_AlarmAction, AlarmType, DeleteRangeRequestSchema } =
    await import("../../gen/etcdserverpb/rpc_pb.ts");
  const node = await EtcdNode.open(
    config({ quotaBackendBytes: 64 * 1024 }),
    new MemoryDisk(),
    silentLogger,
  );
  const value = "v".repeat(4000);
  let stored = 0;
  let refused: unknown = null;
  for (let i = 0; i < 100 && refused === null; i++) {
    try {
      await node.put(put(`k${i}`, value));
      stored++;
    } catch (e) {
      refused = e;
    }
  }
  assert(isEtcdError(refused, Errors.noSpace), `refused with ${refused}`);
  // 20 KiB of base, then about 4.3 KB per put: the quota stops the ninth or tenth.
  assert(stored >= 8 && stored <= 11, `${stored} puts stored`);
  assertEquals(node.status().errors, [`memberID:${node.memberId} alarm:NOSPACE `]);
  // The alarm is cluster state: every put is refused now, even a small one.
  await assertRejects(() => node.put(put("small", "1")), EtcdError, "database space exceeded");
  // Reads and deletes work; compaction and defragment give the space back.
  assertEquals(dec.decode((await node.range(get("k0"))).kvs[0].value), value);
  for (let i = 0; i < stored; i++) {
    await node.deleteRange(create(DeleteRangeRequestSchema, { key: enc.encode(`k${i}`) }));
  }
  await node.compact(create(CompactionRequestSchema, { revision: BigInt(node.revision) }));
  await node.defragment();
  assert(node.status().dbSize < 32n * 1024n, `dbSize ${node.status().dbSize}`);
  await assertRejects(() => node.put(put("small", "1")), EtcdError, "database space exceeded");
  await node.alarm(
    create(AlarmRequestSchema, {
      action: AlarmRequest_AlarmAction.DEACTIVATE,
      memberID: node.memberId,
      alarm: AlarmType.NOSPACE,
    }),
  );
  await node.put(put("small", "1"));
  assertEquals(dec.decode((await node.range(get("small"))).kvs[0].value), "1");
  await node.stop();
});

Deno.test("a physical compaction answers once its history is dropped; a plain one at once", async () => {
  // Background steps rest 5 ms each (as the server's slices would), so they are seen under way.
  const env = { pacedPause: () => new Promise<void>((resolve) => setTimeout(resolve, 5)) };
  const node = await EtcdNode.open(config(), new MemoryDisk(), silentLogger, env);
  const load = async () => {
    for (let round = 0; round < 2; round++) {
      await Promise.all(
        Array.from({ length: 3000 }, (_, i) => node.put(put(`k${i}`, `${round}`.repeat(200)))),
      );
    }
  };
  const settled = async () => {
    await new Promise((resolve) => setTimeout(resolve, 200));
    return node.status().dbSizeInUse;
  };
  await load();
  await node.compact(create(CompactionRequestSchema, { revision: BigInt(node.revision) }));
  const plain = node.status().dbSizeInUse;
  const plainAfter = await settled();
  assert(plainAfter < plain, `steps still under way when a plain compaction answers: ${plain}`);
  await load();
  await node.compact(
    create(CompactionRequestSchema, { revision: BigInt(node.revision), physical: true }),
  );
  const physical = node.status().dbSizeInUse;
  assertEquals(physical, await settled());
  await node.stop();
});

Deno.test("a snapshot whose stream breaks or falls short is refused and leaves no file behind", async () => {
  const disk = new MemoryDisk();
  const node = await EtcdNode.open(config(), disk, silentLogger);
  await node.put(put("k", "before"));
  const message: Message = {
    type: MessageType.Snap,
    to: node.memberId,
    from: 0x99n,
    term: 5,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    snapshot: {
      metadata: { index: 1000, term: 5, confState: { voters: [0x99n], learners: [] } },
      data: new Uint8Array(0),
    },
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(0),
  };
  // Checked after each refusal (every receive also clears what an earlier one left).
  const partials = async () =>
    (await disk.list("data/member/snap")).filter((f) => !f.endsWith(".snap"));
  async function* broken() {
    yield new Uint8Array(100);
    throw new Error("connection reset");
  }
  await assertRejects(() => node.receiveSnapshot(message, 1000, broken()), Error, "reset");
  assertEquals(await partials(), [], "a broken stream leaves no file");
  async function* short() {
    yield new Uint8Array(600);
  }
  await assertRejects(() => node.receiveSnapshot(message, 1000, short()), Error, "600 bytes");
  assertEquals(await partials(), [], "a short stream leaves no file");
  // One at a time: a second stream while one arrives is refused, and the slot frees afterwards.
  let release = () => {};
  const held = new Promise<void>((resolve) => release = resolve);
  async function* stalled() {
    yield new Uint8Array(10);
    await held;
    throw new Error("connection reset");
  }
  const first = node.receiveSnapshot(message, 1000, stalled());
  await assertRejects(() => node.receiveSnapshot(message, 1000, short()), Error, "already");
  release();
  await assertRejects(() => first, Error, "reset");
  await assertRejects(() => node.receiveSnapshot(message, 1000, short()), Error, "600 bytes");
  // Whole, but Raft does not take it (a leader ignores a snapshot of its own term): dropped.
  const term = Number(node.status().raftTerm);
  const ignored = { ...message, term, snapshot: { ...message.snapshot!, data: new Uint8Array(0) } };
  async function* whole() {
    yield new Uint8Array(1000);
  }
  await node.receiveSnapshot(ignored, 1000, whole());
  assertEquals(await partials(), [], "a snapshot Raft did not take leaves no file");
  // Nothing was stepped: the member is as it was.
  assertEquals(dec.decode((await node.range(get("k"))).kvs[0].value), "before");
  await node.put(put("k", "after"));
  await node.stop();
});

/** A MemoryDisk that counts the syncs of its WAL segments. */
class SyncCountingDisk extends MemoryDisk {
  walSyncs = 0;
  override async openAppend(path: string, preallocateBytes = 0): Promise<AppendFile> {
    const file = await super.openAppend(path, preallocateBytes);
    if (!path.includes("/wal/")) return file;
    return {
      ...file,
      sync: () => {
        this.walSyncs++;
        return file.sync();
      },
    };
  }
}

Deno.test("with a turn-end scheduler, a single member's second Ready in a turn waits for the turn's end and takes everything read meanwhile", async () => {
  const disk = new SyncCountingDisk();
  const turnEnd: (() => void)[] = [];
  const node = await EtcdNode.open(config(), disk, silentLogger, {
    defer: (run) => turnEnd.push(run),
  });
  const endTurn = () => {
    for (const run of turnEnd.splice(0)) run();
  };
  const settle = () => new Promise((r) => setTimeout(r, 0));
  endTurn();
  await settle();

  // The first run in a turn does not wait: a lone request pays no extra turn.
  const before = disk.walSyncs;
  const answer = <T>(p: Promise<T>) => {
    const seen: { value?: T } = {};
    p.then((value) => seen.value = value);
    return seen;
  };
  const first = answer(node.put(put("k", "first")));
  await settle();
  assertEquals(first.value?.header?.revision, 2n, "the turn's first run waited");
  assertEquals(disk.walSyncs, before + 1);

  // Later ones in the same turn (as if read from other sockets) wait for its end, together.
  let answered = 0;
  const later = ["a", "b", "c"].map((v) => node.put(put("k", v)).then((r) => (answered++, r)));
  await settle();
  assertEquals([answered, disk.walSyncs], [0, before + 1]);
  endTurn();
  const replies = await Promise.all(later);
  assertEquals(replies.map((r) => r.header?.revision), [3n, 4n, 5n]);
  assertEquals(disk.walSyncs, before + 2);

  // A new turn: its first run is at once again.
  endTurn();
  await settle();
  const next = answer(node.put(put("k", "next")));
  await settle();
  assertEquals(next.value?.header?.revision, 6n, "a new turn's first run waited");
  assertEquals(disk.walSyncs, before + 3);
  endTurn();
  await node.stop();
});

Deno.test("with a turn-end scheduler, a member with peers runs every Ready at the turn's end, even the turn's first", async () => {
  const sent: Message[] = [];
  const turnEnd: (() => void)[] = [];
  const initialCluster = ["m1", "m2", "m3"].map((n, i) => `${n}=http://127.0.0.1:${27390 + i}`)
    .join(",");
  const node = await EtcdNode.open(
    config({
      name: "m1",
      initialAdvertisePeerUrls: ["http://127.0.0.1:27390"],
      initialCluster,
    }),
    new MemoryDisk(),
    silentLogger,
    {
      seed: 1,
      defer: (run) => turnEnd.push(run),
      transport: {
        send: (messages) => sent.push(...messages),
        addPeer() {},
        updatePeer() {},
        removePeer() {},
        activeSince: () => 0,
      },
    },
  );
  const endTurn = () => {
    for (const run of turnEnd.splice(0)) run();
  };
  const settle = () => new Promise((r) => setTimeout(r, 0));
  endTurn();
  await settle();
  sent.length = 0;
  // Each tick is the first thing of its turn; alone, the member campaigns within two election
  // timeouts. What that Ready sends goes out only when the turn ends.
  for (let tick = 0; tick < 60 && sent.length === 0; tick++) {
    node.tick();
    await settle();
    assertEquals(sent.length, 0, `tick ${tick}: sent before the turn's end`);
    endTurn();
    await settle();
  }
  assert(sent.length > 0, "the member never campaigned");
  endTurn();
  await node.stop();
});
