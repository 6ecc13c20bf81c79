/**
 * Background threads at a lower scheduling priority than the event loop.
 *
 * A worker that writes a snapshot's file runs as fast as its reader takes the chunks; on a machine
 * with few cores it competes with the member's event loop for a core, and requests and heartbeats
 * wait while the worker's time slice runs (docs/benchmarks.md, "A snapshot's file written by a
 * worker"). Linux schedules each thread on its own nice value: a worker at nice 10 gets a core the
 * event loop (nice 0) does not want, and yields it within the scheduler's granularity when the event
 * loop wakes, so the snapshot is as fast as before on an idle machine and the member's answers do
 * not wait behind it on a busy one.
 *
 * Linux only (setpriority(2) on the calling thread's ID, through libc); anywhere else, or without
 * the permission to load libc, the thread keeps its priority and nothing fails.
 */

/** PRIO_PROCESS: with a thread ID, setpriority(2) applies to that one thread on Linux. */
const PRIO_PROCESS = 0;

/** The calling thread's ID (Linux: /proc/thread-self is a link to <pid>/task/<tid>). */
function threadId(): number | null {
  try {
    const link = Deno.readLinkSync("/proc/thread-self");
    const tid = Number(link.slice(link.lastIndexOf("/") + 1));
    return Number.isInteger(tid) && tid > 0 ? tid : null;
  } catch {
    return null;
  }
}

/**
 * Lowers the calling thread's priority to `nice` (1-19: higher is lower priority); answers the
 * nice value it now runs at, or null if it could not be changed.
 */
export function lowerThreadPriority(nice = 10): number | null {
  if (Deno.build.os !== "linux") return null;
  const tid = threadId();
  if (tid === null) return null;
  let libc:
    | Deno.DynamicLibrary<{
      setpriority: { parameters: ["i32", "u32", "i32"]; result: "i32" };
    }>
    | null = null;
  try {
    libc = Deno.dlopen("libc.so.6", {
      setpriority: { parameters: ["i32", "u32", "i32"], result: "i32" },
    });
    return libc.symbols.setpriority(PRIO_PROCESS, tid, nice) === 0 ? nice : null;
  } catch {
    return null;
  } finally {
    libc?.close();
  }
}
