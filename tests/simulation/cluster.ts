/**
 * A seeded, deterministic simulation of a whole detcd cluster inside one process: real EtcdNodes
 * (Raft, WAL, MVCC) on MemoryDisks, a simulated clock and network, crashes, restarts, partitions,
 * membership changes and client load, with safety checkers running after every event.
 *
 * Determinism. Nothing here (or in core/) uses real timers, real I/O or unseeded randomness. The
 * simulation is a priority queue of events keyed by (simulated ms, sequence number). After each
 * event the loop waits for one macrotask turn (a MessageChannel message): the JavaScript event
 * loop runs every queued microtask before any macrotask, and all asynchronous work of the nodes is
 * microtask-only (every disk operation that would take time is itself an event in the queue, see
 * SimDisk), so when the turn comes every promise chain the event started has either finished or is
 * parked on a future simulated event. `setTimeout(0)` would do the same but Deno clamps nested
 * timers to ~2.5 ms; a MessageChannel turn costs ~20 µs here. The run is therefore a function of
 * the seed alone, which `eventHash` (a hash of every event and outcome) lets a test assert.
 */

import { create } from "@bufbuild/protobuf";
import {
  HashKVRequestSchema,
  LeaseGrantRequestSchema,
  LeaseTimeToLiveRequestSchema,
  PutRequestSchema,
  RangeRequestSchema,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import { Errors, EtcdError } from "../../core/errors.ts";
import type { LogFields, Logger } from "../../core/log.ts";
import {
  EtcdNode,
  idHex,
  memberId,
  type MemberInfo,
  type NodeConfig,
  type Transport,
} from "../../core/node/mod.ts";
import {
  decodeMessage,
  encodeMessage,
  type Entry,
  type Message,
  MessageType,
} from "../../core/raft/mod.ts";
import { MemoryDisk } from "../../core/storage/mod.ts";
import { checkHistory, describe, type GetOp, type Op, type PutOp } from "./history.ts";
import { Prng } from "./prng.ts";
import { SimDisk } from "./sim_disk.ts";
import { WatchChecker } from "./watch_check.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

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
   * Small, preallocated WAL segments that roll during the run (DETCD_SIM_WAL_ROLL=1). Off by
   * default until the WAL recovers rolled segments (see tests/simulation/README.md, bug 1): then
   * segments are large enough never to roll and are not preallocated.
   */
  walRoll?: boolean;
  /**
   * Whether a member's transport learns a sender it does not know from its incoming messages and
   * can answer it (etcd's rafthttp AddRemote, default true). server/peer.ts does not do this yet
   * (bug 2 in tests/simulation/README.md): set false (DETCD_SIM_STRICT_PEERS=1) to simulate it.
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
  constructor(readonly seed: number, detail: string, trail: string, env = "") {
    super(
      `simulation seed ${seed} failed: ${detail}\n` +
        `reproduce: ${env}DETCD_SIM_SEED=${seed} deno test -A tests/simulation_test.ts\n` +
        `(add DETCD_SIM_TRACE=1 to print every event)\n` + trail,
    );
    this.name = "SimulationFailure";
  }
}

type MemberState = "opening" | "running" | "stopping" | "down" | "removed";

interface Member {
  name: string;
  peerUrl: string;
  id: bigint;
  disk: MemoryDisk;
  state: MemberState;
  incarnation: number;
  node: EtcdNode | null;
  simDisk: SimDisk | null;
  /** When this incarnation's disk finishes its queued operations (FIFO). */
  diskFreeAtMs: number;
  /** Peers the current incarnation's transport was told about. */
  peers: Set<bigint>;
  config: NodeConfig;
  join?: { clusterId: bigint; memberId: bigint };
  /** Client calls in flight through the current incarnation. */
  inflight: Set<Op>;
}

interface SimEvent {
  atMs: number;
  seq: number;
  label: string;
  run: () => void;
}

/** Binary heap of events by (time, sequence). */
class EventQueue {
  #heap: SimEvent[] = [];

  get size(): number {
    return this.#heap.length;
  }

  push(e: SimEvent): void {
    const h = this.#heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  pop(): SimEvent | undefined {
    const h = this.#heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l], h[m])) m = l;
        if (r < h.length && before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}

/** A 64-bit FNV-1a style hash over strings, as two 32-bit lanes (fast, deterministic). */
class RunningHash {
  #a = 0x811c9dc5;
  #b = 0x01000193;

  update(s: string): void {
    let a = this.#a;
    let b = this.#b;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995) ^ (b >>> 13);
    }
    this.#a = a >>> 0;
    this.#b = b >>> 0;
  }

  hex(): string {
    return this.#a.toString(16).padStart(8, "0") + this.#b.toString(16).padStart(8, "0");
  }
}

function bytesHash(data: Uint8Array): string {
  let a = 0x811c9dc5;
  for (let i = 0; i < data.length; i++) a = Math.imul(a ^ data[i], 0x01000193);
  return `${data.length}:${(a >>> 0).toString(16)}`;
}

/** Resolves on the next macrotask turn: every microtask queued before has run by then. */
class Settler {
  #channel = new MessageChannel();
  #pending: (() => void) | null = null;

  constructor() {
    this.#channel.port2.onmessage = () => {
      const resolve = this.#pending;
      this.#pending = null;
      resolve?.();
    };
  }

  settle(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#pending = resolve;
      this.#channel.port1.postMessage(null);
    });
  }

  close(): void {
    this.#channel.port1.close();
    this.#channel.port2.close();
  }
}

const clusterToken = "sim-cluster";
/** Simulated wall clock at time 0 (only member IDs of added members and request IDs use it). */
const epochMs = 1_700_000_000_000;
const heartbeatMs = 100;
const electionTimeoutMs = 1000;
/**
 * Bounds on how fast a member's lease clock (its ticks × heartbeatMs) runs against simulated time:
 * a tick period is 92-108 ms with ±3 ms jitter, so one lease-ms is 0.89-1.11 simulated ms.
 */
const leaseClockFastest = 89 / heartbeatMs;
const leaseClockSlowest = 111 / heartbeatMs;

/** A lease of the lease workload, and what the client saw of it (simulated ms). */
interface SimLease {
  no: number;
  id: bigint;
  ttlMs: number;
  grantInvokeMs: number;
  granted: boolean;
  /** Keys put with this lease (any outcome); nobody else writes them. */
  keys: string[];
  /** Invocation times of acknowledged renews. */
  ackedRenewInvokes: number[];
  /** Latest end of a renew call of any outcome (a failed forward may still have renewed). */
  lastRenewEndMs: number;
  pending: number;
  /** When the client first asked to revoke it (its keys may vanish from then on). */
  revokeInvokeMs: number | null;
  /** Key → when a watcher first saw it deleted. */
  deletedMs: Map<string, number>;
}

/** Runs one seed; resolves with the run's summary or rejects with a SimulationFailure. */
export async function runSimulation(options: SimOptions): Promise<SimResult> {
  const sim = new Simulation(options);
  try {
    return await sim.run();
  } finally {
    sim.close();
  }
}

class Simulation {
  readonly seed: number;
  #options: SimOptions;
  #rng: Prng;
  #netRng: Prng;
  #diskRng: Prng;
  #faultRng: Prng;
  #loadRng: Prng;
  #queue = new EventQueue();
  #seq = 0;
  #nowMs = 0;
  #events = 0;
  #hash = new RunningHash();
  #settler = new Settler();
  #trail: string[] = [];
  #violation: string | null = null;
  /** A whole-key-space watcher on every member incarnation (see watch_check.ts). */
  #watches = new WatchChecker();
  #members: Member[] = [];
  #byId = new Map<bigint, Member>();
  #nextMemberNumber = 1;
  /** One-way link cuts "from>to" (a symmetric partition cuts both ways). */
  #cuts = new Map<string, number>();
  #lossRate = 0;
  #dupRate = 0;
  #longDelayRate = 0;
  #chaos = true;
  #ops: Op[] = [];
  #nextOpId = 1;
  #keys: string[];
  #maxInflight: number;
  /** Leader seen per term (election safety). */
  #leaders = new Map<number, bigint>();
  /** index → "term/type/hash" of the entry every member applied there (state machine safety). */
  #applied = new Map<number, string>();
  #highestApplied = 0;
  #membershipBusy = false;
  /** The lease workload (its own stream, so existing seeds keep their scenarios). */
  #leaseRng: Prng;
  #leases: SimLease[] = [];
  /** Lease key → its lease. */
  #leaseOfKey = new Map<string, SimLease>();
  /** Lease keys a watcher saw written. */
  #leaseKeysPut = new Set<string>();
  #preallocate = false;
  /** The member a membership call went through: if it crashes, the call's outcome is unknown. */
  #membershipVia: Member | null = null;
  /** Members added through memberAdd that have not been started yet. */
  #pendingJoins: Member[] = [];
  #stats: Record<string, number> = {
    delivered: 0,
    dropped: 0,
    duplicated: 0,
    crashes: 0,
    cleanRestarts: 0,
    partitions: 0,
    puts: 0,
    putsAcked: 0,
    gets: 0,
    getsOk: 0,
    memberAdds: 0,
    memberRemoves: 0,
    promotions: 0,
    leaderChanges: 0,
    leaseGrants: 0,
    leaseRenewsAcked: 0,
    leaseRevokes: 0,
    leaseKeysExpired: 0,
  };

  constructor(options: SimOptions) {
    this.seed = options.seed >>> 0;
    this.#options = options;
    this.#rng = new Prng(this.seed);
    this.#netRng = this.#rng.fork();
    this.#diskRng = this.#rng.fork();
    this.#faultRng = this.#rng.fork();
    this.#loadRng = this.#rng.fork();
    const r = this.#rng;
    this.#keys = Array.from({ length: r.range(1, 6) }, (_, i) => `k${i}`);
    this.#maxInflight = r.range(2, 24);
    this.#leaseRng = new Prng((this.seed ^ 0x1ea5e5) >>> 0);
    this.#watches.onRevision = (_rev, events) => {
      for (const e of events) {
        if (e.startsWith("PUT ")) {
          const key = e.slice("PUT ".length, e.indexOf("="));
          if (this.#leaseOfKey.has(key)) this.#leaseKeysPut.add(key);
        }
        if (!e.startsWith("DELETE ")) continue;
        const key = e.slice("DELETE ".length);
        const lease = this.#leaseOfKey.get(key);
        if (lease && !lease.deletedMs.has(key)) lease.deletedMs.set(key, this.#nowMs);
      }
    };
  }

  close(): void {
    this.#settler.close();
  }

  // -------------------------------------------------------------------------------------------
  // Event loop

  #at(delayMs: number, label: string, run: () => void): void {
    this.#queue.push({ atMs: this.#nowMs + Math.max(0, delayMs), seq: this.#seq++, label, run });
  }

  #log(what: string): void {
    const line = `${this.#nowMs}ms ${what}`;
    this.#hash.update(line);
    this.#trail.push(line);
    if (this.#trail.length > 60) this.#trail.shift();
    if (this.#options.trace) console.log(line);
  }

  #fail(detail: string): void {
    if (this.#violation === null) this.#violation = `at ${this.#nowMs}ms: ${detail}`;
  }

  #failure(detail: string): SimulationFailure {
    return new SimulationFailure(
      this.seed,
      detail,
      `last events:\n  ${this.#trail.slice(-40).join("\n  ")}`,
      (this.#options.walRoll ? "DETCD_SIM_WAL_ROLL=1 " : "") +
        (this.#options.learnRemotes === false ? "DETCD_SIM_STRICT_PEERS=1 " : ""),
    );
  }

  /** Runs events until `until()` holds (checked between events) or the time limit passes. */
  async #runUntil(limitMs: number, until: () => boolean): Promise<boolean> {
    while (this.#queue.size > 0) {
      if (until()) return true;
      const e = this.#queue.pop()!;
      if (e.atMs > limitMs) {
        this.#queue.push(e);
        return until();
      }
      this.#nowMs = e.atMs;
      this.#events++;
      this.#hash.update(`${e.atMs}|${e.label}`);
      e.run();
      await this.#settler.settle();
      this.#observe();
      if (this.#violation !== null) throw this.#failure(this.#violation);
    }
    return until();
  }

  async run(): Promise<SimResult> {
    const r = this.#rng;
    const size = this.#options.members ?? (r.chance(0.5) ? 3 : 5);
    const chaosMs = this.#options.chaosMs ?? r.range(8_000, 20_000);
    this.#lossRate = r.pick([0, 0, 0.01, 0.05, 0.15]);
    this.#dupRate = r.pick([0, 0, 0.01, 0.05]);
    this.#longDelayRate = r.pick([0, 0.01, 0.05, 0.2]);
    const snapshotCount = r.pick([20, 50, 200, 10000]);
    const walRoll = this.#options.walRoll ?? false;
    const walSegmentBytes = walRoll ? r.pick([4096, 16384, 65536]) : 1 << 30;
    this.#preallocate = walRoll;
    this.#log(
      `start: ${size} members, chaos ${chaosMs}ms, keys ${this.#keys.length}, ` +
        `inflight ${this.#maxInflight}, loss ${this.#lossRate}, dup ${this.#dupRate}, ` +
        `long delays ${this.#longDelayRate}, snapshotCount ${snapshotCount}, ` +
        `walSegmentBytes ${walSegmentBytes}`,
    );
    const initial: Member[] = [];
    for (let i = 0; i < size; i++) initial.push(this.#newMember());
    const initialCluster = initial.map((m) => `${m.name}=${m.peerUrl}`).join(",");
    for (const m of initial) {
      m.config = this.#config(m, initialCluster, "new", snapshotCount, walSegmentBytes);
      m.id = memberId([m.peerUrl], clusterToken);
      this.#register(m);
      this.#at(r.range(0, 50), `open ${m.name}`, () => this.#open(m));
    }
    this.#scheduleLoad();
    this.#scheduleLeases();
    this.#scheduleFaults();
    if (this.#options.membershipChanges !== false) {
      this.#scheduleMembership(snapshotCount, walSegmentBytes);
    }
    this.#every(500, "reconcile", () => this.#reconcile());

    await this.#runUntil(chaosMs, () => false);

    // Heal: no more faults, every member that should run runs, and the cluster must converge.
    this.#chaos = false;
    this.#cuts.clear();
    this.#lossRate = 0;
    this.#dupRate = 0;
    this.#longDelayRate = 0;
    this.#log("heal: network healed, faults and load stopped");
    for (const m of this.#members) {
      if (m.state === "down") this.#at(r.range(0, 300), `restart ${m.name}`, () => this.#open(m));
    }
    const converged = await this.#runUntil(this.#nowMs + 60_000, () => this.#converged());
    if (!converged) {
      throw this.#failure(
        `the cluster did not converge within 60 s after healing: ${this.#summary()}`,
      );
    }
    // Stay converged a little longer (late messages, pending publishes), then check the end state.
    await this.#runUntil(this.#nowMs + 3_000, () => false);
    await this.#runUntil(this.#nowMs + 30_000, () => this.#converged());
    await this.#leaseEndPhase();
    await this.#finalChecks();
    if (this.#violation !== null) throw this.#failure(this.#violation);
    this.#hash.update(`end ${this.#nowMs}`);
    return {
      seed: this.seed,
      eventHash: this.#hash.hex(),
      events: this.#events,
      simulatedMs: this.#nowMs,
      stats: { ...this.#stats, highestApplied: this.#highestApplied },
    };
  }

  #every(periodMs: number, label: string, run: () => void): void {
    const loop = () => {
      run();
      this.#at(periodMs, label, loop);
    };
    this.#at(periodMs, label, loop);
  }

  // -------------------------------------------------------------------------------------------
  // Members

  #newMember(): Member {
    const n = this.#nextMemberNumber++;
    const name = `n${n}`;
    return {
      name,
      peerUrl: `http://${name}.sim:2380`,
      id: 0n,
      disk: new MemoryDisk({ preallocate: this.#preallocate }),
      state: "down",
      incarnation: 0,
      node: null,
      simDisk: null,
      diskFreeAtMs: 0,
      peers: new Set(),
      config: {} as NodeConfig,
      inflight: new Set(),
    };
  }

  #register(m: Member): void {
    this.#members.push(m);
    this.#byId.set(m.id, m);
  }

  #config(
    m: Member,
    initialCluster: string,
    state: "new" | "existing",
    snapshotCount: number,
    walSegmentBytes: number,
  ): NodeConfig {
    return {
      name: m.name,
      dataDir: `/data/${m.name}`,
      initialAdvertisePeerUrls: [m.peerUrl],
      advertiseClientUrls: [`http://${m.name}.sim:2379`],
      initialCluster,
      initialClusterToken: clusterToken,
      initialClusterState: state,
      snapshotCount,
      // Keep only a few entries after each snapshot so lagging and new members need a snapshot
      // sent by the leader (etcd keeps 5000, more than a run writes).
      snapshotCatchUpEntries: Math.min(snapshotCount, 10),
      maxTxnOps: 128,
      maxRequestBytes: 1572864,
      heartbeatIntervalMs: heartbeatMs,
      electionTimeoutMs: 1000,
      walSegmentBytes,
    };
  }

  #logger(m: Member, incarnation: number): Logger {
    const line = (level: string, msg: string, fields?: LogFields) =>
      `${m.name}#${incarnation} ${level}: ${msg}${fields ? " " + stringify(fields) : ""}`;
    return {
      debug: () => {},
      info: (_c, msg, fields) => {
        if (this.#options.trace) console.log(`${this.#nowMs}ms   ${line("info", msg, fields)}`);
      },
      warn: (_c, msg, fields) => {
        if (this.#options.trace) console.log(`${this.#nowMs}ms   ${line("warn", msg, fields)}`);
      },
      error: (_c, msg, fields) => {
        this.#fail(`a member logged an error: ${line("error", msg, fields)}`);
      },
    };
  }

  #open(m: Member): void {
    if (m.state !== "down") return;
    const inc = ++m.incarnation;
    m.state = "opening";
    m.diskFreeAtMs = this.#nowMs;
    m.peers = new Set();
    const readsYield = this.#options.readsYield ??
      ((Math.imul(this.seed, 0x9e3779b1) >>> 31) === 1);
    const simDisk = new SimDisk(m.disk, (run) => {
      const latency = this.#diskRng.range(0, 3);
      m.diskFreeAtMs = Math.max(m.diskFreeAtMs, this.#nowMs) + latency;
      this.#queue.push({
        atMs: m.diskFreeAtMs,
        seq: this.#seq++,
        label: `disk ${m.name}#${inc}`,
        run,
      });
    }, readsYield);
    m.simDisk = simDisk;
    if (m.join) {
      // What the server does before opening a joining member: reach the members it was told of.
      for (const other of this.#members) {
        if (other !== m && other.state !== "removed") m.peers.add(other.id);
      }
    }
    const transport: Transport = {
      send: (messages) => {
        if (m.incarnation !== inc || !simDisk.live) return;
        for (const msg of messages) this.#send(m, msg);
      },
      addPeer: (id) => {
        if (m.incarnation === inc) m.peers.add(id);
      },
      updatePeer: () => {},
      removePeer: (id) => {
        if (m.incarnation === inc) m.peers.delete(id);
      },
      activeSince: (id) => {
        const peer = this.#byId.get(id);
        return peer && peer.state === "running" && !this.#cut(m.id, id) && !this.#cut(id, m.id)
          ? 0
          : null;
      },
    };
    this.#log(`open ${m.name}#${inc} (${idHex(m.id)})`);
    EtcdNode.open(m.config, simDisk, this.#logger(m, inc), {
      transport,
      nowMs: () => epochMs + this.#nowMs,
      seed: this.#rng.u32(),
      join: m.join,
      forwardLeaseRenew: (leader, id) => this.#forward(m, leader, (n) => n.leaseRenewLocal(id)),
      forwardLeaseTimeToLive: (leader, req) =>
        this.#forward(m, leader, (n) => n.leaseTimeToLiveLocal(req)),
      onRemoved: () => {
        if (m.incarnation !== inc) return;
        this.#log(`${m.name}#${inc} learned it was removed`);
        this.#retire(m);
      },
      onApply: (entry) => {
        if (m.incarnation === inc) this.#onApply(m, inc, entry);
      },
    }).then(
      (node) => {
        if (m.incarnation !== inc || m.state !== "opening") return;
        m.node = node;
        m.state = "running";
        this.#watches.attach(`${m.name}#${inc}`, node);
        this.#log(`${m.name}#${inc} running, applied ${node.appliedIndex}`);
        this.#scheduleTick(m, inc);
      },
      (e) => {
        if (m.incarnation !== inc) return;
        this.#fail(`${m.name}#${inc} failed to open: ${errorText(e)}`);
      },
    );
  }

  #scheduleTick(m: Member, inc: number): void {
    // Each incarnation's clock runs a little fast or slow and jitters: members never tick in step.
    const periodMs = heartbeatMs + this.#faultRng.range(-8, 8);
    const tick = () => {
      if (m.incarnation !== inc || (m.state !== "running" && m.state !== "stopping")) return;
      m.node!.tick();
      this.#at(periodMs + this.#faultRng.range(-3, 3), `tick ${m.name}`, tick);
    };
    this.#at(this.#faultRng.range(1, periodMs), `tick ${m.name}`, tick);
  }

  /** kill -9: the member vanishes mid-flight and its disk loses every unsynced write. */
  #crash(m: Member): void {
    if (m.state !== "running" && m.state !== "opening") return;
    this.#stats.crashes++;
    this.#log(`crash ${m.name}#${m.incarnation}`);
    m.simDisk?.fence();
    m.disk.crash();
    this.#abandon(m, "down");
  }

  #abandon(m: Member, state: MemberState): void {
    if (this.#membershipVia === m) this.#endMembershipCall();
    m.state = state;
    m.node = null;
    m.incarnation++;
    for (const op of m.inflight) {
      op.outcome = "unknown";
      op.error = "member crashed";
    }
    m.inflight.clear();
  }

  /** Graceful stop (writes in flight finish), then a restart on the same disk. */
  #cleanRestart(m: Member): void {
    if (m.state !== "running") return;
    this.#stats.cleanRestarts++;
    const node = m.node!;
    const inc = m.incarnation;
    m.state = "stopping";
    this.#log(`stop ${m.name}#${inc}`);
    node.stop().then(
      () => {
        if (m.incarnation !== inc || m.state !== "stopping") return;
        m.simDisk?.fence();
        this.#abandon(m, "down");
        this.#log(`stopped ${m.name}#${inc}`);
        this.#at(this.#faultRng.range(0, 500), `restart ${m.name}`, () => this.#open(m));
      },
      (e) => this.#fail(`${m.name}#${inc} stop failed: ${errorText(e)}`),
    );
  }

  /** A removed member leaves for good (etcd's member exits when it learns of its removal). */
  #retire(m: Member): void {
    if (m.state === "removed") return;
    m.simDisk?.fence();
    this.#abandon(m, "removed");
  }

  // -------------------------------------------------------------------------------------------
  // Network

  #cut(from: bigint, to: bigint): boolean {
    return this.#cuts.has(`${from}>${to}`);
  }

  #send(from: Member, msg: Message): void {
    const to = msg.to;
    if (!from.peers.has(to)) {
      this.#stats.dropped++;
      return;
    }
    const r = this.#netRng;
    const dropped = this.#cut(from.id, to) || r.chance(this.#lossRate);
    if (dropped) {
      this.#stats.dropped++;
      if (msg.type === MessageType.Snap) {
        this.#at(r.range(1, 20), "snap failed", () => this.#reportSnapshot(from.id, to, false));
      }
      return;
    }
    const bytes = encodeMessage(msg);
    // A proposal forwarded twice is appended and applied twice (Raft has no client sessions; etcd
    // relies on its TCP streams never duplicating a message), so proposals are never duplicated.
    const copies = msg.type !== MessageType.Prop && r.chance(this.#dupRate) ? 2 : 1;
    if (copies === 2) this.#stats.duplicated++;
    for (let i = 0; i < copies; i++) {
      const delay = r.chance(this.#longDelayRate) ? r.range(20, 400) : r.range(1, 12);
      const label = `deliver ${MessageType[msg.type]} ${this.#name(from.id)}>${this.#name(to)}`;
      this.#at(delay, label, () => this.#deliver(from.id, to, bytes, msg.type));
    }
  }

  #deliver(from: bigint, to: bigint, bytes: Uint8Array, type: MessageType): void {
    const target = this.#byId.get(to);
    if (
      !target || (target.state !== "running" && target.state !== "stopping") || this.#cut(from, to)
    ) {
      this.#stats.dropped++;
      // A real transport learns that the snapshot did not arrive (the write fails or the peer is
      // unreachable) and says so; without it the leader waits for that follower forever.
      if (type === MessageType.Snap) this.#reportSnapshot(from, to, false);
      return;
    }
    if (!target.peers.has(from) && this.#options.learnRemotes !== false) {
      // A member restarted from an old log does not know members added since, but it must be
      // able to answer their leader: etcd's transport adds such a sender as a "remote".
      target.peers.add(from);
    }
    const msg = decodeMessage(bytes);
    this.#stats.delivered++;
    target.node!.step(msg);
    if (msg.type === MessageType.Snap) this.#reportSnapshot(from, to, true);
  }

  #reportSnapshot(from: bigint, to: bigint, ok: boolean): void {
    const sender = this.#byId.get(from);
    if (sender?.state === "running") sender.node!.reportSnapshot(to, ok);
  }

  #name(id: bigint): string {
    return this.#byId.get(id)?.name ?? idHex(id);
  }

  // -------------------------------------------------------------------------------------------
  // Faults

  #scheduleFaults(): void {
    const r = this.#faultRng;
    const next = () => {
      if (!this.#chaos) return;
      this.#fault();
      this.#at(r.range(200, 2500), "fault", next);
    };
    this.#at(r.range(500, 2000), "fault", next);
  }

  #fault(): void {
    const r = this.#faultRng;
    const live = this.#members.filter((m) => m.state !== "removed");
    const roll = r.int(100);
    if (roll < 25) {
      // Crash one member; keep a majority of the members up most of the time.
      const up = live.filter((m) => m.state === "running" || m.state === "opening");
      const down = live.length - up.length;
      if (up.length === 0) return;
      if (down >= Math.floor(live.length / 2) && !r.chance(0.2)) return;
      const victim = r.chance(0.4) ? (up.find((m) => m.node?.isLeader) ?? r.pick(up)) : r.pick(up);
      this.#crash(victim);
      this.#at(r.range(100, 4000), `restart ${victim.name}`, () => this.#open(victim));
    } else if (roll < 35) {
      const up = live.filter((m) => m.state === "running");
      if (up.length > 0) this.#cleanRestart(r.pick(up));
    } else if (roll < 60) {
      // Partition: split the members in two groups, both ways or one way only.
      const ids = live.map((m) => m.id);
      const side = ids.filter(() => r.chance(0.5));
      if (side.length === 0 || side.length === ids.length) return;
      const other = ids.filter((id) => !side.includes(id));
      const oneWay = r.chance(0.3);
      const keys: string[] = [];
      for (const a of side) {
        for (const b of other) {
          keys.push(`${a}>${b}`);
          if (!oneWay) keys.push(`${b}>${a}`);
        }
      }
      const token = ++this.#stats.partitions;
      for (const k of keys) this.#cuts.set(k, token);
      const names = (xs: bigint[]) => xs.map((x) => this.#name(x)).join(",");
      this.#log(`partition#${token} ${names(side)} ${oneWay ? "-/->" : "<-/->"} ${names(other)}`);
      this.#at(r.range(300, 6000), "heal", () => {
        for (const k of keys) if (this.#cuts.get(k) === token) this.#cuts.delete(k);
        this.#log(`heal partition#${token}`);
      });
    } else if (roll < 70) {
      // Isolate the leader (the classic way to force an election with a stale leader around).
      const leader = live.find((m) => m.node?.isLeader);
      if (!leader) return;
      const token = ++this.#stats.partitions;
      const keys: string[] = [];
      for (const m of live) {
        if (m === leader) continue;
        keys.push(`${leader.id}>${m.id}`, `${m.id}>${leader.id}`);
      }
      for (const k of keys) this.#cuts.set(k, token);
      this.#log(`partition#${token} isolates leader ${leader.name}`);
      this.#at(r.range(500, 5000), "heal", () => {
        for (const k of keys) if (this.#cuts.get(k) === token) this.#cuts.delete(k);
        this.#log(`heal partition#${token}`);
      });
    } else if (roll < 80) {
      this.#lossRate = r.pick([0, 0, 0.02, 0.1, 0.3]);
      this.#dupRate = r.pick([0, 0.02, 0.1]);
      this.#longDelayRate = r.pick([0, 0.02, 0.1, 0.3]);
      this.#log(`network: loss ${this.#lossRate} dup ${this.#dupRate} long ${this.#longDelayRate}`);
    } else if (roll < 85) {
      // Ask the leader to hand over leadership (etcd's move-leader).
      const leader = live.find((m) => m.state === "running" && m.node?.isLeader);
      const targets = live.filter((m) => m !== leader && m.state === "running");
      if (!leader || targets.length === 0) return;
      const target = r.pick(targets);
      this.#log(`move-leader ${leader.name} -> ${target.name}`);
      leader.node!.moveLeader(target.id).then(
        () => this.#log(`move-leader to ${target.name} ok`),
        (e) => this.#log(`move-leader to ${target.name} failed: ${errorText(e)}`),
      );
    }
  }

  // -------------------------------------------------------------------------------------------
  // Client load

  #scheduleLoad(): void {
    const r = this.#loadRng;
    const next = () => {
      if (!this.#chaos) return;
      this.#clientCall();
      this.#at(r.range(2, 40), "client", next);
    };
    this.#at(r.range(100, 1000), "client", next);
  }

  #clientCall(): void {
    const r = this.#loadRng;
    const inflight = this.#ops.filter((o) => o.outcome === "pending").length;
    if (inflight >= this.#maxInflight) return;
    const up = this.#members.filter((m) => m.state === "running");
    if (up.length === 0) return;
    const m = r.pick(up);
    const node = m.node!;
    const key = r.pick(this.#keys);
    const roll = r.int(100);
    const id = this.#nextOpId++;
    if (roll < 55) {
      const value = `v${id}`;
      const op: PutOp = {
        kind: "put",
        id,
        member: m.name,
        key,
        value,
        invokeMs: this.#nowMs,
        endMs: 0,
        outcome: "pending",
        revision: 0,
        error: "",
      };
      this.#ops.push(op);
      m.inflight.add(op);
      this.#stats.puts++;
      this.#track(
        m,
        op,
        node.put(create(PutRequestSchema, { key: enc.encode(key), value: enc.encode(value) })),
        (resp) => {
          op.revision = Number(resp.header?.revision ?? 0n);
          this.#stats.putsAcked++;
        },
      );
    } else {
      const serializable = roll >= 85;
      const op: GetOp = {
        kind: "get",
        id,
        member: m.name,
        key,
        serializable,
        invokeMs: this.#nowMs,
        endMs: 0,
        outcome: "pending",
        value: null,
        modRevision: 0,
        headerRevision: 0,
        error: "",
      };
      this.#ops.push(op);
      m.inflight.add(op);
      this.#stats.gets++;
      let call: Promise<import("../../gen/etcdserverpb/rpc_pb.ts").RangeResponse>;
      try {
        call = node.range(create(RangeRequestSchema, { key: enc.encode(key), serializable }));
      } catch (e) {
        call = Promise.reject(e);
      }
      this.#track(m, op, call, (resp) => {
        const kv = resp.kvs[0];
        op.value = kv ? dec.decode(kv.value) : null;
        op.modRevision = kv ? Number(kv.modRevision) : 0;
        op.headerRevision = Number(resp.header?.revision ?? 0n);
        this.#stats.getsOk++;
      });
    }
  }

  #track<T>(m: Member, op: Op, call: Promise<T>, ok: (value: T) => void): void {
    const inc = m.incarnation;
    call.then(
      (value) => {
        if (m.incarnation !== inc || op.outcome !== "pending") return;
        m.inflight.delete(op);
        op.outcome = "ok";
        op.endMs = this.#nowMs;
        ok(value);
        this.#log(`ok ${describe(op)}`);
      },
      (e) => {
        if (m.incarnation !== inc || op.outcome !== "pending") return;
        m.inflight.delete(op);
        if (!(e instanceof EtcdError)) {
          this.#fail(`${describe(op)} failed with a non-etcd error: ${errorText(e)}`);
        }
        op.outcome = "error";
        op.error = errorText(e);
        op.endMs = this.#nowMs;
        this.#log(`err ${describe(op)}`);
      },
    );
  }

  // -------------------------------------------------------------------------------------------
  // Lease workload

  /**
   * A follower's call to the leader over the peer port (etcd's POST /leases): 1-12 ms each way,
   * failing with a timeout when a partition cuts either way or the leader is not running.
   */
  #forward<T>(from: Member, leader: bigint, call: (node: EtcdNode) => Promise<T>): Promise<T> {
    const r = this.#netRng;
    return new Promise<T>((resolve, reject) => {
      this.#at(r.range(1, 12), `forward ${from.name}>${this.#name(leader)}`, () => {
        const target = this.#byId.get(leader);
        if (!target || target.state !== "running" || this.#cut(from.id, leader)) {
          reject(Errors.timeout());
          return;
        }
        call(target.node!).then(
          (value) =>
            this.#at(r.range(1, 12), `forward reply ${this.#name(leader)}>${from.name}`, () => {
              if (this.#cut(leader, from.id)) reject(Errors.timeout());
              else resolve(value);
            }),
          (e) => this.#at(r.range(1, 12), "forward error", () => reject(e)),
        );
      });
    });
  }

  #scheduleLeases(): void {
    const r = this.#leaseRng;
    const next = () => {
      if (!this.#chaos) return;
      const live = this.#leases.filter((l) => l.granted && l.deletedMs.size < l.keys.length);
      if (live.length < 4) this.#leaseGrant();
      this.#at(r.range(800, 3000), "lease", next);
    };
    this.#at(r.range(300, 2000), "lease", next);
  }

  #leaseMember(): Member | null {
    const up = this.#members.filter((m) => m.state === "running");
    return up.length === 0 ? null : this.#leaseRng.pick(up);
  }

  /** A lease call whose outcome is unknown when the member crashes (the promise never settles). */
  #leaseCall<T>(m: Member, lease: SimLease, what: string, call: () => Promise<T>): Promise<T> {
    const inc = m.incarnation;
    lease.pending++;
    let p: Promise<T>;
    try {
      p = call();
    } catch (e) {
      p = Promise.reject(e);
    }
    return new Promise<T>((resolve, reject) => {
      const settle = () => {
        lease.pending--;
        return m.incarnation === inc;
      };
      // A crashed incarnation's calls may never settle: count them as done when it goes away.
      const watchdog = () => {
        if (m.incarnation !== inc && done === false) {
          done = true;
          lease.pending--;
          this.#log(`lease L${lease.no} ${what} via ${m.name}: unknown (member went away)`);
          return;
        }
        if (!done) this.#at(200, "lease watchdog", watchdog);
      };
      let done = false;
      this.#at(200, "lease watchdog", watchdog);
      p.then(
        (v) => {
          if (done) return;
          done = true;
          if (settle()) resolve(v);
        },
        (e) => {
          if (done) return;
          done = true;
          if (!(e instanceof EtcdError)) {
            this.#fail(`lease L${lease.no} ${what} failed with a non-etcd error: ${errorText(e)}`);
          }
          if (settle()) reject(e);
        },
      );
    });
  }

  #leaseGrant(): void {
    const r = this.#leaseRng;
    const m = this.#leaseMember();
    if (!m) return;
    const no = this.#leases.length + 1;
    const lease: SimLease = {
      no,
      id: BigInt(0x1000 + no),
      ttlMs: r.range(3, 6) * 1000,
      grantInvokeMs: this.#nowMs,
      granted: false,
      keys: [],
      ackedRenewInvokes: [],
      lastRenewEndMs: 0,
      pending: 0,
      revokeInvokeMs: null,
      deletedMs: new Map(),
    };
    this.#leases.push(lease);
    this.#stats.leaseGrants++;
    this.#log(`lease L${no} grant ttl ${lease.ttlMs / 1000}s via ${m.name}`);
    const req = create(LeaseGrantRequestSchema, { ID: lease.id, TTL: BigInt(lease.ttlMs / 1000) });
    this.#leaseCall(m, lease, "grant", () => m.node!.leaseGrant(req)).then(
      () => {
        lease.granted = true;
        this.#log(`lease L${no} granted`);
        const keys = r.range(1, 2);
        for (let i = 0; i < keys; i++) this.#leasePut(lease, `L${no}k${i}`);
        const renewForMs = r.pick([0, 2000, 5000, 10_000, 30_000]);
        const revoke = r.chance(0.3);
        this.#leaseKeepAlive(lease, this.#nowMs + renewForMs, revoke);
      },
      (e) => this.#log(`lease L${no} grant failed: ${errorText(e)}`),
    );
  }

  #leasePut(lease: SimLease, key: string): void {
    const m = this.#leaseMember();
    if (!m) return;
    lease.keys.push(key);
    this.#leaseOfKey.set(key, lease);
    const req = create(PutRequestSchema, {
      key: enc.encode(key),
      value: enc.encode(`L${lease.no}`),
      lease: lease.id,
    });
    this.#leaseCall(m, lease, `put ${key}`, () => m.node!.put(req)).then(
      (resp) => this.#log(`lease L${lease.no} put ${key} ok rev=${resp.header?.revision}`),
      (e) => this.#log(`lease L${lease.no} put ${key} failed: ${errorText(e)}`),
    );
  }

  /** Renews from random members every 0.5-1 s until `untilMs`, then revokes or abandons. */
  #leaseKeepAlive(lease: SimLease, untilMs: number, revoke: boolean): void {
    const r = this.#leaseRng;
    const step = () => {
      if (!this.#chaos) return;
      if (this.#nowMs >= untilMs) {
        if (!revoke) {
          this.#log(`lease L${lease.no} abandoned`);
          return;
        }
        const m = this.#leaseMember();
        if (!m) return;
        lease.revokeInvokeMs ??= this.#nowMs;
        this.#stats.leaseRevokes++;
        this.#log(`lease L${lease.no} revoke via ${m.name}`);
        this.#leaseCall(m, lease, "revoke", () => m.node!.leaseRevoke(lease.id)).then(
          () => this.#log(`lease L${lease.no} revoked`),
          (e) => this.#log(`lease L${lease.no} revoke failed: ${errorText(e)}`),
        );
        return;
      }
      const m = this.#leaseMember();
      if (m) {
        const invokeMs = this.#nowMs;
        this.#leaseCall(m, lease, "renew", () => m.node!.leaseRenew(lease.id)).then(
          (ttl) => {
            lease.ackedRenewInvokes.push(invokeMs);
            lease.lastRenewEndMs = Math.max(lease.lastRenewEndMs, this.#nowMs);
            this.#stats.leaseRenewsAcked++;
            this.#log(`lease L${lease.no} renew@${invokeMs} via ${m.name} ok ttl=${ttl}`);
          },
          (e) => {
            lease.lastRenewEndMs = Math.max(lease.lastRenewEndMs, this.#nowMs);
            this.#log(`lease L${lease.no} renew@${invokeMs} via ${m.name} failed: ${errorText(e)}`);
          },
        );
        if (r.chance(0.2)) {
          const req = create(LeaseTimeToLiveRequestSchema, { ID: lease.id, keys: true });
          this.#leaseCall(m, lease, "ttl", () => m.node!.leaseTimeToLive(req)).catch(() => {});
        }
      }
      this.#at(r.range(500, 1000), `lease L${lease.no} renew`, step);
    };
    this.#at(r.range(100, 800), `lease L${lease.no} renew`, step);
  }

  /**
   * Checker 1, no early expiry: a key of a lease nobody asked to revoke is not deleted before
   * TTL after the invocation of the last acknowledged renew (or of the grant) invoked before the
   * deletion, measured in the fastest lease clock of the run.
   */
  #checkNoEarlyExpiry(): void {
    for (const l of this.#leases) {
      for (const [key, atMs] of l.deletedMs) {
        if (l.revokeInvokeMs !== null && l.revokeInvokeMs <= atMs) continue;
        const renewedMs = Math.max(
          l.grantInvokeMs,
          ...l.ackedRenewInvokes.filter((t) => t < atMs),
        );
        const earliestMs = renewedMs + l.ttlMs * leaseClockFastest;
        if (atMs < earliestMs) {
          this.#fail(
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
   * + 500 ms (ticks, the revoke's commit and apply), on every member.
   */
  async #leaseEndPhase(): Promise<void> {
    this.#checkNoEarlyExpiry();
    await this.#runUntil(this.#nowMs + 30_000, () => this.#leases.every((l) => l.pending === 0));
    const stableMs = this.#nowMs;
    let deadlineMs = stableMs;
    const bound = new Map<SimLease, number>();
    for (const l of this.#leases) {
      const d = Math.max(stableMs, l.lastRenewEndMs) +
        (l.ttlMs + electionTimeoutMs) * leaseClockSlowest + 500;
      bound.set(l, d);
      deadlineMs = Math.max(deadlineMs, d);
    }
    const held = (l: SimLease, m: Member) =>
      m.state === "running" && m.node!.leaseLeases().leases.some((s) => s.ID === l.id);
    const gone = (l: SimLease) =>
      l.keys.every((k) => l.deletedMs.has(k) || !this.#maybeWritten(k)) &&
      !this.#expected().some((m) => held(l, m));
    for (const l of [...this.#leases].sort((a, b) => bound.get(a)! - bound.get(b)!)) {
      await this.#runUntil(bound.get(l)!, () => gone(l));
      // The first member to apply the deletion is seen first; let the others apply it too.
      await this.#runUntil(this.#nowMs + 2_000, () => this.#converged());
      for (const m of this.#expected()) {
        if (held(l, m)) {
          this.#fail(
            `lease outlived its TTL: lease L${l.no} (ttl ${l.ttlMs / 1000}s, last renew ended at ` +
              `${l.lastRenewEndMs}ms, cluster stable at ${stableMs}ms) is still on ${m.name} at ` +
              `${this.#nowMs}ms (bound ${Math.ceil(bound.get(l)!)}ms)`,
          );
          return;
        }
        for (const key of l.keys) {
          const resp = await m.node!.range(
            create(RangeRequestSchema, { key: enc.encode(key), serializable: true }),
          );
          if (resp.kvs.length > 0) {
            this.#fail(
              `lease outlived its TTL: key ${key} of lease L${l.no} (ttl ${l.ttlMs / 1000}s, ` +
                `last renew ended at ${l.lastRenewEndMs}ms, cluster stable at ${stableMs}ms) is ` +
                `still on ${m.name} at ${this.#nowMs}ms (bound ${Math.ceil(bound.get(l)!)}ms, ` +
                `deleted ${l.deletedMs.get(key)} seen ${this.#maybeWritten(key)})`,
            );
            return;
          }
        }
      }
    }
    this.#checkNoEarlyExpiry();
    for (const l of this.#leases) {
      for (const atMs of l.deletedMs.values()) {
        if (l.revokeInvokeMs === null || l.revokeInvokeMs > atMs) this.#stats.leaseKeysExpired++;
      }
    }
    const leader = this.#expected().find((m) => m.node!.isLeader);
    if (leader) {
      for (const l of this.#leases) {
        const ttl = await leader.node!.leaseTimeToLive(
          create(LeaseTimeToLiveRequestSchema, { ID: l.id }),
        );
        if (ttl.TTL !== -1n) {
          this.#fail(`lease L${l.no} still has TTL ${ttl.TTL}s on leader ${leader.name}`);
          return;
        }
      }
    }
  }

  /** Whether a lease key may exist: a watcher saw a PUT of it (any member). */
  #maybeWritten(key: string): boolean {
    return this.#leaseKeysPut.has(key);
  }

  // -------------------------------------------------------------------------------------------
  // Membership

  #scheduleMembership(snapshotCount: number, walSegmentBytes: number): void {
    const r = this.#faultRng;
    const initialSize = this.#members.length;
    const next = () => {
      if (!this.#chaos) return;
      if (!this.#membershipBusy) {
        this.#membershipChange(initialSize, snapshotCount, walSegmentBytes);
      }
      this.#at(r.range(1500, 5000), "membership", next);
    };
    this.#at(r.range(2000, 5000), "membership", next);
  }

  #beginMembershipCall(via: Member, call: Promise<unknown>, what: string): void {
    const inc = via.incarnation;
    this.#membershipBusy = true;
    this.#membershipVia = via;
    call.then(
      () => this.#log(`${what} ok`),
      (e) => this.#log(`${what} failed: ${errorText(e)}`),
    ).finally(() => {
      if (via.incarnation === inc && this.#membershipVia === via) this.#endMembershipCall();
    });
  }

  #endMembershipCall(): void {
    this.#membershipBusy = false;
    this.#membershipVia = null;
  }

  /** The membership as the most advanced running member applied it. */
  #view(): { members: MemberInfo[]; from: Member } | null {
    let best: Member | null = null;
    for (const m of this.#members) {
      if (m.state !== "running") continue;
      if (!best || m.node!.appliedIndex > best.node!.appliedIndex) best = m;
    }
    return best ? { members: best.node!.memberInfos(), from: best } : null;
  }

  #membershipChange(initialSize: number, snapshotCount: number, walSegmentBytes: number): void {
    const r = this.#faultRng;
    const view = this.#view();
    if (!view) return;
    const up = this.#members.filter((m) => m.state === "running");
    const via = r.pick(up);
    const learner = view.members.find((m) => m.isLearner);
    if (learner) {
      const leader = up.find((m) => m.node!.isLeader);
      if (!leader) return;
      this.#log(`member promote ${this.#name(learner.id)} via ${leader.name}`);
      this.#stats.promotions++;
      this.#beginMembershipCall(
        leader,
        leader.node!.memberPromote(learner.id),
        `promote ${this.#name(learner.id)}`,
      );
      return;
    }
    const size = view.members.length;
    const add = size < initialSize || (size === initialSize && r.chance(0.5));
    if (add) {
      const m = this.#newMember();
      const asLearner = r.chance(0.4);
      m.id = memberId([m.peerUrl], clusterToken, Math.floor((epochMs + this.#nowMs) / 1000));
      const initialCluster = [
        ...view.members.map((x) => `${this.#name(x.id)}=${x.peerUrls[0]}`),
        `${m.name}=${m.peerUrl}`,
      ].join(",");
      m.config = this.#config(m, initialCluster, "existing", snapshotCount, walSegmentBytes);
      m.join = { clusterId: via.node!.clusterId, memberId: m.id };
      this.#register(m);
      m.state = "removed"; // not started until the cluster knows it
      this.#pendingJoins.push(m);
      this.#stats.memberAdds++;
      this.#log(
        `member add ${m.name} (${idHex(m.id)})${asLearner ? " as learner" : ""} via ${via.name}`,
      );
      const call = via.node!.memberAdd([m.peerUrl], asLearner).then((resp) => {
        if (resp.member?.ID !== m.id) this.#fail(`memberAdd gave ${m.name} an unexpected ID`);
      });
      this.#beginMembershipCall(via, call, `member add ${m.name}`);
      return;
    }
    const target = r.pick(view.members);
    this.#stats.memberRemoves++;
    this.#log(`member remove ${this.#name(target.id)} via ${via.name}`);
    this.#beginMembershipCall(
      via,
      via.node!.memberRemove(target.id),
      `member remove ${this.#name(target.id)}`,
    );
  }

  /** Starts members the cluster added; retires members it removed. */
  #reconcile(): void {
    const view = this.#view();
    if (!view) return;
    const ids = new Set(view.members.map((m) => m.id));
    for (const m of [...this.#pendingJoins]) {
      if (ids.has(m.id)) {
        this.#pendingJoins.splice(this.#pendingJoins.indexOf(m), 1);
        m.state = "down";
        this.#log(`start joining member ${m.name}`);
        this.#open(m);
      } else if (view.from.node!.isRemovedMember(m.id)) {
        this.#pendingJoins.splice(this.#pendingJoins.indexOf(m), 1);
      }
      // An add whose outcome is unknown stays here: if it commits later, the member starts then.
    }
    for (const m of this.#members) {
      if (m.state !== "removed" && view.from.node!.isRemovedMember(m.id)) {
        this.#log(`retire removed member ${m.name}`);
        if (m.state === "running" || m.state === "opening") m.simDisk?.fence();
        this.#abandon(m, "removed");
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Checkers

  #onApply(m: Member, inc: number, entry: Entry): void {
    const sig = `${entry.term}/${entry.type}/${bytesHash(entry.data)}`;
    const seen = this.#applied.get(entry.index);
    if (seen === undefined) {
      this.#applied.set(entry.index, sig);
      if (entry.index > this.#highestApplied) this.#highestApplied = entry.index;
    } else if (seen !== sig) {
      this.#fail(
        `state machine safety: ${m.name}#${inc} applied ${sig} at index ${entry.index}, ` +
          `another member applied ${seen} there`,
      );
    }
  }

  /** After every event: election safety and leader changes. */
  #observe(): void {
    const watchViolation = this.#watches.check();
    if (watchViolation !== null) this.#fail(watchViolation);
    for (const m of this.#members) {
      if (m.state !== "running" && m.state !== "stopping") continue;
      const node = m.node!;
      if (!node.isLeader) continue;
      const term = node.raftTerm;
      const seen = this.#leaders.get(term);
      if (seen === undefined) {
        this.#leaders.set(term, m.id);
        this.#stats.leaderChanges++;
        this.#log(`leader ${m.name} term ${term}`);
      } else if (seen !== m.id) {
        this.#fail(`election safety: ${this.#name(seen)} and ${m.name} both led term ${term}`);
      }
    }
  }

  #expected(): Member[] {
    return this.#members.filter((m) => m.state !== "removed");
  }

  #converged(): boolean {
    if (this.#membershipBusy) return false;
    const expected = this.#expected();
    if (expected.some((m) => m.state !== "running")) return false;
    if (this.#ops.some((o) => o.outcome === "pending")) return false;
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
    return this.#members.map((m) => {
      const n = m.node;
      return `${m.name}(${m.state}${
        n ? ` term=${n.raftTerm} applied=${n.appliedIndex} lead=${this.#name(n.leader)}` : ""
      })`;
    }).join(" ") + ` pendingOps=${this.#ops.filter((o) => o.outcome === "pending").length}` +
      ` pendingJoins=${this.#pendingJoins.length} membershipBusy=${this.#membershipBusy}`;
  }

  async #finalChecks(): Promise<void> {
    const expected = this.#expected();
    const first = expected[0].node!;
    // Convergence: same applied index, revision, membership and MVCC hash everywhere.
    const hashes = expected.map((m) => {
      const h = m.node!.hashKV(create(HashKVRequestSchema, {}));
      return `${m.node!.appliedIndex}/${m.node!.revision}/${h.hash}`;
    });
    if (new Set(hashes).size !== 1) {
      this.#fail(
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
      this.#fail(`members disagree about the membership: ${memberLists.join(" | ")}`);
      return;
    }
    // Durability: every acknowledged put is in the history at its revision with its value.
    for (const op of this.#ops) {
      if (op.kind !== "put" || op.outcome !== "ok") continue;
      for (const m of expected) {
        const resp = await m.node!.range(create(RangeRequestSchema, {
          key: enc.encode(op.key),
          revision: BigInt(op.revision),
          serializable: true,
        }));
        const kv = resp.kvs[0];
        if (!kv || dec.decode(kv.value) !== op.value || Number(kv.modRevision) !== op.revision) {
          this.#fail(
            `durability: ${describe(op)} was acknowledged but ${m.name} has ${
              kv ? `${dec.decode(kv.value)}@${kv.modRevision}` : "nothing"
            } at revision ${op.revision}`,
          );
          return;
        }
      }
    }
    const problem = checkHistory(this.#ops);
    if (problem) this.#fail(`linearizability: ${problem}`);
    this.#log(
      `final: ${expected.length} members at applied ${first.appliedIndex}, revision ${first.revision}`,
    );
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function stringify(fields: LogFields): string {
  return JSON.stringify(fields, (_k, v) => typeof v === "bigint" ? v.toString(16) : v);
}
