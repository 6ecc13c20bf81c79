/**
 * The Auth service of a member (etcd's v3_server.go auth methods): who a token stands for, and
 * every user and role request, which all go through the log as in etcd 3.4 (reads of users and
 * roles included) and are checked by the apply chain's auth layer when they apply. Passwords
 * never reach the log: they are hashed (UserAdd, UserChangePassword) or checked (Authenticate)
 * here, before proposing, off the event loop through the store's PasswordHasher.
 */
import { create } from "@bufbuild/protobuf";
import {
  AuthenticateEntrySchema,
  AuthUserAddEntrySchema,
  AuthUserChangePasswordEntrySchema,
} from "../../gen/detcdpb/internal_pb.ts";
import {
  AuthDisableRequestSchema,
  type AuthDisableResponse,
  AuthEnableRequestSchema,
  type AuthEnableResponse,
  type AuthenticateRequest,
  type AuthenticateResponse,
  type AuthRoleAddRequest,
  type AuthRoleAddResponse,
  type AuthRoleDeleteRequest,
  type AuthRoleDeleteResponse,
  type AuthRoleGetRequest,
  type AuthRoleGetResponse,
  type AuthRoleGrantPermissionRequest,
  type AuthRoleGrantPermissionResponse,
  AuthRoleListRequestSchema,
  type AuthRoleListResponse,
  type AuthRoleRevokePermissionRequest,
  type AuthRoleRevokePermissionResponse,
  type AuthUserAddRequest,
  type AuthUserAddResponse,
  type AuthUserChangePasswordRequest,
  type AuthUserChangePasswordResponse,
  type AuthUserDeleteRequest,
  type AuthUserDeleteResponse,
  type AuthUserGetRequest,
  type AuthUserGetResponse,
  type AuthUserGrantRoleRequest,
  type AuthUserGrantRoleResponse,
  AuthUserListRequestSchema,
  type AuthUserListResponse,
  type AuthUserRevokeRoleRequest,
  type AuthUserRevokeRoleResponse,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import type { AuthInfo, AuthStore } from "../auth/mod.ts";
import { Errors, EtcdError, isEtcdError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { LoggedOperation, OperationOf, Responses } from "./apply/mod.ts";

/** What the auth API needs from its member. */
export interface NodeAuthDeps {
  store: AuthStore;
  logger: Logger;
  /** Proposes an operation on behalf of `caller` and resolves with its applied response. */
  propose<K extends LoggedOperation["case"]>(
    operation: OperationOf<K>,
    caller: AuthInfo | null,
  ): Promise<Responses[K]>;
  /** Resolves once a read started now may be served from the applied state. */
  linearizableRead(): Promise<void> | void;
}

/** The Auth service and the caller checks of the RPCs that do not go through the log. */
export class NodeAuth {
  readonly store: AuthStore;
  readonly #deps: NodeAuthDeps;

  constructor(deps: NodeAuthDeps) {
    this.store = deps.store;
    this.#deps = deps;
  }

  /**
   * The caller a request's token stands for (etcd's AuthInfoFromCtx): null without a token,
   * etcd's `invalid auth token` for one that is unknown, expired or badly signed.
   */
  async callerOf(token: string | undefined): Promise<AuthInfo | null> {
    if (token === undefined) return null;
    return await this.store.authInfoFromToken(token);
  }

  /**
   * The caller of a call without a token over a TLS connection whose client certificate was
   * verified (etcd's AuthInfoFromTLS, used only with --client-cert-auth): the certificate's
   * common name is the user name, at the store's current auth revision. A name that is no user
   * is refused later, by the permission checks, as etcd does.
   */
  callerOfCommonName(commonName: string): AuthInfo {
    return { username: commonName, revision: this.store.revision };
  }

  /**
   * Whether the caller (resolved from its token or client certificate) may watch
   * [key, rangeEnd): the whole range must be readable (`\0` meaning every key from `key` on:
   * GHSA-xg4h-6gfc-h4m8). Answers the user (null while
   * auth is off) or the refusal; an invalid token may watch nothing, as in etcd's
   * isWatchPermitted.
   */
  async authorizeWatch(
    caller: () => AuthInfo | null | Promise<AuthInfo | null>,
    key: Uint8Array,
    rangeEnd: Uint8Array,
  ): Promise<{ username: string | null } | { refusal: EtcdError }> {
    try {
      const who = await caller();
      this.store.isRangePermitted(who, key, rangeEnd);
      return { username: this.store.enabled ? who?.username ?? null : null };
    } catch (e) {
      if (e instanceof EtcdError) return { refusal: e };
      throw e;
    }
  }

  /** Whether `username` may still read all of [key, rangeEnd) (a watch, after a change). */
  stillPermitted(username: string, key: Uint8Array, rangeEnd: Uint8Array): boolean {
    try {
      this.store.isRangePermitted({ username, revision: this.store.revision }, key, rangeEnd);
      return true;
    } catch (e) {
      if (e instanceof EtcdError) return false;
      throw e;
    }
  }

  /** The auth revision: moves with every change of users, roles or permissions. */
  get authRevision(): number {
    return this.store.revision;
  }

  /** Throws unless the caller holds the root role (passes while auth is off). */
  requireAdmin(caller: AuthInfo | null): void {
    this.store.isAdminPermitted(caller);
  }

  /** Throws unless the caller is a known user (passes while auth is off). */
  requireUser(caller: AuthInfo | null): void {
    this.store.isAuthenticated(caller);
  }

  /**
   * Auth.Authenticate: the password is checked first (off the event loop), then the login goes
   * through the log so that every member knows the token; if users changed meanwhile (the auth
   * revision moved) the check is repeated, as etcd does.
   */
  async authenticate(req: AuthenticateRequest): Promise<AuthenticateResponse> {
    await this.#deps.linearizableRead();
    for (;;) {
      let checkedAt: number;
      try {
        checkedAt = await this.store.checkPassword(req.name, req.password);
      } catch (e) {
        if (!isEtcdError(e, Errors.authNotEnabled)) {
          this.#deps.logger.warn(
            "etcdserver/v3_server.go:441",
            "invalid authentication was requested",
            {
              "user": req.name,
              "error": (e as Error).message,
            },
          );
        }
        throw e;
      }
      const value = create(AuthenticateEntrySchema, {
        name: req.name,
        simpleToken: this.store.genTokenPrefix(),
      });
      const response = await this.#deps.propose({ case: "authenticate", value }, null);
      if (checkedAt === this.store.revision) return response;
    }
  }

  authEnable(caller: AuthInfo | null): Promise<AuthEnableResponse> {
    const value = create(AuthEnableRequestSchema);
    return this.#deps.propose({ case: "authEnable", value }, caller);
  }

  authDisable(caller: AuthInfo | null): Promise<AuthDisableResponse> {
    const value = create(AuthDisableRequestSchema);
    return this.#deps.propose({ case: "authDisable", value }, caller);
  }

  /** UserAdd: the password is hashed before proposing (not for a user without password). */
  async userAdd(req: AuthUserAddRequest, caller: AuthInfo | null): Promise<AuthUserAddResponse> {
    const noPassword = req.options?.noPassword ?? false;
    const hashedPassword = noPassword ? "" : await this.store.hashPassword(req.password);
    const value = create(AuthUserAddEntrySchema, {
      name: req.name,
      hashedPassword,
      options: req.options,
    });
    return await this.#deps.propose({ case: "authUserAdd", value }, caller);
  }

  userDelete(req: AuthUserDeleteRequest, caller: AuthInfo | null): Promise<AuthUserDeleteResponse> {
    return this.#deps.propose({ case: "authUserDelete", value: req }, caller);
  }

  /** UserChangePassword: the new password is hashed before proposing. */
  async userChangePassword(
    req: AuthUserChangePasswordRequest,
    caller: AuthInfo | null,
  ): Promise<AuthUserChangePasswordResponse> {
    const hashedPassword = await this.store.hashPassword(req.password);
    const value = create(AuthUserChangePasswordEntrySchema, { name: req.name, hashedPassword });
    return await this.#deps.propose({ case: "authUserChangePassword", value }, caller);
  }

  userGrantRole(
    req: AuthUserGrantRoleRequest,
    caller: AuthInfo | null,
  ): Promise<AuthUserGrantRoleResponse> {
    return this.#deps.propose({ case: "authUserGrantRole", value: req }, caller);
  }

  userGet(req: AuthUserGetRequest, caller: AuthInfo | null): Promise<AuthUserGetResponse> {
    return this.#deps.propose({ case: "authUserGet", value: req }, caller);
  }

  userList(caller: AuthInfo | null): Promise<AuthUserListResponse> {
    const value = create(AuthUserListRequestSchema);
    return this.#deps.propose({ case: "authUserList", value }, caller);
  }

  userRevokeRole(
    req: AuthUserRevokeRoleRequest,
    caller: AuthInfo | null,
  ): Promise<AuthUserRevokeRoleResponse> {
    return this.#deps.propose({ case: "authUserRevokeRole", value: req }, caller);
  }

  roleAdd(req: AuthRoleAddRequest, caller: AuthInfo | null): Promise<AuthRoleAddResponse> {
    return this.#deps.propose({ case: "authRoleAdd", value: req }, caller);
  }

  roleGrantPermission(
    req: AuthRoleGrantPermissionRequest,
    caller: AuthInfo | null,
  ): Promise<AuthRoleGrantPermissionResponse> {
    return this.#deps.propose({ case: "authRoleGrantPermission", value: req }, caller);
  }

  roleGet(req: AuthRoleGetRequest, caller: AuthInfo | null): Promise<AuthRoleGetResponse> {
    return this.#deps.propose({ case: "authRoleGet", value: req }, caller);
  }

  roleList(caller: AuthInfo | null): Promise<AuthRoleListResponse> {
    const value = create(AuthRoleListRequestSchema);
    return this.#deps.propose({ case: "authRoleList", value }, caller);
  }

  roleRevokePermission(
    req: AuthRoleRevokePermissionRequest,
    caller: AuthInfo | null,
  ): Promise<AuthRoleRevokePermissionResponse> {
    return this.#deps.propose({ case: "authRoleRevokePermission", value: req }, caller);
  }

  roleDelete(req: AuthRoleDeleteRequest, caller: AuthInfo | null): Promise<AuthRoleDeleteResponse> {
    return this.#deps.propose({ case: "authRoleDelete", value: req }, caller);
  }
}
