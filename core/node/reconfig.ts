/**
 * Membership changes before they reach the log: URL validation, etcd's --strict-reconfig-check
 * rules (a started and connected quorum must survive the change), and the context a ConfChange
 * entry carries (the proposer's request ID and the member, so that apply can answer the proposer).
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type ConfChangeContext, ConfChangeContextSchema } from "../../gen/detcdpb/internal_pb.ts";
import { Errors } from "../errors.ts";
import {
  type Member,
  type MemberAddResponse,
  MemberAddResponseSchema,
  type MemberPromoteResponse,
  MemberPromoteResponseSchema,
  type MemberRemoveResponse,
  MemberRemoveResponseSchema,
  type MemberUpdateResponse,
  MemberUpdateResponseSchema,
  type ResponseHeader,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { ConfChangeType, none } from "../raft/mod.ts";
import type { ResolvedNodeConfig } from "./config.ts";
import { memberId } from "./ids.ts";
import {
  fromRecord,
  type MemberInfo,
  type Membership,
  toApiMember,
  toRecord,
} from "./membership.ts";
import type { Transport } from "./transport.ts";

/** How long a peer must have been connected to count toward etcd's strict reconfig checks. */
const HEALTH_INTERVAL_MS = 5000;

/** A learner may be promoted when its log is at least this far along the leader's. */
export const LEARNER_READY_PERCENT = 0.9;

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
  const since = view.nowMs() - HEALTH_INTERVAL_MS;
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

/** What member changes need of the member (EtcdNode provides it). */
export interface MemberChangesHost {
  readonly memberId: bigint;
  readonly config: ResolvedNodeConfig;
  readonly membership: Membership;
  /** Wall clock (Unix ms): an added member's ID depends on it, as in etcd. */
  nowMs(): number;
  /** Asks the leader to promote a learner (NodeEnvironment.forwardPromote). */
  readonly forwardPromote?: (leader: bigint, id: bigint) => Promise<void>;
  /** What the strict reconfig checks look at, now. */
  view(): ReconfigView;
  isLeader(): boolean;
  /** The known leader (none when there is none). */
  leader(): bigint;
  /** Leader only: every member's match index. */
  progress(): ReadonlyMap<bigint, { match: number }>;
  /** Resolves once a read started now may be served from the applied state. */
  linearizableRead(): Promise<void> | void;
  /** Proposes a membership change; resolves once this member applied it. */
  proposeConfChange(type: ConfChangeType, member: MemberInfo): Promise<unknown>;
  /** The header of membership responses (no revision, as etcd sends them). */
  header(): ResponseHeader;
  /** Cluster.MemberList's members, after the change. */
  members(): Member[];
}

/**
 * Cluster.MemberAdd/Remove/Update/Promote: etcd's validation and strict checks before proposing,
 * then the proposal, then the member list as this member applied it.
 */
export class MemberChanges {
  readonly #host: MemberChangesHost;

  constructor(host: MemberChangesHost) {
    this.#host = host;
  }

  /** A voting member, or a learner that replicates but does not vote. */
  async add(peerUrls: string[], isLearner: boolean): Promise<MemberAddResponse> {
    const host = this.#host;
    if (!validPeerUrls(peerUrls)) throw Errors.memberBadURLs();
    const nowSeconds = Math.floor(host.nowMs() / 1000);
    const member: MemberInfo = {
      id: memberId(peerUrls, host.config.initialClusterToken, nowSeconds),
      name: "",
      peerUrls,
      clientUrls: [],
      isLearner,
    };
    host.membership.checkAdd(member);
    if (host.config.strictReconfigCheck) checkAdd(host.view(), isLearner);
    await host.proposeConfChange(
      isLearner ? ConfChangeType.AddLearnerNode : ConfChangeType.AddNode,
      member,
    );
    return create(MemberAddResponseSchema, {
      header: host.header(),
      member: toApiMember(member),
      members: host.members(),
    });
  }

  /** Removes a member; a voter only if a started, live quorum remains (strict checks). */
  async remove(id: bigint): Promise<MemberRemoveResponse> {
    const host = this.#host;
    host.membership.checkRemove(id);
    const member = host.membership.get(id)!;
    if (!member.isLearner && host.config.strictReconfigCheck) {
      checkRemoveVoter(host.view(), id);
    }
    await host.proposeConfChange(ConfChangeType.RemoveNode, member);
    return create(MemberRemoveResponseSchema, { header: host.header(), members: host.members() });
  }

  /** A member's new peer URLs. */
  async update(id: bigint, peerUrls: string[]): Promise<MemberUpdateResponse> {
    const host = this.#host;
    if (!validPeerUrls(peerUrls)) throw Errors.memberBadURLs();
    host.membership.checkUpdate(id, peerUrls);
    const member = { ...host.membership.get(id)!, peerUrls };
    await host.proposeConfChange(ConfChangeType.UpdateNode, member);
    return create(MemberUpdateResponseSchema, { header: host.header(), members: host.members() });
  }

  /**
   * Promotes a learner: only the leader knows whether it caught up (a follower forwards), and it
   * must be at least LEARNER_READY_PERCENT along the leader's log.
   */
  async promote(id: bigint): Promise<MemberPromoteResponse> {
    const host = this.#host;
    host.membership.checkPromote(id);
    if (!host.isLeader()) {
      const forward = host.forwardPromote;
      if (!forward || host.leader() === none) throw Errors.notLeader();
      await forward(host.leader(), id);
      // The leader answered once the promotion applied there; catch up before listing members.
      await host.linearizableRead();
      return create(MemberPromoteResponseSchema, {
        header: host.header(),
        members: host.members(),
      });
    }
    const progress = host.progress();
    const leaderMatch = progress.get(host.memberId)?.match ?? 0;
    const learnerMatch = progress.get(id)?.match ?? 0;
    if (learnerMatch < leaderMatch * LEARNER_READY_PERCENT) throw Errors.learnerNotReady();
    const member = { ...host.membership.get(id)!, isLearner: false };
    await host.proposeConfChange(ConfChangeType.AddNode, member);
    return create(MemberPromoteResponseSchema, { header: host.header(), members: host.members() });
  }
}
