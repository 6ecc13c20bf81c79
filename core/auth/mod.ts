/**
 * Authentication and role-based access, as etcd 3.4.23 has them: the replicated auth store
 * (users with bcrypt password hashes, roles, READ/WRITE/READWRITE permissions on a key, range,
 * prefix or from-key, the root user and role rules, the auth revision), the per-user permission
 * index every request is checked against, the token providers (`simple` and `jwt`), the
 * `--auth-token` parser, and the mapping of the auth state to etcd's bbolt buckets.
 *
 * Pure: no clock, randomness, threads or I/O of its own. Password hashing comes in through a
 * {@link PasswordHasher} and is done before proposing (the log carries hashes, never passwords),
 * so applying an entry is deterministic on every member.
 *
 * @example Enabling auth and checking a request
 * ```ts ignore
 * import { create } from "@bufbuild/protobuf";
 * import { AuthUserAddRequestSchema, AuthUserGrantRoleRequestSchema } from "../../gen/etcdserverpb/rpc_pb.ts";
 * import { AuthStore, SimpleTokenProvider } from "./mod.ts";
 *
 * const tokens = new SimpleTokenProvider({ nowMs: () => performance.now(), randomInt });
 * const store = new AuthStore({ tokens, hasher, bcryptCost: 10 });
 * // Before proposing: hash. When the entry applies: store the hash.
 * const hashed = await store.hashPassword("123456");
 * store.userAdd(create(AuthUserAddRequestSchema, { name: "root" }), hashed);
 * store.userGrantRole(create(AuthUserGrantRoleRequestSchema, { user: "root", role: "root" }));
 * store.authEnable();
 * // Authenticate: check the password, propose, then issue the token when it applies.
 * await store.checkPassword("root", "123456");
 * const token = await store.authenticate("root", store.genTokenPrefix(), raftIndex);
 * // Every request: token → user, then the permission check (throws etcd's error).
 * const info = await store.authInfoFromToken(token);
 * store.isRangePermitted(info, new TextEncoder().encode("name"), new Uint8Array(0));
 * ```
 *
 * @module
 */

export {
  AuthStore,
  BCRYPT_DEFAULT_COST,
  BCRYPT_MAX_COST,
  BCRYPT_MIN_COST,
  ROOT_ROLE,
  ROOT_USER,
} from "./auth_store.ts";
export type { AuthSnapshot, AuthStoreOptions, PasswordHasher } from "./auth_store.ts";
export {
  compareBytes,
  intervalsPermit,
  mergeIntervals,
  permissionInterval,
  UserRangePermissions,
} from "./range_permissions.ts";
export type { KeyInterval } from "./range_permissions.ts";
export { NopTokenProvider } from "./token.ts";
export type { AuthInfo, TokenAssignment, TokenProvider } from "./token.ts";
export { DEFAULT_SIMPLE_TOKEN_TTL_SECONDS, SimpleTokenProvider } from "./simple_token.ts";
export type { SimpleTokenOptions } from "./simple_token.ts";
export { JwtTokenProvider } from "./jwt.ts";
export type { JwtProviderOptions } from "./jwt.ts";
export {
  AuthOptionsError,
  DEFAULT_JWT_TTL_MS,
  INVALID_AUTH_METHOD,
  INVALID_AUTH_OPTIONS,
  jwtSignMethods,
  KEY_MISMATCH,
  loadJwtConfig,
  MISSING_KEY_DATA,
  parseAuthTokenFlag,
} from "./token_options.ts";
export type { AuthTokenConfig, JwtConfig, JwtSignMethod } from "./token_options.ts";
export { parseGoDurationMs } from "./go_duration.ts";
export {
  AUTH_BUCKET_NAME,
  AUTH_ROLES_BUCKET_NAME,
  AUTH_USERS_BUCKET_NAME,
  AuthBucketError,
  authFromBuckets,
  authToBuckets,
} from "./etcd_buckets.ts";
export type { AuthBucket } from "./etcd_buckets.ts";
