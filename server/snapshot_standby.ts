/**
 * A snapshot worker kept standing by while the store is large.
 *
 * `new Worker` holds the event loop 7-13 ms on this machine (it waits for the new thread's
 * isolate). Started when a 1M-key snapshot begins, that wait was the longest any request met
 * during the snapshot and, with a probe every 10 ms, one of its two or three slowest answers
 * (docs/benchmarks.md, session 25). Here a large store keeps the next snapshot's worker started
 * ahead of need, at a quiet moment (as the idle trim measures quiet, a second later than it), and
 * after a snapshot the worker that wrote it whole stands by for the next (a new one started then
 * held the event loop 12-18 ms as the snapshot ended, session 30); a new one only where none did.
 * A worker standing by costs ~36 MB resident (its isolate and the worker's modules), hence only
 * above `minKeys` keys, where that is a small share of the member's memory and a snapshot is long
 * enough to be served while requests wait.
 */
import { ActivityWindow } from "./idle_trim.ts";
import {
  dismissSnapshotWorker,
  keepFinishedWorkers,
  snapshotWorkers,
  snapshotWorkerStandingBy,
  standBySnapshotWorker,
} from "./snapshot_writer.ts";

/** What the standby watches. */
export interface StandbySource {
  revision(): number;
  calls(): number;
  /** Keys in the store now. */
  keyCount(): number;
}

/** The worker's hands: tests give their own. */
export interface StandbyWorkers {
  standingBy(): boolean;
  /** Snapshots being written now (each by its own worker). */
  running(): number;
  standBy(): void;
  dismiss(): void;
}

const REAL_WORKERS: StandbyWorkers = {
  standingBy: snapshotWorkerStandingBy,
  running: snapshotWorkers,
  standBy: () => standBySnapshotWorker(),
  dismiss: dismissSnapshotWorker,
};

/**
 * Keys from which a worker stands by: at 200,000 keys a member holds 200-470 MB resident
 * (docs/benchmarks.md), so the worker's ~36 MB is a tenth or less of it.
 */
export const STANDBY_MIN_KEYS = 200_000;

/**
 * Quiet enough to start a worker: the idle trim's measure (at most 100 calls and writes a second),
 * over two seconds, so that after a load the trim (at one quiet second) and the worker's start
 * (at two) are separate waits rather than one long one.
 */
const STANDBY_QUIET = { windowMs: 2000, maxActivity: 200 };

/**
 * Decides, driven by check() at a fixed interval: a worker stands by once the store holds
 * `minKeys` keys and the member is quiet with no snapshot being written; it is dismissed when the
 * store falls under half of that (not at `minKeys` itself: a store around it would start and end
 * workers, each start a wait).
 */
export class SnapshotStandby {
  readonly #window: ActivityWindow;

  constructor(
    readonly source: StandbySource,
    readonly workers: StandbyWorkers = REAL_WORKERS,
    readonly minKeys: number = STANDBY_MIN_KEYS,
    now: number = performance.now(),
  ) {
    this.#window = new ActivityWindow(source, STANDBY_QUIET, now);
  }

  /** Whether the store is large enough for a worker to stand by. */
  wantsWorker(): boolean {
    return this.source.keyCount() >= this.minKeys;
  }

  check(now: number = performance.now()): void {
    const quiet = this.#window.quiet(now);
    if (this.workers.standingBy()) {
      if (this.source.keyCount() < this.minKeys / 2) this.workers.dismiss();
      return;
    }
    if (quiet && this.wantsWorker() && this.workers.running() === 0) this.workers.standBy();
  }
}

/** Checks every `everyMs`; answers a stop function that also ends the worker standing by. */
export function startSnapshotStandby(source: StandbySource, everyMs = 250): () => void {
  const standby = new SnapshotStandby(source);
  const timer = setInterval(() => standby.check(), everyMs);
  Deno.unrefTimer(timer);
  // The worker of a snapshot just written stands by for the next where one would be started.
  keepFinishedWorkers(() => standby.wantsWorker());
  return () => {
    clearInterval(timer);
    keepFinishedWorkers(null);
    dismissSnapshotWorker();
  };
}
