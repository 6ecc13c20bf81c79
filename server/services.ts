import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import {
  AlarmRequest_AlarmAction,
  Auth,
  Cluster,
  KV,
  Maintenance,
  MemberListResponseSchema,
} from "../gen/etcdserverpb/rpc_pb.ts";
import type { AuthInfo } from "../core/auth/mod.ts";
import type { EtcdNode } from "../core/node/mod.ts";
import { watchMethod, type WatchServiceOptions } from "./watch_service.ts";
import { addConcurrencyServices } from "./concurrency_service.ts";
import { hashResponse, snapshotMethod } from "./snapshot_service.ts";
import type { Logger } from "../core/log.ts";
import { Errors, isEtcdError } from "../core/errors.ts";
import { callerOf, maintenanceCaller } from "./callers.ts";
import {
  Lease,
  LeaseKeepAliveRequestSchema,
  LeaseKeepAliveResponseSchema,
} from "../gen/etcdserverpb/rpc_pb.ts";
import { type AnyMethod, type CallContext, type MethodTable, type StreamMethod } from "./grpc.ts";

/**
 * The etcd v3 services as thin adapters over the node: one table, keyed by gRPC path, that both
 * the lean gRPC handler and the Connect/gRPC-Web router serve.
 */

/** A Maintenance method: its caller is checked at `level(req)` before `handle` runs. */
function maintenance<I extends DescMessage, O extends DescMessage>(
  node: EtcdNode,
  method: { name: string; parent: { typeName: string }; input: I; output: O },
  level: (req: MessageShape<I>) => "admin" | "user",
  handle: (
    req: MessageShape<I>,
    caller: AuthInfo | null,
  ) => MessageShape<O> | Promise<MessageShape<O>>,
): [string, AnyMethod] {
  return [`/${method.parent.typeName}/${method.name}`, {
    kind: "unary",
    input: method.input,
    output: method.output,
    async handle(req: MessageShape<I>, ctx: CallContext) {
      return await handle(req, await maintenanceCaller(node, ctx, level(req)));
    },
  }];
}

/**
 * A unary method whose handler gets the request and a way to resolve its caller when it needs
 * it (reads resolve the token after their read barrier, as etcd does).
 */
function unaryLate<I extends DescMessage, O extends DescMessage>(
  node: EtcdNode,
  method: { name: string; parent: { typeName: string }; input: I; output: O },
  handle: (
    req: MessageShape<I>,
    caller: () => AuthInfo | null | Promise<AuthInfo | null>,
  ) => MessageShape<O> | Promise<MessageShape<O>>,
): [string, AnyMethod] {
  return [`/${method.parent.typeName}/${method.name}`, {
    kind: "unary",
    input: method.input,
    output: method.output,
    handle(req: MessageShape<I>, ctx: CallContext) {
      return handle(req, () => callerOf(node, ctx));
    },
  }];
}

/** A unary method whose handler gets the request and its caller (resolved from the token). */
function unary<I extends DescMessage, O extends DescMessage>(
  node: EtcdNode,
  method: { name: string; parent: { typeName: string }; input: I; output: O },
  handle: (
    req: MessageShape<I>,
    caller: AuthInfo | null,
  ) => MessageShape<O> | Promise<MessageShape<O>>,
): [string, AnyMethod] {
  return [`/${method.parent.typeName}/${method.name}`, {
    kind: "unary",
    input: method.input,
    output: method.output,
    handle(req: MessageShape<I>, ctx: CallContext) {
      const caller = callerOf(node, ctx);
      // No token: no await (the hot path of a cluster without auth stays synchronous).
      return caller instanceof Promise ? caller.then((c) => handle(req, c)) : handle(req, caller);
    },
  }];
}

/**
 * etcd's unary interceptor: a learner serves only Status and serializable Range ("rpc not supported
 * for learner"), and a client that asks for a leader (`hasleader: true` metadata, as clientv3's
 * WithRequireLeader sends) gets `etcdserver: no leader` at once when there is none.
 */
function guarded(node: EtcdNode, entries: [string, AnyMethod][]): [string, AnyMethod][] {
  const statusPath = `/${Maintenance.typeName}/${Maintenance.method.status.name}`;
  const rangePath = `/${KV.typeName}/${KV.method.range.name}`;
  return entries.map(([path, method]): [string, AnyMethod] => {
    if (method.kind !== "unary") return [path, method];
    const handle = method.handle;
    const wrapped: AnyMethod = {
      ...method,
      handle(req: Parameters<typeof handle>[0], ctx: CallContext) {
        if (node.isLearner && path !== statusPath) {
          const serializable = path === rangePath &&
            (req as { serializable?: boolean }).serializable === true;
          if (!serializable) throw Errors.notSupportedForLearner();
        }
        if (ctx.headers["hasleader"] === "true" && node.leader === 0n) throw Errors.noLeader();
        return handle(req, ctx);
      },
    };
    return [path, wrapped];
  });
}

/**
 * Lease.LeaseKeepAlive: each request renews (on the leader, forwarded by followers) and is
 * answered in order with the TTL; an unknown or expired lease answers TTL 0, as etcd's v3rpc does.
 * The header is taken before the renew, as etcd does (a revoke is never seen after a keep-alive).
 */
function leaseKeepAlive(node: EtcdNode): [string, AnyMethod] {
  const method = Lease.method.leaseKeepAlive;
  const stream: StreamMethod<
    typeof LeaseKeepAliveRequestSchema,
    typeof LeaseKeepAliveResponseSchema
  > = {
    kind: "stream",
    input: LeaseKeepAliveRequestSchema,
    output: LeaseKeepAliveResponseSchema,
    async handle(requests, send, ctx) {
      // etcd's stream interceptor: no streams on a learner; `hasleader` clients need a leader.
      if (node.isLearner) throw Errors.notSupportedForLearner();
      if (ctx.headers["hasleader"] === "true" && node.leader === 0n) throw Errors.noLeader();
      const caller = await callerOf(node, ctx);
      for await (const req of requests) {
        // Checked on every renew: a user deleted meanwhile can no longer keep leases alive
        // (GHSA-q8m4-xhhv-38mg; 3.4.23 renews for anyone).
        node.auth.requireUser(caller);
        const header = node.header();
        let ttl: bigint;
        try {
          ttl = await node.leaseRenew(req.ID);
        } catch (e) {
          if (!isEtcdError(e, Errors.leaseNotFound)) throw e;
          ttl = 0n;
        }
        await send(create(LeaseKeepAliveResponseSchema, { header, ID: req.ID, TTL: ttl }));
      }
    },
  };
  return [`/${Lease.typeName}/${method.name}`, stream];
}

/** Builds the method table for one member. */
export function etcdServices(
  node: EtcdNode,
  watchOptions: WatchServiceOptions = {},
  logger?: Logger,
): MethodTable {
  const kv = KV.method;
  const m = Maintenance.method;
  const cluster = Cluster.method;
  return addConcurrencyServices(
    new Map<string, AnyMethod>(guarded(node, [
      unaryLate(node, kv.range, (req, caller) => node.range(req, caller)),
      unary(node, kv.put, (req, caller) => node.put(req, caller)),
      unary(node, kv.deleteRange, (req, caller) => node.deleteRange(req, caller)),
      unaryLate(node, kv.txn, (req, caller) => node.txn(req, caller)),
      unary(node, kv.compact, (req, caller) => node.compact(req, caller)),
      watchMethod(node, { ...watchOptions, callerOf: (ctx) => callerOf(node, ctx) }),
      // Status: any user (etcd #21666 after CVE-2026-33413; 3.4.23 asks nothing).
      maintenance(node, m.status, () => "user", () => node.status()),
      // Listing alarms: any user; raising or disarming one: root (CVE-2026-33413; 3.4.23: anyone).
      maintenance(
        node,
        m.alarm,
        (req) => req.action === AlarmRequest_AlarmAction.GET ? "user" : "admin",
        (req, caller) => node.alarm(req, caller),
      ),
      maintenance(node, m.hashKV, () => "admin", (req) => node.hashKV(req)),
      maintenance(node, m.hash, () => "admin", () => hashResponse(node)),
      maintenance(node, m.defragment, () => "admin", () => node.defragment()),
      snapshotMethod(node, logger),
      unary(node, Lease.method.leaseGrant, (req, caller) => node.leaseGrant(req, caller)),
      unary(node, Lease.method.leaseRevoke, (req, caller) => node.leaseRevoke(req.ID, caller)),
      unary(node, Lease.method.leaseTimeToLive, (req, caller) => node.leaseTimeToLive(req, caller)),
      unary(node, Lease.method.leaseLeases, (_req, caller) => node.leaseLeases(caller)),
      leaseKeepAlive(node),
      // MoveLeader: root (CVE-2026-33413; 3.4.23 asks nothing).
      maintenance(node, m.moveLeader, () => "admin", (req) => node.moveLeader(req.targetID)),
      unary(
        node,
        cluster.memberAdd,
        (req, caller) => node.memberAdd(req.peerURLs, req.isLearner, caller),
      ),
      unary(node, cluster.memberRemove, (req, caller) => node.memberRemove(req.ID, caller)),
      unary(
        node,
        cluster.memberUpdate,
        (req, caller) => node.memberUpdate(req.ID, req.peerURLs, caller),
      ),
      unary(node, cluster.memberPromote, (req, caller) => node.memberPromote(req.ID, caller)),
      unary(node, cluster.memberList, (_req, caller) => {
        // Any user may list members (etcd #21550 after CVE-2026-33413; 3.4.23 asks nothing).
        node.auth.requireUser(caller);
        return create(MemberListResponseSchema, {
          header: node.headerWithoutRevision(),
          members: node.members(),
        });
      }),
      ...authMethods(node),
    ])),
  );
}

/** The Auth service: each method on the node's auth API, for the caller of the call. */
function authMethods(node: EtcdNode): [string, AnyMethod][] {
  const m = Auth.method;
  const a = node.auth;
  return [
    // Authenticate looks at no token (etcd's does not call AuthInfoFromCtx): a client with a
    // stale token can always log in again.
    [`/${Auth.typeName}/${m.authenticate.name}`, {
      kind: "unary",
      input: m.authenticate.input,
      output: m.authenticate.output,
      handle: (req: MessageShape<typeof m.authenticate.input>) => a.authenticate(req),
    }],
    unary(node, m.authEnable, (_req, caller) => a.authEnable(caller)),
    unary(node, m.authDisable, (_req, caller) => a.authDisable(caller)),
    unary(node, m.userAdd, (req, caller) => a.userAdd(req, caller)),
    unary(node, m.userGet, (req, caller) => a.userGet(req, caller)),
    unary(node, m.userList, (_req, caller) => a.userList(caller)),
    unary(node, m.userDelete, (req, caller) => a.userDelete(req, caller)),
    unary(node, m.userChangePassword, (req, caller) => a.userChangePassword(req, caller)),
    unary(node, m.userGrantRole, (req, caller) => a.userGrantRole(req, caller)),
    unary(node, m.userRevokeRole, (req, caller) => a.userRevokeRole(req, caller)),
    unary(node, m.roleAdd, (req, caller) => a.roleAdd(req, caller)),
    unary(node, m.roleGet, (req, caller) => a.roleGet(req, caller)),
    unary(node, m.roleList, (_req, caller) => a.roleList(caller)),
    unary(node, m.roleDelete, (req, caller) => a.roleDelete(req, caller)),
    unary(node, m.roleGrantPermission, (req, caller) => a.roleGrantPermission(req, caller)),
    unary(node, m.roleRevokePermission, (req, caller) => a.roleRevokePermission(req, caller)),
  ];
}

export { etcdServiceDescriptors } from "./service_descriptors.ts";
