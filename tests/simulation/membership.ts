/**
 * Membership changes during the chaos phase, one at a time: memberAdd (voter or learner) through a
 * random running member, then the new member starts with `initialClusterState: "existing"` once the
 * cluster knows it; memberPromote of a learner on the leader; memberRemove of any member, which is
 * retired when it learns it or when the cluster's view marks it removed. An add whose outcome is
 * unknown starts the member if the add commits later. Decisions come from the fault stream.
 */

import { idHex, memberId, type MemberInfo } from "../../core/node/mod.ts";
import { errorText, type EventLoop } from "./event_loop.ts";
import { CLUSTER_TOKEN, EPOCH_MS, type Lifecycle, type Member, type Members } from "./members.ts";
import type { Prng } from "./prng.ts";

/** Adds, promotes and removes members, and starts or retires them as the cluster decides. */
export class MembershipChanges {
  #loop: EventLoop;
  #members: Members;
  #lifecycle: Lifecycle;
  #rng: Prng;
  #stopped = false;
  #busy = false;
  /** The member a membership call went through: if it crashes, the call's outcome is unknown. */
  #via: Member | null = null;
  /** Members added through memberAdd that have not been started yet. */
  #pendingJoins: Member[] = [];

  constructor(loop: EventLoop, members: Members, lifecycle: Lifecycle, rng: Prng) {
    this.#loop = loop;
    this.#members = members;
    this.#lifecycle = lifecycle;
    this.#rng = rng;
  }

  /** Whether a membership call is in flight (the cluster has not settled). */
  get busy(): boolean {
    return this.#busy;
  }

  /** Added members not started yet. */
  get pendingJoins(): number {
    return this.#pendingJoins.length;
  }

  /**
   * Schedules the first change (2-5 s from now), then one every 1.5-5 s while none is in flight;
   * the cluster keeps about the size it has now.
   */
  start(): void {
    const r = this.#rng;
    const initialSize = this.#members.all.length;
    const next = () => {
      if (this.#stopped) return;
      if (!this.#busy) this.#change(initialSize);
      this.#loop.at(r.range(1500, 5000), "membership", next);
    };
    this.#loop.at(r.range(2000, 5000), "membership", next);
  }

  /** No new changes (a call in flight still finishes). */
  stop(): void {
    this.#stopped = true;
  }

  /** The member's incarnation went away: a call through it will never report its outcome. */
  memberGone(m: Member): void {
    if (this.#via === m) this.#endCall();
  }

  /** Starts members the cluster added; retires members it removed. */
  reconcile(): void {
    const view = this.#view();
    if (!view) return;
    const ids = new Set(view.members.map((m) => m.id));
    for (const m of [...this.#pendingJoins]) {
      if (ids.has(m.id)) {
        this.#pendingJoins.splice(this.#pendingJoins.indexOf(m), 1);
        m.state = "down";
        this.#loop.log(`start joining member ${m.name}`);
        this.#lifecycle.open(m);
      } else if (view.from.node!.isRemovedMember(m.id)) {
        this.#pendingJoins.splice(this.#pendingJoins.indexOf(m), 1);
      }
      // An add whose outcome is unknown stays here: if it commits later, the member starts then.
    }
    for (const m of this.#members.all) {
      if (m.state !== "removed" && view.from.node!.isRemovedMember(m.id)) {
        this.#loop.log(`retire removed member ${m.name}`);
        if (m.state === "running" || m.state === "opening") m.simDisk?.fence();
        this.#lifecycle.abandon(m, "removed");
      }
    }
  }

  #beginCall(via: Member, call: Promise<unknown>, what: string): void {
    const inc = via.incarnation;
    this.#busy = true;
    this.#via = via;
    call.then(
      () => this.#loop.log(`${what} ok`),
      (e) => this.#loop.log(`${what} failed: ${errorText(e)}`),
    ).finally(() => {
      if (via.incarnation === inc && this.#via === via) this.#endCall();
    });
  }

  #endCall(): void {
    this.#busy = false;
    this.#via = null;
  }

  /** The membership as the most advanced running member applied it. */
  #view(): { members: MemberInfo[]; from: Member } | null {
    let best: Member | null = null;
    for (const m of this.#members.all) {
      if (m.state !== "running") continue;
      if (!best || m.node!.appliedIndex > best.node!.appliedIndex) best = m;
    }
    return best ? { members: best.node!.memberInfos(), from: best } : null;
  }

  #change(initialSize: number): void {
    const r = this.#rng;
    const name = (id: bigint) => this.#members.name(id);
    const view = this.#view();
    if (!view) return;
    const up = this.#members.running();
    const via = r.pick(up);
    const learner = view.members.find((m) => m.isLearner);
    if (learner) {
      const leader = up.find((m) => m.node!.isLeader);
      if (!leader) return;
      this.#loop.log(`member promote ${name(learner.id)} via ${leader.name}`);
      this.#loop.stats.promotions++;
      this.#beginCall(
        leader,
        leader.node!.memberPromote(learner.id),
        `promote ${name(learner.id)}`,
      );
      return;
    }
    const size = view.members.length;
    const add = size < initialSize || (size === initialSize && r.chance(0.5));
    if (add) {
      const m = this.#members.create();
      const asLearner = r.chance(0.4);
      m.id = memberId(
        [m.peerUrl],
        CLUSTER_TOKEN,
        Math.floor((EPOCH_MS + this.#loop.nowMs) / 1000),
      );
      const initialCluster = [
        ...view.members.map((x) => `${name(x.id)}=${x.peerUrls[0]}`),
        `${m.name}=${m.peerUrl}`,
      ].join(",");
      m.config = this.#lifecycle.config(m, initialCluster, "existing");
      m.join = { clusterId: via.node!.clusterId, memberId: m.id };
      this.#members.register(m);
      m.state = "removed"; // not started until the cluster knows it
      this.#pendingJoins.push(m);
      this.#loop.stats.memberAdds++;
      this.#loop.log(
        `member add ${m.name} (${idHex(m.id)})${asLearner ? " as learner" : ""} via ${via.name}`,
      );
      const call = via.node!.memberAdd([m.peerUrl], asLearner).then((resp) => {
        if (resp.member?.ID !== m.id) this.#loop.fail(`memberAdd gave ${m.name} an unexpected ID`);
      });
      this.#beginCall(via, call, `member add ${m.name}`);
      return;
    }
    const target = r.pick(view.members);
    this.#loop.stats.memberRemoves++;
    this.#loop.log(`member remove ${name(target.id)} via ${via.name}`);
    this.#beginCall(via, via.node!.memberRemove(target.id), `member remove ${name(target.id)}`);
  }
}
