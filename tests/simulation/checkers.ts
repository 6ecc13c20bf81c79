/**
 * The state checkers: what must hold of a run, each reporting a violation through
 * `EventLoop.fail`.
 *
 * - `SafetyChecker`, after every event: watch order (watch_check.ts), election safety (one leader
 *   per term over all incarnations) and, through `onApply`, state machine safety (every member and
 *   incarnation, replay after a restart included, applies the same entry at each index).
 * - `checkFinalState`, once the cluster has converged: the same applied index, revision, `hashKV`
 *   and membership on every member, durability of every acknowledged put, and the client history
 *   (history.ts).
 * - `LeaseChecker`: no lease expires early while kept alive, and none outlives its TTL by more
 *   than the election timeout once the cluster is stable.
 */

import { create } from "@bufbuild/protobuf";
import { LeaseTimeToLiveRequestSchema, RangeRequestSchema } from "../../gen/etcdserverpb/rpc_pb.ts";
import { idHex } from "../../core/node/mod.ts";
import type { Entry } from "../../core/raft/mod.ts";
import type { EventLoop } from "./event_loop.ts";
import { checkHistory, describe, type Op, toKvHistory } from "./history.ts";
import { checkLinearizable } from "../linearizability/checker.ts";
import {
  checkRevisions,
  etcdKvModel,
  kvModelFor,
  withoutUnobservedUnknownPuts,
} from "../linearizability/etcd_model.ts";

/** Search steps the linearizability checker may take per run before calling it undecided. */
const LINEARIZABILITY_BUDGET = 2_000_000;
/** Every run must get at least this much done to count (a seed where all failed fails). */
const MIN_ACKED_PUTS = 5;
const MIN_CHECKED_READS = 3;
import { ELECTION_TIMEOUT_MS, HEARTBEAT_MS, type Member, type Members } from "./members.ts";
import type { WatchChecker } from "./watch_check.ts";
import type { LeaseWorkload, SimLease } from "./workloads.ts";
import type { KvWorkload } from "./kv_workload.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Bounds on how fast a member's lease clock (its ticks × HEARTBEAT_MS) runs against simulated
 * time: a tick period is 92-108 ms with ±3 ms jitter, so one lease-ms is 0.89-1.11 simulated ms.
 */
const LEASE_CLOCK_FASTEST = 89 / HEARTBEAT_MS;
const LEASE_CLOCK_SLOWEST = 111 / HEARTBEAT_MS;

/** What the end-of-run checkers need to drive the simulation further. */
export interface RunDriver {
  /** Runs events until `until()` holds or the clock passes `limitMs`; whether it held. */
  runUntil(limitMs: number, until: () => boolean): Promise<boolean>;
  /** One leader, every member running and applied up to it, nothing in flight. */
  converged(): boolean;
}

/**
 * A checker run after every event (once its microtasks have settled): it looks at the members and
 * reports through `EventLoop.fail`; it never draws random numbers or schedules events, so adding
 * one changes no decision of a run (only the lines it logs enter the event hash).
 */
export interface EventChecker {
  afterEvent(): void;
}

/** Watch order and election safety after every event; state machine safety as members apply. */
export class SafetyChecker implements EventChecker {
  #loop: EventLoop;
  #members: Members;
  #watches: WatchChecker;
  /** Leader seen per term (election safety). */
  #leaders = new Map<number, bigint>();
  /** index → "term/type/hash" of the entry every member applied there (state machine safety). */
  #applied = new Map<number, string>();
  #highestApplied = 0;

  constructor(loop: EventLoop, members: Members, watches: WatchChecker) {
    this.#loop = loop;
    this.#members = members;
    this.#watches = watches;
  }

  /** The highest index any member applied. */
  get highestApplied(): number {
    return this.#highestApplied;
  }

  /** Incarnation `inc` of `m` applied `entry` (from EtcdNode's onApply hook). */
  onApply(m: Member, inc: number, entry: Entry): void {
    const sig = `${entry.term}/${entry.type}/${bytesHash(entry.data)}`;
    const seen = this.#applied.get(entry.index);
    if (seen === undefined) {
      this.#applied.set(entry.index, sig);
      if (entry.index > this.#highestApplied) this.#highestApplied = entry.index;
    } else if (seen !== sig) {
      this.#loop.fail(
        `state machine safety: ${m.name}#${inc} applied ${sig} at index ${entry.index}, ` +
          `another member applied ${seen} there`,
      );
    }
  }

  /** After every event: watch order, election safety and leader changes. */
  afterEvent(): void {
    const watchViolation = this.#watches.check();
    if (watchViolation !== null) this.#loop.fail(watchViolation);
    for (const m of this.#members.all) {
      if (m.state !== "running" && m.state !== "stopping") continue;
      const node = m.node!;
      if (!node.isLeader) continue;
      const term = node.raftTerm;
      const seen = this.#leaders.get(term);
      if (seen === undefined) {
        this.#leaders.set(term, m.id);
        this.#loop.stats.leaderChanges++;
        this.#loop.log(`leader ${m.name} term ${term}`);
      } else if (seen !== m.id) {
        this.#loop.fail(
          `election safety: ${this.#members.name(seen)} and ${m.name} both led term ${term}`,
        );
      }
    }
  }
}

/**
 * Convergence (same applied index, revision, MVCC hash and membership on every expected member),
 * durability (every acknowledged put is at its revision with its value on every member) and the
 * client history's linearizability; the first violation goes to `loop.fail`.
 */
export async function checkFinalState(
  loop: EventLoop,
  members: Members,
  ops: readonly Op[],
  kv?: KvWorkload,
): Promise<void> {
  const expected = members.expected();
  const first = expected[0].node!;
  const hashes = expected.map((m) => {
    return `${m.node!.appliedIndex}/${m.node!.revision}/${m.node!.hashNow()}`;
  });
  if (new Set(hashes).size !== 1) {
    loop.fail(
      `members did not converge to one state (applied/revision/hashKV): ${
        expected.map((m, i) => `${m.name}=${hashes[i]}`).join(" ")
      }`,
    );
    return;
  }
  const memberLists = expected.map((m) =>
    m.node!.memberInfos().map((x) => `${idHex(x.id)}:${x.isLearner}`).join(",")
  );
  if (new Set(memberLists).size !== 1) {
    loop.fail(`members disagree about the membership: ${memberLists.join(" | ")}`);
    return;
  }
  for (const op of ops) {
    if (op.kind !== "put" || op.outcome !== "ok") continue;
    for (const m of expected) {
      // Compacted away (the KV workload compacts): the history's reads still hold it.
      if (op.revision < m.node!.compactRevision) continue;
      const resp = await m.node!.range(create(RangeRequestSchema, {
        key: encoder.encode(op.key),
        revision: BigInt(op.revision),
        serializable: true,
      }));
      const kv = resp.kvs[0];
      if (!kv || decoder.decode(kv.value) !== op.value || Number(kv.modRevision) !== op.revision) {
        loop.fail(
          `durability: ${describe(op)} was acknowledged but ${m.name} has ${
            kv ? `${decoder.decode(kv.value)}@${kv.modRevision}` : "nothing"
          } at revision ${op.revision}`,
        );
        return;
      }
    }
  }
  const problem = checkHistory(ops);
  if (problem) loop.fail(`linearizability: ${problem}`);
  // The search (tests/linearizability): every key's history has a legal sequential order.
  const kvHistory = kv?.history() ?? [];
  // The KV workload's keys as the converged cluster holds them: a read after every call.
  const end = loop.nowMs + 1;
  for (const key of kv?.keys ?? []) {
    const resp = await first.range(create(RangeRequestSchema, {
      key: encoder.encode(key),
      serializable: true,
    }));
    const found = resp.kvs[0];
    kvHistory.push({
      client: -1,
      call: end,
      return: end,
      input: { kind: "get", key },
      output: {
        kind: "get",
        value: found ? decoder.decode(found.value) : null,
        modRevision: found ? Number(found.modRevision) : 0,
      },
    });
  }
  const history = withoutUnobservedUnknownPuts([...toKvHistory(ops), ...kvHistory]);
  loop.stats.linearizabilityOps = history.length;
  loop.stats.linearizabilityReads = history.filter((o) => o.input.kind === "get").length;
  const verdict = checkLinearizable(kvModelFor(history), history, {
    budget: LINEARIZABILITY_BUDGET,
  });
  if (verdict.verdict === "illegal") {
    loop.fail(
      `linearizability checker: no legal order for key ${verdict.part![0].input.key}; ` +
        `the longest order found:\n  ${
          verdict.longest!.map((o) => etcdKvModel.describe!(o)).join("\n  ")
        }\nthe key's operations:\n  ${
          verdict.part!.map((o) => etcdKvModel.describe!(o)).join("\n  ")
        }`,
    );
    return;
  }
  if (verdict.verdict === "unknown") loop.stats.linearizabilityUndecided = 1;
  const revisionProblems = checkRevisions(history);
  if (revisionProblems.length > 0) loop.fail(`revisions: ${revisionProblems[0]}`);
  // A run whose clients got nothing done proves nothing.
  if (
    loop.stats.putsAcked < MIN_ACKED_PUTS || loop.stats.linearizabilityReads < MIN_CHECKED_READS
  ) {
    loop.fail(
      `too little checked: ${loop.stats.putsAcked} acknowledged puts (at least ${MIN_ACKED_PUTS}), ` +
        `${loop.stats.linearizabilityReads} linearizable reads (at least ${MIN_CHECKED_READS})`,
    );
  }
  loop.log(
    `final: ${expected.length} members at applied ${first.appliedIndex}, revision ${first.revision}`,
  );
}

/**
 * Holds the lease workload's leases to their TTL, in simulated time. The lessor's clock is the
 * member's ticks × HEARTBEAT_MS, so the bounds use the fastest and slowest lease clock of a run.
 */
export class LeaseChecker {
  #loop: EventLoop;
  #members: Members;
  #workload: LeaseWorkload;

  constructor(loop: EventLoop, members: Members, workload: LeaseWorkload) {
    this.#loop = loop;
    this.#members = members;
    this.#workload = workload;
  }

  /**
   * Checker 1, no early expiry: a key of a lease nobody asked to revoke is not deleted before
   * TTL after the invocation of the last acknowledged renew (or of the grant) invoked before the
   * deletion, measured in the fastest lease clock of the run.
   */
  checkNoEarlyExpiry(): void {
    for (const l of this.#workload.leases) {
      for (const [key, atMs] of l.deletedMs) {
        if (l.revokeInvokeMs !== null && l.revokeInvokeMs <= atMs) continue;
        const renewedMs = Math.max(
          l.grantInvokeMs,
          ...l.ackedRenewInvokes.filter((t) => t < atMs),
        );
        const earliestMs = renewedMs + l.ttlMs * LEASE_CLOCK_FASTEST;
        if (atMs < earliestMs) {
          this.#loop.fail(
            `lease expired early: key ${key} of lease L${l.no} (ttl ${l.ttlMs / 1000}s) was ` +
              `deleted at ${atMs}ms, but a renew invoked at ${renewedMs}ms was acknowledged ` +
              `(no expiry before ${Math.ceil(earliestMs)}ms); acknowledged renews invoked at ` +
              `[${l.ackedRenewInvokes.join(" ")}]`,
          );
          return;
        }
      }
    }
  }

  /**
   * Checker 2, no lease outlives its TTL by more than the election timeout: after the heal, once
   * the cluster has converged (one leader, every member applied, at `stableMs`) and every lease
   * call has settled, each lease's keys are gone by
   * max(stableMs, its last renew's end) + (TTL + election timeout) in the slowest lease clock
   * + 500 ms (ticks, the revoke's commit and apply), on every member. Checker 1 runs before and
   * after, and the leader's TimeToLive must answer -1 for every lease of the run.
   */
  async endPhase(driver: RunDriver): Promise<void> {
    const loop = this.#loop;
    const workload = this.#workload;
    this.checkNoEarlyExpiry();
    await driver.runUntil(loop.nowMs + 30_000, () => workload.settled());
    const stableMs = loop.nowMs;
    let deadlineMs = stableMs;
    const bound = new Map<SimLease, number>();
    for (const l of workload.leases) {
      const d = Math.max(stableMs, l.lastRenewEndMs) +
        (l.ttlMs + ELECTION_TIMEOUT_MS) * LEASE_CLOCK_SLOWEST + 500;
      bound.set(l, d);
      deadlineMs = Math.max(deadlineMs, d);
    }
    const held = (l: SimLease, m: Member) =>
      m.state === "running" && m.node!.leaseLeases().leases.some((s) => s.ID === l.id);
    const gone = (l: SimLease) =>
      l.keys.every((k) => l.deletedMs.has(k) || !workload.maybeWritten(k)) &&
      !this.#members.expected().some((m) => held(l, m));
    for (const l of [...workload.leases].sort((a, b) => bound.get(a)! - bound.get(b)!)) {
      await driver.runUntil(bound.get(l)!, () => gone(l));
      // The first member to apply the deletion is seen first; let the others apply it too.
      await driver.runUntil(loop.nowMs + 2_000, () => driver.converged());
      for (const m of this.#members.expected()) {
        if (held(l, m)) {
          loop.fail(
            `lease outlived its TTL: lease L${l.no} (ttl ${l.ttlMs / 1000}s, last renew ended at ` +
              `${l.lastRenewEndMs}ms, cluster stable at ${stableMs}ms) is still on ${m.name} at ` +
              `${loop.nowMs}ms (bound ${Math.ceil(bound.get(l)!)}ms)`,
          );
          return;
        }
        for (const key of l.keys) {
          const resp = await m.node!.range(
            create(RangeRequestSchema, { key: encoder.encode(key), serializable: true }),
          );
          if (resp.kvs.length > 0) {
            loop.fail(
              `lease outlived its TTL: key ${key} of lease L${l.no} (ttl ${l.ttlMs / 1000}s, ` +
                `last renew ended at ${l.lastRenewEndMs}ms, cluster stable at ${stableMs}ms) is ` +
                `still on ${m.name} at ${loop.nowMs}ms (bound ${Math.ceil(bound.get(l)!)}ms, ` +
                `deleted ${l.deletedMs.get(key)} seen ${workload.maybeWritten(key)})`,
            );
            return;
          }
        }
      }
    }
    this.checkNoEarlyExpiry();
    for (const l of workload.leases) {
      for (const atMs of l.deletedMs.values()) {
        if (l.revokeInvokeMs === null || l.revokeInvokeMs > atMs) loop.stats.leaseKeysExpired++;
      }
    }
    const leader = this.#members.expected().find((m) => m.node!.isLeader);
    if (leader) {
      for (const l of workload.leases) {
        const ttl = await leader.node!.leaseTimeToLive(
          create(LeaseTimeToLiveRequestSchema, { ID: l.id }),
        );
        if (ttl.TTL !== -1n) {
          loop.fail(`lease L${l.no} still has TTL ${ttl.TTL}s on leader ${leader.name}`);
          return;
        }
      }
    }
  }
}

/** A short, deterministic name of an entry's data (length and FNV-1a hash). */
function bytesHash(data: Uint8Array): string {
  let a = 0x811c9dc5;
  for (let i = 0; i < data.length; i++) a = Math.imul(a ^ data[i], 0x01000193);
  return `${data.length}:${(a >>> 0).toString(16)}`;
}
