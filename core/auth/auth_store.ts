/**
 * etcd 3.4.23's auth store (auth/store.go) as a deterministic state machine: users, roles, their
 * permissions, the enabled flag and the auth revision, changed only by applied log entries, so
 * every member holds the same auth state. Each apply method takes the client's request message,
 * answers with the response message (without header: the node adds it) or throws etcd's error
 * (core/errors.ts), and follows etcd's rules step for step, including its quirks (a permission
 * grant replaces the type of a matching entry rather than merging, AuthEnable does not bump the
 * revision, a second grant of the same role is a silent no-op).
 *
 * Passwords: the store holds bcrypt hashes only. Hashing is slow and its salt is random, so it
 * happens before a request is proposed ({@link AuthStore.hashPassword}) and the entry carries
 * the hash (as etcd 3.5 does); applying never hashes. Checking a password is equally slow and
 * happens outside apply ({@link AuthStore.checkPassword}); hashing and comparing are injected
 * ({@link PasswordHasher}) because core does no work off the thread and no I/O.
 */

import { create } from "@bufbuild/protobuf";
import {
  type Permission,
  PermissionSchema,
  type Role,
  RoleSchema,
  type User,
  UserAddOptionsSchema,
  UserSchema,
} from "../../gen/authpb/auth_pb.ts";
import {
  type AuthDisableResponse,
  AuthDisableResponseSchema,
  type AuthEnableResponse,
  AuthEnableResponseSchema,
  type AuthRoleAddRequest,
  type AuthRoleAddResponse,
  AuthRoleAddResponseSchema,
  type AuthRoleDeleteRequest,
  type AuthRoleDeleteResponse,
  AuthRoleDeleteResponseSchema,
  type AuthRoleGetRequest,
  type AuthRoleGetResponse,
  AuthRoleGetResponseSchema,
  type AuthRoleGrantPermissionRequest,
  type AuthRoleGrantPermissionResponse,
  AuthRoleGrantPermissionResponseSchema,
  type AuthRoleListResponse,
  AuthRoleListResponseSchema,
  type AuthRoleRevokePermissionRequest,
  type AuthRoleRevokePermissionResponse,
  AuthRoleRevokePermissionResponseSchema,
  type AuthUserAddRequest,
  type AuthUserAddResponse,
  AuthUserAddResponseSchema,
  type AuthUserChangePasswordRequest,
  type AuthUserChangePasswordResponse,
  AuthUserChangePasswordResponseSchema,
  type AuthUserDeleteRequest,
  type AuthUserDeleteResponse,
  AuthUserDeleteResponseSchema,
  type AuthUserGetRequest,
  type AuthUserGetResponse,
  AuthUserGetResponseSchema,
  type AuthUserGrantRoleRequest,
  type AuthUserGrantRoleResponse,
  AuthUserGrantRoleResponseSchema,
  type AuthUserListResponse,
  AuthUserListResponseSchema,
  type AuthUserRevokeRoleRequest,
  type AuthUserRevokeRoleResponse,
  AuthUserRevokeRoleResponseSchema,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { assert } from "../assert.ts";
import { Errors } from "../errors.ts";
import { type Logger, silentLogger } from "../log.ts";
import { goSort } from "../go_sort.ts";
import { compareBytes, UserRangePermissions } from "./range_permissions.ts";
import { type AuthInfo, NopTokenProvider, type TokenProvider } from "./token.ts";

/** The user whose root role makes it the administrator; must exist before auth is enabled. */
export const ROOT_USER = "root";
/** The role granting every permission and the admin RPCs. */
export const ROOT_ROLE = "root";
/** bcrypt's bounds and etcd's default cost (golang.org/x/crypto/bcrypt). */
export const BCRYPT_MIN_COST = 4;
/** The largest bcrypt cost. */
export const BCRYPT_MAX_COST = 31;
/** etcd's `--bcrypt-cost` default. */
export const BCRYPT_DEFAULT_COST = 10;

/**
 * bcrypt hashing and comparing, injected: the server runs it in a worker so that the event loop
 * never waits for it; tests inject a fast fake.
 */
export interface PasswordHasher {
  /** A bcrypt hash (`$2a$<cost>$…`) of `password` with a fresh salt. */
  hash(password: string, cost: number): Promise<string>;
  /** Whether `password` matches the bcrypt `hash`. */
  verify(password: string, hash: string): Promise<boolean>;
}

/** The auth state as snapshots carry it: plain data that maps to protobuf messages. */
export interface AuthSnapshot {
  enabled: boolean;
  /**
   * Whether auth was ever enabled: etcd writes its `authEnabled` key only from then on, so the
   * backend (and its hash) tells a never-enabled store from a disabled one.
   */
  everEnabled: boolean;
  /** The auth revision (etcd's `authRevision`). */
  revision: number;
  /** Users sorted by name bytes. */
  users: User[];
  /** Roles sorted by name bytes. */
  roles: Role[];
}

/** Fixed at start. */
export interface AuthStoreOptions {
  /** Issues and resolves tokens; none when absent (etcd's `--auth-token ""`). */
  tokens?: TokenProvider;
  /** Hashes and checks passwords outside apply; required for hashPassword/checkPassword. */
  hasher?: PasswordHasher;
  /** `--bcrypt-cost`; out-of-range values fall back to 10 with a warning, as etcd does. */
  bcryptCost?: number;
  logger?: Logger;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const CALLER = "auth/store.go";

/** What a permission check needs of a user, kept until the next change. */
interface CachedPermissions {
  root: boolean;
  perms: UserRangePermissions;
}

/**
 * Go's string order: bytewise over UTF-8, which is code point order (JS `<` compares UTF-16 code
 * units, which puts U+10000 and above before U+E000..U+FFFF). No allocation: it runs per check.
 */
function compareNames(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(j)!;
    if (x !== y) return x - y;
    i += x > 0xffff ? 2 : 1;
    j += y > 0xffff ? 2 : 1;
  }
  return (a.length - i) - (b.length - j);
}

/** sort.SearchStrings over a sorted list: the first index whose name >= `name`. */
function searchNames(names: readonly string[], name: string): number {
  let lo = 0;
  let hi = names.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareNames(names[mid], name) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function hasRootRole(user: User): boolean {
  const i = searchNames(user.roles, ROOT_ROLE);
  return i < user.roles.length && user.roles[i] === ROOT_ROLE;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return compareBytes(a, b) === 0;
}

function copyUser(u: User): User {
  return create(UserSchema, {
    name: u.name.slice(),
    password: u.password.slice(),
    roles: [...u.roles],
    options: u.options === undefined
      ? undefined
      : create(UserAddOptionsSchema, { noPassword: u.options.noPassword }),
  });
}

function copyPermission(p: Permission): Permission {
  return create(PermissionSchema, {
    permType: p.permType,
    key: p.key.slice(),
    rangeEnd: p.rangeEnd.slice(),
  });
}

function copyRole(r: Role): Role {
  return create(RoleSchema, {
    name: r.name.slice(),
    keyPermission: r.keyPermission.map(copyPermission),
  });
}

/** etcd's auth store: the replicated users, roles, enabled flag and auth revision. */
export class AuthStore {
  #users = new Map<string, User>();
  #roles = new Map<string, Role>();
  #enabled = false;
  #everEnabled = false;
  /** etcd starts a fresh store at revision 1 (NewAuthStore commits once when it reads 0). */
  #revision = 1;
  #tokens: TokenProvider;
  #hasher: PasswordHasher | undefined;
  #logger: Logger;
  /** Merged permission intervals per user, built on first use and dropped on every change. */
  #rangePermissions = new Map<string, CachedPermissions>();
  /** The bcrypt cost hashPassword uses. */
  readonly bcryptCost: number;

  constructor(options: AuthStoreOptions = {}) {
    this.#tokens = options.tokens ?? new NopTokenProvider();
    this.#hasher = options.hasher;
    this.#logger = options.logger ?? silentLogger;
    let cost = options.bcryptCost ?? BCRYPT_DEFAULT_COST;
    if (!Number.isInteger(cost) || cost < BCRYPT_MIN_COST || cost > BCRYPT_MAX_COST) {
      this.#logger.warn(CALLER, "use default bcrypt cost instead of the invalid given cost", {
        "min-cost": BCRYPT_MIN_COST,
        "max-cost": BCRYPT_MAX_COST,
        "default-cost": BCRYPT_DEFAULT_COST,
        "given-cost": cost,
      });
      cost = BCRYPT_DEFAULT_COST;
    }
    this.bcryptCost = cost;
  }

  /** Whether authentication is on (requests then need a token and permissions). */
  get enabled(): boolean {
    return this.#enabled;
  }

  /** The auth revision: bumped by every change to users, roles or permissions, and by disable. */
  get revision(): number {
    return this.#revision;
  }

  #commitRevision(): void {
    this.#revision++;
    assert(Number.isSafeInteger(this.#revision), "auth revision beyond 2^53");
  }

  /** Every change to users or roles invalidates the merged permission intervals. */
  #changed(): void {
    this.#commitRevision();
    this.#rangePermissions.clear();
  }

  // ---- before proposing (not apply) ----

  /**
   * The bcrypt hash a UserAdd or UserChangePassword entry carries, computed before proposing so
   * that applying is deterministic and the plain password never reaches the log.
   */
  hashPassword(password: string): Promise<string> {
    assert(this.#hasher !== undefined, "AuthStore.hashPassword without a PasswordHasher");
    return this.#hasher.hash(password, this.bcryptCost);
  }

  /**
   * Checks a user's password before an Authenticate is proposed (etcd's CheckPassword) and
   * returns the auth revision it was checked at; the caller proposes, then retries when the
   * revision moved meanwhile (the user may have changed). Throws authNotEnabled, authFailed or
   * noPasswordUser.
   */
  async checkPassword(username: string, password: string): Promise<number> {
    if (!this.#enabled) throw Errors.authNotEnabled();
    const user = this.#users.get(username);
    if (user === undefined) throw Errors.authFailed();
    if (user.options?.noPassword) throw Errors.noPasswordUser();
    const revision = this.#revision;
    const hash = dec.decode(user.password);
    assert(this.#hasher !== undefined, "AuthStore.checkPassword without a PasswordHasher");
    if (!await this.#hasher.verify(password, hash)) {
      this.#logger.info(CALLER + ":383", "invalid password", { "user-name": username });
      throw Errors.authFailed();
    }
    return revision;
  }

  /** The random part of a simple token, drawn by the proposer of an Authenticate. */
  genTokenPrefix(): string {
    return this.#tokens.genTokenPrefix();
  }

  /** The user and revision a request's token stands for; throws invalidAuthToken. */
  async authInfoFromToken(token: string): Promise<AuthInfo> {
    const info = await this.#tokens.info(token, this.#revision);
    if (info === null) {
      this.#logger.warn(CALLER + ":1315", "invalid auth token", {});
      throw Errors.invalidAuthToken();
    }
    return info;
  }

  // ---- apply ----

  /** Turns auth on; needs the root user holding the root role. Does not bump the revision. */
  authEnable(): AuthEnableResponse {
    if (this.#enabled) {
      this.#logger.info(
        CALLER + ":240",
        "authentication is already enabled; ignored auth enable request",
      );
      return create(AuthEnableResponseSchema);
    }
    const root = this.#users.get(ROOT_USER);
    if (root === undefined) throw Errors.rootUserNotExist();
    if (!hasRootRole(root)) throw Errors.rootRoleNotExist();
    this.#enabled = true;
    this.#everEnabled = true;
    this.#tokens.enable();
    this.#rangePermissions.clear();
    this.#logger.info(CALLER + ":273", "enabled authentication");
    return create(AuthEnableResponseSchema);
  }

  /** Turns auth off (bumping the revision); a no-op when it is off. */
  authDisable(): AuthDisableResponse {
    if (!this.#enabled) return create(AuthDisableResponseSchema);
    this.#enabled = false;
    this.#commitRevision();
    this.#tokens.disable();
    this.#logger.info(CALLER + ":299", "disabled authentication");
    return create(AuthDisableResponseSchema);
  }

  /**
   * Applies an Authenticate the proposer checked the password for: issues a token for the user
   * at the current revision. The token registration (simple tokens) happens during the call;
   * the promise settles with the token, or rejects with authNotEnabled / authFailed.
   */
  async authenticate(username: string, simpleTokenPrefix: string, index: number): Promise<string> {
    if (!this.#enabled) throw Errors.authNotEnabled();
    const user = this.#users.get(username);
    if (user === undefined) throw Errors.authFailed();
    if (user.options?.noPassword) throw Errors.authFailed();
    return await this.#tokens.assign(username, this.#revision, { index, simpleTokenPrefix });
  }

  /**
   * Adds a user. `hashedPassword` is what {@link hashPassword} gave the proposer ("" for a user
   * with the noPassword option); the request's own password field is ignored.
   */
  userAdd(request: AuthUserAddRequest, hashedPassword: string): AuthUserAddResponse {
    if (request.name === "") throw Errors.userEmpty();
    if (this.#users.has(request.name)) throw Errors.userAlreadyExist();
    const noPassword = request.options?.noPassword ?? false;
    this.#users.set(
      request.name,
      create(UserSchema, {
        name: enc.encode(request.name),
        password: noPassword ? new Uint8Array(0) : enc.encode(hashedPassword),
        roles: [],
        options: create(UserAddOptionsSchema, { noPassword }),
      }),
    );
    this.#changed();
    this.#logger.info(CALLER + ":471", "added a user", { "user-name": request.name });
    return create(AuthUserAddResponseSchema);
  }

  /** Deletes a user (never root while auth is on) and forgets its tokens. */
  userDelete(request: AuthUserDeleteRequest): AuthUserDeleteResponse {
    if (this.#enabled && request.name === ROOT_USER) {
      this.#logger.warn(CALLER + ":481", "cannot delete 'root' user", {
        "user-name": request.name,
      });
      throw Errors.invalidAuthMgmt();
    }
    const user = this.#users.get(request.name);
    if (user === undefined) throw Errors.userNotFound();
    this.#users.delete(request.name);
    this.#changed();
    this.#tokens.invalidateUser(request.name);
    this.#logger.info(CALLER + ":506", "deleted a user", {
      "user-name": request.name,
      "user-roles": user.roles,
    });
    return create(AuthUserDeleteResponseSchema);
  }

  /** Replaces a user's password hash (from {@link hashPassword}) and forgets its tokens. */
  userChangePassword(
    request: AuthUserChangePasswordRequest,
    hashedPassword: string,
  ): AuthUserChangePasswordResponse {
    const user = this.#users.get(request.name);
    if (user === undefined) throw Errors.userNotFound();
    const updated = copyUser(user);
    updated.name = enc.encode(request.name);
    updated.password = enc.encode(hashedPassword);
    this.#users.set(request.name, updated);
    this.#changed();
    this.#tokens.invalidateUser(request.name);
    this.#logger.info(CALLER + ":559", "changed a password of a user", {
      "user-name": request.name,
      "user-roles": user.roles,
    });
    return create(AuthUserChangePasswordResponseSchema);
  }

  /** Grants a role (root needs no role entry); granting a role twice changes nothing. */
  userGrantRole(request: AuthUserGrantRoleRequest): AuthUserGrantRoleResponse {
    const user = this.#users.get(request.user);
    if (user === undefined) throw Errors.userNotFound();
    if (request.role !== ROOT_ROLE && !this.#roles.has(request.role)) throw Errors.roleNotFound();
    const i = searchNames(user.roles, request.role);
    if (i < user.roles.length && user.roles[i] === request.role) {
      this.#logger.warn(CALLER + ":590", "ignored grant role request to a user", {
        "user-name": request.user,
        "user-roles": user.roles,
        "duplicate-role-name": request.role,
      });
      return create(AuthUserGrantRoleResponseSchema);
    }
    const updated = copyUser(user);
    updated.roles.push(request.role);
    updated.roles.sort(compareNames);
    this.#users.set(request.user, updated);
    this.#changed();
    this.#logger.info(CALLER + ":612", "granted a role to a user", {
      "user-name": request.user,
      "user-roles": updated.roles,
      "added-role-name": request.role,
    });
    return create(AuthUserGrantRoleResponseSchema);
  }

  /** A user's roles, as stored (sorted). */
  userGet(request: AuthUserGetRequest): AuthUserGetResponse {
    const user = this.#users.get(request.name);
    if (user === undefined) throw Errors.userNotFound();
    return create(AuthUserGetResponseSchema, { roles: [...user.roles] });
  }

  /** Every user name, in byte order (etcd lists its bucket). */
  userList(): AuthUserListResponse {
    return create(AuthUserListResponseSchema, { users: this.#sortedUserNames() });
  }

  /** Revokes a role; the root user keeps the root role while auth is on. */
  userRevokeRole(request: AuthUserRevokeRoleRequest): AuthUserRevokeRoleResponse {
    if (this.#enabled && request.name === ROOT_USER && request.role === ROOT_ROLE) {
      this.#logger.warn(CALLER + ":655", "'root' user cannot revoke 'root' role", {
        "user-name": request.name,
        "role-name": request.role,
      });
      throw Errors.invalidAuthMgmt();
    }
    const user = this.#users.get(request.name);
    if (user === undefined) throw Errors.userNotFound();
    const roles = user.roles.filter((r) => r !== request.role);
    if (roles.length === user.roles.length) throw Errors.roleNotGranted();
    const updated = copyUser(user);
    updated.roles = roles;
    this.#users.set(request.name, updated);
    this.#changed();
    this.#logger.info(CALLER + ":698", "revoked a role from a user", {
      "user-name": request.name,
      "old-user-roles": user.roles,
      "new-user-roles": roles,
      "revoked-role-name": request.role,
    });
    return create(AuthUserRevokeRoleResponseSchema);
  }

  /** A role's permissions, in stored order. */
  roleGet(request: AuthRoleGetRequest): AuthRoleGetResponse {
    const role = this.#roles.get(request.role);
    if (role === undefined) throw Errors.roleNotFound();
    return create(AuthRoleGetResponseSchema, { perm: role.keyPermission.map(copyPermission) });
  }

  /** Every role name, in byte order. */
  roleList(): AuthRoleListResponse {
    return create(AuthRoleListResponseSchema, { roles: this.#sortedRoleNames() });
  }

  /** Removes every permission of the role on exactly [key, rangeEnd). */
  roleRevokePermission(request: AuthRoleRevokePermissionRequest): AuthRoleRevokePermissionResponse {
    const role = this.#roles.get(request.role);
    if (role === undefined) throw Errors.roleNotFound();
    const kept = role.keyPermission.filter((p) =>
      !bytesEqual(p.key, request.key) || !bytesEqual(p.rangeEnd, request.rangeEnd)
    );
    if (kept.length === role.keyPermission.length) throw Errors.permissionNotGranted();
    this.#roles.set(
      request.role,
      create(RoleSchema, { name: role.name.slice(), keyPermission: kept.map(copyPermission) }),
    );
    this.#changed();
    this.#logger.info(CALLER + ":770", "revoked a permission on range", {
      "role-name": request.role,
      "key": dec.decode(request.key),
      "range-end": dec.decode(request.rangeEnd),
    });
    return create(AuthRoleRevokePermissionResponseSchema);
  }

  /** Deletes a role (never root while auth is on) and takes it from every user. */
  roleDelete(request: AuthRoleDeleteRequest): AuthRoleDeleteResponse {
    if (this.#enabled && request.role === ROOT_ROLE) {
      this.#logger.warn(CALLER + ":785", "cannot delete 'root' role", {
        "role-name": request.role,
      });
      throw Errors.invalidAuthMgmt();
    }
    if (!this.#roles.has(request.role)) throw Errors.roleNotFound();
    this.#roles.delete(request.role);
    for (const name of this.#sortedUserNames()) {
      const user = this.#users.get(name)!;
      const roles = user.roles.filter((r) => r !== request.role);
      if (roles.length === user.roles.length) continue;
      const updated = copyUser(user);
      updated.roles = roles;
      this.#users.set(name, updated);
    }
    this.#changed();
    this.#logger.info(CALLER + ":830", "deleted a role", { "role-name": request.role });
    return create(AuthRoleDeleteResponseSchema);
  }

  /** Adds a role with no permissions. */
  roleAdd(request: AuthRoleAddRequest): AuthRoleAddResponse {
    if (request.name === "") throw Errors.roleEmpty();
    if (this.#roles.has(request.name)) throw Errors.roleAlreadyExist();
    this.#roles.set(request.name, create(RoleSchema, { name: enc.encode(request.name) }));
    this.#changed();
    this.#logger.info(CALLER + ":861", "created a role", { "role-name": request.name });
    return create(AuthRoleAddResponseSchema);
  }

  /**
   * Grants a permission, exactly as etcd 3.4.23 does: it looks at the first stored permission
   * whose key is >= the granted key; when that one has the same key and range end, its type is
   * replaced (READ then WRITE on a range leaves WRITE); otherwise the permission is appended and
   * the list re-sorted by key with Go's (unstable) sort, so the same range can appear twice.
   */
  roleGrantPermission(request: AuthRoleGrantPermissionRequest): AuthRoleGrantPermissionResponse {
    // etcd 3.4.23 dereferences a missing permission and crashes; 3.5 refuses it up front.
    const perm = request.perm;
    if (perm === undefined) throw Errors.permissionNotGiven();
    const role = this.#roles.get(request.name);
    if (role === undefined) throw Errors.roleNotFound();
    const updated = copyRole(role);
    const perms = updated.keyPermission;
    let lo = 0;
    let hi = perms.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareBytes(perms[mid].key, perm.key) < 0) lo = mid + 1;
      else hi = mid;
    }
    if (
      lo < perms.length && bytesEqual(perms[lo].key, perm.key) &&
      bytesEqual(perms[lo].rangeEnd, perm.rangeEnd)
    ) {
      perms[lo].permType = perm.permType;
    } else {
      perms.push(copyPermission(perm));
      goSort(perms, (a, b) => compareBytes(a.key, b.key) < 0);
    }
    this.#roles.set(request.name, updated);
    this.#changed();
    this.#logger.info(CALLER + ":922", "granted/updated a permission to a user", {
      "user-name": request.name,
      "permission-name": permissionTypeName(perm.permType),
    });
    return create(AuthRoleGrantPermissionResponseSchema);
  }

  // ---- permission checks (at the API and again at apply) ----

  /** etcd's isOpPermitted: auth off, no user, stale revision, unknown user, root, ranges. */
  #checkOp(info: AuthInfo | null, key: Uint8Array, rangeEnd: Uint8Array, write: boolean): void {
    if (!this.#enabled) return;
    if (info === null || info.revision === 0) throw Errors.userEmpty();
    if (info.revision < this.#revision) {
      this.#logger.warn(
        CALLER + ":946",
        "request auth revision is less than current node auth revision",
        {
          "current node auth revision": this.#revision,
          "request auth revision": info.revision,
          "request key": dec.decode(key),
          "error": "auth: revision in header is old",
        },
      );
      throw Errors.authOldRevision();
    }
    const user = this.#users.get(info.username);
    if (user === undefined) {
      this.#logger.warn(CALLER + ":968", "cannot find a user for permission check", {
        "user-name": info.username,
      });
      throw Errors.permissionDenied();
    }
    const cached = this.#permissionsOf(info.username, user);
    if (cached.root) return;
    const perms = cached.perms;
    if (write ? perms.canWrite(key, rangeEnd) : perms.canRead(key, rangeEnd)) return;
    throw Errors.permissionDenied();
  }

  /** The user's cached root flag and merged intervals (dropped on every change). */
  #permissionsOf(username: string, user: User): CachedPermissions {
    let cached = this.#rangePermissions.get(username);
    if (cached === undefined) {
      const all: Permission[] = [];
      for (const roleName of user.roles) {
        const role = this.#roles.get(roleName);
        if (role !== undefined) all.push(...role.keyPermission);
      }
      cached = { root: hasRootRole(user), perms: new UserRangePermissions(all) };
      this.#rangePermissions.set(username, cached);
    }
    return cached;
  }

  /** Throws unless the user may read [key, rangeEnd) (empty rangeEnd: the key; `\0`: from-key). */
  isRangePermitted(info: AuthInfo | null, key: Uint8Array, rangeEnd: Uint8Array): void {
    this.#checkOp(info, key, rangeEnd, false);
  }

  /** Throws unless the user may write `key`. */
  isPutPermitted(info: AuthInfo | null, key: Uint8Array): void {
    this.#checkOp(info, key, new Uint8Array(0), true);
  }

  /** Throws unless the user may write [key, rangeEnd). */
  isDeleteRangePermitted(info: AuthInfo | null, key: Uint8Array, rangeEnd: Uint8Array): void {
    this.#checkOp(info, key, rangeEnd, true);
  }

  /**
   * Throws unless the user holds the root role (auth and membership management, defragment,
   * snapshot, hashes, alarms). Like etcd 3.4.23 it does not look at the revision.
   */
  isAdminPermitted(info: AuthInfo | null): void {
    if (!this.#enabled) return;
    if (info === null || info.username === "") throw Errors.userEmpty();
    const user = this.#users.get(info.username);
    if (user === undefined) throw Errors.userNotFound();
    if (!hasRootRole(user)) throw Errors.permissionDenied();
  }

  /**
   * Throws unless the caller is a known user, whatever its roles: what the patched etcd releases
   * ask of MemberList, alarm listing, Status and the lease API (GHSA-q8m4-xhhv-38mg; 3.4.23 asks
   * nothing). Passes while auth is off.
   */
  isAuthenticated(info: AuthInfo | null): void {
    if (!this.#enabled) return;
    if (info === null || info.username === "") throw Errors.userEmpty();
    if (!this.#users.has(info.username)) throw Errors.userNotFound();
  }

  /**
   * The caller's own permissions (the web console's Permissions call, so that its views offer
   * only what the caller may do): whether auth is on, whether the caller holds root, and its
   * roles' key permissions. Asks only that the caller is a user; no one learns another's.
   */
  ownPermissions(info: AuthInfo | null): { enabled: boolean; root: boolean; perms: Permission[] } {
    if (!this.#enabled) return { enabled: false, root: true, perms: [] };
    this.isAuthenticated(info);
    const user = this.#users.get(info!.username)!;
    const perms: Permission[] = [];
    for (const name of user.roles) {
      const role = this.#roles.get(name);
      if (role !== undefined) perms.push(...role.keyPermission.map(copyPermission));
    }
    return { enabled: true, root: hasRootRole(user), perms };
  }

  /** Whether the user exists and holds `role`. */
  hasRole(username: string, role: string): boolean {
    const user = this.#users.get(username);
    if (user === undefined) {
      this.#logger.warn(CALLER + ":1462", "'has-role' requested for non-existing user", {
        "user-name": username,
        "role-name": role,
      });
      return false;
    }
    return user.roles.includes(role);
  }

  // ---- snapshots ----

  #sortedUserNames(): string[] {
    return [...this.#users.keys()].sort(compareNames);
  }

  #sortedRoleNames(): string[] {
    return [...this.#roles.keys()].sort(compareNames);
  }

  /** The whole auth state, for a snapshot (copies: later applies do not change it). */
  snapshot(): AuthSnapshot {
    return {
      enabled: this.#enabled,
      everEnabled: this.#everEnabled,
      revision: this.#revision,
      users: this.#sortedUserNames().map((n) => copyUser(this.#users.get(n)!)),
      roles: this.#sortedRoleNames().map((n) => copyRole(this.#roles.get(n)!)),
    };
  }

  /**
   * Replaces the whole state with a snapshot's (etcd's Recover): the token provider is enabled or
   * disabled to match.
   */
  restore(snapshot: AuthSnapshot): void {
    assert(
      Number.isSafeInteger(snapshot.revision) && snapshot.revision >= 0,
      "auth snapshot revision out of range",
    );
    const users = new Map<string, User>();
    for (const u of snapshot.users) users.set(dec.decode(u.name), copyUser(u));
    const roles = new Map<string, Role>();
    for (const r of snapshot.roles) roles.set(dec.decode(r.name), copyRole(r));
    this.#users = users;
    this.#roles = roles;
    this.#revision = snapshot.revision === 0 ? 1 : snapshot.revision;
    this.#rangePermissions.clear();
    const wasEnabled = this.#enabled;
    this.#enabled = snapshot.enabled;
    this.#everEnabled = snapshot.everEnabled || snapshot.enabled;
    if (snapshot.enabled && !wasEnabled) this.#tokens.enable();
    if (!snapshot.enabled && wasEnabled) this.#tokens.disable();
  }
}

/** authpb.Permission_Type's name as etcd logs it. */
function permissionTypeName(t: number): string {
  return t === 0 ? "READ" : t === 1 ? "WRITE" : t === 2 ? "READWRITE" : String(t);
}
