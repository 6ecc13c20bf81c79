/**
 * The auth layer: every operation is checked against the caller's permissions before it reaches
 * the backend, as etcd's authApplierV3 does, both for requests that went through the log (the
 * entry carries the caller's user and auth revision, so a permission revoked between propose and
 * apply is honoured on every member alike) and for reads served from the applied state.
 *
 * The rules are etcd 3.4.23's (auth/store.go, etcdserver/apply_auth.go), with the holes later
 * advisories closed denied as the patched releases deny them:
 * - put: write on the key; read on it too with prev_kv; write on every key already attached to
 *   the lease it attaches (whoever attaches must be able to revoke);
 * - delete: write on the range, read too with prev_kv; range: read on the range;
 * - txn: every compare (read) and every op of both branches at every nesting depth
 *   (GHSA-rfx7-8w68-q57q), puts with prev_kv and leases as above (GHSA-x35m-3gp4-4fh5);
 * - lease revoke: write on every attached key; lease grant: an authenticated caller
 *   (GHSA-q8m4-xhhv-38mg, 3.4.23 lets anyone);
 * - compaction and alarm activate/deactivate: the root role (3.4.23 lets anyone); listing alarms:
 *   an authenticated caller;
 * - auth management: the root role, except a user reading itself and a user reading a role it
 *   holds; Authenticate: anyone (the password was checked before proposing).
 *
 * Internal requests (a member publishing itself, the cluster version, lease checkpoints, the
 * leader's revoke of an expired lease) carry no caller and are not user requests: they pass.
 */
import type { AuthInfo, AuthStore } from "../../auth/mod.ts";
import {
  AlarmRequest_AlarmAction,
  type PutRequest,
  type TxnRequest,
} from "../../../gen/etcdserverpb/rpc_pb.ts";
import type { ApplyLayer } from "./chain.ts";
import { type Operation, unreachable } from "./operation.ts";

/** What the auth layer reads besides the auth store: the keys attached to a lease. */
export interface AuthLayerState {
  readonly auth: AuthStore;
  leaseKeys(id: bigint): Uint8Array[];
}

/** The auth layer over `state`. */
export function authGuard(state: AuthLayerState): ApplyLayer {
  return {
    name: "auth",
    apply(operation, meta, next) {
      // Nothing to check while auth is off (etcd's checks all start with IsAuthEnabled).
      if (state.auth.enabled) check(state, operation, meta.caller, meta.leaderTerm !== 0n);
      return next(operation, meta);
    },
  };
}

function check(
  state: AuthLayerState,
  operation: Operation,
  caller: AuthInfo | null,
  leaderRequest: boolean,
): void {
  const auth = state.auth;
  switch (operation.case) {
    case "range":
      auth.isRangePermitted(caller, operation.value.key, operation.value.rangeEnd);
      return;
    case "put":
      checkPut(state, caller, operation.value);
      return;
    case "deleteRange": {
      const { key, rangeEnd, prevKv } = operation.value;
      auth.isDeleteRangePermitted(caller, key, rangeEnd);
      if (prevKv) auth.isRangePermitted(caller, key, rangeEnd);
      return;
    }
    case "txn":
      checkTxn(state, caller, operation.value);
      return;
    case "compaction":
      auth.isAdminPermitted(caller);
      return;
    case "alarm":
      if (operation.value.action === AlarmRequest_AlarmAction.GET) {
        auth.isAuthenticated(caller);
      } else {
        auth.isAdminPermitted(caller);
      }
      return;
    case "leaseGrant":
      auth.isAuthenticated(caller);
      return;
    case "leaseRevoke":
      // The leader's revoke of an expired lease is the cluster's own, not a user's request.
      if (leaderRequest) return;
      auth.isAuthenticated(caller);
      checkLeaseKeys(state, caller, operation.value.ID);
      return;
    case "memberAttributes":
    case "clusterVersion":
    case "leaseCheckpoint":
    case "authenticate":
      return;
    case "authUserGet":
      // A user may read itself; anything else needs root (etcd's authApplierV3.UserGet).
      if (caller !== null && operation.value.name === caller.username) {
        return;
      }
      auth.isAdminPermitted(caller);
      return;
    case "authRoleGet":
      if (caller !== null && auth.hasRole(caller.username, operation.value.role)) return;
      auth.isAdminPermitted(caller);
      return;
    case "authEnable":
    case "authDisable":
    case "authUserAdd":
    case "authUserDelete":
    case "authUserChangePassword":
    case "authUserGrantRole":
    case "authUserList":
    case "authUserRevokeRole":
    case "authRoleAdd":
    case "authRoleGrantPermission":
    case "authRoleList":
    case "authRoleRevokePermission":
    case "authRoleDelete":
      auth.isAdminPermitted(caller);
      return;
    default:
      unreachable(operation);
  }
}

function checkPut(state: AuthLayerState, caller: AuthInfo | null, put: PutRequest): void {
  state.auth.isPutPermitted(caller, put.key);
  if (put.lease !== 0n) checkLeaseKeys(state, caller, put.lease);
  if (put.prevKv) state.auth.isRangePermitted(caller, put.key, new Uint8Array(0));
}

/** Write permission on every key attached to a lease (etcd's checkLeasePuts). */
function checkLeaseKeys(state: AuthLayerState, caller: AuthInfo | null, id: bigint): void {
  for (const key of state.leaseKeys(id)) state.auth.isPutPermitted(caller, key);
}

/** Every compare and every op of both branches, at every depth. */
function checkTxn(state: AuthLayerState, caller: AuthInfo | null, txn: TxnRequest): void {
  const auth = state.auth;
  for (const compare of txn.compare) auth.isRangePermitted(caller, compare.key, compare.rangeEnd);
  for (const op of [...txn.success, ...txn.failure]) {
    const request = op.request;
    switch (request.case) {
      case "requestRange":
        auth.isRangePermitted(caller, request.value.key, request.value.rangeEnd);
        break;
      case "requestPut":
        checkPut(state, caller, request.value);
        break;
      case "requestDeleteRange": {
        const { key, rangeEnd, prevKv } = request.value;
        auth.isDeleteRangePermitted(caller, key, rangeEnd);
        if (prevKv) auth.isRangePermitted(caller, key, rangeEnd);
        break;
      }
      case "requestTxn":
        checkTxn(state, caller, request.value);
        break;
      case undefined:
        break;
    }
  }
}
