/**
 * detcd's applied state as etcd 3.4's backend database, and back: the bucket layout etcd keeps in
 * its bbolt file, so a snapshot detcd streams is a file real `etcdctl snapshot status|restore`
 * read (and real etcd runs on), and a snapshot real etcd streamed can be restored into detcd.
 * Pure: values in, values out (the bbolt page format itself is core/storage/bbolt.ts).
 *
 * Buckets (etcd 3.4, see docs/etcd_snapshot_facts.md):
 * - `key`: every stored revision. Key: 8-byte big-endian main revision, `_`, 8-byte big-endian
 *   sub revision, plus a trailing `t` for a tombstone. Value: the mvccpb.KeyValue (for a
 *   tombstone only the key).
 * - `meta`: `consistent_index` (8 bytes BE, the last applied Raft index), and after a compaction
 *   `scheduledCompactRev` / `finishedCompactRev` (17-byte revisions).
 * - `lease`: 8-byte BE lease ID → leasepb.Lease {ID, TTL, RemainingTTL}.
 * - `alarm`: an etcdserverpb.AlarmMember as the key, empty value.
 * - `members`: the member ID in hex (no padding) → JSON {"id", "peerURLs", "isLearner"?,
 *   "name"?, "clientURLs"?}; `members_removed`: hex ID → "removed".
 * - `cluster`: `clusterVersion` → "3.4.0".
 * - `auth` (`authRevision`; `authEnabled` only after auth was ever enabled or disabled),
 *   `authUsers`, `authRoles`: users, roles and their permissions (core/auth/etcd_buckets.ts).
 */

import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import { type KeyValue, KeyValueSchema } from "../../gen/mvccpb/kv_pb.ts";
import { type AlarmMember, AlarmMemberSchema } from "../../gen/etcdserverpb/rpc_pb.ts";
import { compareBytes, keyId } from "../bytes.ts";
import {
  type BoltBucket,
  type BoltSource,
  BoltWriter,
  type EncodeBoltOptions,
} from "../storage/bbolt.ts";
import {
  encodeSnapshotBytes,
  entryValueSize,
  type MvccView,
  type SnapshotEntry,
  writeEntryValue,
} from "../mvcc/snapshot_codec.ts";
import { ByteWriter } from "../mvcc/kv_codec.ts";
import { Crc32c } from "../storage/crc32c.ts";
import {
  backendSources,
  isTombstoneKey,
  keyBucket,
  REV_BYTES_LEN,
  revisionKey,
  writeRevisionKey,
} from "./key_bucket.ts";

export { keyBucket, revisionKey };
import { AuthBucketError, authFromBuckets, authToBuckets } from "../auth/etcd_buckets.ts";
import type { AuthSnapshot } from "../auth/auth_store.ts";

/**
 * The part of a member's state that etcd keeps in its backend, at one applied index. The MVCC
 * part is a view (no copy); the rest is small and copied.
 */
export interface BackendState {
  /** Every stored revision (MvccStore.view()). */
  mvcc: MvccView;
  leases: { id: bigint; ttl: bigint; remainingTtl: bigint }[];
  alarms: AlarmMember[];
  members: {
    id: bigint;
    name: string;
    peerUrls: string[];
    clientUrls: string[];
    isLearner: boolean;
  }[];
  removed: bigint[];
  clusterVersion: string;
  /** The last applied Raft index. */
  consistentIndex: number;
  /** Users, roles, the enabled flag and the auth revision. */
  auth: AuthSnapshot;
}

/** Raised for a database that is not a usable etcd backend. */
export class EtcdDbError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EtcdDbError";
  }
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function parseRevisionKey(key: Uint8Array): { main: number; sub: number; tombstone: boolean } {
  const tombstone = isTombstoneKey(key);
  if ((key.length !== REV_BYTES_LEN && !tombstone) || key[8] !== 0x5f) {
    throw new EtcdDbError(`key bucket: malformed revision key (${key.length} bytes)`);
  }
  const view = new DataView(key.buffer, key.byteOffset, key.byteLength);
  const main = view.getBigUint64(0);
  const sub = view.getBigUint64(9);
  if (main > BigInt(Number.MAX_SAFE_INTEGER) || sub > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new EtcdDbError("key bucket: revision out of range");
  }
  return { main: Number(main), sub: Number(sub), tombstone };
}

function uint64Bytes(n: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, n));
  return out;
}

function readUint64(bytes: Uint8Array, what: string): bigint {
  if (bytes.length !== 8) throw new EtcdDbError(`${what}: expected 8 bytes, got ${bytes.length}`);
  return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0);
}

/** leasepb.Lease {int64 ID = 1; int64 TTL = 2; int64 RemainingTTL = 3} (zero fields omitted). */
function encodeLease(l: { id: bigint; ttl: bigint; remainingTtl: bigint }): Uint8Array {
  const w = new BinaryWriter();
  if (l.id !== 0n) w.tag(1, 0).int64(l.id);
  if (l.ttl !== 0n) w.tag(2, 0).int64(l.ttl);
  if (l.remainingTtl !== 0n) w.tag(3, 0).int64(l.remainingTtl);
  return w.finish();
}

function decodeLease(bytes: Uint8Array): { id: bigint; ttl: bigint; remainingTtl: bigint } {
  const r = new BinaryReader(bytes);
  const out = { id: 0n, ttl: 0n, remainingTtl: 0n };
  while (r.pos < r.len) {
    const [field, wireType] = r.tag();
    if (wireType !== 0) {
      r.skip(wireType);
      continue;
    }
    const v = BigInt(r.int64());
    if (field === 1) out.id = v;
    else if (field === 2) out.ttl = v;
    else if (field === 3) out.remainingTtl = v;
  }
  return out;
}

/**
 * A member as etcd's encoding/json writes membership.Member: the uint64 ID as a JSON number (all
 * its digits: JSON.stringify cannot do that for a bigint), omitempty for isLearner, name and
 * clientURLs.
 */
function memberJson(m: BackendState["members"][number]): string {
  let out = `{"id":${m.id.toString()},"peerURLs":${JSON.stringify(m.peerUrls)}`;
  if (m.isLearner) out += `,"isLearner":true`;
  if (m.name !== "") out += `,"name":${JSON.stringify(m.name)}`;
  if (m.clientUrls.length > 0) out += `,"clientURLs":${JSON.stringify(m.clientUrls)}`;
  return out + "}";
}

function bucket(name: string, entries: Array<[Uint8Array, Uint8Array]>): BoltBucket {
  return { name: enc.encode(name), entries };
}

/**
 * The `key` bucket over a view: revision keys in revision order (which is their byte order), each
 * value encoded when the writer asks for it, a tombstone as a KeyValue holding only its key.
 */
function keySource(view: MvccView): BoltSource {
  const scratch = new ByteWriter(1024);
  // Every key is written into one buffer (the writer copies what it keeps): an ArrayBuffer per
  // key was a third of a snapshot's time, and a view of a slab per key garbage the collector
  // had to keep up with while the member served.
  const putKey = new Uint8Array(REV_BYTES_LEN);
  const tombstoneKey = new Uint8Array(REV_BYTES_LEN + 1);
  // The writer asks for an entry's key, then its size or value: one view entry per index.
  let lastIndex = -1;
  let last: SnapshotEntry | null = null;
  const entry = (i: number): SnapshotEntry => {
    if (i !== lastIndex) {
      last = view.entry(i);
      lastIndex = i;
    }
    return last!;
  };
  return {
    name: keyBucket,
    length: view.length,
    key(i) {
      const e = entry(i);
      const out = e.tombstone ? tombstoneKey : putKey;
      writeRevisionKey(out, e.main, e.sub, e.tombstone);
      return out;
    },
    valueSize(i) {
      return entryValueSize(entry(i));
    },
    value(i) {
      const e = entry(i);
      const data = e.data; // once: it may be read from disk
      if (data !== undefined) return data;
      scratch.reset();
      writeEntryValue(scratch, e);
      return scratch.view();
    },
  };
}

/**
 * The buckets of etcd's backend for `state`, the `key` bucket read from the view as it is
 * written: nothing of the key space is copied.
 */
export function etcdDbSources(state: BackendState): BoltSource[] {
  return backendSources(keySource(state.mvcc), backendBuckets(state));
}

/** Every bucket of etcd's backend for `state` but `key` (all small: built whole). */
export function backendBuckets(state: BackendState): BoltBucket[] {
  const meta: Array<[Uint8Array, Uint8Array]> = [
    [enc.encode("consistent_index"), uint64Bytes(BigInt(state.consistentIndex))],
  ];
  if (state.mvcc.compactMainRev > 0) {
    const rev = revisionKey(state.mvcc.compactMainRev, 0);
    meta.push([enc.encode("finishedCompactRev"), rev], [enc.encode("scheduledCompactRev"), rev]);
  }
  return [
    bucket("alarm", state.alarms.map((a) => [toBinary(AlarmMemberSchema, a), new Uint8Array(0)])),
    // `auth`, `authRoles`, `authUsers`: etcd writes `authEnabled` only once auth was enabled or
    // disabled, `authRevision` always (1 for a fresh store).
    ...authToBuckets(state.auth),
    bucket(
      "cluster",
      state.clusterVersion === "" ? [] : [[
        enc.encode("clusterVersion"),
        enc.encode(state.clusterVersion),
      ]],
    ),
    bucket("lease", state.leases.map((l) => [uint64Bytes(l.id), encodeLease(l)])),
    bucket(
      "members",
      state.members.map((m) => [enc.encode(m.id.toString(16)), enc.encode(memberJson(m))]),
    ),
    bucket(
      "members_removed",
      state.removed.map((id) => [enc.encode(id.toString(16)), enc.encode("removed")]),
    ),
    bucket("meta", meta),
  ];
}

/**
 * The bbolt transaction id of `state`'s file: it only orders the two meta pages; the applied
 * index keeps it growing.
 */
export function backendTxid(state: BackendState): number {
  return Math.max(2, state.consistentIndex);
}

/** etcd's backend file for `state`, to be planned and then streamed page by page (see BoltWriter). */
export function etcdDbWriter(state: BackendState, options: EncodeBoltOptions = {}): BoltWriter {
  return new BoltWriter(etcdDbSources(state), { txid: backendTxid(state), ...options });
}

/** The buckets of etcd's backend for `state`, materialised (small states and tests). */
export function toEtcdBuckets(state: BackendState): BoltBucket[] {
  return etcdDbSources(state).map((source) => {
    const entries: Array<[Uint8Array, Uint8Array]> = [];
    for (let i = 0; i < source.length; i++) {
      entries.push([source.key(i).slice(), source.value(i).slice()]);
    }
    return { name: source.name, entries };
  });
}

/** What an etcd backend holds that detcd restores (membership comes from the restore flags). */
export interface RestoredBackend {
  /** MvccStore.encodeSnapshot() bytes. */
  mvcc: Uint8Array;
  revision: number;
  leases: { id: bigint; ttl: bigint; remainingTtl: bigint }[];
  alarms: AlarmMember[];
  clusterVersion: string;
  /** Members recorded in the database (informational: restore replaces the membership). */
  memberCount: number;
  /**
   * Users, roles, the enabled flag and the auth revision, as the database holds them (etcd's
   * restore keeps its auth buckets untouched; a database without them: a fresh store).
   */
  auth: AuthSnapshot;
}

function findBucket(buckets: BoltBucket[], name: string): BoltBucket | undefined {
  const bytes = enc.encode(name);
  return buckets.find((b) => compareBytes(b.name, bytes) === 0);
}

/**
 * Reads etcd's buckets back. Finishes a compaction the database had scheduled but not finished,
 * as etcd does when it opens its backend. The auth state comes back as is: users, roles, the
 * enabled flag and the auth revision (auth buckets etcd could not have written are refused).
 */
export function fromEtcdBuckets(buckets: BoltBucket[]): RestoredBackend {
  const keyB = findBucket(buckets, "key");
  const metaB = findBucket(buckets, "meta");
  if (!keyB || !metaB) {
    throw new EtcdDbError('not an etcd backend: no "key" or "meta" bucket');
  }
  let auth: AuthSnapshot;
  try {
    auth = authFromBuckets(buckets);
  } catch (e) {
    if (e instanceof AuthBucketError) throw new EtcdDbError(e.message);
    throw e;
  }
  const metaValue = (name: string) => metaB.entries.find(([k]) => dec.decode(k) === name)?.[1];
  const compactRev = (name: string): number => {
    const v = metaValue(name);
    return v === undefined ? -1 : parseRevisionKey(v.subarray(0, REV_BYTES_LEN)).main;
  };
  const finished = compactRev("finishedCompactRev");
  const scheduled = compactRev("scheduledCompactRev");
  const compactMainRev = Math.max(finished, scheduled);

  const sorted = [...keyB.entries].sort((a, b) => compareBytes(a[0], b[0]));
  let entries: DecodedEntry[] = sorted.map(([k, v]) => {
    const rev = parseRevisionKey(k);
    let kv: KeyValue;
    try {
      kv = fromBinary(KeyValueSchema, v);
    } catch (e) {
      throw new EtcdDbError(`key bucket: revision ${rev.main}: bad KeyValue (${e})`);
    }
    if (!rev.tombstone && kv.modRevision !== BigInt(rev.main)) {
      throw new EtcdDbError(
        `key bucket: revision ${rev.main} holds mod_revision ${kv.modRevision}`,
      );
    }
    return { ...rev, kv };
  });
  if (scheduled > finished) entries = compactEntries(entries, scheduled);
  let revision = entries.length > 0 ? entries[entries.length - 1].main : 1;
  if (revision < compactMainRev) revision = compactMainRev;

  const leases = (findBucket(buckets, "lease")?.entries ?? []).map(([k, v]) => {
    const lease = decodeLease(v);
    if (lease.id !== BigInt.asIntN(64, readUint64(k, "lease bucket key"))) {
      throw new EtcdDbError("lease bucket: key and lease ID differ");
    }
    return lease;
  });
  const alarms = (findBucket(buckets, "alarm")?.entries ?? []).map(([k]) =>
    fromBinary(AlarmMemberSchema, k)
  );
  const version = findBucket(buckets, "cluster")?.entries.find(([k]) =>
    dec.decode(k) === "clusterVersion"
  )?.[1];
  return {
    mvcc: encodeSnapshotBytes(revision, compactMainRev, entries),
    revision,
    leases,
    alarms,
    clusterVersion: version ? dec.decode(version) : "",
    memberCount: findBucket(buckets, "members")?.entries.length ?? 0,
    auth,
  };
}

/** A stored revision read from etcd's key bucket, its KeyValue decoded. */
type DecodedEntry = SnapshotEntry & { kv: KeyValue };

/**
 * etcd's compaction of the stored revisions: every revision above `rev` stays; of the ones at or
 * below it, each key keeps only its latest, and not even that when it is a tombstone.
 */
function compactEntries(entries: DecodedEntry[], rev: number): DecodedEntry[] {
  // keyId, not a UTF-8 decode: binary keys that decode alike must stay apart.
  const latest = new Map<string, number>();
  entries.forEach((e, i) => {
    if (e.main <= rev) latest.set(keyId(e.kv.key), i);
  });
  return entries.filter((e, i) => {
    if (e.main > rev) return true;
    return latest.get(keyId(e.kv.key)) === i && !e.tombstone;
  });
}

/** What `etcdctl snapshot status` reports for a database. */
export interface DbStatus {
  /** CRC-32C over every bucket name, key and value, in bbolt's order. */
  hash: number;
  /** Main revision of the last key in the `key` bucket (0 when it is empty). */
  revision: number;
  /** Keys in all buckets. */
  totalKey: number;
}

/** Hash, revision and key count as etcdctl's snapshot status computes them. */
export function dbStatus(buckets: BoltBucket[]): DbStatus {
  const crc = new Crc32c();
  let revision = 0;
  let totalKey = 0;
  const ordered = [...buckets].sort((a, b) => compareBytes(a.name, b.name));
  for (const b of ordered) {
    crc.update(b.name);
    const isKey = compareBytes(b.name, keyBucket) === 0;
    const entries = [...b.entries].sort((x, y) => compareBytes(x[0], y[0]));
    for (const [k, v] of entries) {
      crc.update(k);
      crc.update(v);
      if (isKey) revision = parseRevisionKey(k).main;
      totalKey++;
    }
  }
  return { hash: crc.digest(), revision, totalKey };
}
