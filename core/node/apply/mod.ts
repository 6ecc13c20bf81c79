/**
 * The apply chain: every operation a member applies (committed requests and the reads served from
 * the applied state) passes the same layers in order, as etcd wraps its applier:
 *
 * leader-term guard → corruption guard → capped (NOSPACE) → auth → backend
 *
 * Quotas join as a layer of their own (see docs/adr/0008-apply-chain.md).
 *
 * @example Build a chain and apply a read (the state comes from a member)
 * ```ts ignore
 * import { create } from "@bufbuild/protobuf";
 * import { RangeRequestSchema } from "../../../gen/etcdserverpb/rpc_pb.ts";
 * import { type BackendState, backend, capped, chain, corruptionGuard, readMeta } from "./mod.ts";
 *
 * declare const state: BackendState; // MVCC, lessor, alarms, membership of one member
 * const hasAlarm = state.alarms.has.bind(state.alarms);
 * const apply = chain([corruptionGuard(hasAlarm), capped(hasAlarm)], backend(state));
 * const response = apply({ case: "range", value: create(RangeRequestSchema, {}) }, readMeta(null));
 * ```
 *
 * @module
 */
export { authGuard, type AuthLayerState } from "./auth.ts";
export { backend, type BackendState } from "./backend.ts";
export { type Apply, type ApplyLayer, chain } from "./chain.ts";
export { capped, hasPut } from "./capped.ts";
export { corruptionGuard } from "./corruption_guard.ts";
export { leaderTermGuard } from "./leader_term.ts";
export {
  backendQuota,
  DEFAULT_QUOTA_BYTES,
  MAX_QUOTA_BYTES,
  type Quota,
  quotaCost,
  quotaGuard,
} from "./quota.ts";
export {
  type ApplyMeta,
  type LoggedOperation,
  type Operation,
  type OperationKind,
  type OperationOf,
  readMeta,
  type ReadOperation,
  type Response,
  type Responses,
  unreachable,
} from "./operation.ts";
