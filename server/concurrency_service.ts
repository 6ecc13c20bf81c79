/**
 * etcd's v3lock and v3election services (Lock, Unlock; Campaign, Proclaim, Leader, Observe,
 * Resign). etcd builds them on an in-process client of its own KV, Lease and Watch servers, with
 * the recipes of clientv3/concurrency (a key `<name>/<lease in hex>` per contender, ownership by
 * lowest create revision, waiting on the deletion of the next lower contender). detcd does the
 * same over its own method table, with the caller's call context, so every step passes the same
 * auth checks, learner and leader guards as the caller's own requests would.
 */
import {
  create,
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import {
  Compare_CompareResult,
  Compare_CompareTarget,
  DeleteRangeRequestSchema,
  type DeleteRangeResponse,
  KV,
  Lease,
  LeaseGrantRequestSchema,
  type LeaseGrantResponse,
  RangeRequest_SortOrder,
  RangeRequest_SortTarget,
  RangeRequestSchema,
  type RangeResponse,
  type ResponseHeader,
  TxnRequestSchema,
  type TxnResponse,
  Watch,
  WatchRequestSchema,
  type WatchResponse,
} from "../gen/etcdserverpb/rpc_pb.ts";
import type { KeyValue } from "../gen/mvccpb/kv_pb.ts";
import { Event_EventType } from "../gen/mvccpb/kv_pb.ts";
import { Lock, LockResponseSchema, UnlockResponseSchema } from "../gen/v3lockpb/v3lock_pb.ts";
import {
  CampaignResponseSchema,
  Election,
  type LeaderKey,
  LeaderKeySchema,
  LeaderResponseSchema,
  ProclaimResponseSchema,
  ResignResponseSchema,
} from "../gen/v3electionpb/v3election_pb.ts";
import { EtcdError, GrpcCode } from "../core/errors.ts";
import type { AnyMethod, CallContext, MethodTable, StreamMethod } from "./grpc.ts";

/** clientv3/concurrency's default session TTL, for a lock or campaign without a lease. */
const SESSION_TTL_SECONDS = 60n;

/** The errors of etcd's election recipe and server (gRPC code Unknown, as etcd sends them). */
const electionErrors = {
  notLeader: () => new EtcdError(GrpcCode.Unknown, "election: not leader"),
  noLeader: () => new EtcdError(GrpcCode.Unknown, "election: no leader"),
  missingLeaderKey: () => new EtcdError(GrpcCode.Unknown, `"leader" field must be provided`),
};

const encoder = new TextEncoder();

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The first key after every key starting with `prefix` (clientv3.GetPrefixRangeEnd). */
function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = prefix.slice();
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.slice(0, i + 1);
    }
  }
  return new Uint8Array([0]);
}

/** `fmt.Sprintf("%x", leaseID)` of Go for an int64. */
function hexLease(id: bigint): string {
  return id < 0n ? `-${(-id).toString(16)}` : id.toString(16);
}

/**
 * An in-process client of this member's own services, acting as the caller of `ctx` (etcd's
 * v3client with the incoming context).
 */
class SelfClient {
  constructor(readonly table: MethodTable, readonly ctx: CallContext) {}

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

  /** Waits for the deletion of `key`, watching from `revision` (concurrency.waitDelete). */
  waitDelete(key: Uint8Array, revision: bigint): Promise<void> {
    return this.watch(
      key,
      new Uint8Array(),
      revision,
      (res) => res.events.some((e) => e.type === Event_EventType.DELETE),
    );
  }

  /**
   * Waits until no key under `prefix` has a create revision at or below `maxCreateRevision`
   * (concurrency.waitDeletes): the contenders before this one are gone.
   */
  async waitDeletes(prefix: Uint8Array, maxCreateRevision: bigint): Promise<ResponseHeader> {
    for (;;) {
      const res = await this.range({
        key: prefix,
        rangeEnd: prefixEnd(prefix),
        sortTarget: RangeRequest_SortTarget.CREATE,
        sortOrder: RangeRequest_SortOrder.DESCEND,
        limit: 1n,
        maxCreateRevision,
      });
      if (res.kvs.length === 0) return res.header!;
      await this.waitDelete(res.kvs[0].key, res.header!.revision);
    }
  }

  /** The key under `prefix` with the lowest create revision (clientv3.WithFirstCreate). */
  firstCreated(prefix: Uint8Array): MessageInitShape<typeof RangeRequestSchema> {
    return {
      key: prefix,
      rangeEnd: prefixEnd(prefix),
      sortTarget: RangeRequest_SortTarget.CREATE,
      sortOrder: RangeRequest_SortOrder.ASCEND,
      limit: 1n,
    };
  }

  /** concurrency.NewSession's lease: the given one, or a new one of 60 s when none. */
  async sessionLease(lease: bigint): Promise<bigint> {
    if (lease !== 0n) return lease;
    return (await this.grant(SESSION_TTL_SECONDS)).ID;
  }
}

/** A lock whose key vanished while it waited (etcd 3.5's concurrency.ErrSessionExpired). */
function sessionExpired(): EtcdError {
  return new EtcdError(GrpcCode.Unknown, "mutex: session is expired");
}

function callCancelled(): EtcdError {
  return new EtcdError(GrpcCode.Canceled, "context canceled");
}

/** A transaction comparing a key's create revision. */
function createRevisionIs(key: Uint8Array, revision: bigint) {
  return {
    key,
    target: Compare_CompareTarget.CREATE,
    result: Compare_CompareResult.EQUAL,
    targetUnion: { case: "createRevision" as const, value: revision },
  };
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
  return e;
}

/** The Lock service (etcd's v3lock), over `table`'s KV, Lease and Watch methods. */
function lockMethods(table: MethodTable): [string, AnyMethod][] {
  return [
    unaryMethod(Lock.method.lock, async (req, ctx) => {
      const client = new SelfClient(table, ctx);
      const lease = await client.sessionLease(req.lease);
      const prefix = concat(req.name, encoder.encode("/"));
      const key = concat(prefix, encoder.encode(hexLease(lease)));
      const owner = { case: "requestRange" as const, value: client.firstCreated(prefix) };
      const res = await client.txn({
        compare: [createRevisionIs(key, 0n)],
        success: [
          { request: { case: "requestPut", value: { key, lease } } },
          { request: owner },
        ],
        failure: [{ request: { case: "requestRange", value: { key } } }, { request: owner }],
      });
      let myRevision = res.header!.revision;
      if (!res.succeeded) {
        myRevision = (res.responses[0].response.value as RangeResponse).kvs[0].createRevision;
      }
      const first = (res.responses[1].response.value as RangeResponse).kvs;
      let header = res.header!;
      if (first.length > 0 && first[0].createRevision !== myRevision) {
        const leave = () =>
          new SelfClient(table, { ...ctx, signal: new AbortController().signal })
            .deleteKey(key).catch(() => {});
        try {
          await client.waitDeletes(prefix, myRevision - 1n);
        } catch (e) {
          // Given up (the caller went away, or the watch failed): leave the queue.
          await leave();
          throw e;
        }
        // #11456 (3.4.23 grants it anyway): while this caller waited, its lease may have expired
        // and taken its key along; then it holds nothing.
        const mine = await client.range({ key }).catch(async (e) => {
          await leave();
          throw e;
        });
        if (mine.kvs.length === 0) throw sessionExpired();
        header = mine.header!;
      }
      return create(LockResponseSchema, { header, key });
    }),
    unaryMethod(Lock.method.unlock, async (req, ctx) => {
      const res = await new SelfClient(table, ctx).deleteKey(req.key);
      return create(UnlockResponseSchema, { header: res.header });
    }),
  ];
}

/** Proclaim of concurrency.Election for a resumed leader key. */
async function proclaim(
  client: SelfClient,
  leader: LeaderKey,
  lease: bigint,
  value: Uint8Array,
): Promise<ResponseHeader> {
  const res = await client.txn({
    compare: [createRevisionIs(leader.key, leader.rev)],
    success: [{ request: { case: "requestPut", value: { key: leader.key, value, lease } } }],
  });
  if (!res.succeeded) throw electionErrors.notLeader();
  return res.header!;
}

/** Resign of concurrency.Election: deletes the leader key if it is still this campaign's. */
async function resign(client: SelfClient, leader: LeaderKey): Promise<ResponseHeader> {
  const res = await client.txn({
    compare: [createRevisionIs(leader.key, leader.rev)],
    success: [{ request: { case: "requestDeleteRange", value: { key: leader.key } } }],
  });
  return res.header!;
}

/** The Election service (etcd's v3election), over `table`'s KV, Lease and Watch methods. */
function electionMethods(table: MethodTable): [string, AnyMethod][] {
  const m = Election.method;
  const observe: StreamMethod<typeof m.observe.input, typeof m.observe.output> = {
    kind: "stream",
    input: m.observe.input,
    output: m.observe.output,
    async handle(requests, send, ctx) {
      try {
        await observeLeader(requests, send, ctx);
      } catch (e) {
        throw asRecipeError(e);
      }
    },
  };
  async function observeLeader(
    requests: AsyncIterable<MessageShape<typeof m.observe.input>>,
    send: (res: MessageShape<typeof m.observe.output>) => Promise<void>,
    ctx: CallContext,
  ): Promise<void> {
    let name: Uint8Array | undefined;
    for await (const req of requests) {
      name = req.name;
      break;
    }
    if (name === undefined) return;
    const client = new SelfClient(table, ctx);
    const prefix = concat(name, encoder.encode("/"));
    while (!ctx.signal.aborted) {
      const res = await client.range(client.firstCreated(prefix));
      let header: ResponseHeader;
      let kv: KeyValue;
      if (res.kvs.length === 0) {
        // No leader yet: wait for the first key put under the prefix.
        let found: [ResponseHeader, KeyValue] | null = null;
        await client.watch(prefix, prefixEnd(prefix), res.header!.revision, (w) => {
          const put = w.events.find((e) => e.type === Event_EventType.PUT);
          if (put === undefined) return false;
          found = [{ ...w.header!, revision: put.kv!.modRevision }, put.kv!];
          return true;
        });
        [header, kv] = found!;
      } else {
        header = res.header!;
        kv = res.kvs[0];
      }
      await send(create(LeaderResponseSchema, { header, kv }));
      // Follow the leader key: each change is sent; its deletion starts over.
      await client.watch(kv.key, new Uint8Array(), header.revision + 1n, async (w) => {
        for (const e of w.events) {
          if (e.type === Event_EventType.DELETE) return true;
          await send(create(LeaderResponseSchema, { header: w.header, kv: e.kv }));
        }
        return false;
      });
    }
  }
  return [
    unaryMethod(m.campaign, async (req, ctx) => {
      const client = new SelfClient(table, ctx);
      const lease = await client.sessionLease(req.lease);
      const prefix = concat(req.name, encoder.encode("/"));
      const key = concat(prefix, encoder.encode(hexLease(lease)));
      const res = await client.txn({
        compare: [createRevisionIs(key, 0n)],
        success: [{ request: { case: "requestPut", value: { key, value: req.value, lease } } }],
        failure: [{ request: { case: "requestRange", value: { key } } }],
      });
      const leader = create(LeaderKeySchema, {
        name: req.name,
        key,
        rev: res.header!.revision,
        lease,
      });
      if (!res.succeeded) {
        const kv = (res.responses[0].response.value as RangeResponse).kvs[0];
        leader.rev = kv.createRevision;
        if (!sameBytes(kv.value, req.value)) {
          try {
            await proclaim(client, leader, lease, req.value);
          } catch (e) {
            await resign(client, leader).catch(() => {});
            throw e;
          }
        }
      }
      try {
        await client.waitDeletes(prefix, leader.rev - 1n);
      } catch (e) {
        if (ctx.signal.aborted) {
          const detached = new SelfClient(table, { ...ctx, signal: new AbortController().signal });
          await resign(detached, leader).catch(() => {});
        }
        throw e;
      }
      return create(CampaignResponseSchema, { header: res.header, leader });
    }),
    unaryMethod(m.proclaim, async (req, ctx) => {
      if (req.leader === undefined) throw electionErrors.missingLeaderKey();
      const client = new SelfClient(table, ctx);
      const lease = await client.sessionLease(req.leader.lease);
      const header = await proclaim(client, req.leader, lease, req.value);
      return create(ProclaimResponseSchema, { header });
    }),
    unaryMethod(m.leader, async (req, ctx) => {
      const client = new SelfClient(table, ctx);
      const res = await client.range(client.firstCreated(concat(req.name, encoder.encode("/"))));
      if (res.kvs.length === 0) throw electionErrors.noLeader();
      return create(LeaderResponseSchema, { header: res.header, kv: res.kvs[0] });
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

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Adds the Lock and Election services to a member's method table (which must hold KV etc.). */
export function addConcurrencyServices(table: MethodTable): MethodTable {
  for (const [path, method] of [...lockMethods(table), ...electionMethods(table)]) {
    table.set(path, method);
  }
  return table;
}

/** The services this module serves, for the Connect/gRPC-Web router. */
export const concurrencyServiceDescriptors = [Lock, Election];
