/**
 * etcd's client-visible errors: the exact gRPC status code and message etcd 3.4 sends, so that
 * clients' retry and error handling treat detcd's answers exactly like etcd's. Every layer throws
 * these; the server turns them into gRPC/Connect status, the CLI prints their message.
 */

/** gRPC status codes (google.golang.org/grpc/codes), numbered as on the wire. */
export const GrpcCode = {
  OK: 0,
  Canceled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  AlreadyExists: 6,
  PermissionDenied: 7,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Aborted: 10,
  OutOfRange: 11,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
  DataLoss: 15,
  Unauthenticated: 16,
} as const;

/** A gRPC status code number. */
export type GrpcCodeValue = typeof GrpcCode[keyof typeof GrpcCode];

/** A factory of one etcd error (an entry of `Errors`); also the error's identity. */
export type ErrorFactory = () => EtcdError;

/**
 * An error that crosses the API: carries the gRPC code and etcd's message verbatim. Errors made by
 * a factory of `Errors` remember it, so code asks `e.is(Errors.leaseNotFound)` instead of comparing
 * message strings; one that arrives over the wire gets its identity back from `fromStatus`.
 */
export class EtcdError extends Error {
  readonly #factory: ErrorFactory | undefined;

  constructor(readonly code: GrpcCodeValue, message: string, factory?: ErrorFactory) {
    super(message);
    this.name = "EtcdError";
    this.#factory = factory;
  }

  /** Whether this is the error `factory` makes (e.g. `Errors.leaseNotFound`). */
  is(factory: ErrorFactory): boolean {
    return this.#factory === factory;
  }

  /**
   * The error a peer or worker reported as a gRPC status: the known etcd error with that code and
   * message (with its identity), or an anonymous one. Decoding the wire is the one place where
   * the message is what tells errors apart, as clientv3's rpctypes does.
   */
  static fromStatus(code: GrpcCodeValue, message: string): EtcdError {
    const factory = byStatus().get(`${code}:${message}`);
    return factory ? factory() : new EtcdError(code, message);
  }
}

/** Whether `e` is the etcd error `factory` makes. */
export function isEtcdError(e: unknown, factory: ErrorFactory): e is EtcdError {
  return e instanceof EtcdError && e.is(factory);
}

function define(code: GrpcCodeValue, message: string): ErrorFactory {
  const factory = () => new EtcdError(code, message, factory);
  return factory;
}

let statusIndex: Map<string, ErrorFactory> | null = null;

/** Every factory of `Errors` by `code:message` (built on first use). */
function byStatus(): Map<string, ErrorFactory> {
  if (statusIndex === null) {
    statusIndex = new Map();
    for (const factory of Object.values(Errors)) {
      const e = factory();
      statusIndex.set(`${e.code}:${e.message}`, factory);
    }
  }
  return statusIndex;
}

const C = GrpcCode;

/** Factories for every etcd error detcd can return; call to get a fresh, throwable instance. */
export const Errors = {
  emptyKey: define(C.InvalidArgument, "etcdserver: key is not provided"),
  keyNotFound: define(C.InvalidArgument, "etcdserver: key not found"),
  valueProvided: define(C.InvalidArgument, "etcdserver: value is provided"),
  leaseProvided: define(C.InvalidArgument, "etcdserver: lease is provided"),
  tooManyOps: define(C.InvalidArgument, "etcdserver: too many operations in txn request"),
  duplicateKey: define(C.InvalidArgument, "etcdserver: duplicate key given in txn request"),
  /** etcd 3.5's answer to an unknown sort order/target (etcd 3.4 crashes on it). */
  invalidSortOption: define(C.InvalidArgument, "etcdserver: invalid sort option"),
  compacted: define(C.OutOfRange, "etcdserver: mvcc: required revision has been compacted"),
  futureRev: define(C.OutOfRange, "etcdserver: mvcc: required revision is a future revision"),
  noSpace: define(C.ResourceExhausted, "etcdserver: mvcc: database space exceeded"),
  leaseNotFound: define(C.NotFound, "etcdserver: requested lease not found"),
  leaseExist: define(C.FailedPrecondition, "etcdserver: lease already exists"),
  leaseTTLTooLarge: define(C.OutOfRange, "etcdserver: too large lease TTL"),
  watchCanceled: define(C.Canceled, "etcdserver: watch canceled"),
  memberExist: define(C.FailedPrecondition, "etcdserver: member ID already exist"),
  peerURLExist: define(C.FailedPrecondition, "etcdserver: Peer URLs already exists"),
  /** etcd 3.4 maps this to a non-status error, so clients see code Unknown. */
  memberNotEnoughStarted: define(
    C.Unknown,
    "etcdserver: re-configuration failed due to not enough started members",
  ),
  memberBadURLs: define(C.InvalidArgument, "etcdserver: given member URLs are invalid"),
  memberNotFound: define(C.NotFound, "etcdserver: member not found"),
  memberNotLearner: define(C.FailedPrecondition, "etcdserver: can only promote a learner member"),
  learnerNotReady: define(
    C.FailedPrecondition,
    "etcdserver: can only promote a learner member which is in sync with leader",
  ),
  tooManyLearners: define(C.FailedPrecondition, "etcdserver: too many learner members in cluster"),
  requestTooLarge: define(C.InvalidArgument, "etcdserver: request is too large"),
  tooManyRequests: define(C.ResourceExhausted, "etcdserver: too many requests"),
  rootUserNotExist: define(C.FailedPrecondition, "etcdserver: root user does not exist"),
  rootRoleNotExist: define(C.FailedPrecondition, "etcdserver: root user does not have root role"),
  userAlreadyExist: define(C.FailedPrecondition, "etcdserver: user name already exists"),
  userEmpty: define(C.InvalidArgument, "etcdserver: user name is empty"),
  userNotFound: define(C.FailedPrecondition, "etcdserver: user name not found"),
  roleAlreadyExist: define(C.FailedPrecondition, "etcdserver: role name already exists"),
  roleNotFound: define(C.FailedPrecondition, "etcdserver: role name not found"),
  roleEmpty: define(C.InvalidArgument, "etcdserver: role name is empty"),
  authFailed: define(
    C.InvalidArgument,
    "etcdserver: authentication failed, invalid user ID or password",
  ),
  permissionDenied: define(C.PermissionDenied, "etcdserver: permission denied"),
  roleNotGranted: define(C.FailedPrecondition, "etcdserver: role is not granted to the user"),
  permissionNotGranted: define(
    C.FailedPrecondition,
    "etcdserver: permission is not granted to the role",
  ),
  authNotEnabled: define(C.FailedPrecondition, "etcdserver: authentication is not enabled"),
  invalidAuthToken: define(C.Unauthenticated, "etcdserver: invalid auth token"),
  invalidAuthMgmt: define(C.InvalidArgument, "etcdserver: invalid auth management"),
  authOldRevision: define(C.InvalidArgument, "etcdserver: revision of auth store is old"),
  noLeader: define(C.Unavailable, "etcdserver: no leader"),
  notLeader: define(C.FailedPrecondition, "etcdserver: not leader"),
  leaderChanged: define(C.Unavailable, "etcdserver: leader changed"),
  notCapable: define(C.Unavailable, "etcdserver: not capable"),
  stopped: define(C.Unavailable, "etcdserver: server stopped"),
  timeout: define(C.Unavailable, "etcdserver: request timed out"),
  timeoutDueToLeaderFail: define(
    C.Unavailable,
    "etcdserver: request timed out, possibly due to previous leader failure",
  ),
  /** Not in etcd's gRPC error map, so clients see it with code Unknown. */
  timeoutLeaderTransfer: define(
    C.Unknown,
    "etcdserver: request timed out, leader transfer took too long",
  ),
  /** A proposal that never found a leader before the request timeout (etcd 3.4: code Unknown). */
  deadlineExceeded: define(C.Unknown, "context deadline exceeded"),
  unhealthy: define(C.Unavailable, "etcdserver: unhealthy cluster"),
  corrupt: define(C.DataLoss, "etcdserver: corrupt cluster"),
  notSupportedForLearner: define(C.Unavailable, "etcdserver: rpc not supported for learner"),
  badLeaderTransferee: define(C.FailedPrecondition, "etcdserver: bad leader transferee"),
  /**
   * Authenticate for a user added with --no-password (CN-based auth only). Not in etcd's gRPC
   * error map, so clients see the auth package's own text with code Unknown.
   */
  noPasswordUser: define(
    C.Unknown,
    "auth: authentication failed, password was given for no password user",
  ),
  /** Authenticate on a member whose JWT provider holds only a public key (code Unknown). */
  verifyOnlyToken: define(C.Unknown, "auth: token signing attempted with verify-only key"),
  /**
   * RoleGrantPermission without a permission: etcd 3.4.23 crashes applying it; etcd 3.5 refuses
   * it with this error, and so does detcd.
   */
  permissionNotGiven: define(C.InvalidArgument, "etcdserver: permission not given"),
  /**
   * The Maintenance service answers its auth refusals with the auth package's own errors, not
   * translated to etcd's gRPC errors (etcd 3.4.23's authMaintenanceServer): code Unknown.
   */
  maintenanceUserEmpty: define(C.Unknown, "auth: user name is empty"),
  maintenanceUserNotFound: define(C.Unknown, "auth: user not found"),
  maintenancePermissionDenied: define(C.Unknown, "auth: permission denied"),
  maintenanceInvalidAuthToken: define(C.Unknown, "auth: invalid auth token"),
} as const;

/**
 * A caller check's error as the Maintenance service reports it (the auth package's text, code
 * Unknown); other errors pass unchanged.
 */
export function asMaintenanceAuthError(e: unknown): unknown {
  if (!(e instanceof EtcdError)) return e;
  if (e.is(Errors.userEmpty)) return Errors.maintenanceUserEmpty();
  if (e.is(Errors.userNotFound)) return Errors.maintenanceUserNotFound();
  if (e.is(Errors.permissionDenied)) return Errors.maintenancePermissionDenied();
  if (e.is(Errors.invalidAuthToken)) return Errors.maintenanceInvalidAuthToken();
  return e;
}

/** grpc-go's status error text, `rpc error: code = <Name> desc = <message>`. */
export function grpcStatusText(e: EtcdError): string {
  const name = Object.entries(GrpcCode).find(([, code]) => code === e.code)?.[0] ?? "Unknown";
  return `rpc error: code = ${name} desc = ${e.message}`;
}
