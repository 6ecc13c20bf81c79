/**
 * The simulation's clock, event queue and record of the run: every module schedules its work here
 * (`at`), writes what happened to the event log (`log`, hashed into the run's `eventHash`) and
 * reports a broken guarantee (`fail`). Nothing here knows about members, the network or checkers,
 * so new modules only need this and the member registry.
 *
 * Determinism. Events are keyed by (simulated ms, sequence number); the sequence number is handed
 * out when an event is scheduled, so two events at the same millisecond run in the order they were
 * scheduled. After each event the loop waits for one macrotask turn (`settle`, see Settler).
 */

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

/**
 * Resolves on the next macrotask turn: every microtask queued before has run by then. The
 * JavaScript event loop runs every queued microtask before any macrotask, and all asynchronous work
 * of the nodes is microtask-only (every disk operation that would take time is itself an event, see
 * SimDisk), so when the turn comes every promise chain an event started has either finished or is
 * parked on a future simulated event. `setTimeout(0)` would do the same but Deno clamps nested
 * timers to ~2.5 ms; a MessageChannel turn costs ~20 µs here.
 */
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

/**
 * What a run counts, reported in `SimResult.stats`. One record for every module (the field order
 * is the order a result prints them in), each counter written by the module named beside it.
 */
export interface SimStats {
  /** network.ts */
  delivered: number;
  /** network.ts */
  dropped: number;
  /** network.ts */
  duplicated: number;
  /** network.ts: snapshots streamed to a follower, whole */
  snapshotsStreamed: number;
  /** network.ts: snapshot streams broken part way */
  snapshotStreamsBroken: number;
  /** faults.ts */
  crashes: number;
  /** faults.ts */
  cleanRestarts: number;
  /** faults.ts */
  partitions: number;
  /** workloads.ts (ClientWorkload) */
  puts: number;
  /** workloads.ts (ClientWorkload) */
  putsAcked: number;
  /** workloads.ts (ClientWorkload) */
  gets: number;
  /** workloads.ts (ClientWorkload) */
  getsOk: number;
  /** membership.ts */
  memberAdds: number;
  /** membership.ts */
  memberRemoves: number;
  /** membership.ts */
  promotions: number;
  /** checkers.ts (SafetyChecker) */
  leaderChanges: number;
  /** workloads.ts (LeaseWorkload) */
  leaseGrants: number;
  /** workloads.ts (LeaseWorkload) */
  leaseRenewsAcked: number;
  /** workloads.ts (LeaseWorkload) */
  leaseRevokes: number;
  /** checkers.ts (LeaseChecker) */
  leaseKeysExpired: number;
  /** kv_workload.ts: calls made (deletes, CAS, puts, reads, reads at a revision) */
  kvOps: number;
  /** kv_workload.ts: calls answered */
  kvAcked: number;
  /** kv_workload.ts: compactions asked for */
  compactions: number;
  /** watch_check.ts: watchers resumed from a past revision on a member's next incarnation */
  watchResumes: number;
  /** watch_check.ts: progress notifications checked */
  watchProgress: number;
  /** checkers.ts: operations the linearizability checker took (reads included, failures not). */
  linearizabilityOps: number;
  /** checkers.ts: linearizable reads among them, with a known answer. */
  linearizabilityReads: number;
  /** checkers.ts: 1 when the checker's search ran out of budget (undecided, not a failure). */
  linearizabilityUndecided: number;
}

/** Lines of the event log kept for a failure report. */
const TRAIL_LINES = 60;

/**
 * The simulated clock and the queue of everything that will happen, with the run's event log,
 * hash, counters and first violation. Shared by every module of the simulation.
 */
export class EventLoop {
  #queue = new EventQueue();
  #seq = 0;
  #nowMs = 0;
  #events = 0;
  #hash = new RunningHash();
  #settler = new Settler();
  #trail: string[] = [];
  #violation: string | null = null;
  #trace: boolean;
  /** The run's counters (see SimStats). */
  readonly stats: SimStats = {
    delivered: 0,
    dropped: 0,
    duplicated: 0,
    snapshotsStreamed: 0,
    snapshotStreamsBroken: 0,
    crashes: 0,
    cleanRestarts: 0,
    partitions: 0,
    puts: 0,
    putsAcked: 0,
    gets: 0,
    getsOk: 0,
    kvOps: 0,
    watchResumes: 0,
    watchProgress: 0,
    kvAcked: 0,
    compactions: 0,
    memberAdds: 0,
    memberRemoves: 0,
    promotions: 0,
    leaderChanges: 0,
    leaseGrants: 0,
    leaseRenewsAcked: 0,
    leaseRevokes: 0,
    leaseKeysExpired: 0,
    linearizabilityOps: 0,
    linearizabilityReads: 0,
    linearizabilityUndecided: 0,
  };

  /** `trace`: print every log line as it is written (DETCD_SIM_TRACE=1). */
  constructor(trace: boolean) {
    this.#trace = trace;
  }

  /** Simulated milliseconds since the start of the run. */
  get nowMs(): number {
    return this.#nowMs;
  }

  /** Events run so far. */
  get events(): number {
    return this.#events;
  }

  /** Whether anything is still scheduled. */
  get pending(): boolean {
    return this.#queue.size > 0;
  }

  /** The first violation reported, with its time, or null. */
  get violation(): string | null {
    return this.#violation;
  }

  /** Whether log lines are printed (members' info and warn logs too). */
  get trace(): boolean {
    return this.#trace;
  }

  /** Schedules `run` `delayMs` from now (never in the past). */
  at(delayMs: number, label: string, run: () => void): void {
    this.atTime(this.#nowMs + Math.max(0, delayMs), label, run);
  }

  /** Schedules `run` at simulated time `atMs` (a disk queue computes its own completion times). */
  atTime(atMs: number, label: string, run: () => void): void {
    this.#queue.push({ atMs, seq: this.#seq++, label, run });
  }

  /** Runs `run` every `periodMs`, the first time one period from now, for as long as the run. */
  every(periodMs: number, label: string, run: () => void): void {
    const loop = () => {
      run();
      this.at(periodMs, label, loop);
    };
    this.at(periodMs, label, loop);
  }

  /** Writes a line to the event log: it is part of the run's hash and of a failure's trail. */
  log(what: string): void {
    const line = `${this.#nowMs}ms ${what}`;
    this.#hash.update(line);
    this.#trail.push(line);
    if (this.#trail.length > TRAIL_LINES) this.#trail.shift();
    if (this.#trace) console.log(line);
  }

  /** Reports a violation; the first one fails the run after the current event. */
  fail(detail: string): void {
    if (this.#violation === null) this.#violation = `at ${this.#nowMs}ms: ${detail}`;
  }

  /** The last `count` lines of the event log, for a failure report. */
  lastLines(count: number): string[] {
    return this.#trail.slice(-count);
  }

  /**
   * Runs the next event if it is due by `limitMs` (and advances the clock to it); false when none
   * is. The caller then waits for `settle()` before looking at the members.
   */
  runNext(limitMs: number): boolean {
    const e = this.#queue.pop();
    if (e === undefined) return false;
    if (e.atMs > limitMs) {
      this.#queue.push(e);
      return false;
    }
    this.#nowMs = e.atMs;
    this.#events++;
    this.#hash.update(`${e.atMs}|${e.label}`);
    e.run();
    return true;
  }

  /** Resolves when every microtask the last event started has run (see Settler). */
  settle(): Promise<void> {
    return this.#settler.settle();
  }

  /** Ends the event log and returns the run's hash. */
  finish(): string {
    this.#hash.update(`end ${this.#nowMs}`);
    return this.#hash.hex();
  }

  /** Releases the MessageChannel (it would keep the process alive). */
  close(): void {
    this.#settler.close();
  }
}

/** An error as the event log shows it. */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
