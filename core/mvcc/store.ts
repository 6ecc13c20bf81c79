/**
 * Skeleton: the API the node layer builds against. Real implementation follows.
 */
import { create } from "@bufbuild/protobuf";
import type { Event } from "../../gen/mvccpb/kv_pb.ts";
import {
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  DeleteRangeResponseSchema,
  type PutRequest,
  type PutResponse,
  PutResponseSchema,
  type RangeRequest,
  type RangeResponse,
  RangeResponseSchema,
  type TxnRequest,
  type TxnResponse,
  TxnResponseSchema,
} from "../../gen/etcdserverpb/rpc_pb.ts";

/** Narrow view of the lessor that mvcc needs (lease package will implement it later). */
export interface LeaseHooks {
  /** true if the lease exists (a put with lease != 0 on an unknown lease fails with Errors.leaseNotFound()). */
  exists(id: bigint): boolean;
  /** Called when a key becomes attached to a lease. */
  attach(id: bigint, key: Uint8Array): void;
  /** Called when a key stops being attached to a lease. */
  detach(id: bigint, key: Uint8Array): void;
}

/** Default hooks: no lease exists. */
export const noLeases: LeaseHooks = {
  exists: () => false,
  attach: () => {},
  detach: () => {},
};

/** A write's response plus the events it produced, in order, for watchers. */
export interface WriteResult<R> {
  response: R;
  events: Event[];
}

/** etcd's MVCC store (skeleton). */
export class MvccStore {
  #revision = 1;
  #compactRevision = 0;
  constructor(readonly leases: LeaseHooks = noLeases) {}
  /** Current revision (1 on a fresh store, like etcd). */
  get revision(): number {
    return this.#revision;
  }
  /** Compacted revision (0 if never compacted). */
  get compactRevision(): number {
    return this.#compactRevision;
  }
  /** Read. */
  range(_req: RangeRequest): RangeResponse {
    return create(RangeResponseSchema);
  }
  /** Put. */
  put(_req: PutRequest): WriteResult<PutResponse> {
    return { response: create(PutResponseSchema), events: [] };
  }
  /** Delete. */
  deleteRange(_req: DeleteRangeRequest): WriteResult<DeleteRangeResponse> {
    return { response: create(DeleteRangeResponseSchema), events: [] };
  }
  /** Txn. */
  txn(_req: TxnRequest): WriteResult<TxnResponse> {
    return { response: create(TxnResponseSchema), events: [] };
  }
  /** Compact. */
  compact(_rev: number): void {}
  /** Hash. */
  hash(): number {
    return 0;
  }
  /** Size. */
  sizeBytes(): number {
    return 0;
  }
  /** Snapshot. */
  encodeSnapshot(): Uint8Array {
    return new Uint8Array();
  }
  /** Restore. */
  static decodeSnapshot(_bytes: Uint8Array, leases?: LeaseHooks): MvccStore {
    return new MvccStore(leases);
  }
}
