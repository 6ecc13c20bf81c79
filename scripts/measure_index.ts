/**
 * Measures what the MVCC store's in-memory index costs (ADR 0010, phase 4): a bare `MvccStore` on a
 * `RevisionLog` in a temporary directory, no server, no Raft. It loads N keys of 64 bytes with
 * 256-byte values (in a scattered order), then overwrites the first fifth of them once, and
 * reports:
 *
 *   heapBytesPerKey   V8 heap in use after full collections, less the empty store's, per key
 *   fullGcMs          one more full collection over the loaded heap (what the collector's work
 *                     on the index costs)
 *   longestPutMs      the longest single put (its write transaction) while loading
 *   loadPutsPerSec    puts per second while loading (the log appends included)
 *   pointReadUs       mean time of a point read (a Get of one key, its value read from the log
 *                     unless cached)
 *   keysOnlyScanMs    a keys-only range over every key with limit 1 (it still counts them all)
 *   longestCompactionStepMs, compactionSteps
 *                     a compaction at the current revision - 1,000 run in the steps a member runs
 *                     it in, between which it serves requests: the longest one is a pause
 *
 * Usage: deno run -A --v8-flags=--expose-gc scripts/measure_index.ts [keys=200000]
 * Prints one JSON line.
 */
import { DenoDisk } from "../platform/deno_disk.ts";
import { RevisionLog } from "../core/storage/revision_log.ts";
import { MvccStore } from "../core/mvcc/store.ts";

const n = Number(Deno.args[0] ?? 200_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc");

const dir = await Deno.makeTempDir({ prefix: "measure_index_" });
try {
  const log = await RevisionLog.open(new DenoDisk(), dir, () => {});
  const store = new MvccStore(undefined, { revisions: log, stepwiseCompaction: true });
  const encoder = new TextEncoder();
  // A multiplier prime to n visits every key once, out of order (inserts land all over the index).
  const key = (i: number) => encoder.encode(`key/${String((i * 7919) % n).padStart(60, "0")}`);
  const value = new Uint8Array(256).fill(0x61);

  gc();
  gc();
  const baseHeap = Deno.memoryUsage().heapUsed;
  let longestPut = 0;
  const loadStart = performance.now();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const tx = store.write();
    tx.put(key(i), value, 0n, false);
    tx.end();
    longestPut = Math.max(longestPut, performance.now() - t);
    if (i % 4096 === 4095) await log.flush();
  }
  await log.flush();
  const loadSeconds = (performance.now() - loadStart) / 1000;

  gc();
  gc();
  const heapBytesPerKey = (Deno.memoryUsage().heapUsed - baseHeap) / n;
  const gcStart = performance.now();
  gc();
  const fullGcMs = performance.now() - gcStart;

  const reads = Math.min(n, 100_000);
  const readStart = performance.now();
  let found = 0;
  const none = new Uint8Array(0);
  for (let i = 0; i < reads; i++) found += store.range(key((i * 31) % n), none).count;
  const pointReadUs = (performance.now() - readStart) * 1000 / reads;
  if (found !== reads) throw new Error(`point reads found ${found} of ${reads} keys`);

  const scanStart = performance.now();
  const scan = store.range(encoder.encode("key/"), encoder.encode("key0"), {
    keysOnly: true,
    limit: 1,
  });
  const keysOnlyScanMs = performance.now() - scanStart;
  if (scan.count !== n) throw new Error(`the scan counted ${scan.count} of ${n} keys`);

  // Overwrite a fifth of the keys, then compact everything but the last 1,000 revisions.
  for (let i = 0; i < n / 5; i++) {
    const tx = store.write();
    tx.put(key(i), value, 0n, false);
    tx.end();
    if (i % 4096 === 4095) await log.flush();
  }
  await log.flush();
  store.compact(store.revision - 1_000);
  let longestCompactionStep = 0;
  let compactionSteps = 0;
  for (let done = false; !done; compactionSteps++) {
    const t = performance.now();
    done = store.compactionStep();
    longestCompactionStep = Math.max(longestCompactionStep, performance.now() - t);
  }

  const round = (x: number) => Math.round(x * 10) / 10;
  console.log(JSON.stringify({
    keys: n,
    heapBytesPerKey: Math.round(heapBytesPerKey),
    fullGcMs: round(fullGcMs),
    longestPutMs: round(longestPut),
    loadPutsPerSec: Math.round(n / loadSeconds),
    pointReadUs: round(pointReadUs),
    keysOnlyScanMs: round(keysOnlyScanMs),
    longestCompactionStepMs: round(longestCompactionStep),
    compactionSteps,
  }));
} finally {
  await Deno.remove(dir, { recursive: true });
}
