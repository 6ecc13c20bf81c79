import { create, toBinary } from "@bufbuild/protobuf";
import {
  Permission_Type,
  PermissionSchema,
  RoleSchema,
  UserSchema,
} from "../../gen/authpb/auth_pb.ts";
import {
  AuthRoleAddRequestSchema,
  AuthRoleGetRequestSchema,
  AuthRoleGrantPermissionRequestSchema,
  AuthUserAddRequestSchema,
  AuthUserGetRequestSchema,
  AuthUserGrantRoleRequestSchema,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { assertEquals, assertThrows } from "../testing.ts";
import { decodeBolt, encodeBolt } from "../storage/bbolt.ts";
import { AuthStore } from "./auth_store.ts";
import {
  type AuthBucket,
  AuthBucketError,
  authFromBuckets,
  authToBuckets,
} from "./etcd_buckets.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function fromHex(h: string): Uint8Array {
  return new Uint8Array((h.match(/../g) ?? []).map((x) => parseInt(x, 16)));
}

function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * The auth buckets of a real etcd 3.4.23 database (`etcdctl snapshot save` after: user add root,
 * auth enable, user add u / cn --no-password, roles r, r2, r3 with key, range, prefix and from-key
 * grants, including the duplicate entries etcd's grant makes), as hex key/value pairs.
 */
async function etcdFixture(): Promise<AuthBucket[]> {
  const json = JSON.parse(
    await Deno.readTextFile(new URL("./testdata/etcd_3.4.23_auth_buckets.json", import.meta.url)),
  ) as Record<string, [string, string][]>;
  return Object.entries(json).map(([name, entries]) => ({
    name: enc.encode(name),
    entries: entries.map(([k, v]): [Uint8Array, Uint8Array] => [fromHex(k), fromHex(v)]),
  }));
}

function hexBuckets(buckets: AuthBucket[]): Record<string, string[][]> {
  const out: Record<string, string[][]> = {};
  for (const b of buckets) {
    out[dec.decode(b.name)] = b.entries.map(([k, v]) => [toHex(k), toHex(v)]);
  }
  return out;
}

Deno.test("etcd 3.4.23's auth buckets restore into an AuthStore and map back byte for byte", async () => {
  const buckets = await etcdFixture();
  const state = authFromBuckets(buckets);
  assertEquals(state.enabled, true);
  assertEquals(state.revision, 28);
  assertEquals(state.users.map((u) => dec.decode(u.name)), ["cn", "root", "u"]);
  assertEquals(state.roles.map((r) => dec.decode(r.name)), ["r", "r2", "r3", "root"]);

  const store = new AuthStore();
  store.restore(state);
  assertEquals(store.userGet(create(AuthUserGetRequestSchema, { name: "u" })).roles, ["r", "r2"]);
  assertEquals(store.userGet(create(AuthUserGetRequestSchema, { name: "root" })).roles, ["root"]);
  const perms = store.roleGet(create(AuthRoleGetRequestSchema, { role: "r" })).perm.map((p) =>
    `${Permission_Type[p.permType]} ${dec.decode(p.key)} ${dec.decode(p.rangeEnd)}`
  );
  assertEquals(perms, [
    "READ a \0",
    "READ a b",
    "WRITE a b",
    "READWRITE a c",
    "READWRITE foo fop",
  ]);
  // What etcd answered for user u (read c..g across r2's touching ranges) holds here too.
  const u = { username: "u", revision: store.revision };
  store.isRangePermitted(u, enc.encode("c"), enc.encode("g"));
  store.isPutPermitted(u, enc.encode("foo1"));

  assertEquals(hexBuckets(authToBuckets(store.snapshot())), hexBuckets(buckets));
});

Deno.test("a store built by the same requests writes the values etcd wrote", () => {
  // etcd's values for role r3 after `grant-permission r3 read x y`, `write x y`, `read x`,
  // `readwrite x`, and for a --no-password user (options present, no password).
  const s = new AuthStore();
  s.roleAdd(create(AuthRoleAddRequestSchema, { name: "r3" }));
  const grant = (t: Permission_Type, k: string, e: string) =>
    s.roleGrantPermission(create(AuthRoleGrantPermissionRequestSchema, {
      name: "r3",
      perm: create(PermissionSchema, { permType: t, key: enc.encode(k), rangeEnd: enc.encode(e) }),
    }));
  grant(Permission_Type.READ, "x", "y");
  grant(Permission_Type.WRITE, "x", "y");
  grant(Permission_Type.READ, "x", "");
  grant(Permission_Type.READWRITE, "x", "");
  s.userAdd(
    create(AuthUserAddRequestSchema, { name: "cn", options: { noPassword: true } }),
    "",
  );
  s.userAdd(create(AuthUserAddRequestSchema, { name: "u" }), "$2a$10$hash");
  s.userGrantRole(create(AuthUserGrantRoleRequestSchema, { user: "u", role: "r3" }));
  const out = hexBuckets(authToBuckets(s.snapshot()));
  assertEquals(out.authRoles, [[
    toHex(enc.encode("r3")),
    "0a027233120808011201781a0179120312017812050802120178",
  ]]);
  assertEquals(out.authUsers[0], [toHex(enc.encode("cn")), "0a02636e22020801"]);
  // A fresh store was never enabled: etcd writes no authEnabled key then.
  assertEquals(out.auth.map(([k]) => dec.decode(fromHex(k))), ["authRevision"]);
});

Deno.test("the auth buckets survive a bbolt file round trip", async () => {
  const buckets = await etcdFixture();
  const back = decodeBolt(encodeBolt(buckets));
  assertEquals(hexBuckets(back), hexBuckets(buckets));
  assertEquals(authFromBuckets(back), authFromBuckets(buckets));
});

Deno.test("authFromBuckets: missing buckets are a fresh store; bad values are refused", () => {
  const fresh = authFromBuckets([]);
  assertEquals(fresh, { enabled: false, everEnabled: false, revision: 1, users: [], roles: [] });
  const disabled = authFromBuckets([{
    name: enc.encode("auth"),
    entries: [[enc.encode("authEnabled"), new Uint8Array([0])]],
  }]);
  assertEquals([disabled.enabled, disabled.everEnabled], [false, true]);
  const bad: Array<[string, AuthBucket[], string]> = [
    ["short revision", [{
      name: enc.encode("auth"),
      entries: [[enc.encode("authRevision"), new Uint8Array(4)]],
    }], "authRevision"],
    ["undecodable user", [{
      name: enc.encode("authUsers"),
      entries: [[enc.encode("u"), new Uint8Array([0xff, 0xff])]],
    }], "authUsers"],
    ["user under another name", [{
      name: enc.encode("authUsers"),
      entries: [[enc.encode("u"), toBinaryUser("v")]],
    }], "another user"],
    ["role under another name", [{
      name: enc.encode("authRoles"),
      entries: [[enc.encode("r"), toBinaryRole("s")]],
    }], "another role"],
  ];
  for (const [, buckets, includes] of bad) {
    assertThrows(() => authFromBuckets(buckets), AuthBucketError, includes);
  }
});

function toBinaryUser(name: string): Uint8Array {
  return toBinary(UserSchema, create(UserSchema, { name: enc.encode(name) }));
}

function toBinaryRole(name: string): Uint8Array {
  return toBinary(RoleSchema, create(RoleSchema, { name: enc.encode(name) }));
}

Deno.test("user add, role add, grant, enable, disable: the buckets etcd 3.4.23 wrote for the same steps", () => {
  // etcdctl against real etcd: user add root:123456, role add r, user grant-role root root,
  // auth enable, auth disable; then `snapshot save` and its auth buckets (the hash is the one
  // etcd computed, handed in here as the proposer's hash).
  const s = new AuthStore();
  s.userAdd(
    create(AuthUserAddRequestSchema, { name: "root" }),
    "$2a$10$iO1JSGqFeaqPHWkTYyaJQ.SY4axtnjWq319e28a6KatvE23ZjSiee",
  );
  s.roleAdd(create(AuthRoleAddRequestSchema, { name: "r" }));
  s.userGrantRole(create(AuthUserGrantRoleRequestSchema, { user: "root", role: "root" }));
  s.authEnable();
  s.authDisable();
  assertEquals(hexBuckets(authToBuckets(s.snapshot())), {
    auth: [
      [toHex(enc.encode("authEnabled")), "00"],
      [toHex(enc.encode("authRevision")), "0000000000000005"],
    ],
    authRoles: [[toHex(enc.encode("r")), "0a0172"]],
    authUsers: [[
      toHex(enc.encode("root")),
      "0a04726f6f74123c24326124313024694f314a534771466561715048576b545979614a512e5359346178746e6a" +
      "577133313965323861364b6174764532335a6a536965651a04726f6f742200",
    ]],
  });
});
