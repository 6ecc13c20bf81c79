import { create } from "@bufbuild/protobuf";
import { type MemberRecord, MemberRecordSchema } from "../../gen/detcdpb/internal_pb.ts";
import { type Member, MemberSchema } from "../../gen/etcdserverpb/rpc_pb.ts";
import { Errors } from "../errors.ts";

/** etcd 3.4 allows one learner at a time. */
export const MAX_LEARNERS = 1;

/** A member as the replicated membership knows it. */
export interface MemberInfo {
  id: bigint;
  /** Empty until the member started and published its attributes. */
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

/**
 * The cluster's membership as applied from the log: members, the IDs removed for good (they may
 * never rejoin), and the cluster version. Changed only by applying committed entries, so every
 * member holds the same view at the same index.
 */
export class Membership {
  #members = new Map<bigint, MemberInfo>();
  #removed = new Set<bigint>();
  clusterVersion = "";

  /** Members sorted by ID (deterministic order for snapshots and listings). */
  list(): MemberInfo[] {
    return [...this.#members.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  get(id: bigint): MemberInfo | undefined {
    return this.#members.get(id);
  }

  has(id: bigint): boolean {
    return this.#members.has(id);
  }

  isRemoved(id: bigint): boolean {
    return this.#removed.has(id);
  }

  removedIds(): bigint[] {
    return [...this.#removed].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  get size(): number {
    return this.#members.size;
  }

  voters(): MemberInfo[] {
    return this.list().filter((m) => !m.isLearner);
  }

  /** The member whose peer URLs are exactly these (in any order). */
  findByPeerUrls(peerUrls: readonly string[]): MemberInfo | undefined {
    const key = [...peerUrls].sort().join(",");
    return this.list().find((m) => [...m.peerUrls].sort().join(",") === key);
  }

  /** Throws etcd's error when a member may not be added (checked at propose and at apply). */
  checkAdd(member: MemberInfo): void {
    if (this.#removed.has(member.id)) throw Errors.memberNotFound();
    if (this.#members.has(member.id)) throw Errors.memberExist();
    this.#checkPeerUrlsFree(member.peerUrls, member.id);
    if (member.isLearner && this.list().filter((m) => m.isLearner).length >= MAX_LEARNERS) {
      throw Errors.tooManyLearners();
    }
  }

  checkRemove(id: bigint): void {
    if (this.#removed.has(id) || !this.#members.has(id)) throw Errors.memberNotFound();
  }

  checkUpdate(id: bigint, peerUrls: readonly string[]): void {
    if (this.#removed.has(id) || !this.#members.has(id)) throw Errors.memberNotFound();
    this.#checkPeerUrlsFree(peerUrls, id);
  }

  checkPromote(id: bigint): void {
    const m = this.#members.get(id);
    if (this.#removed.has(id) || !m) throw Errors.memberNotFound();
    if (!m.isLearner) throw Errors.memberNotLearner();
  }

  #checkPeerUrlsFree(peerUrls: readonly string[], self: bigint): void {
    for (const m of this.#members.values()) {
      if (m.id === self) continue;
      if (m.peerUrls.some((u) => peerUrls.includes(u))) throw Errors.peerURLExist();
    }
  }

  add(member: MemberInfo): void {
    this.#members.set(member.id, { ...member });
  }

  promote(id: bigint): void {
    const m = this.#members.get(id);
    if (m) m.isLearner = false;
  }

  remove(id: bigint): void {
    this.#members.delete(id);
    this.#removed.add(id);
  }

  updatePeerUrls(id: bigint, peerUrls: string[]): void {
    const m = this.#members.get(id);
    if (m) m.peerUrls = [...peerUrls];
  }

  setAttributes(id: bigint, name: string, clientUrls: string[]): void {
    const m = this.#members.get(id);
    if (m) {
      m.name = name;
      m.clientUrls = [...clientUrls];
    }
  }

  /** Replaces everything (snapshot restore). */
  restore(members: MemberRecord[], removed: bigint[], clusterVersion: string): void {
    this.#members = new Map(members.map((m) => [m.id, fromRecord(m)]));
    this.#removed = new Set(removed);
    this.clusterVersion = clusterVersion;
  }

  records(): MemberRecord[] {
    return this.list().map(toRecord);
  }
}

export function toRecord(m: MemberInfo): MemberRecord {
  return create(MemberRecordSchema, {
    id: m.id,
    name: m.name,
    peerUrls: m.peerUrls,
    clientUrls: m.clientUrls,
    isLearner: m.isLearner,
  });
}

export function fromRecord(r: MemberRecord): MemberInfo {
  return {
    id: r.id,
    name: r.name,
    peerUrls: [...r.peerUrls],
    clientUrls: [...r.clientUrls],
    isLearner: r.isLearner,
  };
}

/** The API's Member message. */
export function toApiMember(m: MemberInfo): Member {
  return create(MemberSchema, {
    ID: m.id,
    name: m.name,
    peerURLs: m.peerUrls,
    clientURLs: m.clientUrls,
    isLearner: m.isLearner,
  });
}
