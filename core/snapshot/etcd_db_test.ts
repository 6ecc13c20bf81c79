import { create, toBinary } from "@bufbuild/protobuf";
import { KeyValueSchema } from "../../gen/mvccpb/kv_pb.ts";
import { assertEquals, assertThrows } from "../testing.ts";
import { decodeSnapshotBytes } from "../mvcc/snapshot_codec.ts";
import type { BoltBucket } from "../storage/bbolt.ts";
import { decodeBolt, encodeBolt } from "../storage/bbolt.ts";
import { viewOfEntries } from "../mvcc/snapshot_codec.ts";
import {
  type BackendState,
  EtcdDbError,
  fromEtcdBuckets,
  revisionKey,
  toEtcdBuckets,
} from "./etcd_db.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function put(key: Uint8Array, main: number, version: number): [Uint8Array, Uint8Array] {
  return [
    revisionKey(main, 0),
    toBinary(
      KeyValueSchema,
      create(KeyValueSchema, {
        key,
        value: enc.encode(`v${main}`),
        createRevision: BigInt(main - version + 1),
        modRevision: BigInt(main),
        version: BigInt(version),
      }),
    ),
  ];
}

function backend(keys: Array<[Uint8Array, Uint8Array]>, meta: Array<[string, Uint8Array]>) {
  const buckets: BoltBucket[] = [
    { name: enc.encode("key"), entries: keys },
    { name: enc.encode("meta"), entries: meta.map(([k, v]) => [enc.encode(k), v]) },
  ];
  return buckets;
}

Deno.test("a compaction etcd scheduled but did not finish is finished on restore, per binary key", () => {
  // Two keys that are not UTF-8 (they would both decode to U+FFFD) with revisions 2..5.
  const a = new Uint8Array([0xff]);
  const b = new Uint8Array([0xfe]);
  const restored = fromEtcdBuckets(backend(
    [put(a, 2, 1), put(b, 3, 1), put(a, 4, 2), put(b, 5, 2)],
    [["scheduledCompactRev", revisionKey(4, 0)], ["finishedCompactRev", revisionKey(2, 0)]],
  ));
  const snap = decodeSnapshotBytes(restored.mvcc);
  assertEquals(snap.compactMainRev, 4);
  // At or below 4 each key keeps its latest revision (a@4, b@3); above 4 everything stays.
  assertEquals(snap.entries.map((e) => e.main), [3, 4, 5]);
  assertEquals(restored.revision, 5);
});

Deno.test("restore refuses what is not etcd's backend, or auth buckets etcd could not have written", () => {
  assertThrows(() => fromEtcdBuckets([]), EtcdDbError, 'no "key" or "meta" bucket');
  const badUser = [
    ...backend([], []),
    { name: enc.encode("authUsers"), entries: [[enc.encode("root"), new Uint8Array([0xff])]] },
  ] as BoltBucket[];
  assertThrows(() => fromEtcdBuckets(badUser), EtcdDbError, "authUsers");
  const badRevision = [
    ...backend([], []),
    { name: enc.encode("auth"), entries: [[enc.encode("authRevision"), new Uint8Array(3)]] },
  ] as BoltBucket[];
  assertThrows(() => fromEtcdBuckets(badRevision), EtcdDbError, "authRevision");
});

/** etcd 3.4.23's auth buckets (core/auth/testdata: auth enabled, revision 28, users and roles). */
async function etcdAuthBuckets(): Promise<BoltBucket[]> {
  const json = JSON.parse(
    await Deno.readTextFile(
      new URL("../auth/testdata/etcd_3.4.23_auth_buckets.json", import.meta.url),
    ),
  ) as Record<string, [string, string][]>;
  const fromHex = (h: string) => new Uint8Array((h.match(/../g) ?? []).map((x) => parseInt(x, 16)));
  return Object.entries(json).map(([name, entries]) => ({
    name: enc.encode(name),
    entries: entries.map(([k, v]): [Uint8Array, Uint8Array] => [fromHex(k), fromHex(v)]),
  }));
}

function hex(buckets: BoltBucket[], names: string[]): Record<string, string[][]> {
  const toHex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  const out: Record<string, string[][]> = {};
  for (const b of buckets) {
    const name = dec.decode(b.name);
    if (names.includes(name)) out[name] = b.entries.map(([k, v]) => [toHex(k), toHex(v)]);
  }
  return out;
}

const AUTH_BUCKETS = ["auth", "authRoles", "authUsers"];

function stateWith(auth: BackendState["auth"]): BackendState {
  return {
    mvcc: viewOfEntries(1, 0, []),
    leases: [],
    alarms: [],
    members: [],
    removed: [],
    clusterVersion: "3.4.0",
    consistentIndex: 5,
    auth,
  };
}

Deno.test("etcd's auth buckets restore as they are and are written back byte for byte", async () => {
  const etcdAuth = await etcdAuthBuckets();
  const restored = fromEtcdBuckets([...backend([], []), ...etcdAuth]);
  // Enabled, at etcd's auth revision, with every user and role: etcd's restore keeps them as is.
  assertEquals(restored.auth.enabled, true);
  assertEquals(restored.auth.everEnabled, true);
  assertEquals(restored.auth.revision, 28);
  assertEquals(restored.auth.users.map((u) => dec.decode(u.name)), ["cn", "root", "u"]);
  assertEquals(restored.auth.roles.map((r) => dec.decode(r.name)), ["r", "r2", "r3", "root"]);
  const written = toEtcdBuckets(stateWith(restored.auth));
  assertEquals(hex(written, AUTH_BUCKETS), hex(etcdAuth, AUTH_BUCKETS));
  // And through a bbolt file and back again.
  const again = fromEtcdBuckets(decodeBolt(encodeBolt(written)));
  assertEquals(again.auth, restored.auth);
});

Deno.test("a never-enabled empty auth store: authRevision 1 and no authEnabled key, as etcd writes", () => {
  const fresh = { enabled: false, everEnabled: false, revision: 1, users: [], roles: [] };
  const written = toEtcdBuckets(stateWith(fresh));
  assertEquals(hex(written, AUTH_BUCKETS), {
    // "authRevision" → 1 (8 bytes big-endian), what a fresh etcd 3.4.23 backend holds.
    auth: [["617574685265766973696f6e", "0000000000000001"]],
    authRoles: [],
    authUsers: [],
  });
  // The bucket order stays bbolt's (sorted names), as before auth was carried.
  assertEquals(written.map((b) => dec.decode(b.name)), [
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
  ]);
  // A database without auth buckets restores to the same fresh store.
  assertEquals(fromEtcdBuckets(backend([], [])).auth, fresh);
});

Deno.test("a disabled store that was enabled once keeps its authEnabled=0 key both ways", () => {
  const disabled = { enabled: false, everEnabled: true, revision: 7, users: [], roles: [] };
  const written = toEtcdBuckets(stateWith(disabled));
  const auth = written.find((b) => dec.decode(b.name) === "auth")!;
  assertEquals(auth.entries.map(([k, v]) => [dec.decode(k), Array.from(v)]), [
    ["authEnabled", [0]],
    ["authRevision", [0, 0, 0, 0, 0, 0, 0, 7]],
  ]);
  assertEquals(fromEtcdBuckets(written).auth, disabled);
});

Deno.test("revisionKey: 8-byte big-endian main and sub around 32 bits and up to 2^53, `_` between, `t` for a tombstone", () => {
  for (const [main, sub] of [[2, 0], [2 ** 32 - 1, 1], [2 ** 32, 2 ** 32 + 7], [2 ** 53 - 1, 3]]) {
    for (const tombstone of [false, true]) {
      const expected = new Uint8Array(tombstone ? 18 : 17);
      const view = new DataView(expected.buffer);
      view.setBigUint64(0, BigInt(main));
      expected[8] = 0x5f;
      view.setBigUint64(9, BigInt(sub));
      if (tombstone) expected[17] = 0x74;
      assertEquals(revisionKey(main, sub, tombstone), expected);
    }
  }
});
