/**
 * etcd's v3lock and v3election services (Lock, Unlock; Campaign, Proclaim, Leader, Observe,
 * Resign). etcd builds them on an in-process client of its own KV, Lease and Watch servers, with
 * the recipes of clientv3/concurrency. detcd runs the same recipes (core/concurrency) over its own
 * method table, with the caller's call context, so every step passes the same auth checks,
 * learner and leader guards as the caller's own requests would.
 */
import {
  create,
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import {
  DeleteRangeRequestSchema,
  type DeleteRangeResponse,
  KV,
  Lease,
  LeaseGrantRequestSchema,
  type LeaseGrantResponse,
  RangeRequestSchema,
  type RangeResponse,
  TxnRequestSchema,
  type TxnResponse,
  Watch,
  WatchRequestSchema,
  type WatchResponse,
} from "../gen/etcdserverpb/rpc_pb.ts";
import { Lock, LockResponseSchema, UnlockResponseSchema } from "../gen/v3lockpb/v3lock_pb.ts";
import {
  CampaignResponseSchema,
  Election,
  LeaderResponseSchema,
  ProclaimResponseSchema,
  ResignResponseSchema,
} from "../gen/v3electionpb/v3election_pb.ts";
import { EtcdError, GrpcCode } from "../core/errors.ts";
import {
  campaign,
  electionLeader,
  lockMutex,
  observeElection,
  proclaim,
  type RecipeClient,
  RecipeError,
  resign,
} from "../core/concurrency/recipes.ts";
import type { AnyMethod, CallContext, MethodTable, StreamMethod } from "./grpc.ts";

/** clientv3/concurrency's default session TTL, for a lock or campaign without a lease. */
const SESSION_TTL_SECONDS = 60n;

/** The election server's own error (gRPC code Unknown, as etcd sends it). */
const electionErrors = {
  missingLeaderKey: () => new EtcdError(GrpcCode.Unknown, `"leader" field must be provided`),
};

/**
 * An in-process client of this member's own services, acting as the caller of `ctx` (etcd's
 * v3client with the incoming context).
 */
class SelfClient implements RecipeClient {
  constructor(readonly table: MethodTable, readonly ctx: CallContext) {}

  /** The same caller, not bound to the call's end (to clean up after a cancelled call). */
  detached(): SelfClient {
    return new SelfClient(this.table, { ...this.ctx, signal: new AbortController().signal });
  }

  async #unary<I extends DescMessage>(
    path: string,
    schema: I,
    init: MessageInitShape<I>,
  ): Promise<unknown> {
    const method = this.table.get(path);
    if (method === undefined || method.kind !== "unary") throw new Error(`no method ${path}`);
    return await method.handle(create(schema, init), this.ctx);
  }

  async range(init: MessageInitShape<typeof RangeRequestSchema>): Promise<RangeResponse> {
    const path = `/${KV.typeName}/${KV.method.range.name}`;
    return await this.#unary(path, RangeRequestSchema, init) as RangeResponse;
  }

  async txn(init: MessageInitShape<typeof TxnRequestSchema>): Promise<TxnResponse> {
    const path = `/${KV.typeName}/${KV.method.txn.name}`;
    return await this.#unary(path, TxnRequestSchema, init) as TxnResponse;
  }

  async deleteKey(key: Uint8Array): Promise<DeleteRangeResponse> {
    const path = `/${KV.typeName}/${KV.method.deleteRange.name}`;
    return await this.#unary(path, DeleteRangeRequestSchema, { key }) as DeleteRangeResponse;
  }

  async grant(ttl: bigint): Promise<LeaseGrantResponse> {
    const path = `/${Lease.typeName}/${Lease.method.leaseGrant.name}`;
    return await this.#unary(path, LeaseGrantRequestSchema, { TTL: ttl }) as LeaseGrantResponse;
  }

  /**
   * Watches [key, rangeEnd) from `startRevision`, handing each response with events to `onEvents`
   * until it returns true; ends with the caller's call, and throws if the watch is refused or
   * cancelled (a compacted revision, a permission).
   */
  async watch(
    key: Uint8Array,
    rangeEnd: Uint8Array,
    startRevision: bigint,
    onEvents: (res: WatchResponse) => boolean | Promise<boolean>,
  ): Promise<void> {
    const method = this.table.get(`/${Watch.typeName}/${Watch.method.watch.name}`) as
      | StreamMethod<typeof WatchRequestSchema, DescMessage>
      | undefined;
    if (method === undefined) throw new Error("no Watch method");
    const stop = new AbortController();
    const outer = this.ctx.signal;
    const onOuterAbort = () => stop.abort(outer.reason);
    if (outer.aborted) throw callCancelled();
    outer.addEventListener("abort", onOuterAbort, { once: true });
    const requests = (async function* () {
      yield create(WatchRequestSchema, {
        requestUnion: { case: "createRequest", value: { key, rangeEnd, startRevision } },
      });
      await new Promise<void>((resolve) => {
        if (stop.signal.aborted) resolve();
        else stop.signal.addEventListener("abort", () => resolve(), { once: true });
      });
    })();
    let failure: unknown = null;
    let finished = false;
    const send = async (message: MessageShape<DescMessage>) => {
      const res = message as unknown as WatchResponse;
      if (finished) return;
      if (res.canceled) {
        failure = new EtcdError(
          GrpcCode.Unknown,
          res.cancelReason !== "" ? res.cancelReason : "watch canceled",
        );
        finished = true;
        stop.abort();
        return;
      }
      if (res.events.length === 0) return;
      try {
        if (await onEvents(res)) {
          finished = true;
          stop.abort();
        }
      } catch (e) {
        failure = e;
        finished = true;
        stop.abort();
      }
    };
    try {
      await method.handle(requests, send, { ...this.ctx, signal: stop.signal });
    } finally {
      outer.removeEventListener("abort", onOuterAbort);
      stop.abort();
    }
    if (failure !== null) throw failure;
    if (!finished) throw callCancelled();
  }

  /** concurrency.NewSession's lease: the given one, or a new one of 60 s when none. */
  async sessionLease(lease: bigint): Promise<bigint> {
    if (lease !== 0n) return lease;
    return (await this.grant(SESSION_TTL_SECONDS)).ID;
  }
}

function callCancelled(): EtcdError {
  return new EtcdError(GrpcCode.Canceled, "context canceled");
}

function unaryMethod<I extends DescMessage, O extends DescMessage>(
  method: { name: string; parent: { typeName: string }; input: I; output: O },
  handle: (req: MessageShape<I>, ctx: CallContext) => Promise<MessageShape<O>>,
): [string, AnyMethod] {
  return [`/${method.parent.typeName}/${method.name}`, {
    kind: "unary",
    input: method.input,
    output: method.output,
    async handle(req: MessageShape<I>, ctx: CallContext) {
      try {
        return await handle(req, ctx);
      } catch (e) {
        throw asRecipeError(e);
      }
    },
  }];
}

/**
 * etcd's services reach its KV through clientv3, which turns a status into a plain error: the
 * caller gets the same words with code Unknown (`requested lease not found` is NotFound on KV,
 * Unknown on Lock).
 */
function asRecipeError(e: unknown): unknown {
  if (e instanceof EtcdError && e.code !== GrpcCode.Unknown) {
    return new EtcdError(GrpcCode.Unknown, e.message);
  }
  if (e instanceof RecipeError) return new EtcdError(GrpcCode.Unknown, e.message);
  return e;
}

/** The Lock service (etcd's v3lock), over `table`'s KV, Lease and Watch methods. */
function lockMethods(table: MethodTable): [string, AnyMethod][] {
  return [
    unaryMethod(Lock.method.lock, async (req, ctx) => {
      const client = new SelfClient(table, ctx);
      const lease = await client.sessionLease(req.lease);
      // Rechecked after the wait (#11456): 3.4.23 would grant a lock whose key is gone.
      const held = await lockMutex(client, client.detached(), req.name, lease, true);
      return create(LockResponseSchema, held);
    }),
    unaryMethod(Lock.method.unlock, async (req, ctx) => {
      const res = await new SelfClient(table, ctx).deleteKey(req.key);
      return create(UnlockResponseSchema, { header: res.header });
    }),
  ];
}

/** The Election service (etcd's v3election), over `table`'s KV, Lease and Watch methods. */
function electionMethods(table: MethodTable): [string, AnyMethod][] {
  const m = Election.method;
  const observe: StreamMethod<typeof m.observe.input, typeof m.observe.output> = {
    kind: "stream",
    input: m.observe.input,
    output: m.observe.output,
    async handle(requests, send, ctx) {
      let name: Uint8Array | undefined;
      for await (const req of requests) {
        name = req.name;
        break;
      }
      if (name === undefined) return;
      try {
        await observeElection(
          new SelfClient(table, ctx),
          name,
          (header, kv) => send(create(LeaderResponseSchema, { header, kv })),
          () => ctx.signal.aborted,
        );
      } catch (e) {
        throw asRecipeError(e);
      }
    },
  };
  return [
    unaryMethod(m.campaign, async (req, ctx) => {
      const client = new SelfClient(table, ctx);
      const lease = await client.sessionLease(req.lease);
      const { leader, header } = await campaign(
        client,
        client.detached(),
        req.name,
        req.value,
        lease,
        () => ctx.signal.aborted,
      );
      return create(CampaignResponseSchema, { header, leader });
    }),
    unaryMethod(m.proclaim, async (req, ctx) => {
      if (req.leader === undefined) throw electionErrors.missingLeaderKey();
      const client = new SelfClient(table, ctx);
      const lease = await client.sessionLease(req.leader.lease);
      const header = await proclaim(client, req.leader, lease, req.value);
      return create(ProclaimResponseSchema, { header });
    }),
    unaryMethod(m.leader, async (req, ctx) => {
      const leader = await electionLeader(new SelfClient(table, ctx), req.name);
      return create(LeaderResponseSchema, leader);
    }),
    [`/${Election.typeName}/${m.observe.name}`, observe],
    unaryMethod(m.resign, async (req, ctx) => {
      if (req.leader === undefined) throw electionErrors.missingLeaderKey();
      const client = new SelfClient(table, ctx);
      await client.sessionLease(req.leader.lease);
      const header = await resign(client, req.leader);
      return create(ResignResponseSchema, { header });
    }),
  ];
}

/** Adds the Lock and Election services to a member's method table (which must hold KV etc.). */
export function addConcurrencyServices(table: MethodTable): MethodTable {
  for (const [path, method] of [...lockMethods(table), ...electionMethods(table)]) {
    table.set(path, method);
  }
  return table;
}

export { concurrencyServiceDescriptors } from "./service_descriptors.ts";
