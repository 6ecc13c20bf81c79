/**
 * What the apply chain handles: every request a member applies, the ones that went through the
 * log (InternalRequest's cases) and the reads it serves from the applied state (a range, a
 * read-only txn), with the response each kind produces. One table, so that the node's facade is
 * typed by request kind and a new kind cannot be added without saying what it answers.
 */
import type { InternalRequest } from "../../../gen/detcdpb/internal_pb.ts";
import type { AuthInfo } from "../../auth/mod.ts";
import type {
  AlarmResponse,
  AuthDisableResponse,
  AuthEnableResponse,
  AuthenticateResponse,
  AuthRoleAddResponse,
  AuthRoleDeleteResponse,
  AuthRoleGetResponse,
  AuthRoleGrantPermissionResponse,
  AuthRoleListResponse,
  AuthRoleRevokePermissionResponse,
  AuthUserAddResponse,
  AuthUserChangePasswordResponse,
  AuthUserDeleteResponse,
  AuthUserGetResponse,
  AuthUserGrantRoleResponse,
  AuthUserListResponse,
  AuthUserRevokeRoleResponse,
  CompactionResponse,
  DeleteRangeResponse,
  LeaseGrantResponse,
  LeaseRevokeResponse,
  PutResponse,
  RangeRequest,
  RangeResponse,
  TxnResponse,
} from "../../../gen/etcdserverpb/rpc_pb.ts";

/** A request that was committed through the log (never an empty oneof). */
export type LoggedOperation = Exclude<InternalRequest["request"], { case: undefined }>;

/** A read served from the applied state without going through the log. */
export type ReadOperation = { case: "range"; value: RangeRequest };

/** Anything the apply chain handles. */
export type Operation = LoggedOperation | ReadOperation;

/** The name of an operation (`put`, `txn`, `leaseGrant`, ...). */
export type OperationKind = Operation["case"];

/** The operation of one kind. */
export type OperationOf<K extends OperationKind> = Extract<Operation, { case: K }>;

/**
 * What each kind answers. Internal requests that no client waits on with a response (a member
 * publishing itself, the cluster version, lease checkpoints) answer null.
 */
export interface Responses {
  range: RangeResponse;
  put: PutResponse;
  deleteRange: DeleteRangeResponse;
  txn: TxnResponse;
  compaction: CompactionResponse;
  alarm: AlarmResponse;
  memberAttributes: null;
  clusterVersion: null;
  leaseGrant: LeaseGrantResponse;
  leaseRevoke: LeaseRevokeResponse;
  leaseCheckpoint: null;
  authEnable: AuthEnableResponse;
  authDisable: AuthDisableResponse;
  /** The token is issued at apply; a JWT is signed asynchronously, hence the promise. */
  authenticate: Promise<AuthenticateResponse>;
  authUserAdd: AuthUserAddResponse;
  authUserDelete: AuthUserDeleteResponse;
  authUserChangePassword: AuthUserChangePasswordResponse;
  authUserGrantRole: AuthUserGrantRoleResponse;
  authUserGet: AuthUserGetResponse;
  authUserList: AuthUserListResponse;
  authUserRevokeRole: AuthUserRevokeRoleResponse;
  authRoleAdd: AuthRoleAddResponse;
  authRoleGrantPermission: AuthRoleGrantPermissionResponse;
  authRoleGet: AuthRoleGetResponse;
  authRoleList: AuthRoleListResponse;
  authRoleRevokePermission: AuthRoleRevokePermissionResponse;
  authRoleDelete: AuthRoleDeleteResponse;
}

/** The response of any operation. */
export type Response = Responses[OperationKind];

// Every kind has a response and every response a kind: a new InternalRequest case that is not
// listed in Responses fails to type-check here.
type MissingResponse = Exclude<OperationKind, keyof Responses>;
const everyKindAnswers: MissingResponse extends never ? true : never = true;
void everyKindAnswers;

/** What apply knows about where an operation came from. */
export interface ApplyMeta {
  /** Whether it came through the log (false: a read served from the applied state). */
  readonly logged: boolean;
  /** Term of the log entry that carried it; 0 for a read served without the log. */
  readonly entryTerm: number;
  /**
   * For requests only the leader of one term may make (lease expiry, checkpoints): that term;
   * 0n for requests any member may propose.
   */
  readonly leaderTerm: bigint;
  /** Raft index of the entry that carried it; 0 for a read served without the log. */
  readonly index: number;
  /**
   * Who asked: the user and auth revision of the caller's token (carried in the entry for
   * logged requests); null without a token.
   */
  readonly caller: AuthInfo | null;
  /**
   * Re-applied from the WAL while the member starts: nobody waits for it, and what lives only in
   * memory for a while (a simple token) is not issued again, as etcd (whose backend remembers
   * what it applied) never re-applies it.
   */
  readonly replay: boolean;
}

/** The meta of a read served from the applied state for `caller`. */
export function readMeta(caller: AuthInfo | null): ApplyMeta {
  return { logged: false, entryTerm: 0, leaderTerm: 0n, index: 0, caller, replay: false };
}

/** For the `default` of an exhaustive switch: a kind nobody handles fails to type-check. */
export function unreachable(value: never): never {
  throw new Error(`unhandled operation: ${JSON.stringify(value)}`);
}
