/**
 * The V8 flags a member runs with, wherever it is started: `deno task start` and `deno task
 * compile` (deno.json, checked by tests/harness_test.ts), `deno task cluster`, and the tests' and
 * benchmarks' harness.
 *
 * `--max-semi-space-size=8` (MiB; V8's default lets the young generation grow to 16): a member's
 * garbage is mostly per-request objects that die within a batch, and a scavenge's pause grows with
 * what is still alive when it runs. Smaller semi-spaces scavenge more often with shorter pauses.
 * Measured with `deno task bench:cluster` (3 members, one run each, detcd/etcd p99): put
 * 1.14-1.37x with the default or 64 MiB, 0.93-1.02x with 2, 4 or 8 MiB; lease keep-alive through
 * the leader 1.06-1.73x, 0.62-0.80x. One member, `deno task bench --rounds 3`: put p99 1.03x →
 * 0.79x, txn 0.74x → 0.55x, keep-alive 0.80x → 0.52x, for about 5% of put throughput
 * (docs/benchmarks.md, session 19).
 *
 * `--compaction-max-evacuated-bytes-mb-for-reduce-memory=4` (V8's default 12): the memory reducer's
 * collections, which run once a member goes quiet (after a bulk load: 7-13 s after the writes
 * stop), move at most 4 MB of live objects off fragmented pages instead of 12, so their pauses are
 * shorter. Measured after loading 1M keys (`--trace-gc`, four runs each): the first reducing
 * collection's pause 17-27 ms against 28-64, the second 16-22 against 23-32; resident memory
 * afterwards 571-578 MB against 501-566 (docs/benchmarks.md, session 24).
 */
export const MEMBER_V8_FLAGS: readonly string[] = [
  "--max-semi-space-size=8",
  "--compaction-max-evacuated-bytes-mb-for-reduce-memory=4",
];

/** The flag for `deno run` / `deno compile`. */
export const MEMBER_V8_FLAG_ARG = `--v8-flags=${MEMBER_V8_FLAGS.join(",")}`;
