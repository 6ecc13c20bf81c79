/**
 * Background threads at a lower scheduling priority than the event loop.
 *
 * Linux schedules each thread on its own nice value, and setpriority(2) with pid 0 (node:os
 * `setPriority(0, n)`) changes the calling thread's alone. A worker thread that lowers its own gets
 * a core the event loop (nice 0) does not want, and yields it within the scheduler's granularity
 * when the event loop wakes: on an idle machine the worker is as fast as before, on a busy one the
 * member's requests and heartbeats do not wait behind it. Used by the bcrypt workers (nice 5;
 * session of issue 10).
 *
 * The snapshot file's writer goes further (`IdleThread`): SCHED_IDLE, the policy of threads that run
 * only when no other thread wants the core, which any waking thread preempts at once (a nice value
 * only weighs the share: a nice-10 or nice-19 worker still delayed a probe's Get by a few
 * milliseconds while a 1M-key snapshot was written; docs/benchmarks.md, session 26). A thread under
 * SCHED_IDLE on a machine whose cores are all busy would starve, and an unprivileged thread cannot
 * leave the policy (sched(7): it needs CAP_SYS_NICE or an RLIMIT_NICE allowing the nice value it
 * returns to), so the worker enters it only where it can leave it, watches the CPU it gets while
 * it has work, and returns to nice 10 when it is starved.
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

const SCHED_OTHER = 0;
const SCHED_IDLE = 5;
const CLOCK_THREAD_CPUTIME_ID = 3;
/** Bit of CAP_SYS_NICE in /proc/self/status's CapEff. */
const CAP_SYS_NICE = 23n;

type Libc = Deno.DynamicLibrary<{
  sched_setscheduler: { parameters: ["i32", "i32", "buffer"]; result: "i32" };
  clock_gettime: { parameters: ["i32", "buffer"]; result: "i32" };
}>;

let libc: Libc | null | undefined;

function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  if (Deno.build.os !== "linux") return libc;
  try {
    libc = Deno.dlopen("libc.so.6", {
      sched_setscheduler: { parameters: ["i32", "i32", "buffer"], result: "i32" },
      clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
    });
  } catch {
    // No glibc, or no permission to load it.
  }
  return libc;
}

/**
 * Whether a thread of this process could leave SCHED_IDLE for SCHED_OTHER at `nice`: RLIMIT_NICE's
 * soft limit allows nice values down to 20 - limit, and CAP_SYS_NICE allows any, but only in the
 * initial user namespace (the kernel asks `capable()`, and a container's root is not that).
 * `status`, `limits` and `uidMap` are /proc/self's files of those names.
 */
export function mayLeaveIdle(
  nice: number,
  files: { status: string; limits: string; uidMap: string },
): boolean {
  const limit = /^Max nice priority\s+(\d+)/m.exec(files.limits);
  if (limit !== null && 20 - Number(limit[1]) <= nice) return true;
  const caps = /^CapEff:\s*([0-9a-f]+)/m.exec(files.status);
  if (caps === null || ((BigInt(`0x${caps[1]}`) >> CAP_SYS_NICE) & 1n) === 0n) return false;
  // The initial namespace maps every uid to itself: "0 0 4294967295".
  const map = files.uidMap.trim().split(/\s+/);
  return map.length === 3 && map[0] === "0" && map[1] === "0" && map[2] === "4294967295";
}

function procFiles(): { status: string; limits: string; uidMap: string } | null {
  try {
    return {
      status: Deno.readTextFileSync("/proc/self/status"),
      limits: Deno.readTextFileSync("/proc/self/limits"),
      uidMap: Deno.readTextFileSync("/proc/self/uid_map"),
    };
  } catch {
    return null;
  }
}

/** The share of a core below which a thread with work is starved. */
export const STARVED_SHARE = 0.25;
/** How much working wall time the share is judged over. */
export const STARVED_WINDOW_MS = 250;

/**
 * Judges from a thread's own CPU time against the wall time it had work whether it is starved. The
 * time it waits for something else (`pause`, e.g. before awaiting the consumer) does not count.
 */
export class StarvationWatch {
  #wallStart = 0;
  #cpuStart = 0;
  #working = false;

  constructor(
    private readonly wallMs: () => number,
    private readonly cpuMs: () => number,
    private readonly share = STARVED_SHARE,
    private readonly windowMs = STARVED_WINDOW_MS,
  ) {}

  /** Called while the thread works; answers true when it got less than its share of a window. */
  starved(): boolean {
    const wall = this.wallMs();
    if (!this.#working) {
      this.#working = true;
      this.#wallStart = wall;
      this.#cpuStart = this.cpuMs();
      return false;
    }
    const elapsed = wall - this.#wallStart;
    if (elapsed < this.windowMs) return false;
    // The thread's clock only once a window: the wall clock is the cheaper read.
    const cpu = this.cpuMs();
    const got = cpu - this.#cpuStart;
    this.#wallStart = wall;
    this.#cpuStart = cpu;
    return got < elapsed * this.share;
  }

  /** The thread stops working for a while (what follows starts a new window). */
  pause(): void {
    this.#working = false;
  }
}

/**
 * The calling thread under SCHED_IDLE while it gets the CPU it needs: `enter()` sets the policy
 * where the thread may leave it again (else it lowers the thread to `fallbackNice`, as
 * lowerThreadPriority does); `working()`, called every few milliseconds of work, returns the thread
 * to SCHED_OTHER at `fallbackNice` when it is starved; `pause()` before waiting for something else.
 */
export class IdleThread {
  /** Set while the thread is under SCHED_IDLE. */
  #watch: StarvationWatch | null = null;

  constructor(readonly fallbackNice = 10) {}

  /** Whether the thread is under SCHED_IDLE now. */
  get idle(): boolean {
    return this.#watch !== null;
  }

  enter(): boolean {
    // The nice value first: SCHED_IDLE keeps it, and leaving the policy is judged against it (the
    // kernel asks whether the thread could take its current nice value: 10 needs RLIMIT_NICE 10,
    // 0 would need 20).
    lowerThreadPriority(this.fallbackNice);
    const lib = loadLibc();
    const files = procFiles();
    if (lib !== null && files !== null && mayLeaveIdle(this.fallbackNice, files)) {
      if (lib.symbols.sched_setscheduler(0, SCHED_IDLE, new Uint8Array(4)) === 0) {
        const timespec = new BigInt64Array(2);
        const bytes = new Uint8Array(timespec.buffer);
        this.#watch = new StarvationWatch(() => performance.now(), () => {
          lib.symbols.clock_gettime(CLOCK_THREAD_CPUTIME_ID, bytes);
          return Number(timespec[0]) * 1000 + Number(timespec[1]) / 1e6;
        });
        return true;
      }
    }
    return false;
  }

  working(): void {
    if (this.#watch?.starved()) this.leave();
  }

  pause(): void {
    this.#watch?.pause();
  }

  /** Back to SCHED_OTHER at the fallback nice value. */
  leave(): void {
    if (this.#watch === null) return;
    const lib = loadLibc();
    // SCHED_OTHER at the nice value set before entering.
    if (lib !== null && lib.symbols.sched_setscheduler(0, SCHED_OTHER, new Uint8Array(4)) === 0) {
      this.#watch = null;
    }
  }
}
