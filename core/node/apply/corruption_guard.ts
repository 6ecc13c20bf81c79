/**
 * The corruption guard: while a CORRUPT alarm is raised, the key space and leases do not change
 * (etcd's applierV3Corrupt: Put, DeleteRange, Txn, Compaction, LeaseGrant and LeaseRevoke answer
 * `etcdserver: corrupt cluster`). Reads served from the applied state go on, as in etcd 3.4.23,
 * whose Range and read-only Txn call the base applier (checked side by side: `etcdctl get` works
 * under CORRUPT, `put`, `del`, `compaction`, `lease grant` fail). Alarms, membership and the
 * member's own bookkeeping still apply, so the alarm can be disarmed.
 */
import { AlarmType } from "../../../gen/etcdserverpb/rpc_pb.ts";
import { Errors } from "../../errors.ts";
import type { ApplyLayer } from "./chain.ts";
import type { OperationKind } from "./operation.ts";

const refused: ReadonlySet<OperationKind> = new Set<OperationKind>([
  "put",
  "deleteRange",
  "txn",
  "compaction",
  "leaseGrant",
  "leaseRevoke",
]);

/** The guard for a member whose raised alarms `hasAlarm` answers. */
export function corruptionGuard(hasAlarm: (type: AlarmType) => boolean): ApplyLayer {
  return {
    name: "corruption-guard",
    apply(operation, meta, next) {
      if (meta.logged && refused.has(operation.case) && hasAlarm(AlarmType.CORRUPT)) {
        throw Errors.corrupt();
      }
      return next(operation, meta);
    },
  };
}
