/**
 * The auth state as etcd 3.4's backend keeps it, and back, so that a bbolt snapshot carries users
 * and roles both ways between etcd and detcd (the bucket codec is core/storage/bbolt.ts, the other
 * buckets core/snapshot/etcd_db.ts):
 * - `auth`: `authRevision` → 8-byte big-endian revision (always there); `authEnabled` → one byte,
 *   1 or 0, written only once auth was ever enabled or disabled.
 * - `authUsers`: user name → authpb.User (name, bcrypt hash, sorted roles, options).
 * - `authRoles`: role name → authpb.Role (name, permissions sorted by key).
 * Values are the protobuf encodings etcd writes, byte for byte (checked against a real etcd
 * 3.4.23 database in the tests).
 */

import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Role, RoleSchema, type User, UserSchema } from "../../gen/authpb/auth_pb.ts";
import type { AuthSnapshot } from "./auth_store.ts";
import { compareBytes } from "./range_permissions.ts";

/** A bucket as core/storage/bbolt.ts reads and writes it (structurally its BoltBucket). */
export interface AuthBucket {
  name: Uint8Array;
  entries: Array<[key: Uint8Array, value: Uint8Array]>;
}

/** Raised for auth buckets that etcd could not have written. */
export class AuthBucketError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AuthBucketError";
  }
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** The bucket names, as etcd spells them. */
export const AUTH_BUCKET_NAME = "auth";
/** Users by name. */
export const AUTH_USERS_BUCKET_NAME = "authUsers";
/** Roles by name. */
export const AUTH_ROLES_BUCKET_NAME = "authRoles";
const ENABLED_KEY = "authEnabled";
const REVISION_KEY = "authRevision";

/** The three auth buckets for `state`, in etcd's layout. */
export function authToBuckets(state: AuthSnapshot): AuthBucket[] {
  const rev = new Uint8Array(8);
  new DataView(rev.buffer).setBigUint64(0, BigInt(state.revision));
  const auth: Array<[Uint8Array, Uint8Array]> = [];
  if (state.everEnabled || state.enabled) {
    auth.push([enc.encode(ENABLED_KEY), new Uint8Array([state.enabled ? 1 : 0])]);
  }
  auth.push([enc.encode(REVISION_KEY), rev]);
  const byKey = (a: [Uint8Array, Uint8Array], b: [Uint8Array, Uint8Array]) =>
    compareBytes(a[0], b[0]);
  return [
    { name: enc.encode(AUTH_BUCKET_NAME), entries: auth },
    {
      name: enc.encode(AUTH_ROLES_BUCKET_NAME),
      entries: state.roles.map((r): [Uint8Array, Uint8Array] => [
        r.name,
        toBinary(RoleSchema, r),
      ]).sort(byKey),
    },
    {
      name: enc.encode(AUTH_USERS_BUCKET_NAME),
      entries: state.users.map((u): [Uint8Array, Uint8Array] => [
        u.name,
        toBinary(UserSchema, u),
      ]).sort(byKey),
    },
  ];
}

function find(buckets: readonly AuthBucket[], name: string): AuthBucket | undefined {
  const bytes = enc.encode(name);
  return buckets.find((b) => compareBytes(b.name, bytes) === 0);
}

/**
 * The auth state etcd's buckets hold (missing buckets: a fresh store, revision 1). Throws
 * AuthBucketError for values that do not decode or keys that do not match the names inside.
 */
export function authFromBuckets(buckets: readonly AuthBucket[]): AuthSnapshot {
  const auth = find(buckets, AUTH_BUCKET_NAME)?.entries ?? [];
  let enabled = false;
  let everEnabled = false;
  let revision = 0;
  for (const [k, v] of auth) {
    const key = dec.decode(k);
    if (key === ENABLED_KEY) {
      // etcd compares the value with {1}: anything else reads as disabled.
      enabled = v.length === 1 && v[0] === 1;
      everEnabled = true;
    } else if (key === REVISION_KEY) {
      if (v.length !== 8) {
        throw new AuthBucketError(`auth bucket: authRevision has ${v.length} bytes, not 8`);
      }
      const r = new DataView(v.buffer, v.byteOffset, 8).getBigUint64(0);
      if (r > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new AuthBucketError(`auth bucket: authRevision ${r} out of range`);
      }
      revision = Number(r);
    }
  }
  const users: User[] = (find(buckets, AUTH_USERS_BUCKET_NAME)?.entries ?? []).map(([k, v]) => {
    let user: User;
    try {
      user = fromBinary(UserSchema, v);
    } catch (e) {
      throw new AuthBucketError(
        `authUsers bucket: bad User under ${JSON.stringify(dec.decode(k))}: ${e}`,
      );
    }
    if (compareBytes(user.name, k) !== 0) {
      throw new AuthBucketError(
        `authUsers bucket: key ${JSON.stringify(dec.decode(k))} holds another user`,
      );
    }
    return user;
  });
  const roles: Role[] = (find(buckets, AUTH_ROLES_BUCKET_NAME)?.entries ?? []).map(([k, v]) => {
    let role: Role;
    try {
      role = fromBinary(RoleSchema, v);
    } catch (e) {
      throw new AuthBucketError(
        `authRoles bucket: bad Role under ${JSON.stringify(dec.decode(k))}: ${e}`,
      );
    }
    if (compareBytes(role.name, k) !== 0) {
      throw new AuthBucketError(
        `authRoles bucket: key ${JSON.stringify(dec.decode(k))} holds another role`,
      );
    }
    return role;
  });
  users.sort((a, b) => compareBytes(a.name, b.name));
  roles.sort((a, b) => compareBytes(a.name, b.name));
  // etcd's NewAuthStore commits revision 1 over a missing (0) one.
  return { enabled, everEnabled, revision: revision === 0 ? 1 : revision, users, roles };
}
