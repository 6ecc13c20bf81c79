import { create } from "@bufbuild/protobuf";
import { Permission_Type, PermissionSchema } from "../../gen/authpb/auth_pb.ts";
import type { Permission } from "../../gen/authpb/auth_pb.ts";
import { assertEquals } from "../testing.ts";
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
      const inverted = e.length > 0 && !(e.length === 1 && e[0] === 0) &&
        compareBytes(e, k) <= 0;
      for (const write of [false, true]) {
        const got = write ? index.canWrite(k, e) : index.canRead(k, e);
        const holdsKey = reference(perms, write, k, new Uint8Array(0));
        if (inverted) {
          // etcd's tree answers these by its shape, but never yes without a range holding the key.
          if (got) assertEquals(holdsKey, true, `seed ${seed}: inverted [${k}, ${e})`);
          continue;
        }
        const want = reference(perms, write, k, e);
        assertEquals(got, want, `seed ${seed}: ${write ? "write" : "read"} [${k}, ${e})`);
      }
    }
  }
});

Deno.test("requests ending at or before their key get etcd 3.4.23's own tree-shaped answers", () => {
  // Each row: a role's permissions as etcd stored them (in order), a request, and what real etcd
  // 3.4.23 answered through /v3/kv/range (read) or /v3/kv/deleterange (write). Such requests match
  // no key; etcd's interval tree prunes them by its shape. 3750 random checks of this kind and
  // others against real etcd (1 and 2 roles per user) agreed with this index.
  const R = Permission_Type.READ;
  const W = Permission_Type.WRITE;
  const RW = Permission_Type.READWRITE;
  const u = (...b: number[]) => new Uint8Array(b);
  const cases: Array<
    [Array<[Permission_Type, Uint8Array, Uint8Array]>, boolean, Uint8Array, Uint8Array, boolean]
  > = [
    [
      [[RW, u(0, 0), u()], [RW, u(97, 0), u()], [W, u(98), u(97, 0, 0)], [RW, u(98), u(0)]],
      true,
      u(99),
      u(97, 0, 0),
      false,
    ],
    [
      [[RW, u(0, 0), u()], [RW, u(97, 0), u()], [W, u(98), u(97, 0, 0)], [RW, u(98), u(0)]],
      true,
      u(98, 99),
      u(97, 0),
      false,
    ],
    [
      [[R, u(0), u()], [W, u(0, 0), u(0)], [W, u(98, 99), u()], [RW, u(99), u(0)]],
      true,
      u(99),
      u(97, 0),
      false,
    ],
    [
      [[R, u(0), u()], [W, u(0, 0), u(0)], [W, u(98, 99), u()], [RW, u(99), u(0)]],
      true,
      u(99, 97, 98),
      u(97),
      false,
    ],
    [
      [[RW, u(97, 97, 97), u(98, 99)], [R, u(97, 99), u(0, 99)], [W, u(99, 97, 99), u(97, 0, 99)]],
      false,
      u(98),
      u(0, 99),
      true,
    ],
    [
      [[RW, u(97, 97, 97), u(98, 99)], [R, u(97, 99), u(0, 99)], [W, u(99, 97, 99), u(97, 0, 99)]],
      false,
      u(98),
      u(0, 98, 98),
      true,
    ],
    [
      [[W, u(0, 98), u(0)], [RW, u(97), u()], [RW, u(98, 98, 97), u(0, 0)], [R, u(99), u(0)], [
        W,
        u(99, 98),
        u(98, 98, 99),
      ], [RW, u(99, 99), u()]],
      true,
      u(99, 99),
      u(97, 98),
      true,
    ],
    [
      [[W, u(0, 98), u(0)], [RW, u(97), u()], [RW, u(98, 98, 97), u(0, 0)], [R, u(99), u(0)], [
        W,
        u(99, 98),
        u(98, 98, 99),
      ], [RW, u(99, 99), u()]],
      false,
      u(99),
      u(98, 0),
      false,
    ],
  ];
  for (const [perms, write, key, end, want] of cases) {
    const index = new UserRangePermissions(perms.map(([t, k, e]) => perm(t, k, e)));
    assertEquals(
      write ? index.canWrite(key, end) : index.canRead(key, end),
      want,
      `[${key}, ${end})`,
    );
  }
});
