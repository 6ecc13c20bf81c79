/**
 * The deterministic state machine every member applies committed entries to: MVCC with its
 * watchers, leases (a revoked lease's keys deleted in one revision), alarms, and membership
 * changes. Its state is a function of the applied log alone, so that every member holds the same
 * at each index; it is also what a snapshot encodes and restores.
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
  AlarmMemberSchema,
  type AlarmRequest,
  AlarmRequest_AlarmAction,
  AlarmResponseSchema,
  AlarmType,
  CompactionResponseSchema,
  LeaseGrantResponseSchema,
  LeaseRevokeResponseSchema,
  type ResponseHeader,
  type TxnRequest,
  TxnRequestSchema,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { Errors } from "../errors.ts";
import type { Lessor } from "../lease/mod.ts";
import { MvccStore, WatchableStore, type WriteResult } from "../mvcc/mod.ts";
import { type ConfChange, ConfChangeType, type ConfState } from "../raft/mod.ts";
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
  /** Raised alarms, kept sorted by member then type so that snapshots are deterministic. */
  #alarms: AlarmMember[] = [];
  #header: () => ResponseHeader;
  #leaseNowMs: () => number;

  constructor(init: {
    mvcc: MvccStore;
    lessor: Lessor;
    membership: Membership;
    /** The header of a response, taken after the write (its revision). */
    header: () => ResponseHeader;
    /** The lessor's clock (ms since the member started; never the wall clock). */
    leaseNowMs: () => number;
  }) {
    this.mvcc = init.mvcc;
    this.lessor = init.lessor;
    this.membership = init.membership;
    this.#header = init.header;
    this.#leaseNowMs = init.leaseNowMs;
    this.watchable = new WatchableStore(() => this.mvcc);
    this.lessor.setDeleter({ deleteKeys: (keys) => this.#deleteLeaseKeys(keys) });
  }

  /**
   * The MVCC store a snapshot holds (a new one without a snapshot), with its leases restored into
   * `lessor` first: restoring MVCC re-attaches live keys to them (etcd's order).
   */
  static restoreStore(state: NodeSnapshot | null, lessor: Lessor): MvccStore {
    if (state) lessor.restore(leaseRecords(state));
    return state ? MvccStore.decodeSnapshot(state.mvcc, lessor) : new MvccStore(lessor);
  }

  /** Raised alarms, sorted by member then type. */
  get alarms(): readonly AlarmMember[] {
    return this.#alarms;
  }

  /** Replaces the whole state with a snapshot's (one the leader sent). */
  restoreSnapshot(state: NodeSnapshot): void {
    this.mvcc = StateMachine.restoreStore(state, this.lessor);
    this.watchable.restored();
    this.restore(state);
  }

  /** Alarms and membership from a snapshot (MVCC and leases are restored with the store). */
  restore(state: NodeSnapshot): void {
    this.#alarms = [...state.alarms];
    this.membership.restore(state.members, state.removed, state.clusterVersion);
  }

  /** The snapshot of this state (with Raft's configuration at the same index). */
  encode(confState: ConfState): Uint8Array {
    return toBinary(
      NodeSnapshotSchema,
      create(NodeSnapshotSchema, {
        mvcc: this.mvcc.encodeSnapshot(),
        alarms: this.#alarms,
        members: this.membership.records(),
        removed: this.membership.removedIds(),
        clusterVersion: this.membership.clusterVersion,
        voters: confState.voters,
        learners: confState.learners,
        leases: this.lessor.records().map((l) =>
          create(LeaseRecordSchema, {
            id: l.id,
            ttl: l.ttlSeconds,
            remainingTtl: l.remainingTtlSeconds,
          })
        ),
      }),
    );
  }

  /** Applies one committed request; throws the request's EtcdError when apply rejects it. */
  applyRequest(request: InternalRequest): unknown {
    const r = request.request;
    switch (r.case) {
      case "put": {
        if (this.#hasAlarm(AlarmType.NOSPACE)) throw Errors.noSpace();
        const { response } = this.#watched(this.mvcc.put(r.value));
        response.header = this.#header();
        return response;
      }
      case "deleteRange": {
        const { response } = this.#watched(this.mvcc.deleteRange(r.value));
        response.header = this.#header();
        return response;
      }
      case "txn": {
        if (this.#hasAlarm(AlarmType.NOSPACE) && hasPut(r.value)) throw Errors.noSpace();
        const { response } = this.#watched(this.mvcc.txn(r.value));
        response.header = this.#header();
        return response;
      }
      case "compaction": {
        this.mvcc.compact(Number(r.value.revision));
        return create(CompactionResponseSchema, { header: this.#header() });
      }
      case "alarm":
        // etcd 3.4 answers Alarm without a response header (etcdctl prints `{}` for -w json).
        return create(AlarmResponseSchema, { alarms: this.#applyAlarm(r.value) });
      case "memberAttributes":
        this.membership.setAttributes(r.value.memberId, r.value.name, r.value.clientUrls);
        return null;
      case "clusterVersion":
        this.membership.clusterVersion = r.value.version;
        return null;
      case "leaseGrant": {
        if (this.#hasAlarm(AlarmType.NOSPACE)) throw Errors.noSpace();
        const granted = this.lessor.grant(r.value.ID, r.value.TTL, this.#leaseNowMs());
        return create(LeaseGrantResponseSchema, {
          header: this.#header(),
          ID: granted.id,
          TTL: granted.ttlSeconds,
        });
      }
      case "leaseRevoke":
        this.lessor.revoke(r.value.ID);
        return create(LeaseRevokeResponseSchema, { header: this.#header() });
      case "leaseCheckpoint":
        for (const cp of r.value.checkpoints) {
          this.lessor.checkpoint(cp.ID, cp.remainingTTL, this.#leaseNowMs());
        }
        return null;
      default:
        return null;
    }
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
    this.#watched(this.mvcc.txn(txn));
  }

  #hasAlarm(type: AlarmType): boolean {
    return this.#alarms.some((a) => a.alarm === type);
  }

  /** etcd's alarm store: GET lists (all, or one type), ACTIVATE raises, DEACTIVATE clears. */
  #applyAlarm(req: AlarmRequest): AlarmMember[] {
    const matches = (a: AlarmMember) => a.memberID === req.memberID && a.alarm === req.alarm;
    switch (req.action) {
      case AlarmRequest_AlarmAction.GET:
        return this.#alarms.filter((a) => req.alarm === AlarmType.NONE || a.alarm === req.alarm);
      case AlarmRequest_AlarmAction.ACTIVATE: {
        if (req.alarm === AlarmType.NONE) return [];
        const member = create(AlarmMemberSchema, { memberID: req.memberID, alarm: req.alarm });
        if (!this.#alarms.some(matches)) {
          this.#alarms = [...this.#alarms, member].sort(compareAlarms);
        }
        return [member];
      }
      case AlarmRequest_AlarmAction.DEACTIVATE: {
        const removed = this.#alarms.filter(matches);
        this.#alarms = this.#alarms.filter((a) => !matches(a));
        return removed;
      }
      default:
        return [];
    }
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

function compareAlarms(a: AlarmMember, b: AlarmMember): number {
  if (a.memberID !== b.memberID) return a.memberID < b.memberID ? -1 : 1;
  return a.alarm - b.alarm;
}

/** Whether any branch of a txn, at any depth, puts (what a NOSPACE alarm refuses). */
function hasPut(req: TxnRequest): boolean {
  return [...req.success, ...req.failure].some((op) =>
    op.request.case === "requestPut" ||
    (op.request.case === "requestTxn" && hasPut(op.request.value))
  );
}
