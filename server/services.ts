import { create, type DescMessage } from "@bufbuild/protobuf";
import { Cluster, KV, Maintenance, MemberListResponseSchema } from "../gen/etcdserverpb/rpc_pb.ts";
import type { EtcdNode } from "../core/node/mod.ts";
import { watchMethod, type WatchServiceOptions } from "./watch_service.ts";
import { snapshotMethod } from "./snapshot_service.ts";
import type { Logger } from "../core/log.ts";
import { Errors, isEtcdError } from "../core/errors.ts";
import {
  Lease,
  LeaseKeepAliveRequestSchema,
  LeaseKeepAliveResponseSchema,
} from "../gen/etcdserverpb/rpc_pb.ts";
import type { AnyMethod, CallContext, MethodTable, StreamMethod, UnaryMethod } from "./grpc.ts";

/**
 * The etcd v3 services as thin adapters over the node: one table, keyed by gRPC path, that both
 * the lean gRPC handler and the Connect/gRPC-Web router serve.
 */

function unary<I extends DescMessage, O extends DescMessage>(
  method: { name: string; parent: { typeName: string }; input: I; output: O },
  handle: UnaryMethod<I, O>["handle"],
): [string, AnyMethod] {
  return [`/${method.parent.typeName}/${method.name}`, {
    kind: "unary",
    input: method.input,
    output: method.output,
    handle,
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
      for await (const req of requests) {
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
  const maintenance = Maintenance.method;
  const cluster = Cluster.method;
  return new Map<string, AnyMethod>(guarded(node, [
    unary(kv.range, (req) => node.range(req)),
    unary(kv.put, (req) => node.put(req)),
    unary(
      kv.deleteRange,
      (req) => node.deleteRange(req),
    ),
    unary(kv.txn, (req) => node.txn(req)),
    unary(
      kv.compact,
      (req) => node.compact(req),
    ),
    watchMethod(node, watchOptions),
    unary(
      maintenance.status,
      () => node.status(),
    ),
    unary(
      maintenance.alarm,
      (req) => node.alarm(req),
    ),
    unary(maintenance.hashKV, (req) => node.hashKV(req)),
    snapshotMethod(node, logger),
    unary(Lease.method.leaseGrant, (req) => node.leaseGrant(req)),
    unary(Lease.method.leaseRevoke, (req) => node.leaseRevoke(req.ID)),
    unary(Lease.method.leaseTimeToLive, (req) => node.leaseTimeToLive(req)),
    unary(Lease.method.leaseLeases, () => node.leaseLeases()),
    leaseKeepAlive(node),
    unary(maintenance.moveLeader, (req) => node.moveLeader(req.targetID)),
    unary(cluster.memberAdd, (req) => node.memberAdd(req.peerURLs, req.isLearner)),
    unary(cluster.memberRemove, (req) => node.memberRemove(req.ID)),
    unary(cluster.memberUpdate, (req) => node.memberUpdate(req.ID, req.peerURLs)),
    unary(cluster.memberPromote, (req) => node.memberPromote(req.ID)),
    unary(
      cluster.memberList,
      () =>
        create(MemberListResponseSchema, {
          header: node.headerWithoutRevision(),
          members: node.members(),
        }),
    ),
  ]));
}

/** Services whose methods detcd may serve, for routers that need descriptors. */
export const etcdServiceDescriptors = [KV, Maintenance, Cluster, Lease];
