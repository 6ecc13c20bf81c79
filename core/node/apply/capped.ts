/**
 * The capped layer: while a NOSPACE alarm is raised the store may only shrink. Puts, txns with a
 * put at any depth, and lease grants answer `etcdserver: mvcc: database space exceeded`;
 * deletes, compaction, reads and revokes go on (etcd's applierV3Capped).
 */
import { AlarmType, type TxnRequest } from "../../../gen/etcdserverpb/rpc_pb.ts";
import { Errors } from "../../errors.ts";
import type { ApplyLayer } from "./chain.ts";
import type { Operation } from "./operation.ts";

/** The capped layer for a member whose raised alarms `hasAlarm` answers. */
export function capped(hasAlarm: (type: AlarmType) => boolean): ApplyLayer {
  return {
    name: "capped",
    apply(operation, meta, next) {
      if (grows(operation) && hasAlarm(AlarmType.NOSPACE)) throw Errors.noSpace();
      return next(operation, meta);
    },
  };
}

/** Whether an operation can make the store larger (what a NOSPACE alarm refuses). */
function grows(operation: Operation): boolean {
  switch (operation.case) {
    case "put":
    case "leaseGrant":
      return true;
    case "txn":
      return hasPut(operation.value);
    default:
      return false;
  }
}

/** Whether any branch of a txn, at any depth, puts. */
export function hasPut(req: TxnRequest): boolean {
  return [...req.success, ...req.failure].some((op) =>
    op.request.case === "requestPut" ||
    (op.request.case === "requestTxn" && hasPut(op.request.value))
  );
}
