import { create } from "@bufbuild/protobuf";
import {
  Permission_Type,
  PermissionSchema,
  UserAddOptionsSchema,
} from "../../gen/authpb/auth_pb.ts";
import {
  AuthRoleAddRequestSchema,
  AuthRoleDeleteRequestSchema,
  AuthRoleGetRequestSchema,
  AuthRoleGrantPermissionRequestSchema,
  AuthRoleRevokePermissionRequestSchema,
  AuthUserAddRequestSchema,
  AuthUserChangePasswordRequestSchema,
  AuthUserDeleteRequestSchema,
  AuthUserGetRequestSchema,
  AuthUserGrantRoleRequestSchema,
  AuthUserRevokeRoleRequestSchema,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { assert, assertEquals, assertRejects } from "../testing.ts";
import { Errors, EtcdError } from "../errors.ts";
import { AuthStore, type PasswordHasher } from "./auth_store.ts";
import type { AuthInfo, TokenAssignment, TokenProvider } from "./token.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const b = (s: string) => enc.encode(s);

/** A hasher that is fast and transparent: `fake$<cost>$<password>`. */
const fakeHasher: PasswordHasher = {
  hash: (pw, cost) => Promise.resolve(`fake$${cost}$${pw}`),
  verify: (pw, hash) => Promise.resolve(hash.slice(hash.indexOf("$", 5) + 1) === pw),
};

/** Records what the store tells its token provider; tokens are `<prefix>.<index>`. */
class RecordingTokens implements TokenProvider {
  events: string[] = [];
  tokens = new Map<string, string>();
  enable() {
    this.events.push("enable");
  }
  disable() {
    this.events.push("disable");
    this.tokens.clear();
  }
  invalidateUser(name: string) {
    this.events.push(`invalidate ${name}`);
  }
  genTokenPrefix() {
    return "abcdefghijklmnop";
  }
  assign(username: string, _revision: number, at: TokenAssignment) {
    const token = `${at.simpleTokenPrefix}.${at.index}`;
    this.tokens.set(token, username);
    return Promise.resolve(token);
  }
  info(token: string, revision: number): Promise<AuthInfo | null> {
    const username = this.tokens.get(token);
    return Promise.resolve(username === undefined ? null : { username, revision });
  }
}

function newStore(tokens: TokenProvider = new RecordingTokens()) {
  return new AuthStore({ hasher: fakeHasher, tokens });
}

const userAdd = (s: AuthStore, name: string, hash = `h-${name}`, noPassword?: boolean) =>
  s.userAdd(
    create(AuthUserAddRequestSchema, {
      name,
      options: noPassword === undefined ? undefined : create(UserAddOptionsSchema, { noPassword }),
    }),
    hash,
  );
const roleAdd = (s: AuthStore, name: string) =>
  s.roleAdd(create(AuthRoleAddRequestSchema, { name }));
const grantRole = (s: AuthStore, user: string, role: string) =>
  s.userGrantRole(create(AuthUserGrantRoleRequestSchema, { user, role }));
const revokeRole = (s: AuthStore, name: string, role: string) =>
  s.userRevokeRole(create(AuthUserRevokeRoleRequestSchema, { name, role }));
const grantPerm = (s: AuthStore, name: string, t: Permission_Type, key: string, end = "") =>
  s.roleGrantPermission(
    create(AuthRoleGrantPermissionRequestSchema, {
      name,
      perm: create(PermissionSchema, { permType: t, key: b(key), rangeEnd: b(end) }),
    }),
  );
const revokePerm = (s: AuthStore, role: string, key: string, end = "") =>
  s.roleRevokePermission(
    create(AuthRoleRevokePermissionRequestSchema, { role, key: b(key), rangeEnd: b(end) }),
  );
const roleGet = (s: AuthStore, role: string) =>
  s.roleGet(create(AuthRoleGetRequestSchema, { role })).perm.map((p) =>
    `${Permission_Type[p.permType]} ${dec.decode(p.key)} ${dec.decode(p.rangeEnd)}`
  );

/** root with the root role, auth enabled. */
function enabledStore(tokens?: TokenProvider): AuthStore {
  const s = newStore(tokens);
  userAdd(s, "root");
  grantRole(s, "root", "root");
  s.authEnable();
  return s;
}

/** The etcd error `fn` throws, as {code, message}: the wire contract clients see. */
function thrown(fn: () => unknown): { code: number; message: string } {
  try {
    fn();
  } catch (e) {
    assert(e instanceof EtcdError, `expected an EtcdError, got ${e}`);
    return { code: e.code, message: e.message };
  }
  throw new Error("expected an error");
}

function wire(e: EtcdError): { code: number; message: string } {
  return { code: e.code, message: e.message };
}

Deno.test("AuthStore starts disabled at auth revision 1, as etcd's NewAuthStore", () => {
  const s = newStore();
  assertEquals(s.enabled, false);
  assertEquals(s.revision, 1);
  assertEquals(s.userList().users, []);
  assertEquals(s.roleList().roles, []);
});

Deno.test("the auth revision moves exactly as etcd 3.4.23's did (authRevision read from its db)", () => {
  // Compared against real etcd 3.4.23: the same steps through etcdctl, `snapshot save` after each,
  // the `auth/authRevision` key read back: 1, 2, 3, 3, 4, 4, 4, 4, 5, 5.
  const s = newStore();
  const seen = [s.revision];
  userAdd(s, "root");
  seen.push(s.revision);
  roleAdd(s, "r");
  seen.push(s.revision);
  thrown(() => roleAdd(s, "r"));
  seen.push(s.revision);
  grantRole(s, "root", "root");
  seen.push(s.revision);
  grantRole(s, "root", "root"); // already granted: ignored
  seen.push(s.revision);
  s.authEnable(); // enabling does not bump
  seen.push(s.revision);
  s.authEnable(); // already enabled: ignored
  seen.push(s.revision);
  s.authDisable();
  seen.push(s.revision);
  s.authDisable(); // already disabled: ignored
  seen.push(s.revision);
  assertEquals(seen, [1, 2, 3, 3, 4, 4, 4, 4, 5, 5]);
});

Deno.test("every auth operation answers etcd's error for each bad request", () => {
  const cases: Array<[string, (s: AuthStore) => unknown, EtcdError]> = [
    ["enable without root", (s) => s.authEnable(), Errors.rootUserNotExist()],
    ["enable with root lacking the root role", (s) => {
      userAdd(s, "root");
      s.authEnable();
    }, Errors.rootRoleNotExist()],
    ["user add with an empty name", (s) => userAdd(s, ""), Errors.userEmpty()],
    ["user add twice", (s) => {
      userAdd(s, "u");
      userAdd(s, "u");
    }, Errors.userAlreadyExist()],
    [
      "user delete of a missing user",
      (s) => s.userDelete(create(AuthUserDeleteRequestSchema, { name: "x" })),
      Errors.userNotFound(),
    ],
    [
      "user passwd of a missing user",
      (s) => s.userChangePassword(create(AuthUserChangePasswordRequestSchema, { name: "x" }), "h"),
      Errors
        .userNotFound(),
    ],
    [
      "user get of a missing user",
      (s) => s.userGet(create(AuthUserGetRequestSchema, { name: "x" })),
      Errors.userNotFound(),
    ],
    ["grant a role to a missing user", (s) => {
      roleAdd(s, "r");
      grantRole(s, "x", "r");
    }, Errors.userNotFound()],
    ["grant a missing role", (s) => {
      userAdd(s, "u");
      grantRole(s, "u", "nope");
    }, Errors.roleNotFound()],
    ["revoke a role from a missing user", (s) => revokeRole(s, "x", "r"), Errors.userNotFound()],
    ["revoke a role not granted", (s) => {
      userAdd(s, "u");
      revokeRole(s, "u", "r");
    }, Errors.roleNotGranted()],
    ["role add with an empty name", (s) => roleAdd(s, ""), Errors.roleEmpty()],
    ["role add twice", (s) => {
      roleAdd(s, "r");
      roleAdd(s, "r");
    }, Errors.roleAlreadyExist()],
    [
      "role get of a missing role",
      (s) => s.roleGet(create(AuthRoleGetRequestSchema, { role: "x" })),
      Errors.roleNotFound(),
    ],
    [
      "role delete of a missing role",
      (s) => s.roleDelete(create(AuthRoleDeleteRequestSchema, { role: "x" })),
      Errors.roleNotFound(),
    ],
    [
      "grant a permission to a missing role",
      (s) => grantPerm(s, "x", Permission_Type.READ, "a"),
      Errors.roleNotFound(),
    ],
    [
      "grant no permission at all (etcd 3.5's answer; 3.4.23 crashes)",
      (s) => s.roleGrantPermission(create(AuthRoleGrantPermissionRequestSchema, { name: "x" })),
      Errors.permissionNotGiven(),
    ],
    [
      "revoke a permission from a missing role",
      (s) => revokePerm(s, "x", "a"),
      Errors.roleNotFound(),
    ],
    ["revoke a permission not granted", (s) => {
      roleAdd(s, "r");
      grantPerm(s, "r", Permission_Type.READ, "e", "f");
      revokePerm(s, "r", "e"); // same key, other range end
    }, Errors.permissionNotGranted()],
  ];
  for (const [name, fn, expected] of cases) {
    const s = newStore();
    assertEquals(thrown(() => fn(s)), wire(expected), name);
  }
});

Deno.test("root rules: while auth is on, root cannot be deleted, lose root, nor the root role go", () => {
  const s = enabledStore();
  const before = s.revision;
  const invalid = wire(Errors.invalidAuthMgmt());
  assertEquals(
    thrown(() => s.userDelete(create(AuthUserDeleteRequestSchema, { name: "root" }))),
    invalid,
  );
  assertEquals(thrown(() => revokeRole(s, "root", "root")), invalid);
  assertEquals(
    thrown(() => s.roleDelete(create(AuthRoleDeleteRequestSchema, { role: "root" }))),
    invalid,
  );
  assertEquals(s.revision, before);
  // With auth off the same requests pass (etcd checks `enabled` only).
  s.authDisable();
  revokeRole(s, "root", "root");
  assertEquals(s.userGet(create(AuthUserGetRequestSchema, { name: "root" })).roles, []);
  // Granting "root" needs no root role entry; deleting the (absent) root role is roleNotFound.
  grantRole(s, "root", "root");
  assertEquals(
    thrown(() => s.roleDelete(create(AuthRoleDeleteRequestSchema, { role: "root" }))),
    wire(Errors.roleNotFound()),
  );
  s.userDelete(create(AuthUserDeleteRequestSchema, { name: "root" }));
  assertEquals(s.userList().users, []);
});

Deno.test("users and roles list in byte order; a user's roles stay sorted", () => {
  const s = newStore();
  for (const n of ["test", "root", "Zed", "a", "é", "\u{1F600}", "\uFFFD"]) userAdd(s, n);
  // Go orders strings by UTF-8 bytes: U+FFFD (ef bf bd) before U+1F600 (f0 9f 98 80).
  assertEquals(s.userList().users, ["Zed", "a", "root", "test", "é", "\uFFFD", "\u{1F600}"]);
  for (const r of ["test-role", "b", "a"]) roleAdd(s, r);
  assertEquals(s.roleList().roles, ["a", "b", "test-role"]);
  for (const r of ["test-role", "b", "root", "a"]) grantRole(s, "test", r);
  assertEquals(s.userGet(create(AuthUserGetRequestSchema, { name: "test" })).roles, [
    "a",
    "b",
    "root",
    "test-role",
  ]);
  // Deleting a role takes it from every user.
  s.roleDelete(create(AuthRoleDeleteRequestSchema, { role: "b" }));
  assertEquals(s.userGet(create(AuthUserGetRequestSchema, { name: "test" })).roles, [
    "a",
    "root",
    "test-role",
  ]);
});

Deno.test("roleGrantPermission replaces a matching entry's type, else appends (etcd 3.4.23's quirks)", () => {
  // Each row compared with etcdctl 3.4.23 `role get` after the same grants.
  const cases: Array<[string, Array<[Permission_Type, string, string]>, string[]]> = [
    ["READ then WRITE on one range leaves WRITE", [
      [Permission_Type.READ, "x", "y"],
      [Permission_Type.WRITE, "x", "y"],
    ], ["WRITE x y"]],
    ["a different range end on the first entry of a key appends", [
      [Permission_Type.WRITE, "x", "y"],
      [Permission_Type.READ, "x", ""],
      [Permission_Type.READWRITE, "x", ""],
    ], ["WRITE x y", "READ x ", "READWRITE x "]],
    ["the looked-at entry is the first with that key, so a later equal one is duplicated", [
      [Permission_Type.READ, "a", "\0"],
      [Permission_Type.READ, "a", "b"],
      [Permission_Type.WRITE, "a", "b"],
      [Permission_Type.READWRITE, "a", "c"],
    ], ["READ a \0", "READ a b", "WRITE a b", "READWRITE a c"]],
    ["entries are kept sorted by key", [
      [Permission_Type.READ, "name", ""],
      [Permission_Type.READWRITE, "foo", "fop"],
      [Permission_Type.WRITE, "a", ""],
    ], ["WRITE a ", "READWRITE foo fop", "READ name "]],
  ];
  for (const [name, grants, expected] of cases) {
    const s = newStore();
    roleAdd(s, "r");
    for (const [t, k, e] of grants) grantPerm(s, "r", t, k, e);
    assertEquals(roleGet(s, "r"), expected, name);
  }
});

Deno.test("roleRevokePermission removes every entry on exactly that range", () => {
  const s = newStore();
  roleAdd(s, "r");
  grantPerm(s, "r", Permission_Type.READ, "a", "\0");
  grantPerm(s, "r", Permission_Type.READ, "a", "b");
  grantPerm(s, "r", Permission_Type.WRITE, "a", "b");
  grantPerm(s, "r", Permission_Type.READ, "name");
  const rev = s.revision;
  revokePerm(s, "r", "a", "b");
  assertEquals(roleGet(s, "r"), ["READ a \0", "READ name "]);
  assertEquals(s.revision, rev + 1);
});

Deno.test("permission checks: key, range, prefix and from-key, READ/WRITE/READWRITE", () => {
  const s = enabledStore();
  userAdd(s, "u");
  roleAdd(s, "r");
  grantRole(s, "u", "r");
  grantPerm(s, "r", Permission_Type.READWRITE, "name");
  grantPerm(s, "r", Permission_Type.READ, "foo", "fop"); // --prefix foo
  grantPerm(s, "r", Permission_Type.WRITE, "w", "\0"); // --from-key w
  grantPerm(s, "r", Permission_Type.READ, "p", "r");
  grantPerm(s, "r", Permission_Type.READ, "r", "t");
  const u: AuthInfo = { username: "u", revision: s.revision };
  const ok = (fn: () => void) => {
    try {
      fn();
      return "ok";
    } catch (e) {
      return (e as EtcdError).message;
    }
  };
  const denied = Errors.permissionDenied().message;
  const cases: Array<[string, () => void, string]> = [
    ["read the granted key", () => s.isRangePermitted(u, b("name"), b("")), "ok"],
    ["write the granted key", () => s.isPutPermitted(u, b("name")), "ok"],
    ["read a longer key", () => s.isRangePermitted(u, b("name1"), b("")), denied],
    ["read a key in the prefix", () => s.isRangePermitted(u, b("foo/bar"), b("")), "ok"],
    ["read the whole prefix", () => s.isRangePermitted(u, b("foo"), b("fop")), "ok"],
    ["read beyond the prefix", () => s.isRangePermitted(u, b("foo"), b("foq")), denied],
    ["write in a read-only prefix", () => s.isPutPermitted(u, b("foo1")), denied],
    ["write from the from-key on", () => s.isPutPermitted(u, b("zzz")), "ok"],
    ["delete from-key to the end", () => s.isDeleteRangePermitted(u, b("w"), b("\0")), "ok"],
    ["delete from-key from before it", () => s.isDeleteRangePermitted(u, b("v"), b("\0")), denied],
    ["read in a write-only range", () => s.isRangePermitted(u, b("x"), b("")), denied],
    ["read across two touching ranges", () => s.isRangePermitted(u, b("p"), b("t")), "ok"],
    ["read past them", () => s.isRangePermitted(u, b("p"), b("u")), denied],
    [
      "an inverted range no granted range holds the key of",
      () => s.isRangePermitted(u, b("d"), b("a")),
      denied,
    ],
    ["an empty key is never permitted", () => s.isRangePermitted(u, b(""), b("\0")), denied],
  ];
  for (const [name, fn, expected] of cases) assertEquals(ok(fn), expected, name);
});

Deno.test("permission checks: disabled, no user, stale revision, unknown user, root", () => {
  const s = enabledStore();
  userAdd(s, "u");
  const k = b("k");
  const err = (fn: () => void) => {
    try {
      fn();
      return null;
    } catch (e) {
      return wire(e as EtcdError);
    }
  };
  assertEquals(err(() => s.isRangePermitted(null, k, b(""))), wire(Errors.userEmpty()));
  assertEquals(
    err(() => s.isRangePermitted({ username: "", revision: 0 }, k, b(""))),
    wire(Errors.userEmpty()),
  );
  assertEquals(
    err(() => s.isPutPermitted({ username: "u", revision: s.revision - 1 }, k)),
    wire(Errors.authOldRevision()),
  );
  assertEquals(
    err(() => s.isPutPermitted({ username: "gone", revision: s.revision }, k)),
    wire(Errors.permissionDenied()),
  );
  assertEquals(
    err(() => s.isPutPermitted({ username: "u", revision: s.revision }, k)),
    wire(Errors.permissionDenied()),
  );
  assertEquals(
    err(() => s.isDeleteRangePermitted({ username: "root", revision: s.revision }, k, b("\0"))),
    null,
  );
  // Admin: revision is not looked at; unknown user is userNotFound; non-root is denied.
  assertEquals(err(() => s.isAdminPermitted({ username: "root", revision: 1 })), null);
  assertEquals(
    err(() => s.isAdminPermitted({ username: "", revision: 9 })),
    wire(Errors.userEmpty()),
  );
  assertEquals(
    err(() => s.isAdminPermitted({ username: "gone", revision: 9 })),
    wire(Errors.userNotFound()),
  );
  assertEquals(
    err(() => s.isAdminPermitted({ username: "u", revision: 9 })),
    wire(Errors.permissionDenied()),
  );
  s.authDisable();
  assertEquals(err(() => s.isPutPermitted(null, k)), null);
  assertEquals(err(() => s.isAdminPermitted(null)), null);
});

Deno.test("a revoked permission is honoured at once (the index is rebuilt on change)", () => {
  const s = enabledStore();
  userAdd(s, "u");
  roleAdd(s, "r");
  grantRole(s, "u", "r");
  grantPerm(s, "r", Permission_Type.READ, "a");
  s.isRangePermitted({ username: "u", revision: s.revision }, b("a"), b(""));
  revokePerm(s, "r", "a");
  const info = { username: "u", revision: s.revision };
  assertEquals(
    thrown(() => s.isRangePermitted(info, b("a"), b(""))),
    wire(Errors.permissionDenied()),
  );
  grantPerm(s, "r", Permission_Type.READ, "a");
  s.isRangePermitted({ username: "u", revision: s.revision }, b("a"), b(""));
  s.roleDelete(create(AuthRoleDeleteRequestSchema, { role: "r" }));
  assertEquals(
    thrown(() => s.isRangePermitted({ username: "u", revision: s.revision }, b("a"), b(""))),
    wire(Errors.permissionDenied()),
  );
});

Deno.test("passwords: hashed before proposing, checked outside apply, noPassword users refused", async () => {
  // Errors compared with real etcd 3.4.23's /v3/auth/authenticate: disabled (code 9), a
  // --no-password user (code 2, the auth package's text), an unknown user (code 3).
  const s = newStore();
  await assertRejects(
    () => s.checkPassword("root", "x"),
    EtcdError,
    Errors.authNotEnabled().message,
  );
  userAdd(s, "root", await s.hashPassword("123456"));
  grantRole(s, "root", "root");
  userAdd(s, "cn", "", true);
  s.authEnable();
  assertEquals(await s.checkPassword("root", "123456"), s.revision);
  await assertRejects(
    () => s.checkPassword("root", "1234567"),
    EtcdError,
    Errors.authFailed().message,
  );
  await assertRejects(() => s.checkPassword("nobody", "x"), EtcdError, Errors.authFailed().message);
  const e = await assertRejects(() => s.checkPassword("cn", ""), EtcdError);
  assertEquals(wire(e as EtcdError), wire(Errors.noPasswordUser()));
  // The stored hash is what the proposer computed, with the configured cost.
  const snap = s.snapshot();
  assertEquals(
    dec.decode(snap.users.find((u) => dec.decode(u.name) === "root")!.password),
    "fake$10$123456",
  );
  assertEquals(snap.users.find((u) => dec.decode(u.name) === "cn")!.password.length, 0);
  // Changing the password replaces the hash, keeps the roles and invalidates tokens.
  s.userChangePassword(
    create(AuthUserChangePasswordRequestSchema, { name: "root" }),
    await s.hashPassword("new"),
  );
  assertEquals(await s.checkPassword("root", "new"), s.revision);
  assertEquals(s.userGet(create(AuthUserGetRequestSchema, { name: "root" })).roles, ["root"]);
});

Deno.test("bcrypt cost outside 4..31 falls back to etcd's default 10", () => {
  for (const [given, used] of [[3, 10], [4, 4], [12, 12], [31, 31], [32, 10]]) {
    assertEquals(new AuthStore({ bcryptCost: given }).bcryptCost, used);
  }
});

Deno.test("authenticate issues tokens only while enabled, for password users, and tells the provider", async () => {
  const tokens = new RecordingTokens();
  const s = newStore(tokens);
  await assertRejects(
    () => s.authenticate("root", "p", 7),
    EtcdError,
    Errors.authNotEnabled().message,
  );
  userAdd(s, "root");
  grantRole(s, "root", "root");
  userAdd(s, "cn", "", true);
  userAdd(s, "u");
  s.authEnable();
  const token = await s.authenticate("root", s.genTokenPrefix(), 9);
  assertEquals(token, "abcdefghijklmnop.9");
  assertEquals(await s.authInfoFromToken(token), { username: "root", revision: s.revision });
  await assertRejects(
    () => s.authInfoFromToken("nope.1"),
    EtcdError,
    Errors.invalidAuthToken().message,
  );
  await assertRejects(() => s.authenticate("cn", "p", 10), EtcdError, Errors.authFailed().message);
  await assertRejects(
    () => s.authenticate("gone", "p", 10),
    EtcdError,
    Errors.authFailed().message,
  );
  s.userChangePassword(create(AuthUserChangePasswordRequestSchema, { name: "u" }), "h2");
  s.userDelete(create(AuthUserDeleteRequestSchema, { name: "u" }));
  s.authDisable();
  assertEquals(tokens.events, ["enable", "invalidate u", "invalidate u", "disable"]);
});

Deno.test("snapshot() and restore() carry users, roles, enabled flag and revision", () => {
  const s = enabledStore();
  userAdd(s, "u");
  roleAdd(s, "r");
  grantRole(s, "u", "r");
  grantPerm(s, "r", Permission_Type.READWRITE, "foo", "fop");
  const snap = s.snapshot();
  const t = newStore();
  t.restore(snap);
  assertEquals(t.enabled, true);
  assertEquals(t.revision, s.revision);
  assertEquals(t.snapshot(), snap);
  t.isPutPermitted({ username: "u", revision: t.revision }, b("foo1"));
  // The snapshot is a copy: later changes do not reach it.
  grantPerm(s, "r", Permission_Type.READ, "zzz");
  assertEquals(t.snapshot(), snap);
});

Deno.test("restore() enables or disables the token provider to match; hasRole reads the user", () => {
  const tokens = new RecordingTokens();
  const s = newStore(tokens);
  const enabled = enabledStore().snapshot();
  s.restore(enabled);
  s.restore(enabled); // already enabled: not again
  s.restore({ ...enabled, enabled: false });
  assertEquals(tokens.events, ["enable", "disable"]);
  assertEquals(s.snapshot().everEnabled, true);
  assertEquals(s.hasRole("root", "root"), true);
  assertEquals(s.hasRole("root", "r"), false);
  assertEquals(s.hasRole("nobody", "root"), false);
});
