import { create } from "@bufbuild/protobuf";
import { Permission_Type, PermissionSchema } from "../../gen/authpb/auth_pb.ts";
import type { Permission } from "../../gen/authpb/auth_pb.ts";
import { assertEquals } from "../../tests/assert.ts";
import { seededRandomInt } from "../raft/random.ts";
import {
  compareBytes,
  mergeIntervals,
  permissionInterval,
  UserRangePermissions,
} from "./range_permissions.ts";

const enc = new TextEncoder();
const b = (s: string) => enc.encode(s);

function perm(t: Permission_Type, key: Uint8Array, rangeEnd: Uint8Array): Permission {
  return create(PermissionSchema, { permType: t, key, rangeEnd });
}

/**
 * The reference: etcd's semantics spelled out without merging or searching. A granted
 * permission is [key, end) with an empty end meaning +infinity and an empty key meaning
 * +infinity too (etcd's affine byte order); a request checks one key (empty or inverted end) or
 * walks the granted ranges greedily from its key until it passes its end.
 */
function lessAffine(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length === 0) return false;
  if (b.length === 0) return true;
  return compareBytes(a, b) < 0;
}

function reference(perms: Permission[], write: boolean, key: Uint8Array, end: Uint8Array): boolean {
  const ivs: Array<[Uint8Array, Uint8Array]> = [];
  for (const p of perms) {
    const ok = p.permType === Permission_Type.READWRITE ||
      p.permType === (write ? Permission_Type.WRITE : Permission_Type.READ);
    if (!ok) continue;
    let e: Uint8Array;
    if (p.rangeEnd.length === 0) e = new Uint8Array([...p.key, 0]);
    else if (p.rangeEnd.length === 1 && p.rangeEnd[0] === 0) e = new Uint8Array(0);
    else e = p.rangeEnd;
    ivs.push([p.key, e]);
  }
  const holds = (k: Uint8Array) => ivs.some(([s, e]) => !lessAffine(k, s) && lessAffine(k, e));
  if (end.length === 0) return holds(key);
  const reqEnd = end.length === 1 && end[0] === 0 ? new Uint8Array(0) : end;
  if (!lessAffine(key, reqEnd)) return holds(key);
  let cur = key;
  for (let steps = 0; steps <= ivs.length; steps++) {
    if (!lessAffine(cur, reqEnd)) return true;
    let next: Uint8Array | null = null;
    for (const [s, e] of ivs) {
      if (!lessAffine(cur, s) && lessAffine(cur, e)) {
        if (next === null || lessAffine(next, e)) next = e;
      }
    }
    if (next === null) return false;
    cur = next;
    if (cur.length === 0) return true; // reached +infinity
  }
  return !lessAffine(cur, reqEnd);
}

Deno.test("permissionInterval: key, range, from-key; empty and inverted ranges grant nothing", () => {
  const show = (k: string, e: string) => {
    const iv = permissionInterval(b(k), b(e));
    return iv === null ? null : [[...iv.begin], iv.end === null ? null : [...iv.end]];
  };
  assertEquals(show("a", ""), [[97], [97, 0]]);
  assertEquals(show("a", "\0"), [[97], null]);
  assertEquals(show("foo", "fop"), [[102, 111, 111], [102, 111, 112]]);
  assertEquals(show("\0", "\0"), [[0], null]); // etcdctl's --prefix "" : every key
  assertEquals(show("", "\0"), null);
  assertEquals(show("", ""), null);
  assertEquals(show("b", "a"), null);
  assertEquals(show("a", "a"), null);
});

Deno.test("mergeIntervals joins overlapping and touching intervals, keeps gaps", () => {
  const iv = (s: string, e: string | null) => ({ begin: b(s), end: e === null ? null : b(e) });
  const merged = mergeIntervals([
    iv("e", "g"),
    iv("c", "e"),
    iv("x", null),
    iv("y", "z"),
    iv("h", "i"),
  ]);
  assertEquals(
    merged.map((
      m,
    ) => [new TextDecoder().decode(m.begin), m.end && new TextDecoder().decode(m.end)]),
    [["c", "g"], ["h", "i"], ["x", null]],
  );
});

Deno.test("the merged interval index answers like the brute-force reference on random permissions", () => {
  // Keys over a tiny alphabet (with \0) so that ranges overlap, touch and nest often.
  const alphabet = [0, 97, 98, 99];
  for (let seed = 1; seed <= 300; seed++) {
    const rnd = seededRandomInt(seed);
    const key = (max: number) => {
      const n = rnd(max + 1);
      return new Uint8Array(Array.from({ length: n }, () => alphabet[rnd(alphabet.length)]));
    };
    const perms: Permission[] = [];
    const count = rnd(8);
    for (let i = 0; i < count; i++) {
      const shape = rnd(4);
      const k = key(3);
      const e = shape === 0 ? new Uint8Array(0) : shape === 1 ? new Uint8Array([0]) : key(3);
      perms.push(perm(rnd(3) as Permission_Type, k, e));
    }
    const index = new UserRangePermissions(perms);
    for (let q = 0; q < 60; q++) {
      const shape = rnd(4);
      const k = key(3);
      const e = shape === 0 ? new Uint8Array(0) : shape === 1 ? new Uint8Array([0]) : key(3);
      for (const write of [false, true]) {
        const got = write ? index.canWrite(k, e) : index.canRead(k, e);
        const want = reference(perms, write, k, e);
        assertEquals(got, want, `seed ${seed}: ${write ? "write" : "read"} [${k}, ${e})`);
      }
    }
  }
});
