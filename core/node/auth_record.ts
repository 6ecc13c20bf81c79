/**
 * The auth state in a node snapshot: core/auth's plain AuthSnapshot and the AuthRecord message
 * the snapshot file, a snapshot sent to a follower and `snapshot restore` carry.
 */
import { create } from "@bufbuild/protobuf";
import { type AuthRecord, AuthRecordSchema } from "../../gen/detcdpb/internal_pb.ts";
import type { AuthSnapshot } from "../auth/mod.ts";

/** The record of an auth state. */
export function authRecordOf(state: AuthSnapshot): AuthRecord {
  return create(AuthRecordSchema, {
    enabled: state.enabled,
    everEnabled: state.everEnabled,
    revision: BigInt(state.revision),
    users: state.users,
    roles: state.roles,
  });
}

/**
 * The auth state a record holds; a snapshot without one (written before detcd had auth) holds a
 * fresh store: disabled, never enabled, revision 1, no users or roles.
 */
export function authSnapshotOf(record: AuthRecord | undefined): AuthSnapshot {
  if (record === undefined) {
    return { enabled: false, everEnabled: false, revision: 1, users: [], roles: [] };
  }
  return {
    enabled: record.enabled,
    everEnabled: record.everEnabled,
    revision: Number(record.revision),
    users: record.users,
    roles: record.roles,
  };
}
