/**
 * A seeded, deterministic simulation of a whole detcd cluster inside one process: real EtcdNodes
 * (Raft, WAL, MVCC) on MemoryDisks, a simulated clock and network, crashes, restarts, partitions,
 * membership changes and client load, with safety checkers running after every event.
 *
 * This module is the orchestrator: it draws a run's parameters from the seed, holds the members
 * and opens their nodes (members.ts: `Lifecycle`), wires the parts together and runs the event
 * loop through the phases of a run (chaos, heal, convergence, end checks). The parts, as
 * TigerBeetle's VOPR keeps them apart (see README.md, "Module map"):
 *
 * - event_loop.ts: simulated clock, event queue, event log and hash, counters;
 * - network.ts: message delivery, loss, duplication, delays, partitions, peer calls;
 * - faults.ts and membership.ts: crashes, restarts, partitions, move-leader, membership changes;
 * - workloads.ts: client puts and reads, lease load;
 * - checkers.ts (and watch_check.ts, history.ts): what must hold of the run.
 *
 * Determinism. Nothing here (or in core/) uses real timers, real I/O or unseeded randomness. The
 * simulation is a priority queue of events keyed by (simulated ms, sequence number); after each
 * event the loop waits for one macrotask turn, by when every promise chain the event started has
 * either finished or is parked on a future simulated event (see EventLoop.settle). The run is
 * therefore a function of the seed alone, which `eventHash` (a hash of every event and outcome)
 * lets a test assert. The parts draw from PRNG streams forked from the seed in a fixed order
 * (README.md lists them), so that one part drawing more numbers does not shift the others.
 */

import type { LogFields, Logger } from "../../core/log.ts";
import { EtcdNode, idHex, memberId, type NodeConfig } from "../../core/node/mod.ts";
import { checkFinalState, type EventChecker, LeaseChecker, SafetyChecker } from "./checkers.ts";
import { errorText, EventLoop } from "./event_loop.ts";
import { Faults } from "./faults.ts";
import {
  CLUSTER_TOKEN,
  ELECTION_TIMEOUT_MS,
  EPOCH_MS,
  HEARTBEAT_MS,
  type Lifecycle,
  type Member,
  Members,
  type MemberState,
} from "./members.ts";
import { MembershipChanges } from "./membership.ts";
import { Network } from "./network.ts";
import { Prng } from "./prng.ts";
import { SimDisk } from "./sim_disk.ts";
import { WatchChecker } from "./watch_check.ts";
import { KvWorkload } from "./kv_workload.ts";
import { ClientWorkload, LeaseWorkload } from "./workloads.ts";

/** What one run simulates. Everything not given is drawn from the seed. */
export interface SimOptions {
  seed: number;
  /** Members at the start (3 or 5). */
  members?: number;
  /** Simulated milliseconds of faults and load before the network heals. */
  chaosMs?: number;
  /** Print every event (DETCD_SIM_TRACE=1). */
  trace?: boolean;
  /** Membership changes during the chaos phase (default true). */
  membershipChanges?: boolean;
  /**
   * Small, preallocated WAL segments that roll during the run (the WAL bug 1 of
   * tests/simulation/README.md, found this way, is fixed). Off: segments large enough never to roll.
   */
  walRoll?: boolean;
  /**
   * Whether a member's transport learns a sender it does not know from its incoming messages and
   * can answer it (etcd's rafthttp AddRemote, default true; server/peer/transport.ts does, since
   * bug 2 in tests/simulation/README.md): set false (DETCD_SIM_STRICT_PEERS=1) to simulate the bug.
   */
  learnRemotes?: boolean;
  /**
   * Disk reads resolve one microtask later (see SimDisk), a different interleaving of each
   * member's async steps. Default: drawn from the seed (half the seeds), DETCD_SIM_READS_YIELD.
   */
  readsYield?: boolean;
}

/** What a passing run reports. */
export interface SimResult {
  seed: number;
  eventHash: string;
  events: number;
  simulatedMs: number;
  stats: Record<string, number>;
}

/** A checker found a violation; the message names the seed and how to rerun it. */
export class SimulationFailure extends Error {
  /** The seed that failed. */
  readonly seed: number;

  constructor(seed: number, detail: string, trail: string, env = "") {
    super(
      `simulation seed ${seed} failed: ${detail}\n` +
        `reproduce: ${env}DETCD_SIM_SEED=${seed} deno test -A tests/simulation_test.ts\n` +
        `(add DETCD_SIM_TRACE=1 to print every event)\n` + trail,
    );
    this.name = "SimulationFailure";
    this.seed = seed;
  }
}

/**
 * A part that acts on the cluster during the chaos phase (a workload, faults, membership changes):
 * it schedules its first event on `start()` and schedules nothing new after `stop()` (the heal).
 */
interface ChaosActor {
  start(): void;
  stop(): void;
}

/** Lines of the event log a failure report shows. */
const FAILURE_TRAIL_LINES = 40;

/** Runs one seed; resolves with the run's summary or rejects with a SimulationFailure. */
export async function runSimulation(options: SimOptions): Promise<SimResult> {
  const sim = new Simulation(options);
  try {
    return await sim.run();
  } finally {
    sim.close();
  }
}

/** One run: the members, the parts that act on them, and the phases of the run. */
class Simulation {
  readonly seed: number;
  #options: SimOptions;
  /** Run parameters and the seeds of the members' nodes. */
  #rng: Prng;
  /** Disk latencies. */
  #diskRng: Prng;
  /** Tick periods of the members, shared with faults and membership changes. */
  #faultRng: Prng;
  #loop: EventLoop;
  #members: Members;
  #network: Network;
  #faults: Faults;
  #membership: MembershipChanges;
  #clients: ClientWorkload;
  #leases: LeaseWorkload;
  #kv: KvWorkload;
  /** A whole-key-space watcher on every member incarnation (see watch_check.ts). */
  #watches = new WatchChecker();
  #safety: SafetyChecker;
  /** Run after every event, in this order. */
  #eventCheckers: EventChecker[];
  #leaseChecker: LeaseChecker;
  #snapshotCount = 0;
  #walSegmentBytes = 0;

  constructor(options: SimOptions) {
    this.seed = options.seed >>> 0;
    this.#options = options;
    // The streams are forked in this order and the client parameters drawn right after: a seed's
    // scenario depends on it.
    this.#rng = new Prng(this.seed);
    const netRng = this.#rng.fork();
    this.#diskRng = this.#rng.fork();
    this.#faultRng = this.#rng.fork();
    const loadRng = this.#rng.fork();
    this.#loop = new EventLoop(options.trace ?? false);
    this.#members = new Members(options.walRoll ?? false);
    this.#clients = new ClientWorkload(this.#loop, this.#members, this.#rng, loadRng);
    // The lease workload has its own stream (not a fork), so seeds kept their scenarios when it
    // was added.
    const leaseRng = new Prng((this.seed ^ 0x1ea5e5) >>> 0);
    this.#leases = new LeaseWorkload(this.#loop, this.#members, leaseRng);
    // So has the delete/CAS/compaction workload (through the method table).
    this.#kv = new KvWorkload(this.#loop, this.#members, new Prng((this.seed ^ 0x6b7673) >>> 0));
    this.#watches.onRevision = (_rev, events) => this.#leases.observeRevision(events);
    this.#network = new Network(
      this.#loop,
      this.#members,
      netRng,
      options.learnRemotes !== false,
      // Half the seeds stream snapshots to followers (as the peer transport does), half hand the
      // data whole in the message (a transport without streams).
      (Math.imul(this.seed, 0x85ebca6b) >>> 31) === 1,
    );
    const lifecycle: Lifecycle = {
      open: (m) => this.#open(m),
      abandon: (m, state) => this.#abandon(m, state),
      config: (m, initialCluster, state) => this.#config(m, initialCluster, state),
    };
    this.#faults = new Faults(this.#loop, this.#members, this.#network, lifecycle, this.#faultRng);
    this.#membership = new MembershipChanges(this.#loop, this.#members, lifecycle, this.#faultRng);
    this.#safety = new SafetyChecker(this.#loop, this.#members, this.#watches);
    this.#leaseChecker = new LeaseChecker(this.#loop, this.#members, this.#leases);
    this.#eventCheckers = [this.#safety];
  }

  close(): void {
    this.#loop.close();
  }

  // -------------------------------------------------------------------------------------------
  // Event loop

  #failure(detail: string): SimulationFailure {
    return new SimulationFailure(
      this.seed,
      detail,
      `last events:\n  ${this.#loop.lastLines(FAILURE_TRAIL_LINES).join("\n  ")}`,
      (this.#options.walRoll ? "DETCD_SIM_WAL_ROLL=1 " : "") +
        (this.#options.learnRemotes === false ? "DETCD_SIM_STRICT_PEERS=1 " : ""),
    );
  }

  /** Runs events until `until()` holds (checked between events) or the time limit passes. */
  async #runUntil(limitMs: number, until: () => boolean): Promise<boolean> {
    const loop = this.#loop;
    while (loop.pending) {
      if (until()) return true;
      if (!loop.runNext(limitMs)) return until();
      await loop.settle();
      for (const checker of this.#eventCheckers) checker.afterEvent();
      if (loop.violation !== null) throw this.#failure(loop.violation);
    }
    return until();
  }

  async run(): Promise<SimResult> {
    const r = this.#rng;
    const loop = this.#loop;
    const size = this.#options.members ?? (r.chance(0.5) ? 3 : 5);
    const chaosMs = this.#options.chaosMs ?? r.range(8_000, 20_000);
    const lossRate = r.pick([0, 0, 0.01, 0.05, 0.15]);
    const dupRate = r.pick([0, 0, 0.01, 0.05]);
    const longDelayRate = r.pick([0, 0.01, 0.05, 0.2]);
    this.#network.setConditions({ lossRate, dupRate, longDelayRate });
    this.#snapshotCount = r.pick([20, 50, 200, 10000]);
    const walRoll = this.#options.walRoll ?? false;
    this.#walSegmentBytes = walRoll ? r.pick([4096, 16384, 65536]) : 1 << 30;
    loop.log(
      `start: ${size} members, chaos ${chaosMs}ms, keys ${this.#clients.keyCount}, ` +
        `inflight ${this.#clients.maxInflight}, loss ${lossRate}, dup ${dupRate}, ` +
        `long delays ${longDelayRate}, snapshotCount ${this.#snapshotCount}, ` +
        `walSegmentBytes ${this.#walSegmentBytes}`,
    );
    const initial: Member[] = [];
    for (let i = 0; i < size; i++) initial.push(this.#members.create());
    const initialCluster = initial.map((m) => `${m.name}=${m.peerUrl}`).join(",");
    for (const m of initial) {
      m.config = this.#config(m, initialCluster, "new");
      m.id = memberId([m.peerUrl], CLUSTER_TOKEN);
      this.#members.register(m);
      loop.at(r.range(0, 50), `open ${m.name}`, () => this.#open(m));
    }
    // Started in this order: events due at the same millisecond run in the order scheduled.
    const actors: ChaosActor[] = [this.#clients, this.#leases, this.#faults, this.#kv];
    if (this.#options.membershipChanges !== false) actors.push(this.#membership);
    for (const actor of actors) actor.start();
    loop.every(500, "reconcile", () => this.#membership.reconcile());

    await this.#runUntil(chaosMs, () => false);

    // Heal: no more faults, every member that should run runs, and the cluster must converge.
    for (const actor of actors) actor.stop();
    this.#network.heal();
    loop.log("heal: network healed, faults and load stopped");
    for (const m of this.#members.all) {
      if (m.state === "down") loop.at(r.range(0, 300), `restart ${m.name}`, () => this.#open(m));
    }
    const converged = await this.#runUntil(loop.nowMs + 60_000, () => this.#converged());
    if (!converged) {
      throw this.#failure(
        `the cluster did not converge within 60 s after healing: ${this.#summary()}`,
      );
    }
    // The healed cluster serves: clients call for 3 s more with no faults, and those calls are
    // part of the checked history (a run where nothing succeeds fails the final check). Then stay
    // converged a little longer (late messages, pending publishes) and check the end state.
    this.#clients.resume();
    this.#kv.resume();
    await this.#runUntil(loop.nowMs + 3_000, () => false);
    this.#clients.stop();
    this.#kv.stop();
    await this.#runUntil(loop.nowMs + 3_000, () => false);
    await this.#runUntil(loop.nowMs + 30_000, () => this.#converged());
    await this.#leaseChecker.endPhase({
      runUntil: (limitMs, until) => this.#runUntil(limitMs, until),
      converged: () => this.#converged(),
    });
    await checkFinalState(loop, this.#members, this.#clients.ops, this.#kv);
    loop.stats.watchResumes = this.#watches.resumed;
    loop.stats.watchProgress = this.#watches.progressChecked;
    if (loop.violation !== null) throw this.#failure(loop.violation);
    return {
      seed: this.seed,
      eventHash: loop.finish(),
      events: loop.events,
      simulatedMs: loop.nowMs,
      stats: { ...loop.stats, highestApplied: this.#safety.highestApplied },
    };
  }

  // -------------------------------------------------------------------------------------------
  // Members

  #config(m: Member, initialCluster: string, state: "new" | "existing"): NodeConfig {
    return {
      name: m.name,
      dataDir: `/data/${m.name}`,
      initialAdvertisePeerUrls: [m.peerUrl],
      advertiseClientUrls: [`http://${m.name}.sim:2379`],
      initialCluster,
      initialClusterToken: CLUSTER_TOKEN,
      initialClusterState: state,
      snapshotCount: this.#snapshotCount,
      // Keep only a few entries after each snapshot so lagging and new members need a snapshot
      // sent by the leader (etcd keeps 5000, more than a run writes).
      snapshotCatchUpEntries: Math.min(this.#snapshotCount, 10),
      maxTxnOps: 128,
      maxRequestBytes: 1572864,
      heartbeatIntervalMs: HEARTBEAT_MS,
      electionTimeoutMs: ELECTION_TIMEOUT_MS,
      walSegmentBytes: this.#walSegmentBytes,
    };
  }

  #logger(m: Member, incarnation: number): Logger {
    const loop = this.#loop;
    const line = (level: string, msg: string, fields?: LogFields) =>
      `${m.name}#${incarnation} ${level}: ${msg}${fields ? " " + stringify(fields) : ""}`;
    return {
      debug: () => {},
      info: (_c, msg, fields) => {
        if (loop.trace) console.log(`${loop.nowMs}ms   ${line("info", msg, fields)}`);
      },
      warn: (_c, msg, fields) => {
        if (loop.trace) console.log(`${loop.nowMs}ms   ${line("warn", msg, fields)}`);
      },
      error: (_c, msg, fields) => {
        loop.fail(`a member logged an error: ${line("error", msg, fields)}`);
      },
    };
  }

  #open(m: Member): void {
    if (m.state !== "down") return;
    const loop = this.#loop;
    const inc = ++m.incarnation;
    m.state = "opening";
    m.diskFreeAtMs = loop.nowMs;
    m.peers = new Set();
    const readsYield = this.#options.readsYield ??
      ((Math.imul(this.seed, 0x9e3779b1) >>> 31) === 1);
    const simDisk = new SimDisk(m.disk, (run) => {
      const latency = this.#diskRng.range(0, 3);
      m.diskFreeAtMs = Math.max(m.diskFreeAtMs, loop.nowMs) + latency;
      loop.atTime(m.diskFreeAtMs, `disk ${m.name}#${inc}`, run);
    }, readsYield);
    m.simDisk = simDisk;
    if (m.join) {
      // What the server does before opening a joining member: reach the members it was told of.
      for (const other of this.#members.all) {
        if (other !== m && other.state !== "removed") m.peers.add(other.id);
      }
    }
    const transport = this.#network.transport(m, inc, simDisk);
    loop.log(`open ${m.name}#${inc} (${idHex(m.id)})`);
    EtcdNode.open(m.config, simDisk, this.#logger(m, inc), {
      transport,
      nowMs: () => EPOCH_MS + loop.nowMs,
      seed: this.#rng.u32(),
      // As the server's setImmediate: after what this moment's events delivered.
      defer: (run) => loop.at(0, `ready ${m.name}#${inc}`, run),
      join: m.join,
      forwardLeaseRenew: (leader, id) =>
        this.#network.forward(m, leader, (n) => n.leaseRenewLocal(id)),
      forwardLeaseTimeToLive: (leader, req) =>
        this.#network.forward(m, leader, (n) => n.leaseTimeToLiveLocal(req)),
      onRemoved: () => {
        if (m.incarnation !== inc) return;
        loop.log(`${m.name}#${inc} learned it was removed`);
        this.#retire(m);
      },
      onApply: (entry) => {
        if (m.incarnation === inc) this.#safety.onApply(m, inc, entry);
      },
    }).then(
      (node) => {
        if (m.incarnation !== inc || m.state !== "opening") return;
        m.node = node;
        m.state = "running";
        this.#watches.attach(`${m.name}#${inc}`, node);
        loop.log(`${m.name}#${inc} running, applied ${node.appliedIndex}`);
        this.#scheduleTick(m, inc);
      },
      (e) => {
        if (m.incarnation !== inc) return;
        loop.fail(`${m.name}#${inc} failed to open: ${errorText(e)}`);
      },
    );
  }

  #scheduleTick(m: Member, inc: number): void {
    // Each incarnation's clock runs a little fast or slow and jitters: members never tick in step.
    const periodMs = HEARTBEAT_MS + this.#faultRng.range(-8, 8);
    const tick = () => {
      if (m.incarnation !== inc || (m.state !== "running" && m.state !== "stopping")) return;
      m.node!.tick();
      this.#loop.at(periodMs + this.#faultRng.range(-3, 3), `tick ${m.name}`, tick);
    };
    this.#loop.at(this.#faultRng.range(1, periodMs), `tick ${m.name}`, tick);
  }

  #abandon(m: Member, state: MemberState): void {
    this.#membership.memberGone(m);
    m.state = state;
    m.node = null;
    m.incarnation++;
    for (const op of m.inflight) {
      op.outcome = "unknown";
      op.error = "member crashed";
    }
    m.inflight.clear();
  }

  /** A removed member leaves for good (etcd's member exits when it learns of its removal). */
  #retire(m: Member): void {
    if (m.state === "removed") return;
    m.simDisk?.fence();
    this.#abandon(m, "removed");
  }

  // -------------------------------------------------------------------------------------------
  // Convergence

  /** One leader that every expected member follows and has applied up to, nothing in flight. */
  #converged(): boolean {
    if (this.#membership.busy) return false;
    const expected = this.#members.expected();
    if (expected.some((m) => m.state !== "running")) return false;
    if (this.#clients.hasPending()) return false;
    const leaders = expected.filter((m) => m.node!.isLeader);
    if (leaders.length !== 1) return false;
    const leader = leaders[0].node!;
    const applied = leader.appliedIndex;
    if (Number(leader.status().raftIndex) !== applied) return false;
    const members = leader.memberInfos().map((m) => m.id).sort();
    if (members.join() !== expected.map((m) => m.id).sort().join()) return false;
    return expected.every((m) =>
      m.node!.appliedIndex === applied && m.node!.leader === leader.memberId
    );
  }

  #summary(): string {
    return this.#members.all.map((m) => {
      const n = m.node;
      return `${m.name}(${m.state}${
        n
          ? ` term=${n.raftTerm} applied=${n.appliedIndex} lead=${this.#members.name(n.leader)}`
          : ""
      })`;
    }).join(" ") + ` pendingOps=${this.#clients.pendingCount()}` +
      ` pendingJoins=${this.#membership.pendingJoins} membershipBusy=${this.#membership.busy}`;
  }
}

function stringify(fields: LogFields): string {
  return JSON.stringify(fields, (_k, v) => typeof v === "bigint" ? v.toString(16) : v);
}
