/**
 * core/storage's bbolt encoder and decoder against real etcd 3.4.23 and etcdctl 3.4.23: etcd's
 * own snapshot decodes, and files encodeBolt writes pass `etcdctl snapshot status` and
 * `snapshot restore`, and real etcd serves from them. (The pure round-trip tests stay beside
 * the code in core/storage/bbolt_test.ts; core's tests never start processes.)
 */
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { KeyValueSchema } from "../gen/mvccpb/kv_pb.ts";
import { compareBytes } from "../core/bytes.ts";
import { type BoltBucket, Crc32c, decodeBolt, encodeBolt } from "../core/storage/mod.ts";
import { revisionKey } from "../core/snapshot/mod.ts";
import {
  assertReference,
  freePort,
  type Member,
  requireReference,
  runCtl,
  startMember,
} from "./harness.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (s: string) => encoder.encode(s);
const str = (b: Uint8Array) => decoder.decode(b);

const reference = requireReference();

/** etcdctl with `args`; fails the test unless it exits 0. Returns stdout. */
async function mustRun(args: string[], stdin?: string): Promise<string> {
  const r = await runCtl("etcdctl", args, { stdin });
  assert.equal(r.code, 0, `etcdctl ${args.join(" ")} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** A real etcd member in `dataDir` (its own, or one `snapshot restore` made). */
function startEtcd(dataDir: string, name: string, peerPort?: number): Promise<Member> {
  return startMember({ kind: "etcd", name, dataDir, peerPort });
}

interface DbStatus {
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
}

async function snapshotStatus(file: string): Promise<DbStatus> {
  return JSON.parse(await mustRun(["snapshot", "status", file, "-w", "json"]));
}

Deno.test({
  name:
    "real etcd's snapshot decodes, and re-encoded it passes etcdctl snapshot status and restore",
  ignore: reference.ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    assertReference();
    const dir = await Deno.makeTempDir({ prefix: "detcd-bbolt-" });
    const members: Member[] = [];
    try {
      // (a) etcd's own snapshot.
      const source = await startEtcd(`${dir}/source`, "s1");
      members.push(source);
      const ctl = [`--endpoints=${source.endpoint}`];
      await mustRun([...ctl, "put", "foo", "bar"]);
      await mustRun([...ctl, "put", "foo", "baz"]);
      await mustRun([...ctl, "put", "gone", "soon"]);
      await mustRun([...ctl, "del", "gone"]);
      await mustRun([...ctl, "put", "large", "L".repeat(100_000)]);
      for (let batch = 0; batch < 2; batch++) {
        let ops = "\n";
        for (let i = 0; i < 100; i++) {
          ops += `put bulk/${batch}/${String(i).padStart(3, "0")} v${i}\n`;
        }
        await mustRun([...ctl, "txn"], ops + "\n\n");
      }
      const lease = await mustRun([...ctl, "lease", "grant", "600"]);
      const leaseId = /lease ([0-9a-f]+) granted/.exec(lease)?.[1];
      assert.ok(leaseId, lease);
      await mustRun([...ctl, "put", "leased", "x", `--lease=${leaseId}`]);
      await mustRun([...ctl, "user", "add", "root:secret"]);
      const saved = `${dir}/etcd.db`;
      await mustRun([...ctl, "snapshot", "save", saved]);
      await members.pop()!.stop();

      const raw = await Deno.readFile(saved);
      // etcdctl keeps the sha256 trailer that the Snapshot RPC appends: size % 512 == 32.
      assert.equal(raw.length % 512, 32);
      const db = raw.subarray(0, raw.length - 32);
      const { createHash } = await import("node:crypto");
      const digest = createHash("sha256").update(db).digest();
      assert.deepEqual(new Uint8Array(digest), raw.subarray(raw.length - 32));

      const buckets = decodeBolt(db);
      const byName = new Map(buckets.map((b) => [str(b.name), b]));
      await t.step("etcd's buckets are all there", () => {
        for (
          const name of [
            "alarm",
            "auth",
            "authRoles",
            "authUsers",
            "cluster",
            "key",
            "lease",
            "members",
            "members_removed",
            "meta",
          ]
        ) {
          assert.ok(byName.has(name), `bucket ${name} missing; have ${[...byName.keys()]}`);
        }
        const meta = byName.get("meta")!;
        assert.ok(meta.entries.some(([k]) => str(k) === "consistent_index"));
        assert.equal(byName.get("lease")!.entries.length, 1);
        assert.ok(byName.get("authUsers")!.entries.some(([k]) => str(k) === "root"));
        const members = byName.get("members")!.entries;
        assert.equal(members.length, 1);
        assert.equal(JSON.parse(str(members[0][1])).name, "s1");
      });
      await t.step("the key bucket holds every revision, tombstone included", () => {
        const keys = byName.get("key")!.entries;
        // revisions 2..9: foo, foo, gone, gone's tombstone, large, 2 txns of 100 puts, leased
        assert.equal(keys.length, 5 + 200 + 1);
        const revisions = keys.map(([k]) => new DataView(k.buffer, k.byteOffset).getBigUint64(0));
        assert.deepEqual(revisions.slice(0, 4), [2n, 3n, 4n, 5n]);
        const tombstones = keys.filter(([k]) => k.length === 18 && k[17] === 0x74);
        assert.equal(tombstones.length, 1);
        assert.ok(keys.every(([k]) => k.length === 17 || k.length === 18), "17-byte revision keys");
        const text = keys.map(([, v]) => str(v));
        assert.ok(text.some((v) => v.includes("foo") && v.includes("baz")));
        assert.ok(text.some((v) => v.includes("L".repeat(100_000))));
        assert.equal(text.filter((v) => v.includes("bulk/")).length, 200);
      });

      // (b) re-encoded: same hash, revision and key count for etcdctl.
      const reencoded = `${dir}/detcd.db`;
      await Deno.writeFile(reencoded, encodeBolt(buckets));
      const theirs = await snapshotStatus(saved);
      const ours = await snapshotStatus(reencoded);
      await t.step("etcdctl snapshot status agrees on hash, revision and total keys", () => {
        assert.equal(ours.hash, theirs.hash);
        assert.equal(ours.revision, theirs.revision);
        assert.equal(ours.totalKey, theirs.totalKey);
        assert.equal(theirs.revision, 9);
      });

      const peerPort = freePort();
      const restored = `${dir}/restored`;
      const restore = await runCtl("etcdctl", [
        "snapshot",
        "restore",
        reencoded,
        "--data-dir",
        restored,
        "--skip-hash-check",
        "--name",
        "r1",
        "--initial-cluster",
        `r1=http://127.0.0.1:${peerPort}`,
        "--initial-advertise-peer-urls",
        `http://127.0.0.1:${peerPort}`,
      ]);
      assert.equal(restore.code, 0, restore.stderr);
      assert.match(restore.stderr, /restored snapshot/);
      const restoredMember = await startEtcd(restored, "r1", peerPort);
      members.push(restoredMember);
      await t.step("etcd started on the restored data dir serves the keys", async () => {
        const rctl = [`--endpoints=${restoredMember.endpoint}`];
        assert.equal(
          await mustRun([...rctl, "get", "foo", "--print-value-only"]),
          "baz\n",
        );
        assert.equal(await mustRun([...rctl, "get", "gone"]), "");
        const bulk = await mustRun([...rctl, "get", "bulk/", "--prefix", "--keys-only"]);
        assert.equal(bulk.split("\n").filter((l) => l.startsWith("bulk/")).length, 200);
        const status = JSON.parse(
          await mustRun([...rctl, "endpoint", "status", "-w", "json"]),
        );
        assert.equal(status[0].Status.header.revision, theirs.revision);
      });
      await t.step(
        "without --skip-hash-check, etcdctl refuses a file with no sha256 trailer",
        async () => {
          const r = await runCtl("etcdctl", [
            "snapshot",
            "restore",
            reencoded,
            "--data-dir",
            `${dir}/r2`,
          ]);
          assert.notEqual(r.code, 0);
          assert.match(r.stderr, /snapshot missing hash but --skip-hash-check=false/);
        },
      );
    } finally {
      for (const member of members) await member.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

/** mvccpb.KeyValue of a key's first version at `revision`. */
function keyValueProto(key: Uint8Array, revision: number, value: Uint8Array): Uint8Array {
  const rev = BigInt(revision);
  return toBinary(
    KeyValueSchema,
    create(KeyValueSchema, { key, createRevision: rev, modRevision: rev, version: 1n, value }),
  );
}

Deno.test({
  name: "a large etcd backend written by encodeBolt passes etcdctl snapshot status and restore",
  ignore: reference.ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    assertReference();
    const count = 50_000;
    const entries: Array<[Uint8Array, Uint8Array]> = [];
    for (let i = 0; i < count; i++) {
      const key = bytes(`bulk/${String(i).padStart(6, "0")}`);
      entries.push([revisionKey(i + 2, 0), keyValueProto(key, i + 2, bytes(`v${i}-`.repeat(20)))]);
    }
    const huge = new Uint8Array(1_500_000).fill(0x78);
    const lastRevision = count + 2;
    entries.push([revisionKey(lastRevision, 0), keyValueProto(bytes("huge"), lastRevision, huge)]);
    const consistentIndex = new Uint8Array(8);
    new DataView(consistentIndex.buffer).setBigUint64(0, BigInt(lastRevision + 5));
    const authRevision = new Uint8Array(8);
    authRevision[7] = 1;
    const buckets: BoltBucket[] = [
      { name: bytes("key"), entries },
      { name: bytes("meta"), entries: [[bytes("consistent_index"), consistentIndex]] },
      { name: bytes("cluster"), entries: [[bytes("clusterVersion"), bytes("3.4.0")]] },
      { name: bytes("auth"), entries: [[bytes("authRevision"), authRevision]] },
      ...["alarm", "authRoles", "authUsers", "lease", "members", "members_removed"].map((name) => ({
        name: bytes(name),
        entries: [],
      })),
    ];
    const file = encodeBolt(buckets);
    // etcdctl's hash: CRC-32C over bucket names, keys and values in bbolt's (bytewise) order.
    const hash = new Crc32c();
    let totalKey = 0;
    for (const bucket of [...buckets].sort((x, y) => compareBytes(x.name, y.name))) {
      hash.update(bucket.name);
      const entries = [...bucket.entries].sort((x, y) => compareBytes(x[0], y[0]));
      for (const [k, v] of entries) hash.update(k).update(v);
      totalKey += bucket.entries.length;
    }

    const dir = await Deno.makeTempDir({ prefix: "detcd-bbolt-large-" });
    let member: Member | undefined;
    try {
      const path = `${dir}/detcd.db`;
      await Deno.writeFile(path, file);
      const status = await snapshotStatus(path);
      assert.deepEqual(status, {
        hash: hash.digest(),
        revision: lastRevision,
        totalKey,
        totalSize: file.length,
      });

      const peerPort = freePort();
      const peer = `http://127.0.0.1:${peerPort}`;
      await mustRun([
        "snapshot",
        "restore",
        path,
        "--data-dir",
        `${dir}/restored`,
        "--skip-hash-check",
        "--name",
        "big",
        "--initial-cluster",
        `big=${peer}`,
        "--initial-advertise-peer-urls",
        peer,
      ]);
      member = await startEtcd(`${dir}/restored`, "big", peerPort);
      const ctl = [`--endpoints=${member.endpoint}`];
      const counted = JSON.parse(
        await mustRun([
          ...ctl,
          "get",
          "bulk/",
          "--prefix",
          "--limit=1",
          "-w",
          "json",
        ]),
      );
      assert.equal(counted.count, count);
      assert.equal(counted.header.revision, lastRevision);
      assert.equal(
        await mustRun([...ctl, "get", "bulk/012345", "--print-value-only"]),
        "v12345-".repeat(20) + "\n",
      );
      const value = await mustRun([...ctl, "get", "huge", "--print-value-only"]);
      assert.equal(value.length, huge.length + 1);
      await mustRun([...ctl, "put", "after", "restore"]);
      assert.equal(
        await mustRun([...ctl, "get", "after", "--print-value-only"]),
        "restore\n",
      );
    } finally {
      if (member) await member.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
