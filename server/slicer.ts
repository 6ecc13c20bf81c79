/**
 * Long work on the event loop (a snapshot being written or streamed, a hash) runs in slices: it
 * calls pause() often, and once a slice of SLICE_MS has run, pause() lets timers, I/O and Raft
 * in before the work goes on.
 */

/** How long a slice of background work runs before it lets other work in. */
const SLICE_MS = 4;

export class Slicer {
  #since = performance.now();

  /** Resolves at once inside a slice; after a macrotask once the slice is used up. */
  async pause(): Promise<void> {
    if (performance.now() - this.#since < SLICE_MS) return;
    await new Promise<void>((resolve) => setTimeout(resolve, 0));
    this.#since = performance.now();
  }
}
