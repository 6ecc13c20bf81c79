/**
 * The etcd v3 client detcdctl talks through, behaving like clientv3 3.4 where users can see it:
 * calls wait for a ready connection until their deadline (gRPC "wait for ready"), a failed
 * endpoint is skipped for the next one, every failed attempt logs clientv3's
 * "retrying of unary invoker failed" warning, Unavailable errors are retried for idempotent
 * RPCs, and errors reach the CLI with the text clientv3 would give (etcd's own message for
 * known server errors, "context deadline exceeded", or grpc-go's "rpc error: ...").
 */

import { create } from "@bufbuild/protobuf";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import {
  type BidiStream,
  type CallOptions,
  Code,
  ConnectError,
  endpointScheme,
  GrpcConnection,
  GrpcError,
  type MethodDesc,
  parseEndpoint,
  type ResponseStream,
  type TlsOptions,
} from "./grpc_client.ts";
import {
  AlarmRequest_AlarmAction,
  AlarmRequestSchema,
  type AlarmResponse,
  AlarmResponseSchema,
  AlarmType,
  Auth,
  AuthDisableRequestSchema,
  type AuthDisableResponse,
  AuthEnableRequestSchema,
  type AuthEnableResponse,
  AuthenticateRequestSchema,
  type AuthenticateResponse,
  AuthRoleAddRequestSchema,
  type AuthRoleAddResponse,
  AuthRoleDeleteRequestSchema,
  type AuthRoleDeleteResponse,
  AuthRoleGetRequestSchema,
  type AuthRoleGetResponse,
  AuthRoleGrantPermissionRequestSchema,
  type AuthRoleGrantPermissionResponse,
  AuthRoleListRequestSchema,
  type AuthRoleListResponse,
  AuthRoleRevokePermissionRequestSchema,
  type AuthRoleRevokePermissionResponse,
  AuthUserAddRequestSchema,
  type AuthUserAddResponse,
  AuthUserChangePasswordRequestSchema,
  type AuthUserChangePasswordResponse,
  AuthUserDeleteRequestSchema,
  type AuthUserDeleteResponse,
  AuthUserGetRequestSchema,
  type AuthUserGetResponse,
  AuthUserGrantRoleRequestSchema,
  type AuthUserGrantRoleResponse,
  AuthUserListRequestSchema,
  type AuthUserListResponse,
  AuthUserRevokeRoleRequestSchema,
  type AuthUserRevokeRoleResponse,
  Cluster,
  type CompactionRequest,
  type CompactionResponse,
  DefragmentRequestSchema,
  type DefragmentResponse,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  HashKVRequestSchema,
  type HashKVResponse,
  KV,
  Lease,
  LeaseGrantRequestSchema,
  type LeaseGrantResponse,
  type LeaseKeepAliveRequest,
  type LeaseKeepAliveResponse,
  LeaseLeasesRequestSchema,
  type LeaseLeasesResponse,
  LeaseRevokeRequestSchema,
  type LeaseRevokeResponse,
  LeaseTimeToLiveRequestSchema,
  type LeaseTimeToLiveResponse,
  Maintenance,
  MemberAddRequestSchema,
  type MemberAddResponse,
  MemberListRequestSchema,
  type MemberListResponse,
  MemberPromoteRequestSchema,
  type MemberPromoteResponse,
  MemberRemoveRequestSchema,
  type MemberRemoveResponse,
  MemberUpdateRequestSchema,
  type MemberUpdateResponse,
  MoveLeaderRequestSchema,
  type MoveLeaderResponse,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  SnapshotRequestSchema,
  type SnapshotResponse,
  StatusRequestSchema,
  type StatusResponse,
  type TxnRequest,
  type TxnResponse,
  Watch,
  type WatchRequest,
  type WatchResponse,
} from "../gen/etcdserverpb/rpc_pb.ts";
import type { Permission_Type } from "../gen/authpb/auth_pb.ts";
import { PermissionSchema, UserAddOptionsSchema } from "../gen/authpb/auth_pb.ts";
import { Errors, type EtcdError } from "../core/errors.ts";
import { zapLine } from "./log.ts";

/** Every error message etcd's server sends that clientv3 recognises (rpctypes). */
const knownServerErrors = new Set<string>([
  "etcdserver: key is not provided",
  "etcdserver: key not found",
  "etcdserver: value is provided",
  "etcdserver: lease is provided",
  "etcdserver: too many operations in txn request",
  "etcdserver: duplicate key given in txn request",
  "etcdserver: mvcc: required revision has been compacted",
  "etcdserver: mvcc: required revision is a future revision",
  "etcdserver: mvcc: database space exceeded",
  "etcdserver: requested lease not found",
  "etcdserver: lease already exists",
  "etcdserver: too large lease TTL",
  "etcdserver: member ID already exist",
  "etcdserver: Peer URLs already exists",
  "etcdserver: re-configuration failed due to not enough started members",
  "etcdserver: given member URLs are invalid",
  "etcdserver: member not found",
  "etcdserver: can only promote a learner member",
  "etcdserver: can only promote a learner member which is in sync with leader",
  "etcdserver: too many learner members in cluster",
  "etcdserver: request is too large",
  "etcdserver: too many requests",
  "etcdserver: root user does not exist",
  "etcdserver: root user does not have root role",
  "etcdserver: user name already exists",
  "etcdserver: user name is empty",
  "etcdserver: user name not found",
  "etcdserver: role name already exists",
  "etcdserver: role name not found",
  "etcdserver: role name is empty",
  "etcdserver: authentication failed, invalid user ID or password",
  "etcdserver: permission denied",
  "etcdserver: role is not granted to the user",
  "etcdserver: permission is not granted to the role",
  "etcdserver: authentication is not enabled",
  "etcdserver: invalid auth token",
  "etcdserver: invalid auth management",
  "etcdserver: revision of auth store is old",
  "etcdserver: no leader",
  "etcdserver: not leader",
  "etcdserver: leader changed",
  "etcdserver: not capable",
  "etcdserver: server stopped",
  "etcdserver: request timed out",
  "etcdserver: request timed out, possibly due to previous leader failure",
  "etcdserver: request timed out, possibly due to connection lost",
  "etcdserver: request timed out, waiting for the applied index took too long",
  "etcdserver: unhealthy cluster",
  "etcdserver: corrupt cluster",
  "etcdserver: rpc not supported for learner",
  "etcdserver: bad leader transferee",
]);

/**
 * rpctypes.Error's identification of a server error: the gRPC code and etcd's text, which is all
 * the wire carries, held to the server's own table of errors.
 */
export function isEtcdError(e: GrpcError | undefined, which: () => EtcdError): boolean {
  if (e === undefined) return false;
  const reference = which();
  return e.code === reference.code && e.details === reference.message;
}

/** An RPC failure as clientv3 reports it; `message` is what etcdctl prints after "Error: ". */
export class EtcdClientError extends Error {
  constructor(message: string, readonly grpc?: GrpcError) {
    super(message);
    this.name = "EtcdClientError";
  }

  /** True if the server answered with `which` of etcd's errors (e.g. Errors.rootRoleNotExist). */
  is(which: () => EtcdError): boolean {
    return isEtcdError(this.grpc, which);
  }

  /** True if the server said "permission denied" (endpoint health counts that as healthy). */
  isPermissionDenied(): boolean {
    return this.message === "etcdserver: permission denied";
  }
}

/** Whether an RPC may be retried after an Unavailable error that reached the server. */
export type RetryPolicy = "repeatable" | "nonRepeatable";

/** Settings of a client, from etcdctl's global flags. */
export interface ClientConfig {
  endpoints: string[];
  /**
   * clientv3's Config.TLS: set when any TLS flag was given (or --insecure-transport=false). It
   * secures endpoints without a scheme; an https:// first endpoint gets TLS with the default
   * roots without it, and an http:// one never gets TLS.
   */
  tls?: TlsOptions;
  dialTimeoutMs: number;
  keepaliveTimeMs: number;
  keepaliveTimeoutMs: number;
  username?: string;
  password?: string;
  /** Receives clientv3's log lines (zap JSON), i.e. stderr. */
  log: (line: string) => void;
  now: () => Date;
}

/** The stack etcdctl 3.4.23's zap logger attaches to a failed snapshot stream. */
const SNAPSHOT_STREAM_STACK = [
  "go.etcd.io/etcd/clientv3.(*Client).streamClientInterceptor.func1",
  "\tgo.etcd.io/etcd/clientv3/retry_interceptor.go:129",
  "google.golang.org/grpc.(*ClientConn).NewStream",
  "\tgoogle.golang.org/grpc/stream.go:148",
  "google.golang.org/grpc.NewClientStream",
  "\tgoogle.golang.org/grpc/stream.go:155",
  "go.etcd.io/etcd/etcdserver/etcdserverpb.(*maintenanceClient).Snapshot",
  "\tgo.etcd.io/etcd/etcdserver/etcdserverpb/rpc.pb.go:4296",
  "go.etcd.io/etcd/clientv3.(*retryMaintenanceClient).Snapshot",
  "\tgo.etcd.io/etcd/clientv3/retry.go:214",
  "go.etcd.io/etcd/clientv3.(*maintenance).Snapshot",
  "\tgo.etcd.io/etcd/clientv3/maintenance.go:195",
  "go.etcd.io/etcd/clientv3/snapshot.(*v3Manager).Save",
  "\tgo.etcd.io/etcd/clientv3/snapshot/v3_snapshot.go:123",
  "go.etcd.io/etcd/etcdctl/ctlv3/command.snapshotSaveCommandFunc",
  "\tgo.etcd.io/etcd/etcdctl/ctlv3/command/snapshot_command.go:113",
  "github.com/spf13/cobra.(*Command).execute",
  "\tgithub.com/spf13/cobra/command.go:920",
  "github.com/spf13/cobra.(*Command).ExecuteC",
  "\tgithub.com/spf13/cobra/command.go:1044",
  "github.com/spf13/cobra.(*Command).Execute",
  "\tgithub.com/spf13/cobra/command.go:968",
  "go.etcd.io/etcd/etcdctl/ctlv3.Start",
  "\tgo.etcd.io/etcd/etcdctl/ctlv3/ctl_nocov.go:26",
  "main.main",
  "\tgo.etcd.io/etcd/etcdctl/main.go:35",
  "runtime.main",
  "\truntime/proc.go:250",
].join("\n");

const MAX_UNARY_RETRIES = 100;
const RETRY_BACKOFF_MS = 25;
const CONNECT_BACKOFF_MS = 1000;
const MIN_CONNECT_TIMEOUT_MS = 20_000;

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, Math.min(2 ** 31 - 1, Math.max(0, ms)));
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/**
 * clientv3's choice of transport credentials: the scheme of the endpoint dialled (the first one
 * for a balanced client) decides; without a scheme the configured TLS applies, if any.
 */
export function processCreds(scheme: string, tls: TlsOptions | undefined): TlsOptions | undefined {
  switch (scheme) {
    case "":
    case "unix":
      return tls;
    case "https":
    case "unixs":
      return tls ?? {};
    default:
      return undefined;
  }
}

/** Picks connections for calls: list order preferred, reconnecting on demand. */
class ConnectionPool {
  readonly #conns: (GrpcConnection | undefined)[];
  readonly #attempts: (Promise<void> | undefined)[];
  readonly #failedAt: (number | undefined)[];
  #anyFailure = false;
  #lastDialError = "";

  /**
   * `direct` pools dial one endpoint like grpc's passthrough resolver, whose deadline errors
   * carry the dial error; balanced pools report the round-robin balancer's summary instead.
   */
  readonly #endpoints: string[];
  readonly #cfg: ClientConfig;
  readonly #direct: boolean;

  /** The transport credentials every connection of this pool uses (undefined: plaintext). */
  readonly #creds: TlsOptions | undefined;

  constructor(endpoints: string[], cfg: ClientConfig, direct = false) {
    this.#creds = processCreds(endpointScheme(endpoints[0] ?? ""), cfg.tls);
    this.#endpoints = endpoints;
    this.#cfg = cfg;
    this.#direct = direct;
    this.#conns = endpoints.map(() => undefined);
    this.#attempts = endpoints.map(() => undefined);
    this.#failedAt = endpoints.map(() => undefined);
  }

  #ready(i: number): GrpcConnection | undefined {
    const c = this.#conns[i];
    if (c && !c.isClosed()) return c;
    this.#conns[i] = undefined;
    return undefined;
  }

  #startAttempt(i: number, deadlineMs: number): void {
    if (this.#attempts[i] || this.#ready(i)) return;
    const last = this.#failedAt[i];
    if (last !== undefined && Date.now() - last < CONNECT_BACKOFF_MS) return;
    // grpc-go gives a connection attempt at least 20s, whatever --dial-timeout says.
    const timeoutMs = Math.max(1, Math.min(MIN_CONNECT_TIMEOUT_MS, deadlineMs - Date.now()));
    const endpoint = parseEndpoint(this.#endpoints[i]);
    endpoint.secure = this.#creds !== undefined;
    this.#attempts[i] = GrpcConnection.connect(endpoint, {
      timeoutMs,
      keepaliveTimeMs: this.#cfg.keepaliveTimeMs,
      keepaliveTimeoutMs: this.#cfg.keepaliveTimeoutMs,
      tls: this.#creds,
    }).then(
      (c) => {
        this.#conns[i] = c;
        this.#failedAt[i] = undefined;
      },
      (e: Error) => {
        this.#failedAt[i] = Date.now();
        this.#anyFailure = true;
        this.#lastDialError = e instanceof ConnectError ? e.balancerText() : e.message;
      },
    ).finally(() => {
      this.#attempts[i] = undefined;
    });
  }

  /** A ready connection, waiting until `deadlineMs` (gRPC wait-for-ready semantics). */
  async pick(deadlineMs: number, signal?: AbortSignal): Promise<GrpcConnection> {
    for (;;) {
      // Prefer the earliest endpoint in the list once every earlier one has settled.
      for (let i = 0; i < this.#endpoints.length; i++) {
        const c = this.#ready(i);
        if (c) return c;
        if (this.#attempts[i]) break;
      }
      if (signal?.aborted) throw new GrpcError(Code.Canceled, "context canceled");
      const remaining = deadlineMs - Date.now();
      if (remaining <= 0) {
        throw new GrpcError(
          Code.DeadlineExceeded,
          !this.#anyFailure
            ? "context deadline exceeded"
            : this.#direct
            ? `latest balancer error: ${this.#lastDialError}`
            : "latest balancer error: all SubConns are in TransientFailure",
        );
      }
      for (let i = 0; i < this.#endpoints.length; i++) this.#startAttempt(i, deadlineMs);
      const pending = this.#attempts.filter((a): a is Promise<void> => a !== undefined);
      const waitMs = pending.length > 0 ? remaining : Math.min(remaining, this.#nextRetryInMs());
      const ac = new AbortController();
      await Promise.race([
        ...pending,
        sleep(waitMs, ac.signal),
        ...(signal ? [new Promise<void>((r) => signal.addEventListener("abort", () => r()))] : []),
      ]);
      ac.abort();
    }
  }

  #nextRetryInMs(): number {
    let soonest = CONNECT_BACKOFF_MS;
    for (const t of this.#failedAt) {
      if (t !== undefined) {
        soonest = Math.min(soonest, Math.max(1, CONNECT_BACKOFF_MS - (Date.now() - t)));
      }
    }
    return soonest;
  }

  close(): void {
    for (const c of this.#conns) c?.close();
  }
}

/** Options of one client call. */
export interface RequestOptions {
  /** Absolute deadline (Date.now() clock); none means wait forever. */
  deadlineMs?: number;
  signal?: AbortSignal;
  /** Send no token (logins: clientv3's authenticator dials without per-RPC credentials). */
  withoutToken?: boolean;
}

/** A clientv3-like etcd client over detcdctl's own gRPC transport. */
export class EtcdClient {
  /** "client-<uuid>", part of the log target like clientv3's resolver group id. */
  readonly id = `client-${crypto.randomUUID()}`;
  readonly #pool: ConnectionPool;
  readonly #direct = new Map<string, ConnectionPool>();
  #token: string | undefined;
  /** Whether calls carry the token (the first login succeeded). */
  #attachToken = false;

  readonly #cfg: ClientConfig;

  constructor(cfg: ClientConfig) {
    this.#cfg = cfg;
    this.#pool = new ConnectionPool(cfg.endpoints, cfg);
  }

  /** The --dial-timeout this client was built with. */
  dialTimeoutMs(): number {
    return this.#cfg.dialTimeoutMs;
  }

  /** The endpoints this client balances over. */
  endpoints(): string[] {
    return [...this.#cfg.endpoints];
  }

  #target(): string {
    return `endpoint://${this.id}/${parseEndpoint(this.#cfg.endpoints[0]).authority}`;
  }

  /** clientv3's authTokenBundle exists: both a user name and a password were configured. */
  #hasCredentials(): boolean {
    return Boolean(this.#cfg.username) && Boolean(this.#cfg.password);
  }

  /**
   * Authenticates when a user is configured (clientv3 does this while dialling, bounded by
   * the dial timeout); the token then rides on every call as the `token` header. When the
   * server has auth disabled the client goes on without a token, and (as in clientv3, which
   * attaches its per-RPC credentials only after a successful first login) never sends one.
   */
  async authenticate(): Promise<void> {
    if (!this.#hasCredentials()) return;
    const deadlineMs = Date.now() + (this.#cfg.dialTimeoutMs || 2000);
    try {
      await this.#getToken({ deadlineMs });
      this.#attachToken = true;
    } catch (e) {
      if (e instanceof EtcdClientError && e.is(Errors.authNotEnabled)) return;
      throw e;
    }
  }

  /**
   * clientv3's getToken: Authenticate against each endpoint in turn until one answers; "auth
   * not enabled" ends the search at once. Every failed attempt logs the retry warning.
   */
  async #getToken(opts: RequestOptions): Promise<void> {
    let last: unknown;
    for (const ep of this.#cfg.endpoints) {
      try {
        const resp: AuthenticateResponse = await this.#invoke(
          this.#pool,
          Auth.method.authenticate,
          create(AuthenticateRequestSchema, {
            name: this.#cfg.username,
            password: this.#cfg.password,
          }),
          "repeatable",
          { ...opts, withoutToken: true },
          true,
          `endpoint://${this.id}/${parseEndpoint(ep).authority}`,
          false,
        );
        this.#token = resp.token;
        return;
      } catch (e) {
        if (e instanceof EtcdClientError && e.is(Errors.authNotEnabled)) throw e;
        last = e;
      }
    }
    throw last;
  }

  /**
   * What clientv3's stream interceptor does before it opens any stream (watch, lease
   * keep-alive, snapshot) when credentials are configured: log in again for a fresh token.
   * A failure other than "auth not enabled" fails the stream, with clientv3's error line.
   */
  async #tokenForStream(opts: RequestOptions): Promise<void> {
    if (!this.#hasCredentials()) return;
    try {
      await this.#getToken(opts);
    } catch (e) {
      if (e instanceof EtcdClientError && e.is(Errors.authNotEnabled)) return;
      if (e instanceof EtcdClientError) {
        this.#cfg.log(
          zapLine(
            this.#cfg.now(),
            "error",
            "clientv3/retry_interceptor.go:114",
            "clientv3/retry_interceptor: getToken failed",
            [["error", e.message]],
          ),
        );
      }
      throw e;
    }
  }

  #callOptions(opts: RequestOptions): CallOptions {
    return {
      deadlineMs: opts.deadlineMs,
      signal: opts.signal,
      metadata: this.#attachToken && this.#token && !opts.withoutToken
        ? { token: this.#token }
        : undefined,
    };
  }

  /**
   * clientv3's shouldRefreshToken: "user name is empty" while credentials exist (the token got
   * lost), or a token the server no longer accepts (invalid, or minted before an auth change).
   */
  #shouldRefreshToken(e: GrpcError): boolean {
    if (isEtcdError(e, Errors.userEmpty)) return this.#hasCredentials();
    return isEtcdError(e, Errors.invalidAuthToken) || isEtcdError(e, Errors.authOldRevision);
  }

  /** One unary RPC through clientv3's retry interceptor. */
  async #invoke<I extends DescMessage, O extends DescMessage>(
    pool: ConnectionPool,
    method: MethodDesc<I, O>,
    request: MessageShape<I>,
    policy: RetryPolicy,
    opts: RequestOptions,
    log = true,
    target = this.#target(),
    retryAuth = true,
  ): Promise<MessageShape<O>> {
    const deadlineMs = opts.deadlineMs ?? Infinity;
    const quorum = Math.floor(this.#cfg.endpoints.length / 2) + 1;
    let lastErr: GrpcError | undefined;
    for (let attempt = 0; attempt < MAX_UNARY_RETRIES; attempt++) {
      if (attempt > 0 && attempt % quorum === 0) {
        const wait = RETRY_BACKOFF_MS * (1 + 0.1 * (Math.random() * 2 - 1));
        if (Date.now() + wait >= deadlineMs) {
          await sleep(deadlineMs - Date.now());
          throw this.#toClientError(
            new GrpcError(Code.DeadlineExceeded, "context deadline exceeded"),
            deadlineMs,
            opts,
          );
        }
        await sleep(wait);
      }
      try {
        const conn = await pool.pick(deadlineMs, opts.signal);
        return await conn.unary(method, request, this.#callOptions(opts));
      } catch (e) {
        if (!(e instanceof GrpcError)) throw e;
        lastErr = e;
        if (log) {
          this.#cfg.log(
            zapLine(
              this.#cfg.now(),
              "warn",
              "clientv3/retry_interceptor.go:62",
              "retrying of unary invoker failed",
              [
                ["target", target],
                ["attempt", attempt],
                ["error", e.toGoString()],
              ],
            ),
          );
        }
        if (e.code === Code.DeadlineExceeded || e.code === Code.Canceled) {
          if (Date.now() >= deadlineMs || opts.signal?.aborted) break;
          continue;
        }
        if (retryAuth && this.#shouldRefreshToken(e)) {
          // clientv3's refreshToken: without credentials there is nothing to refresh, and
          // the call is simply tried again.
          if (!this.#hasCredentials()) continue;
          this.#token = undefined;
          try {
            await this.#getToken(opts);
          } catch (tokenError) {
            if (!(tokenError instanceof EtcdClientError)) throw tokenError;
            this.#cfg.log(
              zapLine(
                this.#cfg.now(),
                "warn",
                "clientv3/retry_interceptor.go:79",
                "retrying of unary invoker failed to fetch new auth token",
                [["target", target], ["error", tokenError.message]],
              ),
            );
            throw tokenError;
          }
          continue;
        }
        if (!isSafeRetry(e, policy)) break;
      }
    }
    throw this.#toClientError(lastErr!, deadlineMs, opts);
  }

  #toClientError(e: GrpcError, deadlineMs: number, opts: RequestOptions): EtcdClientError {
    if (knownServerErrors.has(e.details)) return new EtcdClientError(e.details, e);
    if (e.code === Code.DeadlineExceeded || e.code === Code.Canceled) {
      if (opts.signal?.aborted) return new EtcdClientError("context canceled", e);
      if (Date.now() >= deadlineMs) return new EtcdClientError("context deadline exceeded", e);
    }
    return new EtcdClientError(e.toGoString(), e);
  }

  /** KV.Range. */
  range(req: RangeRequest, opts: RequestOptions = {}): Promise<RangeResponse> {
    return this.#invoke(this.#pool, KV.method.range, req, "repeatable", opts);
  }

  /** KV.Put. */
  put(req: PutRequest, opts: RequestOptions = {}): Promise<PutResponse> {
    return this.#invoke(this.#pool, KV.method.put, req, "nonRepeatable", opts);
  }

  /** KV.DeleteRange. */
  deleteRange(req: DeleteRangeRequest, opts: RequestOptions = {}): Promise<DeleteRangeResponse> {
    return this.#invoke(this.#pool, KV.method.deleteRange, req, "nonRepeatable", opts);
  }

  /** KV.Txn. */
  txn(req: TxnRequest, opts: RequestOptions = {}): Promise<TxnResponse> {
    return this.#invoke(this.#pool, KV.method.txn, req, "nonRepeatable", opts);
  }

  /** KV.Compact. */
  compact(req: CompactionRequest, opts: RequestOptions = {}): Promise<CompactionResponse> {
    return this.#invoke(this.#pool, KV.method.compact, req, "nonRepeatable", opts);
  }

  /** Maintenance.Alarm GET of every alarm of every member (clientv3's AlarmList). */
  alarmList(opts: RequestOptions = {}): Promise<AlarmResponse> {
    const req = create(AlarmRequestSchema, {
      action: AlarmRequest_AlarmAction.GET,
      memberID: 0n,
      alarm: AlarmType.NONE,
    });
    return this.#invoke(this.#pool, Maintenance.method.alarm, req, "repeatable", opts);
  }

  /**
   * clientv3's AlarmDisarm of everything: lists the alarms, then deactivates each one; the answer
   * holds what was deactivated and no header.
   */
  async alarmDisarmAll(opts: RequestOptions = {}): Promise<AlarmResponse> {
    const listed = await this.alarmList(opts);
    const result = create(AlarmResponseSchema, {});
    for (const alarm of listed.alarms) {
      const req = create(AlarmRequestSchema, {
        action: AlarmRequest_AlarmAction.DEACTIVATE,
        memberID: alarm.memberID,
        alarm: alarm.alarm,
      });
      const resp = await this.#invoke(
        this.#pool,
        Maintenance.method.alarm,
        req,
        "repeatable",
        opts,
      );
      result.alarms.push(...resp.alarms);
    }
    return result;
  }

  /** Cluster.MemberList. */
  memberList(opts: RequestOptions = {}): Promise<MemberListResponse> {
    return this.#invoke(
      this.#pool,
      Cluster.method.memberList,
      create(MemberListRequestSchema, {}),
      "repeatable",
      opts,
    );
  }

  /**
   * Cluster.MemberAdd. The peer URLs go to the server as given (clientv3 validates them first;
   * callers do that with validatePeerURLs). Membership changes are never retried once sent.
   */
  memberAdd(
    peerURLs: string[],
    isLearner: boolean,
    opts: RequestOptions = {},
  ): Promise<MemberAddResponse> {
    return this.#invoke(
      this.#pool,
      Cluster.method.memberAdd,
      create(MemberAddRequestSchema, { peerURLs, isLearner }),
      "nonRepeatable",
      opts,
    );
  }

  /** Cluster.MemberRemove. */
  memberRemove(id: bigint, opts: RequestOptions = {}): Promise<MemberRemoveResponse> {
    return this.#invoke(
      this.#pool,
      Cluster.method.memberRemove,
      create(MemberRemoveRequestSchema, { ID: id }),
      "nonRepeatable",
      opts,
    );
  }

  /** Cluster.MemberUpdate (peer URLs validated by the caller, as for memberAdd). */
  memberUpdate(
    id: bigint,
    peerURLs: string[],
    opts: RequestOptions = {},
  ): Promise<MemberUpdateResponse> {
    return this.#invoke(
      this.#pool,
      Cluster.method.memberUpdate,
      create(MemberUpdateRequestSchema, { ID: id, peerURLs }),
      "nonRepeatable",
      opts,
    );
  }

  /** Cluster.MemberPromote. */
  memberPromote(id: bigint, opts: RequestOptions = {}): Promise<MemberPromoteResponse> {
    return this.#invoke(
      this.#pool,
      Cluster.method.memberPromote,
      create(MemberPromoteRequestSchema, { ID: id }),
      "nonRepeatable",
      opts,
    );
  }

  /** Maintenance.MoveLeader; only the current leader accepts it. */
  moveLeader(targetID: bigint, opts: RequestOptions = {}): Promise<MoveLeaderResponse> {
    return this.#invoke(
      this.#pool,
      Maintenance.method.moveLeader,
      create(MoveLeaderRequestSchema, { targetID }),
      "repeatable",
      opts,
    );
  }

  /**
   * clientv3's Dial of one endpoint for a maintenance call (Status, HashKV): with credentials
   * every such dial logs in again first, and a failed login fails the call as a failed dial.
   */
  async #dialForMaintenance(endpoint: string): Promise<void> {
    if (!this.#hasCredentials()) return;
    const deadlineMs = Date.now() + (this.#cfg.dialTimeoutMs || 2000);
    try {
      await this.#getToken({ deadlineMs });
    } catch (e) {
      if (!(e instanceof EtcdClientError)) throw e;
      if (e.is(Errors.authNotEnabled)) return;
      throw new EtcdClientError(
        `failed to dial endpoint ${endpoint} with maintenance client: ${e.message}`,
        e.grpc,
      );
    }
  }

  /** Maintenance.Status of one endpoint, dialled directly like clientv3's Status(ctx, ep). */
  async status(endpoint: string, opts: RequestOptions = {}): Promise<StatusResponse> {
    await this.#dialForMaintenance(endpoint);
    return this.#invoke(
      this.directPool(endpoint),
      Maintenance.method.status,
      create(StatusRequestSchema, {}),
      "repeatable",
      opts,
      true,
      `passthrough:///${endpoint}`,
    );
  }

  /** Maintenance.HashKV of one endpoint, dialled directly. */
  async hashKV(
    endpoint: string,
    revision: bigint,
    opts: RequestOptions = {},
  ): Promise<HashKVResponse> {
    await this.#dialForMaintenance(endpoint);
    return this.#invoke(
      this.directPool(endpoint),
      Maintenance.method.hashKV,
      create(HashKVRequestSchema, { revision }),
      "repeatable",
      opts,
      true,
      `passthrough:///${endpoint}`,
    );
  }

  /** Maintenance.Defragment of one endpoint, dialled directly (never retried, as clientv3's). */
  async defragment(endpoint: string, opts: RequestOptions = {}): Promise<DefragmentResponse> {
    await this.#dialForMaintenance(endpoint);
    return this.#invoke(
      this.directPool(endpoint),
      Maintenance.method.defragment,
      create(DefragmentRequestSchema, {}),
      "nonRepeatable",
      opts,
      true,
      `passthrough:///${endpoint}`,
    );
  }

  /** Lease.LeaseGrant (ID 0: the server picks one). */
  leaseGrant(ttl: bigint, opts: RequestOptions = {}): Promise<LeaseGrantResponse> {
    return this.#invoke(
      this.#pool,
      Lease.method.leaseGrant,
      create(LeaseGrantRequestSchema, { TTL: ttl, ID: 0n }),
      "repeatable",
      opts,
    );
  }

  /** Lease.LeaseRevoke. */
  leaseRevoke(id: bigint, opts: RequestOptions = {}): Promise<LeaseRevokeResponse> {
    return this.#invoke(
      this.#pool,
      Lease.method.leaseRevoke,
      create(LeaseRevokeRequestSchema, { ID: id }),
      "repeatable",
      opts,
    );
  }

  /** Lease.LeaseTimeToLive. */
  leaseTimeToLive(
    id: bigint,
    keys: boolean,
    opts: RequestOptions = {},
  ): Promise<LeaseTimeToLiveResponse> {
    return this.#invoke(
      this.#pool,
      Lease.method.leaseTimeToLive,
      create(LeaseTimeToLiveRequestSchema, { ID: id, keys }),
      "repeatable",
      opts,
    );
  }

  /** Lease.LeaseLeases. */
  leaseLeases(opts: RequestOptions = {}): Promise<LeaseLeasesResponse> {
    return this.#invoke(
      this.#pool,
      Lease.method.leaseLeases,
      create(LeaseLeasesRequestSchema, {}),
      "repeatable",
      opts,
    );
  }

  /**
   * Opens a Lease.LeaseKeepAlive stream on a ready connection (waiting for one like clientv3's
   * streams do). Failures reach the caller as EtcdClientError.
   */
  async leaseKeepAliveStream(
    opts: RequestOptions = {},
  ): Promise<BidiStream<LeaseKeepAliveRequest, LeaseKeepAliveResponse>> {
    await this.#tokenForStream(opts);
    const conn = await this.#pickOrThrow(opts);
    return conn.bidiStream(Lease.method.leaseKeepAlive, this.#callOptions(opts));
  }

  /**
   * Opens a Watch.Watch stream; `requireLeader` adds the "hasleader" metadata that
   * clientv3.WithRequireLeader sets (etcdctl always does).
   */
  async watchStream(
    requireLeader: boolean,
    opts: RequestOptions = {},
  ): Promise<BidiStream<WatchRequest, WatchResponse>> {
    await this.#tokenForStream(opts);
    const conn = await this.#pickOrThrow(opts);
    const call = this.#callOptions(opts);
    if (requireLeader) call.metadata = { ...call.metadata, hasleader: "true" };
    return conn.bidiStream(Watch.method.watch, call);
  }

  /**
   * Opens a Maintenance.Snapshot stream (clientv3's Snapshot): the request is sent at once, the
   * database then arrives in chunks, its SHA-256 last.
   */
  async snapshotStream(opts: RequestOptions = {}): Promise<ResponseStream<SnapshotResponse>> {
    await this.#tokenForStream(opts);
    let conn: GrpcConnection;
    try {
      conn = await this.#pickOrThrow(opts);
    } catch (e) {
      // clientv3 retries Snapshot's stream, so its stream interceptor logs a stream that could
      // not be opened (no ready connection before the deadline), with zap's stack trace.
      if (e instanceof EtcdClientError && e.grpc) {
        this.#cfg.log(
          zapLine(
            this.#cfg.now(),
            "error",
            "clientv3/retry_interceptor.go:129",
            "streamer failed to create ClientStream",
            [["error", e.grpc.toGoString()], ["stacktrace", SNAPSHOT_STREAM_STACK]],
          ),
        );
      }
      throw e;
    }
    const stream = conn.bidiStream(Maintenance.method.snapshot, this.#callOptions(opts));
    stream.send(create(SnapshotRequestSchema, {}));
    stream.closeSend();
    return stream;
  }

  /** One Auth service call; clientv3 retries only the read-only ones (user/role get/list). */
  #authCall<I extends DescMessage, O extends DescMessage>(
    method: MethodDesc<I, O>,
    request: MessageShape<I>,
    opts: RequestOptions,
    policy: RetryPolicy = "nonRepeatable",
  ): Promise<MessageShape<O>> {
    return this.#invoke(this.#pool, method, request, policy, opts);
  }

  /** Auth.AuthEnable. */
  authEnable(opts: RequestOptions = {}): Promise<AuthEnableResponse> {
    return this.#authCall(Auth.method.authEnable, create(AuthEnableRequestSchema, {}), opts);
  }

  /** Auth.AuthDisable. */
  authDisable(opts: RequestOptions = {}): Promise<AuthDisableResponse> {
    return this.#authCall(Auth.method.authDisable, create(AuthDisableRequestSchema, {}), opts);
  }

  /** Auth.UserAdd (clientv3's UserAddWithOptions). */
  userAdd(
    name: string,
    password: string,
    noPassword: boolean,
    opts: RequestOptions = {},
  ): Promise<AuthUserAddResponse> {
    const options = create(UserAddOptionsSchema, { noPassword });
    const req = create(AuthUserAddRequestSchema, { name, password, options });
    return this.#authCall(Auth.method.userAdd, req, opts);
  }

  /** Auth.UserDelete. */
  userDelete(name: string, opts: RequestOptions = {}): Promise<AuthUserDeleteResponse> {
    const req = create(AuthUserDeleteRequestSchema, { name });
    return this.#authCall(Auth.method.userDelete, req, opts);
  }

  /** Auth.UserGet. */
  userGet(name: string, opts: RequestOptions = {}): Promise<AuthUserGetResponse> {
    const req = create(AuthUserGetRequestSchema, { name });
    return this.#authCall(Auth.method.userGet, req, opts, "repeatable");
  }

  /** Auth.UserList. */
  userList(opts: RequestOptions = {}): Promise<AuthUserListResponse> {
    const req = create(AuthUserListRequestSchema, {});
    return this.#authCall(Auth.method.userList, req, opts, "repeatable");
  }

  /** Auth.UserChangePassword. */
  userChangePassword(
    name: string,
    password: string,
    opts: RequestOptions = {},
  ): Promise<AuthUserChangePasswordResponse> {
    const req = create(AuthUserChangePasswordRequestSchema, { name, password });
    return this.#authCall(Auth.method.userChangePassword, req, opts);
  }

  /** Auth.UserGrantRole. */
  userGrantRole(
    user: string,
    role: string,
    opts: RequestOptions = {},
  ): Promise<AuthUserGrantRoleResponse> {
    const req = create(AuthUserGrantRoleRequestSchema, { user, role });
    return this.#authCall(Auth.method.userGrantRole, req, opts);
  }

  /** Auth.UserRevokeRole. */
  userRevokeRole(
    name: string,
    role: string,
    opts: RequestOptions = {},
  ): Promise<AuthUserRevokeRoleResponse> {
    const req = create(AuthUserRevokeRoleRequestSchema, { name, role });
    return this.#authCall(Auth.method.userRevokeRole, req, opts);
  }

  /** Auth.RoleAdd. */
  roleAdd(name: string, opts: RequestOptions = {}): Promise<AuthRoleAddResponse> {
    const req = create(AuthRoleAddRequestSchema, { name });
    return this.#authCall(Auth.method.roleAdd, req, opts);
  }

  /** Auth.RoleDelete. */
  roleDelete(role: string, opts: RequestOptions = {}): Promise<AuthRoleDeleteResponse> {
    const req = create(AuthRoleDeleteRequestSchema, { role });
    return this.#authCall(Auth.method.roleDelete, req, opts);
  }

  /** Auth.RoleGet. */
  roleGet(role: string, opts: RequestOptions = {}): Promise<AuthRoleGetResponse> {
    const req = create(AuthRoleGetRequestSchema, { role });
    return this.#authCall(Auth.method.roleGet, req, opts, "repeatable");
  }

  /** Auth.RoleList. */
  roleList(opts: RequestOptions = {}): Promise<AuthRoleListResponse> {
    const req = create(AuthRoleListRequestSchema, {});
    return this.#authCall(Auth.method.roleList, req, opts, "repeatable");
  }

  /** Auth.RoleGrantPermission of [key, rangeEnd) (empty rangeEnd: the key alone). */
  roleGrantPermission(
    name: string,
    key: Uint8Array,
    rangeEnd: Uint8Array,
    permType: Permission_Type,
    opts: RequestOptions = {},
  ): Promise<AuthRoleGrantPermissionResponse> {
    const perm = create(PermissionSchema, { key, rangeEnd, permType });
    const req = create(AuthRoleGrantPermissionRequestSchema, { name, perm });
    return this.#authCall(Auth.method.roleGrantPermission, req, opts);
  }

  /** Auth.RoleRevokePermission of [key, rangeEnd). */
  roleRevokePermission(
    role: string,
    key: Uint8Array,
    rangeEnd: Uint8Array,
    opts: RequestOptions = {},
  ): Promise<AuthRoleRevokePermissionResponse> {
    const req = create(AuthRoleRevokePermissionRequestSchema, { role, key, rangeEnd });
    return this.#authCall(Auth.method.roleRevokePermission, req, opts);
  }

  async #pickOrThrow(opts: RequestOptions): Promise<GrpcConnection> {
    const deadlineMs = opts.deadlineMs ?? Infinity;
    try {
      return await this.#pool.pick(deadlineMs, opts.signal);
    } catch (e) {
      if (e instanceof GrpcError) throw this.#toClientError(e, deadlineMs, opts);
      throw e;
    }
  }

  /** Turns a stream's failure into the error clientv3 reports for it. */
  streamError(e: unknown): EtcdClientError {
    if (e instanceof EtcdClientError) return e;
    if (e instanceof GrpcError) return this.#toClientError(e, Infinity, {});
    return new EtcdClientError((e as Error).message);
  }

  /** A pool with a single endpoint, for maintenance calls aimed at one member. */
  directPool(endpoint: string): ConnectionPool {
    let p = this.#direct.get(endpoint);
    if (!p) {
      p = new ConnectionPool([endpoint], this.#cfg, true);
      this.#direct.set(endpoint, p);
    }
    return p;
  }

  /** Closes every connection. */
  close(): void {
    this.#pool.close();
    for (const p of this.#direct.values()) p.close();
  }
}

function isSafeRetry(e: GrpcError, policy: RetryPolicy): boolean {
  if (e.code === Code.DeadlineExceeded || e.code === Code.Canceled) return false;
  if (policy === "repeatable") {
    if (knownServerErrors.has(e.details) && e.code !== Code.Unavailable) return false;
    return e.code === Code.Unavailable;
  }
  if (e.code !== Code.Unavailable) return false;
  return e.details === "there is no address available" ||
    e.details === "there is no connection available";
}
