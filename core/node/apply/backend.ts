/**
 * The last layer of the apply chain: carries an operation out on the member's state (MVCC with
 * its watchers, leases, alarms, membership attributes, users and roles) and builds its response. The dispatch is
 * exhaustive: a request kind added to the log without a case here does not type-check.
 */
import { create } from "@bufbuild/protobuf";
import {
  AlarmResponseSchema,
  AuthenticateResponseSchema,
  AuthUserAddRequestSchema,
  AuthUserChangePasswordRequestSchema,
  CompactionResponseSchema,
  LeaseGrantResponseSchema,
  LeaseRevokeResponseSchema,
  type ResponseHeader,
} from "../../../gen/etcdserverpb/rpc_pb.ts";
import type { AuthStore } from "../../auth/mod.ts";
import { Errors } from "../../errors.ts";
import type { Lessor } from "../../lease/mod.ts";
import type { MvccStore, WriteResult } from "../../mvcc/mod.ts";
import { applyDeleteRange, applyPut, applyTxn, range } from "../kv/mod.ts";
import type { AlarmStore } from "../alarms.ts";
import type { Membership } from "../membership.ts";
import type { Apply } from "./chain.ts";
import { unreachable } from "./operation.ts";

/** The state the backend changes, as the state machine holds it. */
export interface BackendState {
  /** The current MVCC store (replaced when a snapshot is applied). */
  mvcc(): MvccStore;
  readonly lessor: Lessor;
  readonly membership: Membership;
  readonly alarms: AlarmStore;
  readonly auth: AuthStore;
  /** The header of a response, taken after the operation (its revision). */
  header(): ResponseHeader;
  /** The lessor's clock (ms since the member started; never the wall clock). */
  leaseNowMs(): number;
  /** Hands a write's events (one revision) to this member's watchers. */
  watched<R>(result: WriteResult<R>): WriteResult<R>;
}

/** The backend applier over `state`. */
export function backend(state: BackendState): Apply {
  return (operation, meta) => {
    switch (operation.case) {
      case "range": {
        const response = range(state.mvcc(), operation.value, true);
        response.header = state.header();
        return response;
      }
      case "put": {
        const { response } = state.watched(applyPut(state.mvcc(), operation.value));
        response.header = state.header();
        return response;
      }
      case "deleteRange": {
        const { response } = state.watched(applyDeleteRange(state.mvcc(), operation.value));
        response.header = state.header();
        return response;
      }
      case "txn": {
        const { response } = state.watched(applyTxn(state.mvcc(), operation.value));
        response.header = state.header();
        return response;
      }
      case "compaction":
        state.mvcc().compact(Number(operation.value.revision));
        return create(CompactionResponseSchema, { header: state.header() });
      case "alarm":
        // etcd 3.4 answers Alarm without a response header (etcdctl prints `{}` for -w json).
        return create(AlarmResponseSchema, { alarms: state.alarms.apply(operation.value) });
      case "memberAttributes": {
        const { memberId, name, clientUrls } = operation.value;
        state.membership.setAttributes(memberId, name, clientUrls);
        return null;
      }
      case "clusterVersion":
        state.membership.clusterVersion = operation.value.version;
        return null;
      case "leaseGrant": {
        const { ID, TTL } = operation.value;
        const granted = state.lessor.grant(ID, TTL, state.leaseNowMs());
        return create(LeaseGrantResponseSchema, {
          header: state.header(),
          ID: granted.id,
          TTL: granted.ttlSeconds,
        });
      }
      case "leaseRevoke":
        state.lessor.revoke(operation.value.ID);
        return create(LeaseRevokeResponseSchema, { header: state.header() });
      case "leaseCheckpoint":
        for (const cp of operation.value.checkpoints) {
          state.lessor.checkpoint(cp.ID, cp.remainingTTL, state.leaseNowMs());
        }
        return null;
      case "authEnable":
        return headed(state.auth.authEnable(), state);
      case "authDisable":
        return headed(state.auth.authDisable(), state);
      case "authenticate": {
        // A login replayed at start issues nothing: its token expired with the old process.
        if (meta.replay) return Promise.reject(Errors.stopped());
        const { name, simpleToken } = operation.value;
        // The token is registered now (simple tokens), on every member alike; only a JWT's
        // signature is awaited. The header is the one of this apply.
        const header = state.header();
        return state.auth.authenticate(name, simpleToken, meta.index).then((token) =>
          create(AuthenticateResponseSchema, { header, token })
        );
      }
      case "authUserAdd": {
        const { name, options, hashedPassword } = operation.value;
        const request = create(AuthUserAddRequestSchema, { name, options });
        return headed(state.auth.userAdd(request, hashedPassword), state);
      }
      case "authUserDelete":
        return headed(state.auth.userDelete(operation.value), state);
      case "authUserChangePassword": {
        const { name, hashedPassword } = operation.value;
        const request = create(AuthUserChangePasswordRequestSchema, { name });
        return headed(state.auth.userChangePassword(request, hashedPassword), state);
      }
      case "authUserGrantRole":
        return headed(state.auth.userGrantRole(operation.value), state);
      case "authUserGet":
        return headed(state.auth.userGet(operation.value), state);
      case "authUserList":
        return headed(state.auth.userList(), state);
      case "authUserRevokeRole":
        return headed(state.auth.userRevokeRole(operation.value), state);
      case "authRoleAdd":
        return headed(state.auth.roleAdd(operation.value), state);
      case "authRoleGrantPermission":
        return headed(state.auth.roleGrantPermission(operation.value), state);
      case "authRoleGet":
        return headed(state.auth.roleGet(operation.value), state);
      case "authRoleList":
        return headed(state.auth.roleList(), state);
      case "authRoleRevokePermission":
        return headed(state.auth.roleRevokePermission(operation.value), state);
      case "authRoleDelete":
        return headed(state.auth.roleDelete(operation.value), state);
      default:
        return unreachable(operation);
    }
  };
}

/** Sets the header of an auth response (etcd's auth responses carry the current revision). */
function headed<R extends { header?: ResponseHeader }>(response: R, state: BackendState): R {
  response.header = state.header();
  return response;
}
