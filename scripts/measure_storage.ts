/// <reference lib="deno.unstable" />
/**
 * Measures the storage options detcd could build durability on, on the machine it runs on, so
 * that docs/adr/0001-storage.md rests on numbers rather than folklore:
 *
 *   a) Deno KV (`Deno.openKv`, SQLite underneath): single sets, atomic batches, its limits;
 *   b) `node:sqlite` (DatabaseSync) in WAL mode with synchronous=FULL: one insert per
 *      transaction and batches of 10/100/1000 per transaction;
 *   c) an append-only, length+CRC framed log made durable with `FsFile.syncData()`: one record
 *      per sync and 10/100/1000 per sync, plus the cost of writing a snapshot file atomically
 *      (tmp + fsync + rename + directory fsync), reading a log back, and encoding records;
 *   d) what an in-memory MVCC entry costs in V8 heap, which bounds the chosen design.
 *
 * Values are 256 bytes; log records are 300 bytes including their 8-byte frame header.
 * Latencies are per commit (one sync, one transaction or one atomic write). Each run prints the
 * load average: on a shared machine, compare configurations within one run, not across runs.
 *
 * Usage (Deno KV is still unstable, so the flag is needed here and nowhere else):
 *
 *   deno run -A --unstable-kv --v8-flags=--expose-gc scripts/measure_storage.ts \
 *     [--dir DIR] [--rounds N] [--quick] [--skip-large] [--json FILE]
 *
 * (--expose-gc only makes the heap-per-entry figure exact; everything else runs without it.)
 *
 * --dir        where the scratch files go (default: a fresh directory under /tmp, removed after);
 *              put it on the disk you want to measure.
 * --rounds N   time a), b) and c) in N interleaved slices each (default 5), so that load from
 *              other processes falls on all configurations alike.
 * --quick      fewer iterations, for a smoke run.
 * --skip-large skip the 100 MB snapshot, replay and encoding measurements.
 * --json FILE  also write the results as JSON, with the load average before and after: the
 *              numbers mean little if other processes were using the disk or the CPUs.
 */
import { DatabaseSync } from "node:sqlite";
import { getHeapStatistics } from "node:v8";
import { create, toBinary } from "@bufbuild/protobuf";
import { type KeyValue, KeyValueSchema } from "../gen/mvccpb/kv_pb.ts";
import { crc32c } from "../core/storage/crc32c.ts";

/** One measured configuration, as printed and as written to --json. */
interface Result {
  group: string;
  name: string;
  /** Logical operations (sets, inserts, records) performed in the timed part. */
  ops: number;
  /** Commits (syncs, transactions, atomic writes) performed in the timed part. */
  commits: number;
  seconds: number;
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  note?: string;
}

interface Options {
  dir: string;
  rounds: number;
  removeDir: boolean;
  quick: boolean;
  skipLarge: boolean;
  jsonPath?: string;
}

const VALUE_BYTES = 256;
const RECORD_BYTES = 300;
const FRAME_HEADER_BYTES = 8;
const MIB = 1024 * 1024;

function parseOptions(args: string[]): Options {
  const options: Options = {
    dir: "",
    rounds: 5,
    removeDir: true,
    quick: false,
    skipLarge: false,
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--quick") options.quick = true;
    else if (arg === "--skip-large") options.skipLarge = true;
    else if (arg === "--dir") {
      options.dir = args[++i];
      options.removeDir = false;
    } else if (arg === "--json") options.jsonPath = args[++i];
    else if (arg === "--rounds") options.rounds = Math.max(1, Number(args[++i]));
    else throw new Error(`unknown argument ${arg}`);
  }
  return options;
}

// ---------------------------------------------------------------------------------------------
// Timing helpers

function percentile(sortedMs: number[], p: number): number {
  if (sortedMs.length === 0) return 0;
  const index = Math.min(sortedMs.length - 1, Math.ceil((p / 100) * sortedMs.length) - 1);
  return sortedMs[Math.max(0, index)];
}

interface LoopSpec {
  group: string;
  name: string;
  opsPerCommit: number;
  /** Upper bound on timed commits, over all rounds. */
  commits: number;
  /** Upper bound on time spent in the timed part, over all rounds. */
  budgetMs: number;
  /** Untimed commits first, so that file creation and JIT warm-up do not skew the numbers. */
  warmupCommits: number;
  note?: string;
}

/** An open configuration: one commit is one sync, transaction or atomic write. */
interface Committer {
  commit(index: number): Promise<void> | void;
  close(): Promise<void> | void;
}

/** A configuration to time, opened once and committed to round after round. */
interface LoopBench {
  spec: LoopSpec;
  open(): Promise<Committer>;
}

/**
 * Times every configuration in `rounds` interleaved slices (A B C, A B C, ...) rather than one
 * after the other, so that a burst of load from other processes on a shared machine lands on
 * all of them alike and the ratios between them stay meaningful. Latencies are pooled per
 * configuration; throughput is its commits' operations over the time spent on it.
 */
async function runInterleaved(benches: LoopBench[], rounds: number): Promise<Result[]> {
  const states = [];
  for (const bench of benches) {
    const committer = await bench.open();
    let index = 0;
    for (let i = 0; i < bench.spec.warmupCommits; i++) await committer.commit(index++);
    states.push({ bench, committer, index, latencies: [] as number[], elapsedMs: 0 });
  }
  for (let round = 0; round < rounds; round++) {
    for (const state of states) {
      const { spec } = state.bench;
      const roundBudgetMs = spec.budgetMs / rounds;
      const roundCommits = Math.ceil(spec.commits / rounds);
      const start = performance.now();
      let done = 0;
      while (
        done < roundCommits && state.latencies.length < spec.commits &&
        performance.now() - start < roundBudgetMs
      ) {
        const before = performance.now();
        await state.committer.commit(state.index++);
        state.latencies.push(performance.now() - before);
        done++;
      }
      state.elapsedMs += performance.now() - start;
    }
  }
  const results: Result[] = [];
  for (const state of states) {
    await state.committer.close();
    const { spec } = state.bench;
    const latencies = state.latencies.sort((a, b) => a - b);
    const ops = latencies.length * spec.opsPerCommit;
    const seconds = state.elapsedMs / 1000;
    const result: Result = {
      group: spec.group,
      name: spec.name,
      ops,
      commits: latencies.length,
      seconds,
      opsPerSecond: ops / seconds,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      maxMs: latencies[latencies.length - 1] ?? 0,
      note: spec.note,
    };
    report(result);
    results.push(result);
  }
  return results;
}

function report(r: Result): void {
  const rate = Math.round(r.opsPerSecond).toLocaleString("en-US");
  console.error(
    `  ${r.group} | ${r.name}: ${rate} ops/s, p50 ${r.p50Ms.toFixed(3)} ms, ` +
      `p99 ${r.p99Ms.toFixed(3)} ms (${r.commits} commits, ${r.seconds.toFixed(2)} s)`,
  );
}

// ---------------------------------------------------------------------------------------------
// Data

/** Deterministic filler so that no compression or zero-page shortcut flatters a backend. */
function filler(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const VALUE = filler(VALUE_BYTES, 7);

function keyOf(index: number): string {
  return `/registry/bench/key-${index.toString().padStart(10, "0")}`;
}

const PAYLOAD_TEMPLATE = filler(RECORD_BYTES - FRAME_HEADER_BYTES, 11);

/** Frames one 300-byte record: u32 payload length, u32 CRC-32C of the payload, payload. */
function encodeRecordInto(target: Uint8Array, offset: number, index: number): void {
  const payloadLength = RECORD_BYTES - FRAME_HEADER_BYTES;
  const payload = target.subarray(offset + FRAME_HEADER_BYTES, offset + RECORD_BYTES);
  payload.set(PAYLOAD_TEMPLATE);
  new DataView(payload.buffer, payload.byteOffset, 8).setFloat64(0, index, true);
  const view = new DataView(target.buffer, target.byteOffset + offset, FRAME_HEADER_BYTES);
  view.setUint32(0, payloadLength, true);
  view.setUint32(4, crc32c(payload), true);
}

function encodeBatch(first: number, count: number): Uint8Array {
  const buffer = new Uint8Array(count * RECORD_BYTES);
  for (let i = 0; i < count; i++) encodeRecordInto(buffer, i * RECORD_BYTES, first + i);
  return buffer;
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await file.write(bytes.subarray(offset));
}

// ---------------------------------------------------------------------------------------------
// a) Deno KV

/** Deno KV: one set per commit, concurrent single sets, and atomic() batches. */
function denoKvBenches(options: Options, scale: number): LoopBench[] {
  const group = "Deno KV";
  const open = async (name: string) => await Deno.openKv(`${options.dir}/${name}.kv`);
  const benches: LoopBench[] = [{
    spec: {
      group,
      name: "set, one per commit",
      opsPerCommit: 1,
      commits: 20_000 * scale,
      budgetMs: 4000 * scale,
      warmupCommits: 100,
    },
    open: async () => {
      const kv = await open("single");
      return {
        commit: async (i) => {
          await kv.set(["k", keyOf(i)], VALUE);
        },
        close: () => kv.close(),
      };
    },
  }, {
    spec: {
      group,
      name: "set, 100 concurrent single sets",
      opsPerCommit: 100,
      commits: 1000 * scale,
      budgetMs: 4000 * scale,
      warmupCommits: 5,
      note: "latency is for the whole wave of 100",
    },
    open: async () => {
      const kv = await open("concurrent");
      return {
        commit: async (i) => {
          const sets: Promise<unknown>[] = [];
          for (let j = 0; j < 100; j++) sets.push(kv.set(["k", keyOf(i * 100 + j)], VALUE));
          await Promise.all(sets);
        },
        close: () => kv.close(),
      };
    },
  }];
  for (const size of [100, 1000]) {
    benches.push({
      spec: {
        group,
        name: `atomic() of ${size} sets`,
        opsPerCommit: size,
        commits: (size === 100 ? 1000 : 200) * scale,
        budgetMs: 4000 * scale,
        warmupCommits: 3,
      },
      open: async () => {
        const kv = await open(`atomic${size}`);
        return {
          commit: async (i) => {
            const op = kv.atomic();
            for (let j = 0; j < size; j++) op.set(["k", keyOf(i * size + j)], VALUE);
            const outcome = await op.commit();
            if (!outcome.ok) throw new Error("atomic commit failed");
          },
          close: () => kv.close(),
        };
      },
    });
  }
  return benches;
}

async function probeKvLimit(kv: Deno.Kv, label: string, write: () => Promise<unknown>) {
  try {
    await write();
    return `${label}: accepted`;
  } catch (error) {
    return `${label}: ${error instanceof Error ? error.message : String(error)}`;
  } finally {
    await kv.delete(["limit"]);
  }
}

/** What Deno KV refuses, against etcd's 1.5 MiB requests. */
async function probeDenoKvLimits(options: Options): Promise<Result> {
  const kv = await Deno.openKv(`${options.dir}/limits.kv`);
  const atomicOf = (count: number, value: () => unknown) => () => {
    const op = kv.atomic();
    for (let j = 0; j < count; j++) op.set(["limit", j], value());
    return op.commit();
  };
  const limits = [
    await probeKvLimit(kv, "value of 65536 bytes", () => kv.set(["limit"], new Uint8Array(65536))),
    await probeKvLimit(kv, "value of 65537 bytes", () => kv.set(["limit"], new Uint8Array(65537))),
    await probeKvLimit(kv, "value of 1.5 MiB", () => kv.set(["limit"], new Uint8Array(1.5 * MIB))),
    await probeKvLimit(kv, "key of 2048 bytes", () => kv.set(["x".repeat(2040)], 1)),
    await probeKvLimit(kv, "key of 4096 bytes", () => kv.set(["x".repeat(4090)], 1)),
    await probeKvLimit(kv, "1000 mutations", atomicOf(1000, () => 1)),
    await probeKvLimit(kv, "1001 mutations", atomicOf(1001, () => 1)),
    await probeKvLimit(
      kv,
      "13 x 64 KiB in one atomic()",
      atomicOf(13, () => new Uint8Array(65536)),
    ),
  ];
  kv.close();
  for (const line of limits) console.error(`  Deno KV limit probe: ${line}`);
  return {
    group: "Deno KV",
    name: "limits",
    ops: 0,
    commits: 0,
    seconds: 0,
    opsPerSecond: 0,
    p50Ms: 0,
    p99Ms: 0,
    maxMs: 0,
    note: limits.join("; "),
  };
}

// ---------------------------------------------------------------------------------------------
// b) node:sqlite

/** node:sqlite in WAL mode with synchronous=FULL: one insert per transaction, and batches. */
function sqliteBenches(options: Options, scale: number): LoopBench[] {
  return [1, 10, 100, 1000].map((size): LoopBench => ({
    spec: {
      group: "node:sqlite",
      name: size === 1 ? "insert, own transaction" : `${size} inserts per transaction`,
      opsPerCommit: size,
      commits: ({ 1: 20_000, 10: 5000, 100: 1000, 1000: 200 }[size] ?? 100) * scale,
      budgetMs: 4000 * scale,
      warmupCommits: size === 1 ? 100 : 3,
      note: "synchronous API: blocks the event loop for the whole commit",
    },
    open: () => {
      const db = new DatabaseSync(`${options.dir}/sqlite-${size}.db`);
      db.exec("PRAGMA journal_mode=WAL");
      db.exec("PRAGMA synchronous=FULL");
      // Shaped like etcd's bbolt "key" bucket: revision → encoded KeyValue.
      db.exec("CREATE TABLE kv (revision INTEGER PRIMARY KEY, key BLOB NOT NULL, value BLOB)");
      const insert = db.prepare("INSERT INTO kv (revision, key, value) VALUES (?, ?, ?)");
      const encoder = new TextEncoder();
      return Promise.resolve({
        commit: (i: number) => {
          if (size === 1) {
            insert.run(i, encoder.encode(keyOf(i)), VALUE);
            return;
          }
          db.exec("BEGIN");
          for (let j = 0; j < size; j++) {
            const revision = i * size + j;
            insert.run(revision, encoder.encode(keyOf(revision)), VALUE);
          }
          db.exec("COMMIT");
        },
        close: () => db.close(),
      });
    },
  }));
}

// ---------------------------------------------------------------------------------------------
// c) append-only file with syncData, and snapshot files

async function openLog(path: string, preallocateBytes = 0): Promise<Deno.FsFile> {
  const file = await Deno.open(path, { read: true, write: true, create: true, truncate: true });
  if (preallocateBytes > 0) {
    // What etcd does with fallocate, done portably: real zero blocks, synced, so that later
    // fdatasync calls need not update the file size or block map.
    const zeros = new Uint8Array(MIB);
    for (let written = 0; written < preallocateBytes; written += zeros.length) {
      await writeAll(file, zeros);
    }
    await file.sync();
    await file.seek(0, Deno.SeekMode.Start);
  }
  return file;
}

/** The framed log: records per syncData, write styles, sync vs async calls, preallocation. */
function appendLogBenches(options: Options, scale: number): LoopBench[] {
  const benches: LoopBench[] = [];
  const grows = "append log (file grows)";
  const specs: { perSync: number; commits: number; style: "buffer" | "writes" | "sync" }[] = [
    { perSync: 1, commits: 20_000, style: "buffer" },
    { perSync: 10, commits: 5000, style: "buffer" },
    { perSync: 10, commits: 5000, style: "writes" },
    { perSync: 100, commits: 2000, style: "buffer" },
    { perSync: 1000, commits: 300, style: "buffer" },
    // The synchronous calls: no hop to Deno's blocking thread pool, but the event loop (and
    // with it every connection) stands still for the whole fdatasync.
    { perSync: 1, commits: 20_000, style: "sync" },
    { perSync: 100, commits: 2000, style: "sync" },
  ];
  for (const { perSync, commits, style } of specs) {
    const records = perSync === 1 ? "1 record" : `${perSync} records`;
    const name = style === "sync"
      ? `${records} per syncDataSync(), writeSync`
      : style === "writes"
      ? `${records} per syncData, one await write each`
      : perSync === 1
      ? `${records} per syncData`
      : `${records} per syncData, one buffer`;
    benches.push({
      spec: {
        group: grows,
        name,
        opsPerCommit: perSync,
        commits: commits * scale,
        budgetMs: 4000 * scale,
        warmupCommits: 10,
        note: style === "sync" ? "blocks the event loop for the whole sync" : undefined,
      },
      open: async () => {
        const file = await openLog(`${options.dir}/append-${perSync}-${style}.wal`);
        return {
          commit: async (i) => {
            const batch = encodeBatch(i * perSync, perSync);
            if (style === "sync") {
              let offset = 0;
              while (offset < batch.length) offset += file.writeSync(batch.subarray(offset));
              file.syncDataSync();
              return;
            }
            if (style === "writes") {
              for (let j = 0; j < perSync; j++) {
                await writeAll(file, batch.subarray(j * RECORD_BYTES, (j + 1) * RECORD_BYTES));
              }
            } else {
              await writeAll(file, batch);
            }
            await file.syncData();
          },
          close: () => file.close(),
        };
      },
    });
  }

  // The same appends into a segment whose blocks already exist (etcd preallocates 64 MB).
  const segmentBytes = 64 * MIB;
  for (
    const { perSync, commits } of [{ perSync: 1, commits: 20_000 }, {
      perSync: 10,
      commits: 5000,
    }, { perSync: 100, commits: 2000 }]
  ) {
    const warmupCommits = 10;
    const maxCommits = Math.floor(segmentBytes / (perSync * RECORD_BYTES)) - warmupCommits;
    benches.push({
      spec: {
        group: "append log (preallocated 64 MiB segment)",
        name: perSync === 1
          ? "1 record per syncData"
          : `${perSync} records per syncData, one buffer`,
        opsPerCommit: perSync,
        commits: Math.min(commits * scale, maxCommits),
        budgetMs: 4000 * scale,
        warmupCommits,
      },
      open: async () => {
        const file = await openLog(`${options.dir}/prealloc-${perSync}.wal`, segmentBytes);
        return {
          commit: async (i) => {
            await writeAll(file, encodeBatch(i * perSync, perSync));
            await file.syncData();
          },
          close: () => file.close(),
        };
      },
    });
  }
  return benches;
}

/** Writes `bytes` as `dir/name` the crash-safe way and returns the time of each step. */
async function writeSnapshotAtomically(
  dir: string,
  name: string,
  totalBytes: number,
  chunk: Uint8Array,
) {
  const t0 = performance.now();
  const tmp = `${dir}/${name}.tmp`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  for (let written = 0; written < totalBytes; written += chunk.length) {
    await writeAll(file, chunk.subarray(0, Math.min(chunk.length, totalBytes - written)));
  }
  const t1 = performance.now();
  await file.sync();
  file.close();
  const t2 = performance.now();
  await Deno.rename(tmp, `${dir}/${name}`);
  const dirHandle = await Deno.open(dir, { read: true });
  await dirHandle.sync();
  dirHandle.close();
  const t3 = performance.now();
  return { writeMs: t1 - t0, fsyncMs: t2 - t1, renameAndDirSyncMs: t3 - t2, totalMs: t3 - t0 };
}

async function measureSnapshots(options: Options, scale: number): Promise<Result[]> {
  console.error("c) snapshot files: write tmp + fsync + rename + fsync(dir)");
  const results: Result[] = [];
  const chunk = filler(4 * MIB, 13);
  const sizes = options.skipLarge ? [1] : [1, 100];
  for (const sizeMiB of sizes) {
    const runs = sizeMiB === 1 ? Math.max(5, 20 * scale) : Math.max(2, 4 * scale);
    const totals: number[] = [];
    const parts: string[] = [];
    for (let run = 0; run < runs; run++) {
      const step = await writeSnapshotAtomically(
        options.dir,
        `snap-${sizeMiB}`,
        sizeMiB * MIB,
        chunk,
      );
      totals.push(step.totalMs);
      parts.push(
        `write ${step.writeMs.toFixed(1)} + fsync ${step.fsyncMs.toFixed(1)} + rename/dir ${
          step.renameAndDirSyncMs.toFixed(1)
        } ms`,
      );
    }
    const sorted = [...totals].sort((a, b) => a - b);
    const median = percentile(sorted, 50);
    const medianRun = totals.indexOf(median);
    const result: Result = {
      group: "snapshot file",
      name: `${sizeMiB} MiB, tmp + fsync + rename + dir fsync`,
      ops: runs,
      commits: runs,
      seconds: totals.reduce((a, b) => a + b, 0) / 1000,
      opsPerSecond: (sizeMiB * MIB * runs) / (totals.reduce((a, b) => a + b, 0) / 1000) / MIB,
      p50Ms: median,
      p99Ms: percentile(sorted, 99),
      maxMs: sorted[sorted.length - 1],
      note: `opsPerSecond is MiB/s; median run: ${parts[medianRun]}`,
    };
    console.error(
      `  snapshot ${sizeMiB} MiB: median ${median.toFixed(1)} ms, max ${
        result.maxMs.toFixed(1)
      } ms` +
        ` (${result.opsPerSecond.toFixed(0)} MiB/s; ${result.note})`,
    );
    results.push(result);
  }
  return results;
}

/**
 * Walks the frames in `bytes` from the start, verifying each CRC; returns how many records were
 * whole and valid and where the first incomplete one starts.
 */
function verifyFrames(bytes: Uint8Array): { records: number; consumed: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 0;
  let records = 0;
  while (offset + FRAME_HEADER_BYTES <= bytes.length) {
    const length = view.getUint32(offset, true);
    const end = offset + FRAME_HEADER_BYTES + length;
    if (end > bytes.length) break;
    const payload = bytes.subarray(offset + FRAME_HEADER_BYTES, end);
    if (crc32c(payload) !== view.getUint32(offset + 4, true)) throw new Error("CRC mismatch");
    records++;
    offset = end;
  }
  return { records, consumed: offset };
}

/**
 * Reads a 100 MiB framed log back and checks every CRC, the work a restart does to replay the
 * WAL: streamed through one reused 1 MiB buffer, and as a single `Deno.readFile`, because on
 * this VM touching fresh memory costs more than the disk does.
 */
async function measureReplay(options: Options): Promise<Result[]> {
  console.error("c) replay: read + verify a 100 MiB framed log");
  const path = `${options.dir}/replay.wal`;
  const records = Math.floor((100 * MIB) / RECORD_BYTES);
  const file = await openLog(path);
  const perChunk = 10_000;
  for (let first = 0; first < records; first += perChunk) {
    await writeAll(file, encodeBatch(first, Math.min(perChunk, records - first)));
  }
  await file.sync();
  file.close();

  const results: Result[] = [];
  const finish = (name: string, verified: number, ms: number): void => {
    if (verified !== records) throw new Error(`replay verified ${verified} of ${records} records`);
    const result: Result = {
      group: "replay",
      name,
      ops: verified,
      commits: 1,
      seconds: ms / 1000,
      opsPerSecond: verified / (ms / 1000),
      p50Ms: ms,
      p99Ms: ms,
      maxMs: ms,
      note: `${((records * RECORD_BYTES) / MIB / (ms / 1000)).toFixed(0)} MiB/s`,
    };
    report(result);
    results.push(result);
  };

  let start = performance.now();
  const buffer = new Uint8Array(MIB);
  const reader = await Deno.open(path, { read: true });
  let filled = 0;
  let verified = 0;
  while (true) {
    const n = await reader.read(buffer.subarray(filled));
    if (n === null) break;
    filled += n;
    const { records: whole, consumed } = verifyFrames(buffer.subarray(0, filled));
    verified += whole;
    buffer.copyWithin(0, consumed, filled);
    filled -= consumed;
  }
  reader.close();
  finish(
    "100 MiB log, streamed through a reused 1 MiB buffer, CRC-32C per record",
    verified,
    performance.now() - start,
  );

  start = performance.now();
  const whole = await Deno.readFile(path);
  finish(
    "100 MiB log, one Deno.readFile into fresh memory, CRC-32C per record",
    verifyFrames(whole).records,
    performance.now() - start,
  );
  return results;
}

/** Builds the in-memory entries the snapshot encoders serialise (outside their timed parts). */
function buildEntries(count: number): KeyValue[] {
  const encoder = new TextEncoder();
  const entries: KeyValue[] = [];
  for (let i = 0; i < count; i++) {
    entries.push(create(KeyValueSchema, {
      key: encoder.encode(keyOf(i)),
      createRevision: BigInt(i + 1),
      modRevision: BigInt(i + 1),
      version: 1n,
      value: VALUE,
    }));
  }
  return entries;
}

/** Sequential writer through one reused chunk, timing the file I/O separately from encoding. */
class ChunkedWriter {
  readonly chunk = new Uint8Array(4 * MIB);
  readonly view = new DataView(this.chunk.buffer);
  offset = 0;
  written = 0;
  ioMs = 0;
  constructor(readonly file: Deno.FsFile) {}

  /** Makes room for `bytes` more bytes, flushing the chunk to the file when it would overflow. */
  async reserve(bytes: number): Promise<void> {
    if (this.offset + bytes <= this.chunk.length) return;
    await this.flush();
    if (bytes > this.chunk.length) throw new Error("entry larger than the chunk");
  }

  async flush(): Promise<void> {
    const start = performance.now();
    await writeAll(this.file, this.chunk.subarray(0, this.offset));
    this.ioMs += performance.now() - start;
    this.written += this.offset;
    this.offset = 0;
  }
}

type EntryEncoder = (writer: ChunkedWriter, entry: KeyValue) => Promise<void>;

/** One protobuf-es message per entry, length-prefixed: the obvious snapshot format. */
const protobufEntry: EntryEncoder = async (writer, entry) => {
  const bytes = toBinary(KeyValueSchema, entry);
  await writer.reserve(4 + bytes.length);
  writer.view.setUint32(writer.offset, bytes.length, true);
  writer.chunk.set(bytes, writer.offset + 4);
  writer.offset += 4 + bytes.length;
};

/** Fixed header (two lengths, four int64 fields) then key and value: a format of our own. */
const framedEntry: EntryEncoder = async (writer, entry) => {
  await writer.reserve(40 + entry.key.length + entry.value.length);
  const { view, chunk, offset } = writer;
  view.setUint32(offset, entry.key.length, true);
  view.setUint32(offset + 4, entry.value.length, true);
  view.setBigInt64(offset + 8, entry.createRevision, true);
  view.setBigInt64(offset + 16, entry.modRevision, true);
  view.setBigInt64(offset + 24, entry.version, true);
  view.setBigInt64(offset + 32, entry.lease, true);
  chunk.set(entry.key, offset + 40);
  chunk.set(entry.value, offset + 40 + entry.key.length);
  writer.offset += 40 + entry.key.length + entry.value.length;
};

/**
 * Writes ~100 MiB of in-memory MVCC entries as a snapshot end to end: encode into a reused 4 MiB
 * chunk, write, fsync, rename, fsync the directory. This is what the chosen design pays per
 * snapshot, on the thread that owns the state unless the work is moved elsewhere.
 */
async function measureStreamingSnapshot(options: Options): Promise<Result[]> {
  console.error("c) streaming snapshot of ~100 MiB of KeyValue entries (256-byte values)");
  const entries = buildEntries(Math.floor((100 * MIB) / 300));
  const results: Result[] = [];
  const formats: [string, EntryEncoder][] = [
    ["protobuf-es toBinary per entry", protobufEntry],
    ["hand-written frames", framedEntry],
  ];
  for (const [label, encode] of formats) {
    const tmp = `${options.dir}/snapshot.tmp`;
    const start = performance.now();
    const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
    const writer = new ChunkedWriter(file);
    for (const entry of entries) await encode(writer, entry);
    await writer.flush();
    const syncStart = performance.now();
    await file.sync();
    file.close();
    await Deno.rename(tmp, `${options.dir}/snapshot.snap`);
    const dirHandle = await Deno.open(options.dir, { read: true });
    await dirHandle.sync();
    dirHandle.close();
    const end = performance.now();
    const ms = end - start;
    const encodeMs = syncStart - start - writer.ioMs;
    const result: Result = {
      group: "snapshot (streamed)",
      name: `${label}, ${entries.length.toLocaleString("en-US")} entries, ${
        (writer.written / MIB).toFixed(0)
      } MiB`,
      ops: entries.length,
      commits: 1,
      seconds: ms / 1000,
      opsPerSecond: entries.length / (ms / 1000),
      p50Ms: ms,
      p99Ms: ms,
      maxMs: ms,
      note: `encode ${encodeMs.toFixed(0)} ms + write ${writer.ioMs.toFixed(0)} ms + fsync, ` +
        `rename, dir fsync ${(end - syncStart).toFixed(0)} ms`,
    };
    report(result);
    results.push(result);
  }
  return results;
}

// ---------------------------------------------------------------------------------------------
// d) memory per MVCC entry

/**
 * Runs full GCs when V8 exposes them (--v8-flags=--expose-gc), so heap deltas are live data, and
 * gives V8's concurrent sweeper time to release freed ArrayBuffer backing stores.
 */
async function collectGarbage(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== "function") return;
  for (let round = 0; round < 3; round++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Heap cost of `count` entries built by `build` and kept alive in a Map keyed by the etcd key,
 * the shape an in-memory key index has.
 */
async function measureHeap<T>(
  name: string,
  count: number,
  build: (index: number) => T,
): Promise<Result> {
  await collectGarbage();
  const before = Deno.memoryUsage();
  const entries = new Map<string, T>();
  for (let i = 0; i < count; i++) entries.set(keyOf(i), build(i));
  await collectGarbage();
  const after = Deno.memoryUsage();
  if (entries.size !== count) throw new Error("lost entries");
  const onHeap = (after.heapUsed - before.heapUsed) / count;
  const external = (after.external - before.external) / count;
  const limitGiB = getHeapStatistics().heap_size_limit / (1024 * MIB);
  const result: Result = {
    group: "memory",
    name,
    ops: count,
    commits: 0,
    seconds: 0,
    opsPerSecond: 0,
    p50Ms: 0,
    p99Ms: 0,
    maxMs: 0,
    note: `${(onHeap + external).toFixed(0)} bytes per entry (${onHeap.toFixed(0)} on the V8 heap` +
      ` + ${external.toFixed(0)} external; RSS grew ${
        ((after.rss - before.rss) / count).toFixed(0)
      }) for ${VALUE_BYTES} + ${keyOf(0).length} bytes of value and key; ` +
      `V8 heap limit ${limitGiB.toFixed(2)} GiB`,
  };
  console.error(`  ${name}: ${result.note}`);
  return result;
}

/**
 * What one live revision costs in memory, which bounds how much data the chosen design can hold:
 * as a protobuf-es KeyValue object, and packed into one byte array per revision.
 */
async function measureHeapPerEntry(): Promise<Result[]> {
  console.error("d) V8 heap per in-memory MVCC entry");
  const count = 200_000;
  const encoder = new TextEncoder();
  const asObjects = await measureHeap(
    `${count.toLocaleString("en-US")} protobuf-es KeyValue objects in a Map`,
    count,
    (i) =>
      create(KeyValueSchema, {
        key: encoder.encode(keyOf(i)),
        createRevision: BigInt(i + 1),
        modRevision: BigInt(i + 1),
        version: 1n,
        value: VALUE.slice(),
      }),
  );
  const asBytes = await measureHeap(
    `${count.toLocaleString("en-US")} packed Uint8Array entries in a Map`,
    count,
    (i) => {
      const key = encoder.encode(keyOf(i));
      const packed = new Uint8Array(40 + key.length + VALUE.length);
      const view = new DataView(packed.buffer);
      view.setUint32(0, key.length, true);
      view.setUint32(4, VALUE.length, true);
      view.setBigInt64(8, BigInt(i + 1), true);
      view.setBigInt64(16, BigInt(i + 1), true);
      view.setBigInt64(24, 1n, true);
      packed.set(key, 40);
      packed.set(VALUE, 40 + key.length);
      return packed;
    },
  );
  return [asObjects, asBytes];
}

// ---------------------------------------------------------------------------------------------

function toMarkdown(results: Result[]): string {
  const lines = [
    "| backend | configuration | ops/s | p50 ms/commit | p99 ms/commit | commits |",
    "|---|---|---:|---:|---:|---:|",
  ];
  for (const r of results) {
    if (r.commits === 0 || r.group === "snapshot file" || r.group === "replay") continue;
    if (r.group === "snapshot (streamed)") continue;
    lines.push(
      `| ${r.group} | ${r.name} | ${Math.round(r.opsPerSecond).toLocaleString("en-US")} | ` +
        `${r.p50Ms.toFixed(3)} | ${r.p99Ms.toFixed(3)} | ${r.commits} |`,
    );
  }
  lines.push("");
  for (const r of results) {
    if (r.group === "snapshot file" || r.group === "replay" || r.group === "snapshot (streamed)") {
      lines.push(
        `- ${r.group}, ${r.name}: median ${r.p50Ms.toFixed(1)} ms, max ${r.maxMs.toFixed(1)} ms; ${
          r.note ?? ""
        }`,
      );
    }
    if (r.commits === 0) lines.push(`- ${r.group}, ${r.name}: ${r.note ?? ""}`);
  }
  return lines.join("\n");
}

async function main(): Promise<void> {
  const options = parseOptions(Deno.args);
  if (options.dir === "") options.dir = await Deno.makeTempDir({ prefix: "detcd-storage-" });
  else await Deno.mkdir(options.dir, { recursive: true });
  const scale = options.quick ? 0.1 : 1;
  console.error(
    `measuring in ${options.dir} (Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} CPUs)`,
  );
  const startedAt = new Date();
  const loadAverageStart = Deno.loadavg();
  const results: Result[] = [];
  try {
    // First, while the heap holds nothing else that a collection could free mid-measurement.
    const memory = await measureHeapPerEntry();
    console.error(
      `a) Deno KV, b) node:sqlite, c) append log: ${options.rounds} interleaved rounds`,
    );
    results.push(
      ...await runInterleaved([
        ...denoKvBenches(options, scale),
        ...sqliteBenches(options, scale),
        ...appendLogBenches(options, scale),
      ], options.rounds),
    );
    results.push(await probeDenoKvLimits(options));
    results.push(...await measureSnapshots(options, scale));
    if (!options.skipLarge) {
      results.push(...await measureReplay(options));
      results.push(...await measureStreamingSnapshot(options));
    }
    results.push(...memory);
  } finally {
    if (options.removeDir) await Deno.remove(options.dir, { recursive: true });
  }
  const loadAverageEnd = Deno.loadavg();
  console.log(toMarkdown(results));
  console.log(
    `\nDeno ${Deno.version.deno}, ${navigator.hardwareConcurrency} CPUs, ${options.dir}; ` +
      `load average ${loadAverageStart.map((l) => l.toFixed(2)).join(" ")} at start, ` +
      `${loadAverageEnd.map((l) => l.toFixed(2)).join(" ")} at end`,
  );
  if (options.jsonPath) {
    const report = {
      deno: Deno.version.deno,
      cpus: navigator.hardwareConcurrency,
      dir: options.dir,
      startedAt: startedAt.toISOString(),
      loadAverageStart,
      loadAverageEnd,
      results,
    };
    await Deno.writeTextFile(options.jsonPath, JSON.stringify(report, null, 2) + "\n");
  }
}

if (import.meta.main) await main();
