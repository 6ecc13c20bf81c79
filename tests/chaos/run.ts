/**
 * Real-process chaos: a cluster of real members (detcd, or etcd 3.4.23 with `target: "etcd"`) on
 * loopback, real gRPC clients writing and reading for a bounded time, and faults drawn from a seed:
 * kill -9 of a follower or of the leader, SIGSTOP/SIGCONT pauses, peer partitions and stalls (a
 * TCP proxy on every peer port, see proxy.ts), and a disk that fills up (one member's data dir on
 * a small tmpfs, when this process may mount one), and one member's wall clock skewed (libfaketime).
 * Then it heals everything and checks:
 *
 * - the clients' history is linearizable (tests/linearizability, etcd's KV model; writes that
 *   failed in a way that may have happened stay open to the end), revisions included;
 * - watches (one per member, resumed after every break from the next revision) kept etcd's
 *   guarantees: revisions in order, no repeat, no gap unless cancelled as compacted, every member
 *   reporting the same event for a revision, progress notifications never ahead of events, and
 *   every acknowledged write seen at its revision;
 * - every member has the same hash of the key space at the same revision;
 * - no member died that was not killed (a member may stop on a full disk, with an error).
 *
 * The seed draws the fault schedule and the clients' choices; processes and the kernel decide the
 * rest, so a seed names a schedule, not an exact run.
 */
import {
  freePort,
  type Member,
  type MemberKind,
  sleep,
  startMember,
  TEST_TLS,
} from "../harness.ts";
import { Prng } from "../simulation/prng.ts";
import { checkLinearizable } from "../linearizability/checker.ts";
import {
  checkRevisions,
  etcdKvModel,
  kvModelFor,
  type KvOperation,
  withoutUnobservedUnknownPuts,
} from "../linearizability/etcd_model.ts";
import { CallError, ChaosClient, type WatchHandle } from "./client.ts";
import { Partitions, PeerProxy } from "./proxy.ts";

const decoder = new TextDecoder();
const PREFIX = "chaos/";

export interface ChaosOptions {
  seconds: number;
  seed: number;
  members?: number;
  target?: MemberKind;
  /** Concurrent clients (default 8). */
  clients?: number;
  /**
   * Keys per epoch (default 6); keys change every `epochMs` (default 3 s) so that each key's
   * history, the unit the checker searches, stays short however long the run.
   */
  keys?: number;
  epochMs?: number;
  /** Writes the whole history there (JSON lines), for checking it again offline. */
  historyFile?: string;
  /** Allow the full-disk fault (needs root for a tmpfs mount; default: try). */
  diskFault?: boolean;
  /**
   * Start the second member with its wall clock skewed by an offset drawn from the seed (Debian's
   * libfaketime, when installed; default on). Go reads the clock through the vDSO, not libc, so
   * against etcd the preload changes nothing; against detcd, Date and every wall-clock read move.
   */
  clockSkew?: boolean;
  /** Only these fault kinds (default: every kind the cluster allows). */
  faults?: readonly string[];
  /** Search budget of the linearizability check (steps over all keys). */
  budget?: number;
  /** Progress lines (faults, phases); default none. */
  log?: (line: string) => void;
}

export interface ChaosSummary {
  target: MemberKind;
  seed: number;
  members: number;
  seconds: number;
  ops: number;
  ok: number;
  fail: number;
  unknown: number;
  faults: number;
  faultKinds: Record<string, number>;
  /** The skewed member and its offset ("chaos2:+120s"), or "none". */
  skew: string;
  linearizable: "yes" | "NO" | "unknown";
  watchEvents: number;
  watchResumes: number;
  hashes: "equal" | "DIFFER" | "none";
  problems: string[];
  /** The one-line summary printed by `deno task chaos`. */
  line: string;
}

export type FaultKind =
  | "kill-leader"
  | "kill-follower"
  | "pause-leader"
  | "pause-follower"
  | "isolate-leader"
  | "isolate-follower"
  | "stall-member"
  | "split"
  | "disk-full";

interface ChaosMember {
  index: number;
  member: Member;
  /** The port it advertises (its proxy's). */
  proxyPort: number;
  proxy: PeerProxy;
  client: ChaosClient;
  id: bigint;
  /** Killed or stopped by a fault: not expected to answer. */
  down: boolean;
  paused: boolean;
  /** Its data dir is on the tmpfs of the full-disk fault. */
  tmpfs: string | null;
}

/** Runs one chaos run and returns its summary (never throws on a finding; `problems` has them). */
export async function runChaos(options: ChaosOptions): Promise<ChaosSummary> {
  if (TEST_TLS) throw new Error("chaos runs use plain peer links (the proxy reads their headers)");
  const run = new ChaosRun(options);
  try {
    return await run.execute();
  } finally {
    await run.cleanup();
  }
}

class ChaosRun {
  readonly kind: MemberKind;
  readonly size: number;
  readonly seconds: number;
  readonly seed: number;
  readonly log: (line: string) => void;
  readonly partitions: Partitions;
  readonly members: ChaosMember[] = [];
  readonly history: KvOperation[] = [];
  readonly problems: string[] = [];
  readonly faultKinds: Record<string, number> = {};
  readonly start = performance.now();
  dir = "";
  counts = { ops: 0, ok: 0, fail: 0, unknown: 0 };
  stopping = false;
  faultsDone = false;
  mounts: string[] = [];
  watch = new WatchCheck();
  keysUsed = new Set<string>();
  hashes: "equal" | "DIFFER" | "none" = "none";
  linearizable: "yes" | "NO" | "unknown" = "unknown";
  skewSeconds = 0;

  constructor(readonly options: ChaosOptions) {
    this.kind = options.target ?? "detcd";
    this.size = options.members ?? 3;
    this.seconds = options.seconds;
    this.seed = options.seed;
    this.log = options.log ?? (() => {});
    this.partitions = new Partitions(this.size);
  }

  elapsed(): string {
    return `${((performance.now() - this.start) / 1000).toFixed(1)}s`;
  }

  async execute(): Promise<ChaosSummary> {
    const prng = new Prng(this.seed);
    const faultPrng = prng.fork();
    const clientPrng = prng.fork();
    const skewPrng = prng.fork();
    if (this.options.clockSkew !== false && haveFaketime()) {
      this.skewSeconds = (skewPrng.chance(0.5) ? 1 : -1) * skewPrng.range(30, 600);
    }
    await this.startCluster();
    if (this.skewSeconds !== 0) {
      this.log(
        `${this.elapsed()} ${
          this.members[1].member.name
        }'s wall clock is off by ${this.skewSeconds} s`,
      );
    }
    this.log(`${this.elapsed()} cluster of ${this.size} ${this.kind} members ready`);
    const watchers = this.members.map((m) => this.watchMember(m));
    const clients = Array.from(
      { length: this.options.clients ?? 8 },
      (_, i) => this.clientLoop(i, clientPrng.fork()),
    );
    const compactor = this.compactLoop(clientPrng.fork());
    const deadline = performance.now() + this.seconds * 1000;
    await this.faultLoop(faultPrng, deadline);
    this.faultsDone = true;
    await this.heal();
    this.log(`${this.elapsed()} healed; clients run 3 s without faults`);
    await sleep(3000);
    this.stopping = true;
    await Promise.all([...clients, compactor]);
    await this.finalChecks();
    for (const w of watchers) w.stop();
    return this.summary();
  }

  // ---- cluster -------------------------------------------------------------------------------

  async startCluster(): Promise<void> {
    this.dir = await Deno.makeTempDir({ prefix: `detcd-chaos-${this.kind}-` });
    const planned = Array.from({ length: this.size }, (_, i) => ({
      name: `chaos${i + 1}`,
      clientPort: freePort(),
      peerPort: freePort(),
      proxyPort: freePort(),
    }));
    const initialCluster = planned.map((p) => `${p.name}=http://127.0.0.1:${p.proxyPort}`).join(
      ",",
    );
    const ids = new Map<string, number>();
    const senderOf = (hex: string) => ids.get(hex) ?? -1;
    const proxies = planned.map((p, i) =>
      new PeerProxy(i, p.proxyPort, p.peerPort, senderOf, this.partitions.policy)
    );
    await Promise.all(proxies.map((p) => p.listen()));
    // The last member's data dir may live on a small tmpfs, for the full-disk fault.
    const tmpfs = this.options.diskFault === false ? null : await this.mountTmpfs();
    const skewEnv = (i: number): Record<string, string> => {
      if (i !== 1 || this.skewSeconds === 0) return {};
      return {
        LD_PRELOAD: FAKETIME_LIB,
        FAKETIME: `${this.skewSeconds > 0 ? "+" : ""}${this.skewSeconds}s`,
        DONT_FAKE_MONOTONIC: "1",
      };
    };
    const started = await Promise.allSettled(planned.map((p, i) =>
      startMember({
        kind: this.kind,
        name: p.name,
        dataDir: i === this.size - 1 && tmpfs
          ? `${tmpfs}/${p.name}.etcd`
          : `${this.dir}/${p.name}.etcd`,
        clientPort: p.clientPort,
        peerPort: p.peerPort,
        advertisePeerUrl: `http://127.0.0.1:${p.proxyPort}`,
        initialCluster,
        initialClusterState: "new",
        initialClusterToken: `chaos-${this.seed}`,
        extraArgs: ["--heartbeat-interval", "100", "--election-timeout", "1000"],
        env: skewEnv(i),
      })
    ));
    started.forEach((r, i) => {
      if (r.status !== "fulfilled") return;
      this.members.push({
        index: i,
        member: r.value,
        proxyPort: planned[i].proxyPort,
        proxy: proxies[i],
        client: new ChaosClient(r.value.endpoint),
        id: 0n,
        down: false,
        paused: false,
        tmpfs: i === this.size - 1 ? tmpfs : null,
      });
    });
    for (const r of started) if (r.status === "rejected") throw r.reason;
    const list = await this.members[0].client.memberList();
    for (const m of list.members) {
      const i = planned.findIndex((p) => m.peerURLs.includes(`http://127.0.0.1:${p.proxyPort}`));
      if (i < 0) throw new Error(`member ${m.ID.toString(16)} has unknown peer URLs ${m.peerURLs}`);
      ids.set(m.ID.toString(16), i);
      this.members[i].id = m.ID;
    }
    await this.waitForLeader(30_000);
  }

  async mountTmpfs(): Promise<string | null> {
    if (Deno.build.os !== "linux" || Deno.uid() !== 0) return null;
    const path = `${this.dir}/tmpfs`;
    await Deno.mkdir(path);
    const out = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=320m", "tmpfs", path],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) return null;
    this.mounts.push(path);
    return path;
  }

  async cleanup(): Promise<void> {
    this.stopping = true;
    for (const m of this.members) {
      m.client.close();
      if (m.paused) m.member.signal("SIGCONT");
    }
    await Promise.all(this.members.map((m) => m.member.stop()));
    await Promise.all(this.members.map((m) => m.proxy.close()));
    for (const path of this.mounts) {
      await new Deno.Command("umount", { args: ["-l", path], stdout: "null", stderr: "null" })
        .output();
    }
    if (this.dir) await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  /** The leader's index as the running members see it, or -1. */
  async leader(): Promise<number> {
    for (const m of this.members) {
      if (m.down || m.paused) continue;
      try {
        const s = await m.client.status();
        const i = this.members.findIndex((x) => x.id === s.leader);
        if (i >= 0) return i;
      } catch {
        // ask the next one
      }
    }
    return -1;
  }

  async waitForLeader(ms: number): Promise<number> {
    const deadline = performance.now() + ms;
    while (performance.now() < deadline) {
      const views = await Promise.all(this.members.map(async (m) => {
        try {
          return (await m.client.status()).leader;
        } catch {
          return 0n;
        }
      }));
      if (views[0] !== 0n && views.every((v) => v === views[0])) {
        return this.members.findIndex((m) => m.id === views[0]);
      }
      await sleep(200);
    }
    throw new Error(`no common leader after ${ms} ms`);
  }

  // ---- faults --------------------------------------------------------------------------------

  async faultLoop(prng: Prng, deadline: number): Promise<void> {
    const kinds: FaultKind[] = [
      "kill-leader",
      "kill-follower",
      "pause-leader",
      "pause-follower",
      "isolate-leader",
      "isolate-follower",
      "stall-member",
    ];
    if (this.size >= 5) kinds.push("split");
    if (this.members.some((m) => m.tmpfs !== null)) kinds.push("disk-full");
    const only = this.options.faults;
    if (only !== undefined) {
      const unknown = only.filter((k) => !kinds.includes(k as FaultKind));
      if (unknown.length > 0) throw new Error(`fault kinds not available here: ${unknown}`);
      kinds.splice(0, kinds.length, ...(only as FaultKind[]));
    }
    while (performance.now() < deadline) {
      await sleep(prng.range(500, 3000));
      if (performance.now() >= deadline) break;
      const kind = prng.pick(kinds);
      const ms = Math.round(
        Math.min(prng.range(500, 6000), Math.max(500, deadline - performance.now())),
      );
      this.faultKinds[kind] = (this.faultKinds[kind] ?? 0) + 1;
      try {
        await this.inject(kind, ms, prng);
      } catch (error) {
        this.problems.push(`fault ${kind} at ${this.elapsed()}: ${error}`);
        this.log(`${this.elapsed()} fault ${kind} failed: ${error}`);
        await this.heal().catch(() => {});
      }
    }
  }

  async pickTarget(kind: FaultKind, prng: Prng): Promise<ChaosMember> {
    const leader = await this.leader();
    if (kind.endsWith("-leader") && leader >= 0) return this.members[leader];
    const others = this.members.filter((m) => m.index !== leader);
    return prng.pick(others.length > 0 ? others : this.members);
  }

  async inject(kind: FaultKind, ms: number, prng: Prng): Promise<void> {
    if (kind === "split") {
      const order = this.members.map((m) => m.index).sort(() => prng.float() - 0.5);
      const minority = order.slice(0, Math.floor(this.size / 2));
      const names = minority.map((i) => this.members[i].member.name).join(",");
      this.log(`${this.elapsed()} split ${names} | the rest for ${ms} ms`);
      this.partitions.separate(minority);
      this.refreshProxies();
      await sleep(ms);
      this.partitions.healAll();
      this.refreshProxies();
      return;
    }
    if (kind === "disk-full") {
      const m = this.members.find((x) => x.tmpfs !== null)!;
      await this.fillDisk(m, ms);
      return;
    }
    const m = await this.pickTarget(kind, prng);
    this.log(`${this.elapsed()} ${kind} ${m.member.name} for ${ms} ms`);
    if (kind.startsWith("kill-")) {
      m.down = true;
      await m.member.kill("SIGKILL");
      await sleep(ms);
      await this.restart(m);
    } else if (kind.startsWith("pause-")) {
      m.paused = true;
      m.member.signal("SIGSTOP");
      await sleep(ms);
      m.member.signal("SIGCONT");
      m.paused = false;
    } else if (kind.startsWith("isolate-")) {
      this.partitions.separate([m.index]);
      this.refreshProxies();
      await sleep(ms);
      this.partitions.healAll();
      this.refreshProxies();
    } else if (kind === "stall-member") {
      this.partitions.separate([m.index], "stall");
      this.refreshProxies();
      await sleep(ms);
      this.partitions.healAll();
      this.refreshProxies();
    }
  }

  refreshProxies(): void {
    for (const m of this.members) m.proxy.refresh();
  }

  async restart(m: ChaosMember): Promise<void> {
    m.client.reset();
    await m.member.restart();
    m.down = false;
  }

  /**
   * Fills the tmpfs under member `m` to the last byte for `ms`, then frees it. The member must
   * refuse writes with an error or stop; it must not corrupt anything: once space is back it
   * restarts (if it stopped) and catches up, and the end checks hold.
   */
  async fillDisk(m: ChaosMember, ms: number): Promise<void> {
    const filler = `${m.tmpfs}/filler`;
    this.log(`${this.elapsed()} disk-full ${m.member.name} for ${ms} ms`);
    const file = await Deno.open(filler, { create: true, write: true });
    const chunk = new Uint8Array(1 << 20);
    let filled = 0;
    for (const size of [1 << 20, 4096]) {
      try {
        for (;;) filled += await file.write(chunk.subarray(0, size));
      } catch {
        // ENOSPC: full at this granularity
      }
    }
    file.close();
    this.log(
      `${this.elapsed()} ${m.member.name}'s disk is full (${
        (filled / 2 ** 20).toFixed(1)
      } MiB filler)`,
    );
    await sleep(ms);
    await Deno.remove(filler);
    if (!processAlive(m.member)) {
      this.log(`${this.elapsed()} ${m.member.name} stopped on the full disk; restarting`);
      this.faultKinds["disk-full-stopped"] = (this.faultKinds["disk-full-stopped"] ?? 0) + 1;
      m.down = true;
      await this.restart(m);
    }
  }

  async heal(): Promise<void> {
    this.partitions.healAll();
    this.refreshProxies();
    for (const m of this.members) {
      if (m.paused) {
        m.member.signal("SIGCONT");
        m.paused = false;
      }
    }
    for (const m of this.members) {
      if (m.down) await this.restart(m);
      else if (!processAlive(m.member)) {
        this.problems.push(
          `${m.member.name} exited without being killed:\n${m.member.logTail(2000)}`,
        );
        await this.restart(m);
      }
    }
    await this.waitForLeader(30_000);
  }

  // ---- clients -------------------------------------------------------------------------------

  keyFor(prng: Prng): string {
    const epoch = Math.floor((performance.now() - this.start) / (this.options.epochMs ?? 3_000));
    const key = `${PREFIX}${epoch}/${prng.int(this.options.keys ?? 6)}`;
    this.keysUsed.add(key);
    return key;
  }

  async clientLoop(id: number, prng: Prng): Promise<void> {
    let at = id % this.size;
    let n = 0;
    const lastSeen = new Map<string, string | null>();
    const recentWrites: { key: string; rev: number }[] = [];
    while (!this.stopping) {
      const m = this.members[at];
      const key = this.keyFor(prng);
      const value = `c${id}-${n++}`;
      const dice = prng.float();
      const call = performance.now();
      const op: KvOperation = { client: id, call, input: { kind: "get", key } };
      try {
        if (dice < 0.35) {
          op.input = { kind: "put", key, value };
          const r = await m.client.put(key, value);
          op.output = { kind: "put", revision: Number(r.header!.revision) };
          recentWrites.push({ key, rev: op.output.revision });
        } else if (dice < 0.45) {
          op.input = { kind: "delete", key };
          const r = await m.client.delete(key);
          op.output = {
            kind: "delete",
            revision: Number(r.header!.revision),
            deleted: Number(r.deleted),
          };
        } else if (dice < 0.6) {
          const expect = lastSeen.get(key) ?? null;
          op.input = { kind: "cas", key, expect, value };
          const r = await m.client.cas(key, expect, value);
          op.output = { kind: "cas", succeeded: r.succeeded, revision: Number(r.header!.revision) };
          if (r.succeeded) recentWrites.push({ key, rev: op.output.revision });
        } else if (dice < 0.65 && recentWrites.length > 0) {
          const w = recentWrites[prng.int(recentWrites.length)];
          op.input = { kind: "get", key: w.key, revision: w.rev };
          const r = await m.client.get(w.key, w.rev);
          const kv = r.kvs[0];
          op.output = {
            kind: "get",
            value: kv ? decoder.decode(kv.value) : null,
            modRevision: kv ? Number(kv.modRevision) : 0,
          };
        } else {
          const r = await m.client.get(key);
          const kv = r.kvs[0];
          op.output = {
            kind: "get",
            value: kv ? decoder.decode(kv.value) : null,
            modRevision: kv ? Number(kv.modRevision) : 0,
          };
          lastSeen.set(key, op.output.value);
        }
        op.return = performance.now();
        this.history.push(op);
        this.counts.ops++;
        this.counts.ok++;
        if (recentWrites.length > 32) recentWrites.shift();
      } catch (error) {
        this.counts.ops++;
        const definite = error instanceof CallError && error.definite;
        if (op.input.kind === "get" || definite) {
          this.counts.fail++; // a read that failed changed nothing; a refused call never left
        } else {
          this.counts.unknown++;
          this.history.push(op); // may have happened: open until the end
        }
        at = prng.int(this.size); // try another member
        await sleep(50);
      }
    }
  }

  /** Compacts every few seconds to a revision some way behind, so reads at old revisions fail. */
  async compactLoop(prng: Prng): Promise<void> {
    let compacted = 0;
    while (!this.stopping) {
      await sleep(prng.range(2000, 6000));
      if (this.stopping) break;
      const m = this.members[prng.int(this.size)];
      try {
        const rev = Number((await m.client.status()).header!.revision) - 300;
        if (rev > compacted) {
          await m.client.compact(rev);
          compacted = rev;
          this.watch.compactedTo = Math.max(this.watch.compactedTo, rev);
        }
      } catch {
        // a member down or without a leader: try later
      }
    }
  }

  // ---- watches -------------------------------------------------------------------------------

  watchMember(m: ChaosMember): { stop(): void } {
    const w = this.watch.watcher(m.member.name);
    let handle: WatchHandle | null = null;
    let stopped = false;
    const open = () => {
      if (stopped) return;
      const from = w.lastRev + 1;
      handle = m.client.watch(PREFIX, Math.max(1, from), {
        onResponse: (r) => {
          this.watch.problems.push(...w.take(r, from));
          if (r.canceled) {
            // Cancelled (as compacted: take() moved past the compaction): open it again.
            handle?.close();
            handle = null;
            w.resumes++;
            setTimeout(open, 100);
          }
        },
        onEnd: () => {
          handle = null;
          if (stopped) return;
          w.resumes++;
          setTimeout(open, 300);
        },
      });
    };
    open();
    const progressTimer = setInterval(() => handle?.requestProgress(), 1000);
    return {
      stop: () => {
        stopped = true;
        clearInterval(progressTimer);
        handle?.close();
      },
    };
  }

  // ---- end checks ----------------------------------------------------------------------------

  async finalChecks(): Promise<void> {
    // Every member at the same revision, then the same hash.
    const deadline = performance.now() + 30_000;
    let revs: number[] = [];
    while (performance.now() < deadline) {
      revs = await Promise.all(this.members.map(async (m) => {
        try {
          return Number((await m.client.get("x", 0, true)).header!.revision);
        } catch {
          return -1;
        }
      }));
      if (revs[0] > 0 && revs.every((r) => r === revs[0])) break;
      await sleep(200);
    }
    const finalRev = revs[0];
    if (!(finalRev > 0 && revs.every((r) => r === finalRev))) {
      this.problems.push(`members did not converge: revisions ${revs.join(", ")}`);
    } else {
      const hashes = await Promise.all(this.members.map(async (m) => {
        try {
          const h = await m.client.hashKV(finalRev);
          return `${h.hash}@${h.compactRevision}`;
        } catch (error) {
          return `error: ${(error as Error).message}`;
        }
      }));
      this.hashes = hashes.every((h) => h === hashes[0] && !h.startsWith("error"))
        ? "equal"
        : "DIFFER";
      if (this.hashes === "DIFFER") {
        this.problems.push(`hashes at revision ${finalRev} differ: ${hashes.join(" | ")}`);
      }
      // Watchers catch up to the final revision.
      const until = performance.now() + 20_000;
      while (performance.now() < until && !this.watch.caughtUp(finalRev)) await sleep(200);
      if (!this.watch.caughtUp(finalRev)) {
        this.watch.problems.push(
          `watchers did not reach revision ${finalRev}: ${this.watch.positions()}`,
        );
      }
    }
    // Final linearizable reads of every key used, appended to the history.
    const m = this.members[0];
    for (const key of this.keysUsed) {
      const call = performance.now();
      try {
        const r = await m.client.get(key);
        const kv = r.kvs[0];
        this.history.push({
          client: -1,
          call,
          return: performance.now(),
          input: { kind: "get", key },
          output: {
            kind: "get",
            value: kv ? decoder.decode(kv.value) : null,
            modRevision: kv ? Number(kv.modRevision) : 0,
          },
        });
      } catch (error) {
        this.problems.push(`final read of ${key}: ${error}`);
      }
    }
    // The history.
    const history = withoutUnobservedUnknownPuts(this.history);
    const checking = performance.now();
    this.log(`${this.elapsed()} checking ${history.length} operations`);
    const verdict = checkLinearizable(kvModelFor(history), history, {
      budget: this.options.budget ?? 50_000_000,
    });
    if (this.options.historyFile) {
      await Deno.writeTextFile(
        this.options.historyFile,
        this.history.map((o) => JSON.stringify(o)).join("\n") + "\n",
      );
    }
    if (verdict.verdict === "illegal") {
      this.linearizable = "NO";
      // The key's whole history, to study it (and check it again with tests/linearizability).
      const dump = await Deno.makeTempFile({ prefix: "chaos-not-linearizable-", suffix: ".jsonl" });
      await Deno.writeTextFile(dump, verdict.part!.map((o) => JSON.stringify(o)).join("\n") + "\n");
      this.problems.push(`the key's ${verdict.part!.length} operations are in ${dump}`);
      const longest = verdict.longest!;
      const placed = new Set(longest);
      const unplaced = verdict.part!.filter((o) => !placed.has(o)).sort((x, y) => x.call - y.call);
      const show = (ops: KvOperation[]) => ops.map((o) => etcdKvModel.describe!(o)).join("\n  ");
      this.problems.push(
        `not linearizable: key ${verdict.part![0].input.key} (${
          verdict.part!.length
        } operations); ` +
          `the longest legal order placed ${longest.length}, ending:\n  ${
            show(longest.slice(-8))
          }\n` +
          `and none of the next could follow:\n  ${show(unplaced.slice(0, 6))}`,
      );
    } else {
      this.linearizable = verdict.verdict === "ok" ? "yes" : "unknown";
    }
    this.log(
      `${this.elapsed()} linearizability: ${verdict.verdict} in ${
        ((performance.now() - checking) / 1000).toFixed(1)
      } s, ${verdict.steps} steps over ${verdict.parts} keys`,
    );
    for (const p of checkRevisions(history)) {
      this.linearizable = "NO";
      this.problems.push(`revisions: ${p}`);
    }
    // Every acknowledged write is in the watched history at its revision.
    for (const op of this.history) {
      const o = op.output;
      if (o === undefined) continue;
      let want: string | null = null;
      if (o.kind === "put" && op.input.kind === "put") {
        want = `PUT ${op.input.key}=${op.input.value}`;
      } else if (o.kind === "cas" && o.succeeded && op.input.kind === "cas") {
        want = `PUT ${op.input.key}=${op.input.value}`;
      } else if (o.kind === "delete" && o.deleted > 0) want = `DELETE ${op.input.key}`;
      if (want === null || o.kind === "get") continue;
      const rev = o.revision;
      const seen = this.watch.byRevision.get(rev);
      if (seen === undefined && rev <= this.watch.compactedTo) continue; // skipped as compacted
      if (seen !== want) {
        this.watch.problems.push(
          `acknowledged ${want} at revision ${rev}, watchers saw ${seen ?? "nothing"}`,
        );
      }
    }
    if (this.watch.progressAhead > 0) {
      this.log(`${this.elapsed()} progress ahead of events: ${this.watch.progressExample}`);
    }
    if (this.watch.progressAhead > 0 && this.kind === "detcd") {
      this.watch.problems.push(
        `${this.watch.progressAhead} events after a progress notification that claimed them; ` +
          `first: ${this.watch.progressExample}`,
      );
    }
    this.problems.push(...this.watch.problems.slice(0, 10));
    if (this.watch.problems.length > 10) {
      this.problems.push(`... and ${this.watch.problems.length - 10} more watch problems`);
    }
  }

  skew(): string {
    if (this.skewSeconds === 0) return "none";
    return `${this.members[1]?.member.name ?? "chaos2"}:${
      this.skewSeconds > 0 ? "+" : ""
    }${this.skewSeconds}s`;
  }

  summary(): ChaosSummary {
    const faults = Object.entries(this.faultKinds).filter(([k]) => k !== "disk-full-stopped")
      .reduce((s, [, n]) => s + n, 0);
    const line = [
      `target=${this.kind}`,
      `seed=${this.seed}`,
      `members=${this.size}`,
      `seconds=${this.seconds}`,
      `ops=${this.counts.ops}`,
      `ok=${this.counts.ok}`,
      `fail=${this.counts.fail}`,
      `unknown=${this.counts.unknown}`,
      `faults=${faults}`,
      `skew=${this.skew()}`,
      `linearizable=${this.linearizable}`,
      `watch=${this.watch.problems.length === 0 ? "ok" : "NO"}`,
      `watch-events=${this.watch.events}`,
      // etcd 3.4.23 ships etcd #15220: counted, reported, and a failure only against detcd.
      `progress-ahead=${this.watch.progressAhead}`,
      `hashes=${this.hashes}`,
      `problems=${this.problems.length}`,
    ].join(" ");
    return {
      target: this.kind,
      seed: this.seed,
      members: this.size,
      seconds: this.seconds,
      ...this.counts,
      faults,
      faultKinds: this.faultKinds,
      skew: this.skew(),
      linearizable: this.linearizable,
      watchEvents: this.watch.events,
      watchResumes: this.watch.resumes(),
      hashes: this.hashes,
      problems: this.problems,
      line,
    };
  }
}

const FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

function haveFaketime(): boolean {
  try {
    return Deno.statSync(FAKETIME_LIB).isFile;
  } catch {
    return false;
  }
}

/** True while the member's current process exists and is not a zombie. */
function processAlive(member: Member): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${member.pid()}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

// ---- watch guarantees ------------------------------------------------------------------------

/** One watcher's view: what it has seen, checked as it arrives. */
export class Watcher {
  lastRev = 0;
  progress = 0;
  resumes = 0;
  /** The last responses, for a report. */
  recent: string[] = [];
  /** Set when a compacted cancel allowed a gap up to this revision. */
  allowGapTo = 0;

  constructor(readonly name: string, readonly check: WatchCheck) {}

  /**
   * Takes one response of a stream opened at `from`; returns the guarantees it broke (none: []).
   * A progress notification ahead of an event is counted apart (`progressAhead`): etcd 3.4.23
   * ships that bug (etcd #15220), so a run against etcd reports it rather than fails on it.
   */
  take(r: {
    header?: { revision: bigint };
    created: boolean;
    canceled: boolean;
    compactRevision: bigint;
    events: { type: number; kv?: { key: Uint8Array; value: Uint8Array; modRevision: bigint } }[];
  }, from: number): string[] {
    const problems: string[] = [];
    const revs = r.events.map((e) => Number(e.kv!.modRevision));
    this.recent.push(
      `stream from ${from}: ${
        r.created
          ? "created"
          : r.canceled
          ? `canceled (compact ${r.compactRevision})`
          : revs.length === 0
          ? `progress ${r.header?.revision}`
          : `events ${revs[0]}..${revs[revs.length - 1]}`
      } (header ${r.header?.revision})`,
    );
    if (this.recent.length > 12) this.recent.shift();
    if (r.canceled) {
      if (r.compactRevision > 0n) {
        // Resuming below the compaction: told so, and allowed to go on from it.
        const c = Number(r.compactRevision);
        this.allowGapTo = c;
        this.lastRev = Math.max(this.lastRev, c - 1);
      }
      return problems;
    }
    if (r.events.length === 0) {
      if (!r.created && r.header) {
        // A progress notification: everything up to its revision has been sent.
        const p = Number(r.header.revision);
        if (p < this.progress) {
          problems.push(
            `watcher on ${this.name}: progress went back from ${this.progress} to ${p}`,
          );
        }
        this.progress = Math.max(this.progress, p);
      }
      return problems;
    }
    for (const e of r.events) {
      const rev = Number(e.kv!.modRevision);
      const text = e.type === 0
        ? `PUT ${decoder.decode(e.kv!.key)}=${decoder.decode(e.kv!.value)}`
        : `DELETE ${decoder.decode(e.kv!.key)}`;
      if (rev <= this.lastRev) {
        problems.push(
          `watcher on ${this.name}: revision ${rev} after ${this.lastRev} (stream from ${from})`,
        );
        continue;
      }
      if (rev <= this.progress) {
        this.check.progressAhead++;
        this.check.progressExample ||= `watcher on ${this.name}: event at revision ${rev} ` +
          `after a progress notification at ${this.progress}; its last responses:\n    ` +
          this.recent.join("\n    ");
      }
      // After a cancel as compacted at c, revisions up to c may be gone (a delete at c is dropped
      // with the compaction), so the first event may come after c.
      if (this.lastRev !== 0 && rev !== this.lastRev + 1 && this.lastRev >= this.allowGapTo) {
        problems.push(
          `watcher on ${this.name}: revision ${rev} after ${this.lastRev}, a gap (stream from ${from}); ` +
            `its last responses:\n    ${this.recent.join("\n    ")}`,
        );
      }
      this.lastRev = rev;
      this.check.events++;
      const seen = this.check.byRevision.get(rev);
      if (seen === undefined) this.check.byRevision.set(rev, text);
      else if (seen !== text) {
        problems.push(
          `watchers disagree on revision ${rev}: ${this.name} saw ${text}, another ${seen}`,
        );
      }
    }
    return problems;
  }
}

export class WatchCheck {
  readonly watchers: Watcher[] = [];
  readonly byRevision = new Map<number, string>();
  readonly problems: string[] = [];
  events = 0;
  compactedTo = 0;
  /** Events that came after a progress notification claiming their revision (etcd #15220). */
  progressAhead = 0;
  progressExample = "";

  watcher(name: string): Watcher {
    const w = new Watcher(name, this);
    this.watchers.push(w);
    return w;
  }

  caughtUp(rev: number): boolean {
    return this.watchers.every((w) => w.lastRev >= rev);
  }

  positions(): string {
    return this.watchers.map((w) => `${w.name}@${w.lastRev}`).join(" ");
  }

  resumes(): number {
    return this.watchers.reduce((s, w) => s + w.resumes, 0);
  }
}
