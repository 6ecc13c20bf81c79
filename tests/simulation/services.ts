/**
 * The simulation's clients call members the way the gRPC, Connect and gateway handlers do: through
 * the member's method table (server/services.ts), with the empty call context of a client without
 * auth, so the service layer (its checks, its error mapping, the keep-alive stream) is under test
 * with the node behind it. One table per member incarnation.
 */
import { create } from "@bufbuild/protobuf";
import { LeaseKeepAliveRequestSchema } from "../../gen/etcdserverpb/rpc_pb.ts";
import type { EtcdNode } from "../../core/node/mod.ts";
import { etcdServices } from "../../server/services.ts";
import type { CallContext, MethodTable } from "../../server/grpc.ts";
import { Errors } from "../../core/errors.ts";

const tables = new WeakMap<EtcdNode, MethodTable>();

function tableOf(node: EtcdNode): MethodTable {
  let table = tables.get(node);
  if (table === undefined) {
    table = etcdServices(node);
    tables.set(node, table);
  }
  return table;
}

function context(): CallContext {
  return { headers: {}, signal: new AbortController().signal };
}

/** Calls a unary method by its gRPC path ("/etcdserverpb.KV/Put"). */
export function callUnary<T>(node: EtcdNode, path: string, req: unknown): Promise<T> {
  const method = tableOf(node).get(path);
  if (method === undefined || method.kind !== "unary") {
    return Promise.reject(new Error(`no unary method ${path}`));
  }
  return new Promise((resolve) => resolve(method.handle(req as never, context()) as T));
}

/**
 * One renewal through the LeaseKeepAlive stream (one request, its one answer), as clientv3's
 * KeepAliveOnce does: resolves with the TTL; a lease the member does not know answers TTL 0,
 * which rejects with etcd's "requested lease not found" as the client library reports it.
 */
export function keepAliveOnce(node: EtcdNode, id: bigint): Promise<bigint> {
  const method = tableOf(node).get("/etcdserverpb.Lease/LeaseKeepAlive");
  if (method === undefined || method.kind !== "stream") {
    return Promise.reject(new Error("no LeaseKeepAlive stream"));
  }
  return new Promise((resolve, reject) => {
    let answered = false;
    async function* requests() {
      yield create(LeaseKeepAliveRequestSchema, { ID: id });
    }
    method.handle(requests(), (res) => {
      answered = true;
      const ttl = (res as unknown as { TTL: bigint }).TTL;
      if (ttl <= 0n) reject(Errors.leaseNotFound());
      else resolve(ttl);
      return Promise.resolve();
    }, context()).then(
      () => {
        if (!answered) reject(new Error("LeaseKeepAlive ended without an answer"));
      },
      reject,
    );
  });
}
