/**
 * When the member gives the C heap's free memory back (server/idle_trim.ts): once quiet after many
 * writes, again after V8's heap shrank, never while busy, and a monitoring probe's few calls do not
 * count as busy.
 */
import { assertEquals } from "../core/testing.ts";
import { mallocTrimmer } from "../platform/malloc_trim.ts";
import { IDLE_TRIM_DEFAULTS, QuietAfterWrites } from "./idle_trim.ts";

const MB = 1024 * 1024;

function member() {
  const state = { revision: 1, calls: 0, heap: 100 * MB };
  let acted = 0;
  let now = 0;
  const quiet = new QuietAfterWrites(
    {
      revision: () => state.revision,
      calls: () => state.calls,
      heapBytes: () => state.heap,
    },
    () => acted++,
    IDLE_TRIM_DEFAULTS,
    now,
  );
  /** Advances the clock by `ms` in checks 250 ms apart, `perCheck` applied before each. */
  const run = (ms: number, perCheck: () => void = () => {}) => {
    for (let t = 0; t < ms; t += 250) {
      now += 250;
      perCheck();
      quiet.check(now);
    }
  };
  return { state, run, acted: () => acted };
}

Deno.test("idle trim: not while writes go on; once when they stop; not again while quiet", () => {
  const m = member();
  m.run(10_000, () => (m.state.revision += 1000)); // 4,000 writes a second
  assertEquals(m.acted(), 0, "busy");
  m.run(750);
  assertEquals(m.acted(), 0, "quiet for less than a window");
  m.run(500);
  assertEquals(m.acted(), 1, "quiet for a window after 40,000 writes");
  m.run(30_000);
  assertEquals(m.acted(), 1, "once per quiet period");
});

Deno.test("idle trim: too few writes do nothing; a probe's calls are not a load", () => {
  const m = member();
  m.run(2_000, () => (m.state.revision += 100)); // 800 writes
  m.run(5_000, () => (m.state.calls += 6)); // a probe: 24 calls a second
  assertEquals(m.acted(), 0, "800 writes are not worth it");
  m.run(5_000, () => (m.state.revision += 1_000));
  m.run(2_000, () => (m.state.calls += 6));
  assertEquals(m.acted(), 1, "quiet with a probe running, after 20,000 writes");
  m.run(2_000, () => (m.state.calls += 50)); // 200 calls a second: busy
  m.state.heap -= 64 * MB;
  m.run(2_000, () => (m.state.calls += 50));
  assertEquals(m.acted(), 1, "busy: the heap's shrinking waits");
  m.run(1_250);
  assertEquals(m.acted(), 2, "quiet again after V8's heap gave 64 MB back");
  m.run(5_000);
  assertEquals(m.acted(), 2);
});

Deno.test("idle trim: a snapshot from the leader moving the revision back counts from there", () => {
  const m = member();
  m.run(2_000, () => (m.state.revision += 10_000));
  m.run(1_250);
  assertEquals(m.acted(), 1);
  m.state.revision = 5; // restored from an older snapshot
  m.run(1_250);
  assertEquals(m.acted(), 1, "no writes since");
  m.run(2_000, () => (m.state.revision += 2_000));
  m.run(1_250);
  assertEquals(m.acted(), 2, "16,000 writes after the restore");
});

Deno.test({
  name: "mallocTrim runs glibc's malloc_trim on Linux",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const trim = mallocTrimmer();
    assertEquals(typeof trim, "function", "glibc's malloc_trim loaded");
    await trim!();
    assertEquals(mallocTrimmer(), trim, "loaded once");
  },
});
