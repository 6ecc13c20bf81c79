/**
 * Membership changes before they reach the log: URL validation, etcd's --strict-reconfig-check
 * rules (a started and connected quorum must survive the change), and the context a ConfChange
 * entry carries (the proposer's request ID and the member, so that apply can answer the proposer).
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type ConfChangeContext, ConfChangeContextSchema } from "../../gen/detcdpb/internal_pb.ts";
import { Errors } from "../errors.ts";
import { none } from "../raft/mod.ts";
import { fromRecord, type MemberInfo, type Membership, toRecord } from "./membership.ts";
import type { Transport } from "./transport.ts";

/** How long a peer must have been connected to count toward etcd's strict reconfig checks. */
const healthIntervalMs = 5000;

/** A learner may be promoted when its log is at least this far along the leader's. */
export const learnerReadyPercent = 0.9;

function quorum(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/** What the strict checks look at: the applied membership and the peers' connection ages. */
export interface ReconfigView {
  /** This member's ID (always counts as connected to itself). */
  memberId: bigint;
  membership: Membership;
  transport: Transport;
  /** Wall clock (Unix ms), from the environment; read only when a check needs it. */
  nowMs: () => number;
}

/** Members count as started once they published their name (alive or not), as in etcd. */
function startedVoters(view: ReconfigView, except = none): number {
  return view.membership.voters().filter((m) => m.id !== except && m.name !== "").length;
}

/** Voters (this member included) this member has been connected to for etcd's 5 s. */
function healthyVoters(view: ReconfigView): number {
  const since = view.nowMs() - healthIntervalMs;
  return view.membership.voters().filter((m) => {
    if (m.id === view.memberId) return true;
    const active = view.transport.activeSince(m.id);
    return active !== null && active <= since;
  }).length;
}

/**
 * etcd's strict checks before an add: a voter needs a started quorum after it
 * (isReadyToAddVotingMember); voters and learners alike need every voter connected for 5 s.
 */
export function checkAdd(view: ReconfigView, isLearner: boolean): void {
  const voters = view.membership.voters().length;
  if (!isLearner) {
    const started = startedVoters(view);
    // A lone member may always take a second one (it then needs both to make progress).
    if (!(voters === 1 && started === 1) && started < quorum(voters + 1)) {
      throw Errors.memberNotEnoughStarted();
    }
  }
  if (healthyVoters(view) < voters) throw Errors.unhealthy();
}

/** etcd's strict checks before removing a voter: the rest must keep a started, live quorum. */
export function checkRemoveVoter(view: ReconfigView, id: bigint): void {
  const voters = view.membership.voters();
  if (startedVoters(view, id) < quorum(voters.length - 1)) {
    throw Errors.memberNotEnoughStarted();
  }
  // A member that is down is not part of the active quorum: removing it is always safe.
  if (id !== view.memberId && view.transport.activeSince(id) === null) return;
  if (healthyVoters(view) - 1 < quorum(voters.length - 1)) throw Errors.unhealthy();
}

/** Whether every peer URL of a MemberAdd/MemberUpdate is an http(s) URL with a host. */
export function validPeerUrls(peerUrls: string[]): boolean {
  return peerUrls.length > 0 && peerUrls.every(isValidUrl);
}

function isValidUrl(u: string): boolean {
  try {
    const url = new URL(u);
    return (url.protocol === "http:" || url.protocol === "https:") && url.host !== "";
  } catch {
    return false;
  }
}

/** The context of a ConfChange entry: the proposer's request ID and the member it changes. */
export function encodeContext(requestId: bigint, member: MemberInfo): Uint8Array {
  return toBinary(
    ConfChangeContextSchema,
    create(ConfChangeContextSchema, { requestId, member: toRecord(member) }),
  );
}

export function decodeContext(bytes: Uint8Array): { requestId: bigint; member: MemberInfo } {
  const ctx: ConfChangeContext = fromBinary(ConfChangeContextSchema, bytes);
  return {
    requestId: ctx.requestId,
    member: ctx.member
      ? fromRecord(ctx.member)
      : { id: 0n, name: "", peerUrls: [], clientUrls: [], isLearner: false },
  };
}
