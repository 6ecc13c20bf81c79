/**
 * clientv3/concurrency's recipes, over any client of the KV and Watch APIs: the mutex (a key
 * `<name>/<lease in hex>` per contender, the owner is the lowest create revision, each contender
 * waits for the deletion of the one just before it) and the election built on the same queue.
 * The server's Lock and Election services run them over the member's own methods; detcdctl's
 * `lock` and `elect` over its gRPC client.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  Compare_CompareResult,
  Compare_CompareTarget,
  type DeleteRangeResponse,
  RangeRequest_SortOrder,
  RangeRequest_SortTarget,
  type RangeRequestSchema,
  type RangeResponse,
  type ResponseHeader,
  type TxnRequestSchema,
  type TxnResponse,
  type WatchResponse,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { Event_EventType, type KeyValue } from "../../gen/mvccpb/kv_pb.ts";
import { type LeaderKey, LeaderKeySchema } from "../../gen/v3electionpb/v3election_pb.ts";
import { bytesEqual, concatBytes as concat, prefixRangeEnd as prefixEnd } from "../bytes.ts";

/** What the recipes need of a client. Failures are thrown as the client reports them. */
export interface RecipeClient {
  range(init: MessageInitShape<typeof RangeRequestSchema>): Promise<RangeResponse>;
  txn(init: MessageInitShape<typeof TxnRequestSchema>): Promise<TxnResponse>;
  deleteKey(key: Uint8Array): Promise<DeleteRangeResponse>;
  /**
   * Watches [key, rangeEnd) from `startRevision`, handing each response carrying events to
   * `onEvents` until it returns true; throws when the watch is cancelled or refused.
   */
  watch(
    key: Uint8Array,
    rangeEnd: Uint8Array,
    startRevision: bigint,
    onEvents: (res: WatchResponse) => boolean | Promise<boolean>,
  ): Promise<void>;
}

/** The errors of the recipes, in etcd's words. */
export const RecipeErrors = {
  /** concurrency.ErrElectionNotLeader */
  notLeader: "election: not leader",
  /** concurrency.ErrElectionNoLeader */
  noLeader: "election: no leader",
  /** concurrency.ErrSessionExpired (etcd 3.5): the lock key vanished while it waited. */
  sessionExpired: "mutex: session is expired",
} as const;

/** A recipe's own failure (not the client's). */
export class RecipeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RecipeError";
  }
}

const encoder = new TextEncoder();

/** `<name>/`: the prefix of a lock's or an election's keys. */
export function queuePrefix(name: Uint8Array): Uint8Array {
  return concat(name, encoder.encode("/"));
}

/** `<prefix><lease as Go's %x>`: one contender's key. */
export function contenderKey(prefix: Uint8Array, lease: bigint): Uint8Array {
  const hex = lease < 0n ? `-${(-lease).toString(16)}` : lease.toString(16);
  return concat(prefix, encoder.encode(hex));
}

/** The key under `prefix` with the lowest create revision (clientv3.WithFirstCreate). */
export function firstCreated(prefix: Uint8Array): MessageInitShape<typeof RangeRequestSchema> {
  return {
    key: prefix,
    rangeEnd: prefixEnd(prefix),
    sortTarget: RangeRequest_SortTarget.CREATE,
    sortOrder: RangeRequest_SortOrder.ASCEND,
    limit: 1n,
  };
}

function createRevisionIs(key: Uint8Array, revision: bigint) {
  return {
    key,
    target: Compare_CompareTarget.CREATE,
    result: Compare_CompareResult.EQUAL,
    targetUnion: { case: "createRevision" as const, value: revision },
  };
}

/** concurrency.waitDelete: until `key` is deleted, watching from `revision`. */
export function waitDelete(client: RecipeClient, key: Uint8Array, revision: bigint): Promise<void> {
  return client.watch(
    key,
    new Uint8Array(),
    revision,
    (res) => res.events.some((e) => e.type === Event_EventType.DELETE),
  );
}

/**
 * concurrency.waitDeletes: until no key under `prefix` has a create revision at or below
 * `maxCreateRevision`; returns the header of the range that found none.
 */
export async function waitDeletes(
  client: RecipeClient,
  prefix: Uint8Array,
  maxCreateRevision: bigint,
): Promise<ResponseHeader> {
  for (;;) {
    const res = await client.range({
      key: prefix,
      rangeEnd: prefixEnd(prefix),
      sortTarget: RangeRequest_SortTarget.CREATE,
      sortOrder: RangeRequest_SortOrder.DESCEND,
      limit: 1n,
      maxCreateRevision,
    });
    if (res.kvs.length === 0) return res.header!;
    await waitDelete(client, res.kvs[0].key, res.header!.revision);
  }
}

/** A held lock: its key and the header of the moment it was granted. */
export interface HeldLock {
  key: Uint8Array;
  header: ResponseHeader;
}

/**
 * concurrency.Mutex.Lock on `lease`. When the wait fails the key is deleted with `cleanup` (a
 * client not bound to the caller's cancelled call). With `recheck` (etcd 3.5, #11456) a key that
 * vanished during the wait (its lease expired) is refused with `mutex: session is expired`;
 * etcd 3.4's mutex grants it anyway.
 */
export async function lockMutex(
  client: RecipeClient,
  cleanup: RecipeClient,
  name: Uint8Array,
  lease: bigint,
  recheck: boolean,
): Promise<HeldLock> {
  const prefix = queuePrefix(name);
  const key = contenderKey(prefix, lease);
  const owner = { case: "requestRange" as const, value: firstCreated(prefix) };
  const res = await client.txn({
    compare: [createRevisionIs(key, 0n)],
    success: [{ request: { case: "requestPut", value: { key, lease } } }, { request: owner }],
    failure: [{ request: { case: "requestRange", value: { key } } }, { request: owner }],
  });
  let myRevision = res.header!.revision;
  if (!res.succeeded) {
    myRevision = (res.responses[0].response.value as RangeResponse).kvs[0].createRevision;
  }
  const first = (res.responses[1].response.value as RangeResponse).kvs;
  if (first.length === 0 || first[0].createRevision === myRevision) {
    return { key, header: res.header! };
  }
  const leave = () => cleanup.deleteKey(key).catch(() => {});
  let header: ResponseHeader;
  try {
    header = await waitDeletes(client, prefix, myRevision - 1n);
  } catch (e) {
    await leave();
    throw e;
  }
  if (recheck) {
    let mine: RangeResponse;
    try {
      mine = await client.range({ key });
    } catch (e) {
      await leave();
      throw e;
    }
    if (mine.kvs.length === 0) throw new RecipeError(RecipeErrors.sessionExpired);
    header = mine.header!;
  }
  return { key, header };
}

/** concurrency.Election.Proclaim for a leader key. */
export async function proclaim(
  client: RecipeClient,
  leader: LeaderKey,
  lease: bigint,
  value: Uint8Array,
): Promise<ResponseHeader> {
  const res = await client.txn({
    compare: [createRevisionIs(leader.key, leader.rev)],
    success: [{ request: { case: "requestPut", value: { key: leader.key, value, lease } } }],
  });
  if (!res.succeeded) throw new RecipeError(RecipeErrors.notLeader);
  return res.header!;
}

/** concurrency.Election.Resign: deletes the leader key if it is still this campaign's. */
export async function resign(client: RecipeClient, leader: LeaderKey): Promise<ResponseHeader> {
  const res = await client.txn({
    compare: [createRevisionIs(leader.key, leader.rev)],
    success: [{ request: { case: "requestDeleteRange", value: { key: leader.key } } }],
  });
  return res.header!;
}

/**
 * concurrency.Election.Campaign: queue up with `value` on `lease`, wait to be first. When the
 * wait fails and `cancelled()` says the caller gave up, the campaign resigns with `cleanup`.
 * Returns the leader key and the header of the campaign's own transaction (as etcd's).
 */
export async function campaign(
  client: RecipeClient,
  cleanup: RecipeClient,
  name: Uint8Array,
  value: Uint8Array,
  lease: bigint,
  cancelled: () => boolean,
): Promise<{ leader: LeaderKey; header: ResponseHeader }> {
  const prefix = queuePrefix(name);
  const key = contenderKey(prefix, lease);
  const res = await client.txn({
    compare: [createRevisionIs(key, 0n)],
    success: [{ request: { case: "requestPut", value: { key, value, lease } } }],
    failure: [{ request: { case: "requestRange", value: { key } } }],
  });
  const leader = create(LeaderKeySchema, { name, key, rev: res.header!.revision, lease });
  if (!res.succeeded) {
    const kv = (res.responses[0].response.value as RangeResponse).kvs[0];
    leader.rev = kv.createRevision;
    if (!bytesEqual(kv.value, value)) {
      try {
        await proclaim(client, leader, lease, value);
      } catch (e) {
        await resign(client, leader).catch(() => {});
        throw e;
      }
    }
  }
  try {
    await waitDeletes(client, prefix, leader.rev - 1n);
  } catch (e) {
    if (cancelled()) await resign(cleanup, leader).catch(() => {});
    throw e;
  }
  return { leader, header: res.header! };
}

/** concurrency.Election.Leader: the first contender's key, or `election: no leader`. */
export async function electionLeader(
  client: RecipeClient,
  name: Uint8Array,
): Promise<{ header: ResponseHeader; kv: KeyValue }> {
  const res = await client.range(firstCreated(queuePrefix(name)));
  if (res.kvs.length === 0) throw new RecipeError(RecipeErrors.noLeader);
  return { header: res.header!, kv: res.kvs[0] };
}

/**
 * concurrency.Election.Observe: hands `emit` the leader, then every change of its key; when it
 * is deleted, the next leader (waiting for one if there is none). Runs until `stopped()` or a
 * failure (thrown). A change of the key comes with the range that found the leader (clientv3
 * reuses that GetResponse, count and more included); the leader itself with none.
 */
export async function observeElection(
  client: RecipeClient,
  name: Uint8Array,
  emit: (header: ResponseHeader, kv: KeyValue, range?: RangeResponse) => Promise<void>,
  stopped: () => boolean,
): Promise<void> {
  const prefix = queuePrefix(name);
  while (!stopped()) {
    const res = await client.range(firstCreated(prefix));
    let header: ResponseHeader;
    let kv: KeyValue;
    if (res.kvs.length === 0) {
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
    await emit(header, kv);
    await client.watch(kv.key, new Uint8Array(), header.revision + 1n, async (w) => {
      for (const e of w.events) {
        if (e.type === Event_EventType.DELETE) return true;
        await emit(w.header!, e.kv!, res);
      }
      return false;
    });
  }
}
