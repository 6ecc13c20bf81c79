/**
 * The apply chain: every operation a member applies (committed requests and the reads served from
 * the applied state) passes the same layers in order, as etcd wraps its applier:
 *
 * leader-term guard → corruption guard → capped (NOSPACE) → backend
 *
 * Auth and quotas join as layers of their own (see docs/adr/0008-apply-chain.md).
 *
 * @example Build a chain and apply a read
 * ```ts
 * import { backend, capped, chain, corruptionGuard, leaderTermGuard, readMeta } from "./mod.ts";
 * declare const state: import("./backend.ts").BackendState;
 * const apply = chain(
 *   [leaderTermGuard, corruptionGuard((t) => state.alarms.has(t)), capped((t) => state.alarms.has(t))],
 *   backend(state),
 * );
 * apply({ case: "range", value: rangeRequest }, readMeta);
 * ```
 *
 * @module
 */
export { backend, type BackendState } from "./backend.ts";
export { type Apply, type ApplyLayer, chain } from "./chain.ts";
export { capped, hasPut } from "./capped.ts";
export { corruptionGuard } from "./corruption_guard.ts";
export { leaderTermGuard } from "./leader_term.ts";
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
