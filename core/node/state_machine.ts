/**
 * The deterministic state machine every member applies committed entries to: MVCC with its
 * watchers, leases (a revoked lease's keys deleted in one revision), alarms, users and roles, and
 * membership changes. Its state is a function of the applied log alone, so that every member holds the same
 * at each index; it is also what a snapshot encodes and restores. Every request, and every read
 * served from the applied state, passes the apply chain (core/node/apply/).
 */
import { create, toBinary } from "@bufbuild/protobuf";
import {
  type InternalRequest,
  LeaseRecordSchema,
  type NodeSnapshot,
  NodeSnapshotSchema,
} from "../../gen/detcdpb/internal_pb.ts";
import {
  type AlarmMember,
  type ResponseHeader,
  TxnRequestSchema,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { assert } from "../assert.ts";
import { type AuthInfo, AuthStore, type AuthStoreOptions } from "../auth/mod.ts";
import { authRecordOf, authSnapshotOf } from "./auth_record.ts";
import type { Lessor } from "../lease/mod.ts";
import {
  type ByteSource,
  bytesSource,
  type ChunkedBytes,
  encodeViewSteps,
  MvccStore,
  type MvccStoreOptions,
  type MvccView,
  streamViewSteps,
  WatchableStore,
  type WriteResult,
} from "../mvcc/mod.ts";
import { putUvarint, uvarintSize } from "../varint.ts";
import { applyTxn } from "./kv/mod.ts";
import { type ConfChange, ConfChangeType, type ConfState } from "../raft/mod.ts";
import { AlarmStore } from "./alarms.ts";
import { readNodeSnapshot } from "./node_snapshot.ts";
import {
  type Apply,
  type ApplyMeta,
  authGuard,
  backend,
  capped,
  chain,
  corruptionGuard,
  leaderTermGuard,
  type OperationOf,
  type Quota,
  quotaGuard,
  readMeta,
  type Response,
  type Responses,
} from "./apply/mod.ts";
import type { MemberInfo, Membership } from "./membership.ts";

/**
 * MVCC, leases, alarms and membership as applied from the log. The member feeds it committed
 * requests in order; it answers each with the response the proposer returns to its client.
 */
export class StateMachine {
  /** Replaced when a snapshot is applied. */
  mvcc: MvccStore;
  readonly lessor: Lessor;
  readonly membership: Membership;
  /** Watchers of this member: every applied write's events reach them (see #watched). */
  readonly watchable: WatchableStore;
  /** Raised alarms (replicated like everything else here). */
  readonly alarmStore = new AlarmStore();
  /** Users, roles and permissions (replicated), with this member's token provider. */
  readonly auth: AuthStore;
  /** The apply chain every operation passes. */
  readonly #apply: Apply;
  /** How restored stores keep their revisions (as the first one). */
  readonly #storeOptions: MvccStoreOptions;

  constructor(init: {
    mvcc: MvccStore;
    /** How a store restored from a snapshot keeps its revisions (in memory when absent). */
    storeOptions?: MvccStoreOptions;
    lessor: Lessor;
    membership: Membership;
    /** The header of a response, taken after the write (its revision). */
    header: () => ResponseHeader;
    /** The lessor's clock (ms since the member started; never the wall clock). */
    leaseNowMs: () => number;
    /** Token provider, password hasher, bcrypt cost and logger of the auth store. */
    auth?: AuthStoreOptions;
    /** --quota-backend-bytes over this member's storage (none: no quota). */
    quota?: Quota;
  }) {
    this.mvcc = init.mvcc;
    this.#storeOptions = init.storeOptions ?? {};
    this.lessor = init.lessor;
    this.membership = init.membership;
    this.watchable = new WatchableStore(() => this.mvcc);
    this.lessor.setDeleter({ deleteKeys: (keys) => this.#deleteLeaseKeys(keys) });
    this.auth = new AuthStore(init.auth);
    const hasAlarm = (type: Parameters<AlarmStore["has"]>[0]) => this.alarmStore.has(type);
    const auth = authGuard({ auth: this.auth, leaseKeys: (id) => this.lessor.keys(id) });
    this.#apply = chain(
      [
        leaderTermGuard,
        corruptionGuard(hasAlarm),
        capped(hasAlarm),
        auth,
        quotaGuard(init.quota ?? { available: () => true }),
      ],
      backend({
        mvcc: () => this.mvcc,
        lessor: this.lessor,
        membership: this.membership,
        alarms: this.alarmStore,
        auth: this.auth,
        header: init.header,
        leaseNowMs: init.leaseNowMs,
        watched: (result) => this.#watched(result),
      }),
    );
  }

  /**
   * The MVCC store a snapshot holds (a new one without a snapshot), with its leases restored into
   * `lessor` first: restoring MVCC re-attaches live keys to them (etcd's order).
   */
  static async restoreStore(
    state: NodeSnapshot | null,
    lessor: Lessor,
    options: MvccStoreOptions = {},
    mvcc: Uint8Array | ByteSource | null = state?.mvcc ?? null,
  ): Promise<MvccStore> {
    if (!state || mvcc === null) return new MvccStore(lessor, options);
    lessor.restore(leaseRecords(state));
    // In steps: the revision storage writes each one out before the next is read. A checkpoint
    // is restored over the revision storage that holds its records (opened, not rebuilt).
    const steps = mvcc instanceof Uint8Array && MvccStore.isCheckpoint(mvcc)
      ? MvccStore.restoreCheckpointSteps(mvcc, lessor, options)
      : MvccStore.restoreSteps(mvcc, lessor, options);
    for (;;) {
      const step = steps.next();
      if (step.done) return step.value;
      await options.revisions?.flush();
    }
  }

  /** Raised alarms, sorted by member then type. */
  get alarms(): readonly AlarmMember[] {
    return this.alarmStore.list;
  }

  /**
   * Replaces the whole state with a snapshot's (one the leader sent), read from `source` a window
   * at a time (its store is never whole in memory); returns the snapshot's other fields.
   */
  async restoreSnapshot(source: Uint8Array | ByteSource): Promise<NodeSnapshot> {
    const { state, mvcc } = readNodeSnapshot(
      source instanceof Uint8Array ? bytesSource(source) : source,
    );
    // A checkpoint points into the revision storage of the member that took it.
    assert(!MvccStore.isCheckpoint(mvcc), "a snapshot received must be a full one");
    const replaced = this.mvcc;
    this.mvcc = await StateMachine.restoreStore(state, this.lessor, this.#storeOptions, mvcc);
    replaced.retire();
    this.watchable.restored();
    this.restore(state);
    return state;
  }

  /**
   * Alarms, users and roles, and membership from a snapshot (MVCC and leases are restored with
   * the store).
   */
  restore(state: NodeSnapshot): void {
    this.alarmStore.restore(state.alarms);
    this.auth.restore(authSnapshotOf(state.auth));
    this.membership.restore(state.members, state.removed, state.clusterVersion);
  }

  /**
   * The snapshot of this state as of now (with Raft's configuration at the same index), as a
   * NodeSnapshot encoded in steps: everything but the MVCC store is encoded at once, the store is
   * captured at once and written when the steps run, after `reserve` zero bytes (room for a file
   * header). The state may change between the steps. A store on revision storage is written as a
   * checkpoint (MvccStore.checkpoint: its records stay where they are); one in memory whole
   * (encodeViewSteps). What a follower is sent is snapshotStream.
   */
  snapshotSteps(confState: ConfState, reserve = 0): Generator<void, Uint8Array> {
    if (this.mvcc.onRevisionStorage) {
      return this.mvcc.checkpoint(this.#snapshotFrame(confState, reserve));
    }
    const { view, frame } = this.#snapshotParts(confState, reserve);
    return closing(view, encodeViewSteps(view, frame));
  }

  /**
   * The whole state as of now, values included (what a follower is sent), as a stream: sized in
   * steps (`plan`), then encoded a chunk at a time as the reader takes them, from a view of the
   * store captured now and held until close() (after the last chunk, or when given up; more calls
   * do nothing). Never whole in memory.
   */
  snapshotStream(confState: ConfState): {
    plan: Generator<void, ChunkedBytes>;
    close(): void;
    /** What `plan` encodes (for a writer on another thread): the view, and the bytes before it. */
    view: MvccView;
    frame: (size: number) => Uint8Array;
  } {
    const { view, frame } = this.#snapshotParts(confState, 0);
    let closed = false;
    const close = () => {
      if (!closed) view.close?.(); // once: a second release would free what another view holds
      closed = true;
    };
    return { plan: streamViewSteps(view, frame), close, view, frame };
  }

  /** The store's view, and the bytes before its encoding (`reserve` zeros, the rest, field 1). */
  #snapshotParts(
    confState: ConfState,
    reserve: number,
  ): { view: MvccView; frame: (size: number) => Uint8Array } {
    return { frame: this.#snapshotFrame(confState, reserve), view: this.mvcc.view() };
  }

  /** The bytes before the store's encoding: `reserve` zeros, every other field, field 1's head. */
  #snapshotFrame(confState: ConfState, reserve: number): (size: number) => Uint8Array {
    const rest = toBinary(
      NodeSnapshotSchema,
      create(NodeSnapshotSchema, {
        alarms: this.alarmStore.list as AlarmMember[],
        members: this.membership.records(),
        removed: this.membership.removedIds(),
        clusterVersion: this.membership.clusterVersion,
        voters: confState.voters,
        learners: confState.learners,
        auth: authRecordOf(this.auth.snapshot()),
        leases: this.lessor.records().map((l) =>
          create(LeaseRecordSchema, {
            id: l.id,
            ttl: l.ttlSeconds,
            remainingTtl: l.remainingTtlSeconds,
          })
        ),
      }),
    );
    // Field 1 (`mvcc`, length-delimited) after the others: protobuf takes fields in any order.
    const frame = (size: number) => {
      const field = new Uint8Array(1 + uvarintSize(size));
      field[0] = 0x0a;
      putUvarint(field, 1, size);
      const head = new Uint8Array(reserve + rest.length + field.length);
      head.set(rest, reserve);
      head.set(field, reserve + rest.length);
      return head;
    };
    return frame;
  }

  /** The snapshot of this state in one step (small states and tests). */
  encode(confState: ConfState): Uint8Array {
    const steps = this.snapshotSteps(confState);
    for (;;) {
      const step = steps.next();
      if (step.done) return step.value;
    }
  }

  /**
   * Applies one committed request through the apply chain; throws the request's EtcdError when a
   * layer or the backend refuses it.
   */
  applyRequest(
    request: InternalRequest,
    entryTerm: number,
    index: number,
    replay = false,
  ): Response {
    const operation = request.request;
    assert(operation.case !== undefined, `request ${request.id} without an operation`);
    const caller = request.authUsername === "" && request.authRevision === 0n
      ? null
      : { username: request.authUsername, revision: Number(request.authRevision) };
    const meta: ApplyMeta = {
      logged: true,
      entryTerm,
      leaderTerm: request.leaderTerm,
      index,
      caller,
      replay,
    };
    return this.#apply(operation, meta);
  }

  /**
   * A read served from the applied state (a range, a read-only txn) through the same chain as
   * writes, marked as a read: auth checks it for `caller` exactly as a logged request; a CORRUPT
   * alarm lets it through, as etcd's base applier does.
   */
  read<K extends "range" | "txn">(
    operation: OperationOf<K>,
    caller: AuthInfo | null,
  ): Responses[K] {
    // The backend answers each kind with its own response (operation.ts's table).
    return this.#apply(operation, readMeta(caller)) as Responses[K];
  }

  /**
   * Applies a committed membership change to the member list; throws the EtcdError of a change
   * that is no longer valid (it raced with another change), leaving the membership as it was.
   */
  applyConfChange(cc: ConfChange, member: MemberInfo): void {
    switch (cc.type) {
      case ConfChangeType.AddNode:
        if (this.membership.get(cc.nodeId)?.isLearner) {
          this.membership.promote(cc.nodeId);
        } else {
          this.membership.checkAdd(member);
          this.membership.add(member);
        }
        break;
      case ConfChangeType.AddLearnerNode:
        this.membership.checkAdd(member);
        this.membership.add(member);
        break;
      case ConfChangeType.RemoveNode:
        this.membership.checkRemove(cc.nodeId);
        this.membership.remove(cc.nodeId);
        break;
      case ConfChangeType.UpdateNode:
        this.membership.checkUpdate(cc.nodeId, member.peerUrls);
        this.membership.updatePeerUrls(cc.nodeId, member.peerUrls);
        break;
    }
  }

  /** Hands a write's events (one revision) to the watchers, on every member alike. */
  #watched<R>(result: WriteResult<R>): WriteResult<R> {
    if (result.events.length > 0) this.watchable.notify(result.events, result.prevKvs);
    return result;
  }

  /** A revoked lease's keys, deleted in one revision on every member (a txn of deletes). */
  #deleteLeaseKeys(keys: Uint8Array[]): void {
    const txn = create(TxnRequestSchema, {
      success: keys.map((key) => ({
        request: { case: "requestDeleteRange" as const, value: { key } },
      })),
    });
    // Watchers see the revoke (or expiry) as DELETE events, like any other write.
    this.#watched(applyTxn(this.mvcc, txn));
  }
}

/** The leases a snapshot holds, as the lessor restores them. */
function leaseRecords(state: NodeSnapshot) {
  return state.leases.map((l) => ({
    id: l.id,
    ttlSeconds: l.ttl,
    remainingTtlSeconds: l.remainingTtl,
  }));
}

/**
 * Runs `steps`, closing `view` when they end: done, thrown, or abandoned with return() — even
 * before the first step, when a generator's own `finally` would not run.
 */
function closing<Y, T>(view: MvccView, steps: Generator<Y, T>): Generator<Y, T> {
  const inner = (function* () {
    try {
      return yield* steps;
    } finally {
      view.close?.();
    }
  })();
  const finish = inner.return.bind(inner);
  inner.return = (value: T) => {
    view.close?.();
    return finish(value);
  };
  return inner;
}
