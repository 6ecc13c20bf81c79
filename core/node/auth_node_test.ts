/**
 * Auth on one member, end to end through EtcdNode: the auth chain refuses and serves by token,
 * a restart (from the WAL, and from a snapshot) keeps users, roles and the auth revision, and a
 * simple token issued before the restart is not valid after it (the login is not replayed).
 */
import { create } from "@bufbuild/protobuf";
import {
  AuthenticateRequestSchema,
  AuthRoleAddRequestSchema,
  AuthRoleGrantPermissionRequestSchema,
  AuthUserAddRequestSchema,
  AuthUserGrantRoleRequestSchema,
  PutRequestSchema,
  RangeRequestSchema,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { Permission_Type } from "../../gen/authpb/auth_pb.ts";
import { type PasswordHasher, SimpleTokenProvider } from "../auth/mod.ts";
import { Errors, isEtcdError } from "../errors.ts";
import { silentLogger } from "../log.ts";
import { MemoryDisk } from "../storage/mod.ts";
import { assert, assertEquals, assertRejects } from "../testing.ts";
import { testConfig } from "./_testing.ts";
import { EtcdNode } from "./etcd_node.ts";
import type { NodeConfig } from "./config.ts";

const enc = new TextEncoder();

const fakeHasher: PasswordHasher = {
  hash: (pw, cost) => Promise.resolve(`fake$${cost}$${pw}`),
  verify: (pw, hash) => Promise.resolve(hash.endsWith(`$${pw}`)),
};

let seed = 1;
function open(disk: MemoryDisk, config: NodeConfig = testConfig()): Promise<EtcdNode> {
  const tokens = new SimpleTokenProvider({
    nowMs: () => performance.now(),
    randomInt: (n) => (seed = (seed * 48271) % 2147483647) % n,
  });
  return EtcdNode.open(config, disk, silentLogger, {
    auth: { tokens, hasher: fakeHasher, bcryptCost: 4 },
  });
}

async function setUp(node: EtcdNode): Promise<void> {
  const a = node.auth;
  await a.userAdd(create(AuthUserAddRequestSchema, { name: "root", password: "rootpw" }), null);
  await a.userGrantRole(
    create(AuthUserGrantRoleRequestSchema, { user: "root", role: "root" }),
    null,
  );
  await a.roleAdd(create(AuthRoleAddRequestSchema, { name: "r" }), null);
  await a.roleGrantPermission(
    create(AuthRoleGrantPermissionRequestSchema, {
      name: "r",
      perm: {
        permType: Permission_Type.READWRITE,
        key: enc.encode("a/"),
        rangeEnd: enc.encode("a0"),
      },
    }),
    null,
  );
  await a.userAdd(create(AuthUserAddRequestSchema, { name: "u", password: "upw" }), null);
  await a.userGrantRole(create(AuthUserGrantRoleRequestSchema, { user: "u", role: "r" }), null);
  await a.authEnable(null);
}

const login = async (node: EtcdNode, name: string, password: string) =>
  (await node.auth.authenticate(create(AuthenticateRequestSchema, { name, password }))).token;
const put = (key: string) =>
  create(PutRequestSchema, { key: enc.encode(key), value: enc.encode("v") });
const get = (key: string) => create(RangeRequestSchema, { key: enc.encode(key) });

function refusedWith(factory: typeof Errors.userEmpty) {
  return (e: unknown) => assert(isEtcdError(e, factory), `expected ${factory().message}, got ${e}`);
}

for (const snapshotCount of [100000, 5]) {
  Deno.test(`auth survives a restart; simple tokens do not (snapshot count ${snapshotCount})`, async () => {
    const disk = new MemoryDisk();
    const config = testConfig({ snapshotCount });
    const node = await open(disk, config);
    await setUp(node);
    const token = await login(node, "u", "upw");
    const caller = await node.auth.callerOf(token);
    assertEquals(caller?.username, "u");
    await node.put(put("a/1"), caller);
    refusedWith(Errors.permissionDenied)(
      await node.put(put("b/1"), caller).then(() => null, (e) => e),
    );
    refusedWith(Errors.userEmpty)(await node.range(get("a/1"), null).then(() => null, (e) => e));
    const revision = node.auth.store.revision;
    for (let i = 0; i < 10; i++) await node.put(put(`a/${i}`), caller);
    await node.stop();

    const again = await open(disk, config);
    assertEquals(again.auth.store.enabled, true);
    assertEquals(again.auth.store.revision, revision);
    // The token died with the process that issued it.
    await assertRejects(() => again.auth.callerOf(token), Error, "invalid auth token");
    const fresh = await again.auth.callerOf(await login(again, "u", "upw"));
    assertEquals((await again.range(get("a/1"), fresh)).kvs.length, 1);
    refusedWith(Errors.permissionDenied)(
      await again.range(get("b/1"), fresh).then(() => null, (e) => e),
    );
    await again.stop();
  });
}
