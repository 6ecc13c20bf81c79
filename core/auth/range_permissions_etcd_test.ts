/**
 * The permission index against real etcd 3.4.23: random permissions (keys over a tiny alphabet
 * with \0, so ranges overlap, touch, nest, invert and run open-ended) granted through etcd's JSON
 * gateway to a user holding two roles, then random reads and deletes as that user; etcd's yes or
 * no (permission denied) must be the index's, request for request. Needs the reference etcd.
 */
import { create } from "@bufbuild/protobuf";
import { Permission_Type, PermissionSchema } from "../../gen/authpb/auth_pb.ts";
import { assertEquals } from "../testing.ts";
import {
  assertReference,
  type Member,
  requireReference,
  startMember,
} from "../../tests/harness.ts";
import { seededRandomInt } from "../raft/random.ts";
import { UserRangePermissions } from "./range_permissions.ts";

const reference = requireReference();

const b64 = (u: Uint8Array) => btoa(String.fromCharCode(...u));
const unb64 = (s?: string) =>
  s ? new Uint8Array([...atob(s)].map((c) => c.charCodeAt(0))) : new Uint8Array(0);
const typeNames = ["READ", "WRITE", "READWRITE"];

interface GatewayPermission {
  permType?: string;
  key?: string;
  range_end?: string;
}

Deno.test({
  name: "permission checks answer like etcd 3.4.23 on random permissions and requests",
  ignore: reference.ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    assertReference();
    let member: Member | undefined;
    try {
      member = await startMember({ kind: "etcd" });
      const base = `${member.clientUrl}/v3`;
      const call = async (path: string, body: unknown, token?: string) => {
        const r = await fetch(base + path, {
          method: "POST",
          headers: token ? { Authorization: token } : {},
          body: JSON.stringify(body),
        });
        return await r.json();
      };
      await call("/auth/user/add", { name: "root", password: "x" });
      await call("/auth/user/grant", { user: "root", role: "root" });
      await call("/auth/user/add", { name: "u", password: "p" });
      await call("/auth/enable", {});
      const root = (await call("/auth/authenticate", { name: "root", password: "x" })).token;
      const alphabet = [0, 97, 98, 99];
      let checks = 0;
      for (let seed = 1; seed <= 30; seed++) {
        const rnd = seededRandomInt(seed);
        const key = (max: number) =>
          new Uint8Array(Array.from({ length: rnd(max + 1) }, () => alphabet[rnd(4)]));
        const end = () => {
          const shape = rnd(4);
          return shape === 0 ? new Uint8Array(0) : shape === 1 ? new Uint8Array([0]) : key(3);
        };
        const role = `r${seed}`;
        await call("/auth/role/add", { name: role }, root);
        for (let i = 0; i < 1 + rnd(6); i++) {
          const k = key(3);
          await call("/auth/role/grant", {
            name: role,
            perm: { permType: typeNames[rnd(3)], key: b64(k), range_end: b64(end()) },
          }, root);
        }
        if (seed > 2) await call("/auth/user/revoke", { name: "u", role: `r${seed - 2}` }, root);
        await call("/auth/user/grant", { user: "u", role }, root);
        // The index is built from what etcd stored, in its order (user's roles, then each
        // role's permissions), as the store builds it.
        const roles: string[] = (await call("/auth/user/get", { name: "u" }, root)).roles ?? [];
        const stored: GatewayPermission[] = [];
        for (const r of roles) {
          stored.push(...((await call("/auth/role/get", { role: r }, root)).perm ?? []));
        }
        const index = new UserRangePermissions(stored.map((p) =>
          create(PermissionSchema, {
            permType: typeNames.indexOf(p.permType ?? "READ") as Permission_Type,
            key: unb64(p.key),
            rangeEnd: unb64(p.range_end),
          })
        ));
        const token = (await call("/auth/authenticate", { name: "u", password: "p" })).token;
        for (let q = 0; q < 25; q++) {
          let k = key(3);
          if (k.length === 0) k = new Uint8Array([alphabet[1 + rnd(3)]]); // etcd: key required
          const e = end();
          const write = rnd(2) === 1;
          const res = await call(write ? "/kv/deleterange" : "/kv/range", {
            key: b64(k),
            range_end: b64(e),
          }, token);
          const etcdAllows = res.error === undefined;
          if (!etcdAllows) assertEquals(res.code, 7, JSON.stringify(res));
          const ours = write ? index.canWrite(k, e) : index.canRead(k, e);
          assertEquals(
            ours,
            etcdAllows,
            `seed ${seed}: ${write ? "write" : "read"} [${k}, ${e}) with ${JSON.stringify(stored)}`,
          );
          checks++;
        }
      }
      assertEquals(checks, 750);
    } finally {
      await member?.stop();
    }
  },
});
