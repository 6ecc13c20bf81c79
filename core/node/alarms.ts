/**
 * The member's raised alarms (etcd's alarm store), replicated: every change comes through the log,
 * so every member holds the same list. Kept sorted by member then type, so that snapshots are
 * deterministic.
 */
import { create } from "@bufbuild/protobuf";
import {
  type AlarmMember,
  AlarmMemberSchema,
  type AlarmRequest,
  AlarmRequest_AlarmAction,
  AlarmType,
} from "../../gen/etcdserverpb/rpc_pb.ts";

/** Raised alarms, and etcd's GET / ACTIVATE / DEACTIVATE on them. */
export class AlarmStore {
  #alarms: AlarmMember[] = [];

  /** Raised alarms, sorted by member then type. */
  get list(): readonly AlarmMember[] {
    return this.#alarms;
  }

  /** Whether any member raised an alarm of `type`. */
  has(type: AlarmType): boolean {
    return this.#alarms.some((a) => a.alarm === type);
  }

  /** The alarms of a snapshot replace today's (a snapshot keeps them sorted). */
  restore(alarms: readonly AlarmMember[]): void {
    this.#alarms = [...alarms];
  }

  /** etcd's alarm request: GET lists (all, or one type), ACTIVATE raises, DEACTIVATE clears. */
  apply(req: AlarmRequest): AlarmMember[] {
    const matches = (a: AlarmMember) => a.memberID === req.memberID && a.alarm === req.alarm;
    switch (req.action) {
      case AlarmRequest_AlarmAction.GET:
        return this.#alarms.filter((a) => req.alarm === AlarmType.NONE || a.alarm === req.alarm);
      case AlarmRequest_AlarmAction.ACTIVATE: {
        if (req.alarm === AlarmType.NONE) return [];
        const member = create(AlarmMemberSchema, { memberID: req.memberID, alarm: req.alarm });
        if (!this.#alarms.some(matches)) {
          this.#alarms = [...this.#alarms, member].sort(compareAlarms);
        }
        return [member];
      }
      case AlarmRequest_AlarmAction.DEACTIVATE: {
        const removed = this.#alarms.filter(matches);
        this.#alarms = this.#alarms.filter((a) => !matches(a));
        return removed;
      }
      default:
        // An action this version does not know (a newer proposer): nothing changes.
        return [];
    }
  }
}

function compareAlarms(a: AlarmMember, b: AlarmMember): number {
  if (a.memberID !== b.memberID) return a.memberID < b.memberID ? -1 : 1;
  return a.alarm - b.alarm;
}
