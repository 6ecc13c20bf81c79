/**
 * Background threads at a lower scheduling priority than the event loop.
 *
 * Linux schedules each thread on its own nice value, and setpriority(2) with pid 0 (node:os
 * `setPriority(0, n)`) changes the calling thread's alone. A worker thread that lowers its own gets
 * a core the event loop (nice 0) does not want, and yields it within the scheduler's granularity
 * when the event loop wakes: on an idle machine the worker is as fast as before, on a busy one the
 * member's requests and heartbeats do not wait behind it. Used by the snapshot file's writer (nice
 * 10; docs/benchmarks.md, session 24) and the bcrypt workers (nice 5; session of issue 10).
 */
import os from "node:os";

/**
 * Lowers the calling thread's priority to `nice` (1-19: higher is lower priority); answers whether
 * it could (not where the system refuses it, or has no such priority).
 */
export function lowerThreadPriority(nice: number): boolean {
  try {
    os.setPriority(0, nice);
    return true;
  } catch {
    return false;
  }
}
