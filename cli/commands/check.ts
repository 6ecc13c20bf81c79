/**
 * `check perf` and `check datascale` (ctlv3/command/check.go): load a cluster with puts from many
 * clients, then judge it.
 *
 * - perf: puts of a 1 KiB value under random 256-byte keys at a fixed rate (s: 150/s with 50
 *   clients, m: 1000/200, l: 8000/500, xl: 15000/1000) for 60 s; PASS when the rate held (above
 *   90 %), the slowest put took at most 0.5 s and the latencies' standard deviation is at most
 *   0.1 s. A progress bar counts the seconds.
 * - datascale: as many puts as the load says (s: 10,000 ... xl: 3,000,000) of 512-byte keys and
 *   values, as fast as the clients go; reports the first endpoint's change of
 *   `process_resident_memory_bytes` (its /metrics) in MB. A progress bar counts the puts.
 *
 * Both refuse a prefix that already has keys, delete their keys at the end, and with
 * --auto-compact / --auto-defrag compact to the delete's revision and defragment every endpoint.
 */

import { create } from "@bufbuild/protobuf";
import { Command } from "../command.ts";
import type { EtcdClient } from "../etcd_client.ts";
import { ExitCode, ExitSignal } from "../io.ts";
import { goQuote } from "../go_format.ts";
import { concatBytes, prefixRangeEnd } from "../../core/bytes.ts";
import {
  CompactionRequestSchema,
  DeleteRangeRequestSchema,
  PutRequestSchema,
  RangeRequestSchema,
} from "../../gen/etcdserverpb/rpc_pb.ts";
import {
  clientConfigFromCmd,
  clientFromSettings,
  endpointsFromCmd,
  errorText,
  secureCfgFromCmd,
  type Session,
} from "./global.ts";

const LOAD_ALIASES: Record<string, string> = {
  s: "s",
  small: "s",
  m: "m",
  medium: "m",
  l: "l",
  large: "l",
  xl: "xl",
  xLarge: "xl",
};

const PERF: Record<string, { limit: number; clients: number; durationS: number }> = {
  s: { limit: 150, clients: 50, durationS: 60 },
  m: { limit: 1000, clients: 200, durationS: 60 },
  l: { limit: 8000, clients: 500, durationS: 60 },
  xl: { limit: 15000, clients: 1000, durationS: 60 },
};

const DATASCALE: Record<string, { limit: number; kvSize: number; clients: number }> = {
  s: { limit: 10000, kvSize: 1024, clients: 50 },
  m: { limit: 100000, kvSize: 1024, clients: 200 },
  l: { limit: 1000000, kvSize: 1024, clients: 500 },
  xl: { limit: 3000000, kvSize: 1024, clients: 1000 },
};

/**
 * cheggaaa/pb v1's bar as etcdctl configures it (format "Bom !"): redrawn every 200 ms after a
 * carriage return, as wide as the terminal (just counters, percent and time without one).
 */
class ProgressBar {
  #current = 0;
  #startMs = 0;
  #changeMs = 0;
  #previous = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #finished = false;

  constructor(readonly total: number, readonly write: (text: string) => void) {}

  start(): void {
    this.#startMs = Date.now();
    this.#update();
    this.#timer = setInterval(() => this.#update(), 200);
  }

  add(n: number): void {
    this.#current += n;
  }

  finish(): void {
    if (this.#finished) return;
    clearInterval(this.#timer);
    this.#draw(true);
    this.#finished = true;
    this.write("\n");
  }

  #update(): void {
    if (this.#previous !== this.#current) {
      this.#changeMs = Date.now();
      this.#previous = this.#current;
    }
    this.#draw(false);
  }

  #draw(final: boolean): void {
    if (this.#finished) return;
    const total = this.total;
    const current = this.#current;
    const percent = total > 0 ? current / (total / 100) : current / 100;
    const percentBox = ` ${percent.toFixed(2).padStart(6)}%`;
    const countersBox = total > 0 ? ` ${current} / ${total} ` : ` ${current} / ? `;
    const now = Date.now();
    let timeLeftBox = "";
    if (final) {
      timeLeftBox = ` ${goDurationSeconds(Math.floor((now - this.#startMs) / 1000))}`;
    } else if (current > 0) {
      const perEntry = (this.#changeMs - this.#startMs) / current;
      let leftMs = total > 0
        ? (total - current) * perEntry - (now - this.#changeMs)
        : current * perEntry;
      leftMs = Math.trunc(leftMs / 1000) * 1000;
      if (leftMs > 0) timeLeftBox = ` ${pbDuration(leftMs)}`;
    }
    const width = terminalWidth();
    const fixed = countersBox.length + 2 + percentBox.length + timeLeftBox.length;
    let barBox = "";
    const size = width - fixed;
    if (size > 0 && total > 0) {
      let curSize = Math.ceil((current / total) * size);
      const emptySize = Math.max(0, size - curSize);
      if (curSize > size) curSize = size;
      barBox = "B";
      if (emptySize <= 0) barBox += "o".repeat(curSize);
      else if (curSize > 0) barBox += "o".repeat(curSize - 1) + "m";
      barBox += " ".repeat(emptySize) + "!";
    }
    const out = countersBox + barBox + percentBox + timeLeftBox;
    const end = out.length < width ? " ".repeat(width - out.length) : "";
    this.write(`\r${out}${end}`);
  }
}

/** The terminal's width, 0 when there is none (pb then draws no bar). */
function terminalWidth(): number {
  try {
    return Deno.consoleSize().columns;
  } catch {
    return 0;
  }
}

/** Go's time.Duration String() for whole seconds ("0s", "59s", "1m0s", "1h2m3s"). */
function goDurationSeconds(seconds: number): string {
  if (seconds === 0) return "0s";
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

/** pb's duration format for the time left ("00m48s"). */
function pbDuration(ms: number): string {
  let seconds = Math.floor(ms / 1000);
  let out = "";
  if (seconds > 86400) {
    out += `${Math.floor(seconds / 86400)}d`;
    seconds %= 86400;
  }
  if (seconds > 3600) {
    out += `${Math.floor(seconds / 3600)}h`;
    seconds %= 3600;
  }
  const m = Math.floor(seconds / 60);
  const s = seconds % 60;
  return `${out}${String(m).padStart(2, "0")}m${String(s).padStart(2, "0")}s`;
}

/** etcd's report: latencies of the puts that succeeded, errors counted by their text. */
class Report {
  readonly latencies: number[] = [];
  readonly errors = new Map<string, number>();
  #startMs = Date.now();

  begin(): void {
    this.#startMs = Date.now();
  }

  add(startMs: number, endMs: number, error?: unknown): void {
    if (error !== undefined) {
      const text = error instanceof Error ? error.message : String(error);
      this.errors.set(text, (this.errors.get(text) ?? 0) + 1);
      return;
    }
    this.latencies.push((endMs - startMs) / 1000);
  }

  /** One put, timed into the report (a failure counted by its text). */
  async put(client: EtcdClient, key: Uint8Array, value: Uint8Array): Promise<void> {
    const st = Date.now();
    try {
      await client.put(create(PutRequestSchema, { key, value }));
      this.add(st, Date.now());
    } catch (e) {
      if (e instanceof ExitSignal) throw e;
      this.add(st, Date.now(), e);
    }
  }

  /** etcdctl's error lines; true when there were errors. */
  printErrors(out: (text: string) => void): boolean {
    if (this.errors.size === 0) return false;
    out("FAIL: too many errors\n");
    for (const [text, n] of this.errors) out(`FAIL: ERROR(${text}) -> ${n}\n`);
    return true;
  }

  stats(): { rps: number; slowest: number; stddev: number } {
    const totalS = (Date.now() - this.#startMs) / 1000;
    const n = this.latencies.length;
    const average = this.latencies.reduce((a, b) => a + b, 0) / n;
    let variance = 0;
    for (const l of this.latencies) variance += (l - average) ** 2;
    return {
      rps: n / totalS,
      slowest: this.latencies.reduce((a, b) => (b > a ? b : a), 0),
      stddev: Math.sqrt(variance / n),
    };
  }
}

/**
 * A key as etcdctl makes one: binary.PutVarint of a random non-negative int63 at the start of a
 * zeroed buffer of `size` bytes.
 */
function randomKey(size: number): Uint8Array {
  const key = new Uint8Array(size);
  const random = new BigUint64Array(1);
  crypto.getRandomValues(random);
  // PutVarint zigzag-encodes; a non-negative value just doubles.
  let ux = (random[0] >> 1n) << 1n;
  let i = 0;
  while (ux >= 0x80n) {
    key[i++] = Number(ux & 0x7fn) | 0x80;
    ux >>= 7n;
  }
  key[i] = Number(ux);
  return key;
}

interface Common {
  model: string;
  prefix: Uint8Array;
  prefixText: string;
  clients: EtcdClient[];
}

/** Parses --load, connects `count` clients and refuses a prefix that has keys. */
async function prepare(
  session: Session,
  cmd: Command,
  table: Record<string, unknown>,
  count: (model: string) => number,
): Promise<Common> {
  const load = cmd.flags().getString("load");
  const model = LOAD_ALIASES[load];
  if (model === undefined || table[model] === undefined) {
    session.exitWithError(ExitCode.BadFeature, `unknown load option ${load}`);
  }
  const prefixText = cmd.flags().getString("prefix");
  const prefix = new TextEncoder().encode(prefixText);
  const settings = await clientConfigFromCmd(session, cmd);
  const clients: EtcdClient[] = [];
  for (let i = 0; i < count(model); i++) clients.push(await clientFromSettings(session, settings));
  try {
    const r = await clients[0].range(
      create(RangeRequestSchema, { key: prefix, rangeEnd: prefixRangeEnd(prefix), limit: 1n }),
      { deadlineMs: Date.now() + 60_000 },
    );
    if (r.kvs.length > 0) {
      session.exitWithError(
        ExitCode.InvalidInput,
        `prefix ${
          goQuote(prefixText)
        } has keys. Delete with etcdctl del --prefix ${prefixText} first`,
      );
    }
  } catch (e) {
    if (e instanceof ExitSignal) {
      for (const c of clients) c.close();
      throw e;
    }
    for (const c of clients) c.close();
    session.exitWithError(ExitCode.Error, errorText(e));
  }
  return { model: model!, prefix, prefixText, clients };
}

/** Deletes the prefix, then --auto-compact and --auto-defrag as etcdctl's compact/defrag. */
async function cleanUp(session: Session, cmd: Command, common: Common): Promise<void> {
  const out = (text: string) => session.io.stdout.write(text);
  const client = common.clients[0];
  let revision: bigint;
  try {
    const d = await client.deleteRange(
      create(DeleteRangeRequestSchema, {
        key: common.prefix,
        rangeEnd: prefixRangeEnd(common.prefix),
      }),
      { deadlineMs: Date.now() + 30_000 },
    );
    revision = d.header!.revision;
  } catch (e) {
    session.exitWithError(ExitCode.Error, errorText(e));
  }
  if (cmd.flags().getBool("auto-compact")) {
    out(`Compacting with revision ${revision!}\n`);
    try {
      await client.compact(
        create(CompactionRequestSchema, { revision: revision!, physical: true }),
        {
          deadlineMs: Date.now() + 30_000,
        },
      );
    } catch (e) {
      session.exitWithError(ExitCode.Error, errorText(e));
    }
    out(`Compacted with revision ${revision!}\n`);
  }
  if (cmd.flags().getBool("auto-defrag")) {
    for (const ep of client.endpoints()) {
      out(`Defragmenting ${goQuote(ep)}\n`);
      try {
        await client.defragment(ep, { deadlineMs: Date.now() + 30_000 });
      } catch (e) {
        session.exitWithError(ExitCode.Error, errorText(e));
      }
      out(`Defragmented ${goQuote(ep)}\n`);
    }
  }
}

async function checkPerf(session: Session, cmd: Command): Promise<void> {
  const common = await prepare(session, cmd, PERF, (m) => PERF[m].clients);
  const cfg = PERF[common.model];
  const out = (text: string) => session.io.stdout.write(text);
  try {
    const value = new Uint8Array(1024);
    const bar = new ProgressBar(cfg.durationS, out);
    bar.start();
    // The bar counts the seconds of the run on its own, as etcdctl's does.
    const barDone = (async () => {
      for (let i = 0; i < cfg.durationS; i++) {
        await new Promise((r) => setTimeout(r, 1000));
        bar.add(1);
      }
      bar.finish();
    })();
    const report = new Report();
    report.begin();
    const queue: Uint8Array[] = [];
    let producing = true;
    let wake: (() => void)[] = [];
    const startMs = Date.now();
    const endMs = startMs + cfg.durationS * 1000;
    const producer = (async () => {
      for (let i = 0;; i++) {
        const due = startMs + (i * 1000) / cfg.limit;
        if (due >= endMs) break;
        const wait = due - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        queue.push(concatBytes(common.prefix, randomKey(256)));
        wake.shift()?.();
      }
      producing = false;
      for (const w of wake) w();
      wake = [];
    })();
    const worker = async (client: EtcdClient) => {
      while (true) {
        const key = queue.shift();
        if (key === undefined) {
          if (!producing) return;
          await new Promise<void>((r) => wake.push(r));
          continue;
        }
        await report.put(client, key, value);
      }
    };
    await Promise.all([producer, ...common.clients.map(worker)]);
    const stats = report.stats();
    await barDone;
    await cleanUp(session, cmd, common);
    let ok = !report.printErrors(out);
    if (stats.rps / cfg.limit <= 0.9) {
      out(`FAIL: Throughput too low: ${Math.trunc(stats.rps) + 1} writes/s\n`);
      ok = false;
    } else out(`PASS: Throughput is ${Math.trunc(stats.rps) + 1} writes/s\n`);
    if (stats.slowest > 0.5) {
      out(`Slowest request took too long: ${stats.slowest.toFixed(6)}s\n`);
      ok = false;
    } else out(`PASS: Slowest request took ${stats.slowest.toFixed(6)}s\n`);
    if (stats.stddev > 0.1) {
      out(`Stddev too high: ${stats.stddev.toFixed(6)}s\n`);
      ok = false;
    } else out(`PASS: Stddev is ${stats.stddev.toFixed(6)}s\n`);
    if (ok) out("PASS\n");
    else {
      out("FAIL\n");
      throw new ExitSignal(ExitCode.Error);
    }
  } finally {
    for (const c of common.clients) c.close();
  }
}

/** etcdctl's endpointMemoryMetrics: process_resident_memory_bytes from the endpoint's /metrics. */
async function residentMemory(
  session: Session,
  cmd: Command,
  endpoint: string,
): Promise<number> {
  const out = (text: string) => session.io.stdout.write(text);
  const host = /^https?:\/\//.test(endpoint) ? endpoint : `http://${endpoint}`;
  const url = `${host}/metrics`;
  let text: string;
  let client: Deno.HttpClient | undefined;
  try {
    if (host.startsWith("https://")) {
      const sec = secureCfgFromCmd(session, cmd);
      client = Deno.createHttpClient({
        cert: await Deno.readTextFile(sec.cert),
        key: await Deno.readTextFile(sec.key),
        caCerts: sec.cacert !== "" ? [await Deno.readTextFile(sec.cacert)] : undefined,
      });
    }
    const res = await fetch(url, client ? { client } : {});
    text = await res.text();
  } catch (e) {
    out(`fetch error: ${e instanceof Error ? e.message : String(e)}\n`);
    return 0;
  } finally {
    client?.close();
  }
  const key = "process_resident_memory_bytes";
  const line = text.split("\n").find((l) => l.startsWith(key));
  if (line === undefined) {
    out(`could not find: ${key}\n`);
    return 0;
  }
  const value = Number(line.slice(key.length).trim());
  if (!Number.isFinite(value)) {
    out(`parse error: ${line}\n`);
    return 0;
  }
  return value;
}

async function checkDatascale(session: Session, cmd: Command): Promise<void> {
  const common = await prepare(session, cmd, DATASCALE, (m) => DATASCALE[m].clients);
  const cfg = DATASCALE[common.model];
  const out = (text: string) => session.io.stdout.write(text);
  try {
    const endpoint = endpointsFromCmd(session, cmd)[0];
    const value = new Uint8Array(512);
    const before = await residentMemory(session, cmd, endpoint);
    if (before === 0) {
      out("FAIL: Could not read process_resident_memory_bytes before the put operations.\n");
      throw new ExitSignal(ExitCode.Error);
    }
    out(
      `Start data scale check for work load [${cfg.limit} key-value pairs, ${cfg.kvSize} bytes per key-value, ${cfg.clients} concurrent clients].\n`,
    );
    const bar = new ProgressBar(cfg.limit, out);
    bar.start();
    const report = new Report();
    report.begin();
    let next = 0;
    const worker = async (client: EtcdClient) => {
      while (next < cfg.limit) {
        next++;
        await report.put(client, concatBytes(common.prefix, randomKey(512)), value);
        bar.add(1);
      }
    };
    await Promise.all(common.clients.map(worker));
    bar.finish();
    const after = await residentMemory(session, cmd, endpoint);
    if (after === 0) {
      out("FAIL: Could not read process_resident_memory_bytes after the put operations.\n");
      throw new ExitSignal(ExitCode.Error);
    }
    await cleanUp(session, cmd, common);
    const mbUsed = (after - before) / (1024 * 1024);
    if (report.printErrors(out)) throw new ExitSignal(ExitCode.Error);
    out(`PASS: Approximate system memory used : ${mbUsed.toFixed(2)} MB.\n`);
  } finally {
    for (const c of common.clients) c.close();
  }
}

/** The flags `check perf` and `check datascale` share, with each one's words and prefix. */
function loadFlags(cmd: Command, what: string, prefix: string): Command {
  cmd.flags().string(
    "load",
    "s",
    `The ${what} check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)`,
  );
  cmd.flags().string("prefix", prefix, `The prefix for writing the ${what} check's keys.`);
  cmd.flags().bool(
    "auto-compact",
    false,
    "Compact storage with last revision after test is finished.",
  );
  cmd.flags().bool("auto-defrag", false, "Defragment storage after test is finished.");
  return cmd;
}

/** The `check` command group. */
export function checkCommand(session: Session): Command {
  const perf = loadFlags(
    new Command({
      use: "perf [options]",
      short: "Check the performance of the etcd cluster",
      run: (c) => checkPerf(session, c),
    }),
    "performance",
    "/etcdctl-check-perf/",
  );
  const datascale = loadFlags(
    new Command({
      use: "datascale [options]",
      short:
        "Check the memory usage of holding data for different workloads on a given server endpoint.",
      long:
        "If no endpoint is provided, localhost will be used. If multiple endpoints are provided, first endpoint will be used.",
      run: (c) => checkDatascale(session, c),
    }),
    "datascale",
    "/etcdctl-check-datascale/",
  );
  const check = new Command({
    use: "check <subcommand>",
    short: "commands for checking properties of the etcd cluster",
  });
  check.addCommand(perf, datascale);
  return check;
}
