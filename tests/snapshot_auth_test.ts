/**
 * `snapshot save|status|restore` carry etcd's auth state (users, roles, permissions, the enabled
 * flag, the auth revision) both ways between etcd 3.4.23 and detcd. Real etcd is the reference
 * every time: the same snapshot file restored by etcdctl into an etcd data dir and started shows
 * what a restore must keep (etcd's restore copies the backend and leaves its auth buckets as they
 * are: auth stays enabled, at the same auth revision, with the same bcrypt hashes).
 *
 * - etcd → detcd: real etcd with users, roles and auth enabled, `etcdctl snapshot save`, then
 *   `detcdctl snapshot status|restore`. The auth state in detcd's restored member snapshot must
 *   be the one etcdctl's restore left in etcd's restored backend, and the restored detcd must
 *   serve it (user list, role get, reads and writes as a user) as the restored etcd does.
 * - detcd → etcd: detcd with the same users and roles, `etcdctl snapshot save` from it,
 *   `etcdctl snapshot restore`, real etcd started on it must answer as the source did.
 */

import assert from "node:assert/strict";
import { fromBinary } from "@bufbuild/protobuf";
import { NodeSnapshotSchema } from "../gen/detcdpb/internal_pb.ts";
import { authFromBuckets, type AuthSnapshot } from "../core/auth/mod.ts";
import { authSnapshotOf } from "../core/node/auth_record.ts";
import { decodeBolt } from "../core/storage/mod.ts";
import { Snapshotter } from "../core/storage/snapshot.ts";
import { DenoDisk } from "../platform/mod.ts";
import {
  assertReference,
  type CtlKind,
  freePort,
  type Member,
  type MemberKind,
  normaliseOutput,
  requireDetcd,
  requireReference,
  runCtl,
  startMember,
} from "./harness.ts";

const reference = requireReference();
const detcd = requireDetcd();
const ignore = reference.ignore || detcd.ignore;

const ROOT = "--user=root:123456";
const USER = "--user=u:p";

/** Users, roles, grants and keys, then auth enable (etcdctl adds and grants the root role). */
const SETUP: string[][] = [
  ["user", "add", "root:123456"],
  ["role", "add", "r"],
  ["role", "grant-permission", "--prefix", "r", "readwrite", "foo"],
  ["role", "add", "ro"],
  ["role", "grant-permission", "ro", "read", "a", "c"],
  ["user", "add", "u:p"],
  ["user", "grant-role", "u", "r"],
  ["user", "grant-role", "u", "ro"],
  ["user", "add", "v:q"],
  ["put", "foo1", "bar"],
  ["put", "b", "in-range"],
  ["put", "other", "secret"],
  ["auth", "enable"],
];

/**
 * What a member with that auth state answers: the lists and grants as root, reads and a write as
 * u (allowed and denied), and a request without a user. Ends with the one write.
 */
const QUERIES: string[][] = [
  [ROOT, "user", "list"],
  [ROOT, "role", "list"],
  [ROOT, "role", "get", "r"],
  [ROOT, "role", "get", "ro"],
  [ROOT, "role", "get", "root"],
  [ROOT, "user", "get", "u"],
  [ROOT, "user", "get", "root"],
  [USER, "get", "foo", "--prefix"],
  [USER, "get", "b"],
  [USER, "get", "other"],
  ["--user=u:wrong", "get", "foo1"],
  ["get", "foo1"],
  [ROOT, "get", "", "--prefix", "--keys-only"],
  [USER, "put", "foo2", "x"],
  [USER, "put", "other", "x"],
  [ROOT, "get", "foo2"],
];

interface Out {
  stdout: string;
  stderr: string;
  code: number;
}

async function ctl(kind: CtlKind, cwd: string, args: string[]): Promise<Out> {
  const { stdout, stderr, code } = await runCtl(kind, args, { cwd });
  return { stdout, stderr, code };
}

/** etcdctl against `m`, each step must succeed. */
async function setUp(m: Member, dir: string): Promise<void> {
  for (const args of SETUP) {
    const out = await ctl("etcdctl", dir, [`--endpoints=${m.endpoint}`, ...args]);
    assert.equal(out.code, 0, `${m.kind}: etcdctl ${args.join(" ")}: ${out.stderr}`);
  }
}

/** The queries' answers, each as `exit code / stdout / stderr` (log timestamps, ids, port normalised). */
async function query(m: Member, dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const args of QUERIES) {
    const r = await ctl("etcdctl", dir, [`--endpoints=${m.endpoint}`, ...args]);
    const text = `etcdctl ${args.join(" ")}\n=> ${r.code}\n${r.stdout}${r.stderr}`;
    out.push(normaliseOutput(text, { ports: { [m.clientPort]: "CLIENT_PORT" } }));
  }
  return out;
}

/** The auth state a restored etcd data dir holds (its backend, read as etcd would read it). */
async function etcdDirAuth(dataDir: string): Promise<AuthSnapshot> {
  return authFromBuckets(decodeBolt(await Deno.readFile(`${dataDir}/member/snap/db`)));
}

/** The auth state a restored detcd data dir holds (the member snapshot restore wrote). */
async function detcdDirAuth(dataDir: string): Promise<AuthSnapshot> {
  const snap = await new Snapshotter(new DenoDisk(), `${dataDir}/member/snap`).loadNewest(
    (name, reason) => {
      throw new Error(`${dataDir}: snapshot ${name} skipped: ${reason}`);
    },
  );
  assert.ok(snap, `${dataDir}: no member snapshot`);
  const state = fromBinary(NodeSnapshotSchema, snap.data);
  assert.ok(state.auth, `${dataDir}: the member snapshot has no auth record`);
  return authSnapshotOf(state.auth);
}

/** The auth state with names and permissions readable (hashes kept: a restore keeps them). */
function readable(a: AuthSnapshot) {
  const dec = new TextDecoder();
  return {
    enabled: a.enabled,
    everEnabled: a.everEnabled,
    revision: a.revision,
    users: a.users.map((u) => ({
      name: dec.decode(u.name),
      password: dec.decode(u.password),
      roles: u.roles,
      noPassword: u.options?.noPassword,
    })),
    roles: a.roles.map((r) => ({
      name: dec.decode(r.name),
      perms: r.keyPermission.map((p) =>
        `${p.permType} ${JSON.stringify(dec.decode(p.key))} ${
          JSON.stringify(dec.decode(p.rangeEnd))
        }`
      ),
    })),
  };
}

/** `snapshot restore snap.db` into `<dir>/<dataDir>` for a member named etcd1 on `peerPort`. */
async function restore(kind: CtlKind, dir: string, dataDir: string, peerPort: number) {
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const out = await ctl(kind, dir, [
    "snapshot",
    "restore",
    "snap.db",
    "--name=etcd1",
    `--data-dir=${dataDir}`,
    `--initial-cluster=etcd1=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
  ]);
  assert.equal(out.code, 0, `${kind} snapshot restore: ${out.stderr}`);
  return { dataDir: `${dir}/${dataDir}`, peerPort, initialCluster: `etcd1=${peerUrl}` };
}

async function startRestored(
  kind: MemberKind,
  r: Awaited<ReturnType<typeof restore>>,
): Promise<Member> {
  return await startMember({
    kind,
    name: "etcd1",
    dataDir: r.dataDir,
    peerPort: r.peerPort,
    initialCluster: r.initialCluster,
  });
}

/** Auth buckets of a snapshot file as hex, for byte-for-byte comparisons. */
async function authBucketsHex(path: string): Promise<Record<string, string[][]>> {
  const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  const dec = new TextDecoder();
  const out: Record<string, string[][]> = {};
  for (const b of decodeBolt(await Deno.readFile(path))) {
    const name = dec.decode(b.name);
    if (name.startsWith("auth")) out[name] = b.entries.map(([k, v]) => [hex(k), hex(v)]);
  }
  return out;
}

Deno.test({
  name:
    "snapshot auth: etcd → detcd: users, roles, enabled flag and auth revision restored as etcd restores them",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    assertReference();
    const dir = await Deno.makeTempDir({ prefix: "detcd-snap-auth-etcd-" });
    const members: Member[] = [];
    try {
      const src = await startMember({ kind: "etcd", name: "etcd1" });
      members.push(src);
      await setUp(src, dir);
      const save = await ctl("etcdctl", dir, [
        `--endpoints=${src.endpoint}`,
        ROOT,
        "snapshot",
        "save",
        "snap.db",
      ]);
      assert.equal(save.code, 0, save.stderr);
      await src.stop();

      // status is a pure function of the file, auth buckets included in the hash and key count.
      for (const format of ["table", "json", "simple", "fields"]) {
        const args = ["snapshot", "status", "snap.db", "-w", format];
        const e = await ctl("etcdctl", dir, args);
        assert.equal(e.code, 0, e.stderr);
        assert.deepEqual(await ctl("detcdctl", dir, args), e, `snapshot status -w ${format}`);
      }

      const asEtcd = await restore("etcdctl", dir, "etcd.etcd", freePort());
      const asDetcd = await restore("detcdctl", dir, "detcd.etcd", freePort());
      // The reference: what etcdctl's restore left in etcd's backend.
      const want = await etcdDirAuth(asEtcd.dataDir);
      assert.equal(want.enabled, true, "etcd's restore keeps auth enabled");
      assert.deepEqual(
        want.users.map((u) => new TextDecoder().decode(u.name)),
        ["root", "u", "v"],
      );
      assert.deepEqual(readable(await detcdDirAuth(asDetcd.dataDir)), readable(want));

      // The restored etcd serves that state (the answers the restored detcd must give).
      const e = await startRestored("etcd", asEtcd);
      members.push(e);
      const eAnswers = await query(e, dir);
      assert.match(eAnswers[0], /=> 0\nroot\nu\nv\n$/, "restored etcd: user list");
      assert.match(eAnswers[7], /=> 0\nfoo1\nbar\n$/, "restored etcd: u reads foo*");
      assert.match(eAnswers[9], /permission denied/, "restored etcd: u may not read other");
      assert.match(eAnswers[11], /user name is empty/, "restored etcd: auth stays enabled");
      await e.stop();
      // Starting and serving left the auth state as the restore wrote it (a put is no auth change).
      assert.deepEqual(readable(await etcdDirAuth(asEtcd.dataDir)), readable(want));

      const d = await startRestored("detcd", asDetcd);
      members.push(d);
      assert.deepEqual(await query(d, dir), eAnswers, "restored detcd vs restored etcd");
      // And back: detcd's snapshot holds the auth buckets etcd wrote, byte for byte.
      const again = await ctl("etcdctl", dir, [
        `--endpoints=${d.endpoint}`,
        ROOT,
        "snapshot",
        "save",
        "again.db",
      ]);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(
        await authBucketsHex(`${dir}/again.db`),
        await authBucketsHex(`${dir}/snap.db`),
      );
    } finally {
      await Promise.all(members.map((m) => m.stop()));
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

/**
 * The detcd → etcd flow for a `source` kind: set up, answers on the source, etcdctl save and
 * restore into an etcd data dir, answers of the restored etcd, and the restored auth state.
 */
async function toEtcd(source: MemberKind) {
  const dir = await Deno.makeTempDir({ prefix: `detcd-snap-auth-${source}-to-etcd-` });
  const members: Member[] = [];
  try {
    const src = await startMember({ kind: source, name: "etcd1" });
    members.push(src);
    await setUp(src, dir);
    const save = await ctl("etcdctl", dir, [
      `--endpoints=${src.endpoint}`,
      ROOT,
      "snapshot",
      "save",
      "snap.db",
    ]);
    assert.equal(save.code, 0, `${source}: ${save.stderr}`);
    // The source's answers after the save (the queries end with a write).
    const before = await query(src, dir);
    await src.stop();
    const restored = await restore("etcdctl", dir, "etcd.etcd", freePort());
    const auth = readable(await etcdDirAuth(restored.dataDir));
    const e = await startRestored("etcd", restored);
    members.push(e);
    const after = await query(e, dir);
    return { before, after, auth };
  } finally {
    await Promise.all(members.map((m) => m.stop()));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

Deno.test({
  name:
    "snapshot auth: detcd → etcd: etcdctl save from detcd, etcdctl restore, etcd serves the same users and roles",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    assertReference();
    const ref = await toEtcd("etcd");
    assert.deepEqual(ref.after, ref.before, "etcd → etcd keeps the auth state (reference)");
    const sub = await toEtcd("detcd");
    assert.deepEqual(sub.before, ref.before, "detcd answers as etcd before the save");
    assert.deepEqual(sub.after, ref.after, "etcd restored from detcd's snapshot vs from etcd's");
    // Same steps, same state: all but the bcrypt hashes (random salts) are equal.
    const noHashes = (a: typeof ref.auth) => ({
      ...a,
      users: a.users.map((u) => ({ ...u, password: u.password.slice(0, 7) })),
    });
    assert.deepEqual(noHashes(sub.auth), noHashes(ref.auth));
  },
});
