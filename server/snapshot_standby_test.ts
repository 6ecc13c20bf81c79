/**
 * When a snapshot worker stands by (server/snapshot_standby.ts): a large store at a quiet moment,
 * not while busy or while a snapshot is written, again after a snapshot took it, dismissed when
 * the store shrinks well under the threshold.
 */
import { assertEquals } from "../core/testing.ts";
import { SnapshotStandby, type StandbyWorkers } from "./snapshot_standby.ts";

function member(minKeys = 1000) {
  const state = { revision: 1, calls: 0, keys: 0, standing: false, running: 0 };
  const log: string[] = [];
  const workers: StandbyWorkers = {
    standingBy: () => state.standing,
    running: () => state.running,
    standBy: () => {
      assertEquals(state.standing, false, "one at a time");
      state.standing = true;
      log.push("stand by");
    },
    dismiss: () => {
      state.standing = false;
      log.push("dismiss");
    },
  };
  let now = 0;
  const standby = new SnapshotStandby(
    { revision: () => state.revision, calls: () => state.calls, keyCount: () => state.keys },
    workers,
    minKeys,
    now,
  );
  /** Advances the clock by `ms` in checks 250 ms apart, `perCheck` applied before each. */
  const run = (ms: number, perCheck: () => void = () => {}) => {
    for (let t = 0; t < ms; t += 250) {
      now += 250;
      perCheck();
      standby.check(now);
    }
  };
  return { state, run, log };
}

Deno.test("snapshot standby: a small store keeps none; a large one gets one once quiet", () => {
  const m = member();
  m.run(3_000);
  assertEquals(m.log, [], "999 keys and fewer: none");
  m.run(5_000, () => (m.state.revision += 100, m.state.keys += 100)); // 400 writes a second
  assertEquals(m.log, [], "busy loading");
  m.run(1_500, () => (m.state.calls += 6)); // a probe's calls are quiet
  assertEquals(m.log, [], "not a whole quiet window (2 s) yet");
  m.run(750, () => (m.state.calls += 6));
  assertEquals(m.log, ["stand by"]);
  m.run(5_000);
  assertEquals(m.log, ["stand by"], "one is enough");
});

Deno.test("snapshot standby: a new one after a snapshot took it, once the snapshot is written", () => {
  const m = member();
  m.state.keys = 5000;
  m.run(2_250);
  assertEquals(m.log, ["stand by"]);
  m.state.standing = false; // a snapshot took it
  m.state.running = 1;
  m.run(3_000);
  assertEquals(m.log, ["stand by"], "not while the snapshot is written");
  m.state.running = 0;
  m.run(250);
  assertEquals(m.log, ["stand by", "stand by"]);
});

Deno.test("snapshot standby: dismissed under half the threshold, not at it", () => {
  const m = member();
  m.state.keys = 1000;
  m.run(2_250);
  assertEquals(m.log, ["stand by"]);
  m.state.keys = 600; // deleted some: still more than half
  m.run(2_000);
  assertEquals(m.log, ["stand by"]);
  m.state.keys = 499;
  m.run(250);
  assertEquals(m.log, ["stand by", "dismiss"]);
  m.run(2_000);
  assertEquals(m.log, ["stand by", "dismiss"], "none again under the threshold");
  m.state.keys = 1200;
  m.run(250);
  assertEquals(m.log, ["stand by", "dismiss", "stand by"]);
});
