/**
 * The C heap's free memory given back once the member goes quiet after many writes.
 *
 * Writes allocate buffers outside V8's heap (request bytes, WAL records, file reads); V8 frees them
 * as it collects their owners, into glibc's heap, which keeps what was freed. After a bulk load of
 * 1M keys that was ~150 MB of resident memory doing nothing until the process ended
 * (docs/benchmarks.md, session 24). Here the member trims the C heap (platform/malloc_trim.ts)
 * once it is quiet after many writes, and again after V8's collector gave memory back: a few
 * milliseconds (10 with 1M keys) at a time when few requests can wait for it.
 */
import v8 from "node:v8";
import { mallocTrimmer } from "../platform/malloc_trim.ts";

/** What the trimmer watches. */
export interface QuietSource {
  /** The applied revision (moves with every write, on every member). */
  revision(): number;
  /** Client calls started so far (any protocol). */
  calls(): number;
  /** The V8 heap's size (committed): it shrinks when a full collection gave memory back. */
  heapBytes(): number;
}

export interface QuietOptions {
  /** The window activity is counted over. */
  windowMs: number;
  /** At most this many client calls and writes in the window: quiet enough to act. */
  maxActivity: number;
  /** Writes (revisions) since the last time that make acting worth it. */
  minWrites: number;
  /** Or: the V8 heap shrank this much since it last acted (its collector freed buffers). */
  minHeapShrinkBytes: number;
}

export const IDLE_TRIM_DEFAULTS: QuietOptions = {
  windowMs: 1000,
  maxActivity: 100,
  minWrites: 10_000,
  minHeapShrinkBytes: 32 * 1024 * 1024,
};

/** How busy the member has been over the last window: client calls started plus writes. */
export class ActivityWindow {
  /** (time, calls + revision) samples within the window, oldest first. */
  #samples: { at: number; activity: number }[] = [];

  constructor(
    readonly source: Pick<QuietSource, "revision" | "calls">,
    readonly options: Pick<QuietOptions, "windowMs" | "maxActivity">,
    now: number = performance.now(),
  ) {
    this.#samples.push({ at: now, activity: this.#activity() });
  }

  #activity(): number {
    return this.source.calls() + this.source.revision();
  }

  /**
   * Takes a sample; answers whether a whole window has been seen and at most `maxActivity` calls
   * and writes happened in it.
   */
  quiet(now: number = performance.now()): boolean {
    const activity = this.#activity();
    const samples = this.#samples;
    samples.push({ at: now, activity });
    while (samples.length > 1 && now - samples[1].at >= this.options.windowMs) samples.shift();
    if (now - samples[0].at < this.options.windowMs) return false;
    return activity - samples[0].activity <= this.options.maxActivity;
  }
}

/**
 * When to act, driven by check() at a fixed interval: when the member is quiet (at most
 * `maxActivity` client calls and writes in the last `windowMs`: a monitoring probe does not keep
 * it busy, a load does) after at least `minWrites` writes since it last acted, or after V8's heap
 * shrank by `minHeapShrinkBytes` from its peak since then (a memory-reducing collection freed the
 * buffers the writes had left; V8 runs one 7-13 s after a load ends).
 */
export class QuietAfterWrites {
  readonly #window: ActivityWindow;
  #actedAtRevision: number;
  #heapPeak: number;

  constructor(
    readonly source: QuietSource,
    readonly act: () => void,
    readonly options: QuietOptions = IDLE_TRIM_DEFAULTS,
    now: number = performance.now(),
  ) {
    this.#actedAtRevision = source.revision();
    this.#heapPeak = source.heapBytes();
    this.#window = new ActivityWindow(source, options, now);
  }

  /** Looks at the member; acts (and answers true) when the time has come. */
  check(now: number = performance.now()): boolean {
    const revision = this.source.revision();
    const heap = this.source.heapBytes();
    this.#heapPeak = Math.max(this.#heapPeak, heap);
    // Not a whole window observed yet, or too busy in it.
    if (!this.#window.quiet(now)) return false;
    // A snapshot from the leader can move the revision back: count from there.
    if (revision < this.#actedAtRevision) this.#actedAtRevision = revision;
    const written = revision - this.#actedAtRevision >= this.options.minWrites;
    const shrank = this.#heapPeak - heap >= this.options.minHeapShrinkBytes;
    if (!written && !shrank) return false;
    this.#actedAtRevision = revision;
    this.#heapPeak = heap;
    this.act();
    return true;
  }
}

/**
 * Checks the member every `everyMs` and trims the C heap when it has gone quiet after many
 * writes; answers a stop function. `onTrim` hears how long each trim took. Without glibc nothing
 * runs.
 */
export function startIdleTrim(
  source: Omit<QuietSource, "heapBytes">,
  onTrim: (ms: number, revision: number) => void,
  options: QuietOptions = IDLE_TRIM_DEFAULTS,
  everyMs = 250,
): () => void {
  const trim = mallocTrimmer();
  if (trim === null) return () => {};
  const heapBytes = () => v8.getHeapStatistics().total_heap_size;
  let trimming = false;
  const quiet = new QuietAfterWrites({ ...source, heapBytes }, () => {
    if (trimming) return;
    trimming = true;
    const started = performance.now();
    trim().then(() => onTrim(performance.now() - started, source.revision()))
      .catch(() => {}).finally(() => (trimming = false));
  }, options);
  const timer = setInterval(() => quiet.check(), everyMs);
  Deno.unrefTimer(timer);
  return () => clearInterval(timer);
}
