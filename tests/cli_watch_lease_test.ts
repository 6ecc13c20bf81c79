/**
 * detcdctl's `watch` and `lease` commands against the real etcdctl 3.4.23, both talking to the
 * same member: every scenario of the user's guide chapters on watch (监听) and leases (租约), every
 * output format, and the error cases.
 *
 * Watch scenarios run both CLIs at once as background watchers on the same member, wait until the
 * server has both watches (etcd's watcher gauge on /metrics; a fixed delay for a server without
 * it), make the writes with etcdctl, wait for the last expected line, then stop both watchers
 * (SIGINT, closing stdin in interactive mode, or letting the exec command fail) and compare
 * stdout, stderr and how each process ended. Lease scenarios run the same script once per CLI on
 * the member; lease IDs, header revisions and remaining TTLs (which move with time) are
 * normalised, nothing else.
 *
 * Each test runs on real etcd 3.4.23 and then on detcd, and what etcdctl printed on detcd (watch
 * outcomes, step results) must equal what it printed on etcd: the server is under test too, not
 * only the CLI. SERVER_KINDS narrows this to one kind; without etcd/etcdctl the tests are ignored
 * unless DETCD_REQUIRE_REFERENCE is set (1 or true).
 */

import assert from "node:assert/strict";
import { fromBinary, toJsonString } from "@bufbuild/protobuf";
import { ResponseHeaderSchema } from "../gen/etcdserverpb/rpc_pb.ts";
import {
  assertReference,
  type CtlKind,
  type Member,
  type MemberKind,
  REPO_ROOT,
  requireReference,
  runCtl,
  SHARED_MEMBER_NAME,
  SHARED_PEER_URL,
  startMember,
  TEST_TLS,
  testTlsFiles,
  tlsCtlEnv,
} from "./harness.ts";

/**
 * The servers these comparisons run against: real etcd 3.4.23 and detcd, so etcdctl and detcdctl
 * are both checked against both (DETCD_WATCH_LEASE_SERVERS=etcd or =detcd narrows it).
 */
const SERVER_KINDS: MemberKind[] =
  (Deno.env.get("DETCD_WATCH_LEASE_SERVERS")?.split(",") as MemberKind[] | undefined) ??
    ["etcd", "detcd"];

const reference = requireReference();
const CTLS: CtlKind[] = ["etcdctl", "detcdctl"];
const decoder = new TextDecoder();
const encoder = new TextEncoder();

function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(Deno.env.toObject())) {
    if (key.startsWith("ETCD_") || key.startsWith("ETCDCTL_")) continue;
    env[key] = value;
  }
  env.NO_COLOR = "1";
  return { ...env, ...tlsCtlEnv(), ...extra };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function ctlCommand(kind: CtlKind): [string, string[]] {
  if (kind === "etcdctl") return ["etcdctl", []];
  return [Deno.execPath(), ["run", "-A", `${REPO_ROOT}/cli/main.ts`]];
}

/** Normalises what legitimately differs between two runs: log timestamps, client ids. */
function normaliseLog(text: string): string {
  return text.replace(/"ts":"[^"]*"/g, '"ts":"<TS>"').replace(
    /client-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g,
    "client-<UUID>",
  ).replace(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ /gm, "<TIME> ");
}

let httpClient: Deno.HttpClient | undefined;
/** A fetch client trusting the test CA in TLS mode (the default client otherwise). */
function metricsClient(): Deno.HttpClient | undefined {
  if (!TEST_TLS) return undefined;
  httpClient ??= Deno.createHttpClient({ caCerts: [Deno.readTextFileSync(testTlsFiles().ca)] });
  return httpClient;
}

async function watcherCount(member: Member): Promise<number | undefined> {
  try {
    const resp = await fetch(`${member.clientUrl}/metrics`, { client: metricsClient() });
    const text = await resp.text();
    const m = /^etcd_debugging_mvcc_watcher_total (\d+)/m.exec(text);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Waits until the server holds `n` watchers (or, if it does not say, a fixed while). */
async function waitWatchers(member: Member, n: number): Promise<void> {
  // Generous: under the parallel suite on 2 cores, three etcdctl processes can take well over 15 s
  // to start and register (seen once against real etcd in a full run).
  const deadline = Date.now() + 45_000;
  while (Date.now() < deadline) {
    const count = await watcherCount(member);
    if (count === undefined) {
      await sleep(4000);
      return;
    }
    if (count >= n) return;
    await sleep(50);
  }
  throw new Error(`the server did not reach ${n} watchers`);
}

/** A CLI running in the background. */
class Background {
  private readonly child: Deno.ChildProcess;
  private stdoutParts: Uint8Array[] = [];
  private stderrParts: Uint8Array[] = [];
  private readonly pumps: Promise<void>[];
  private stdinWriter?: WritableStreamDefaultWriter<Uint8Array>;
  readonly status: Promise<Deno.CommandStatus>;

  constructor(
    readonly ctl: CtlKind,
    args: string[],
    env: Record<string, string>,
    stdin: boolean,
  ) {
    const [program, prefix] = ctlCommand(ctl);
    this.child = new Deno.Command(program, {
      args: [...prefix, ...args],
      cwd: REPO_ROOT,
      stdin: stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      clearEnv: true,
      env: childEnv(env),
    }).spawn();
    if (stdin) this.stdinWriter = this.child.stdin.getWriter();
    const pump = async (stream: ReadableStream<Uint8Array>, parts: Uint8Array[]) => {
      for await (const chunk of stream) parts.push(chunk);
    };
    this.pumps = [
      pump(this.child.stdout, this.stdoutParts),
      pump(this.child.stderr, this.stderrParts),
    ];
    this.status = this.child.status;
  }

  stdout(): string {
    return decoder.decode(concat(this.stdoutParts));
  }

  stdoutBytes(): Uint8Array {
    return concat(this.stdoutParts);
  }

  stderr(): string {
    return decoder.decode(concat(this.stderrParts));
  }

  async write(text: string): Promise<void> {
    await this.stdinWriter!.write(encoder.encode(text));
  }

  async closeStdin(): Promise<void> {
    await this.stdinWriter!.close().catch(() => {});
  }

  kill(signal: Deno.Signal): void {
    try {
      this.child.kill(signal);
    } catch {
      // already exited
    }
  }

  /** Waits for the exit (SIGKILL after `ms`) and every byte of output. */
  async finish(ms = 10_000): Promise<{ stdout: string; stderr: string; end: string }> {
    const timer = setTimeout(() => this.kill("SIGKILL"), ms);
    const status = await this.status;
    clearTimeout(timer);
    await Promise.all(this.pumps);
    const end = status.signal ? `signal ${status.signal}` : `exit ${status.code}`;
    return { stdout: this.stdout(), stderr: normaliseLog(this.stderr()), end };
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

async function waitUntil(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** etcdctl against the member, for the writes a watch scenario makes (must succeed). */
async function etcdctl(member: Member, ...args: string[]): Promise<string> {
  const r = await runCtl("etcdctl", [`--endpoints=${member.endpoint}`, ...args]);
  assert.equal(r.code, 0, `etcdctl ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

async function currentRevision(member: Member): Promise<bigint> {
  const out = await etcdctl(member, "-w", "json", "get", "probe-revision");
  return BigInt(/"revision":(\d+)/.exec(out)![1]);
}

/**
 * What the server made etcdctl print in each member's scenarios, in order: the watch scenarios'
 * outcomes and the step scripts' results. A test that runs on etcd and on detcd compares the two,
 * so the server is under test too (both CLIs alike against a wrong detcd would pass otherwise).
 */
const serverTranscripts = new WeakMap<Member, unknown[]>();

/** Records an entry with the member's own port made generic (the other server has another). */
function record(member: Member, entry: unknown): void {
  const portFree = JSON.stringify(entry).replace(
    new RegExp(`:${member.clientPort}(?!\\d)`, "g"),
    ":<CLIENT_PORT>",
  );
  serverTranscripts.get(member)?.push(JSON.parse(portFree));
}

/**
 * Runs `fn` on a fresh member of `kind` (same name and advertised peer URL for every kind, so
 * cluster and member IDs agree) and returns what etcdctl printed there.
 */
async function withMember(kind: MemberKind, fn: (m: Member) => Promise<void>): Promise<unknown[]> {
  assertReference();
  const member = await startMember({
    kind,
    name: SHARED_MEMBER_NAME,
    advertisePeerUrl: SHARED_PEER_URL,
  });
  const transcript: unknown[] = [];
  serverTranscripts.set(member, transcript);
  try {
    await fn(member);
    return transcript;
  } finally {
    await member.stop();
  }
}

/** A watch scenario: both CLIs watch, the writes happen, both stop, outputs compared. */
interface WatchScenario {
  name: string;
  args: string[];
  env?: Record<string, string>;
  /** Lines for interactive mode, written before the writes; stdin is closed at the end. */
  stdinLines?: string[];
  /** Watchers each CLI creates on the server (default 1). */
  watchers?: number;
  /** Wait for the watchers to be registered before writing (no for --rev scenarios). */
  waitReady?: boolean;
  writes: (m: Member) => Promise<void>;
  /** True once a watcher printed everything expected. */
  done: (stdout: string) => boolean;
  /** How the watchers are stopped once done (default SIGINT); "exit" waits for them to end. */
  stop?: "SIGINT" | "SIGTERM" | "stdin" | "exit";
  /**
   * With stop "exit": the code both CLIs must exit with by themselves (within 10 s; a CLI still
   * running then is killed, and that fails the scenario even when both hung alike).
   */
  exitCode?: number;
  /** Optional expectation on etcdctl's own output (the guide's transcript). */
  expect?: string;
}

async function runWatchScenario(member: Member, s: WatchScenario): Promise<void> {
  const base = (await watcherCount(member)) ?? 0;
  const env = { ETCDCTL_ENDPOINTS: member.endpoint, ...s.env };
  const watchers = CTLS.map((ctl) => new Background(ctl, s.args, env, s.stdinLines !== undefined));
  try {
    if (s.stdinLines) {
      for (const w of watchers) await w.write(s.stdinLines.map((l) => l + "\n").join(""));
    }
    if (s.waitReady !== false) await waitWatchers(member, base + 2 * (s.watchers ?? 1));
    await s.writes(member);
    if (s.stop === "exit") {
      // The watchers end by themselves.
    } else {
      await Promise.race([
        waitUntil(`${s.name}: watch output`, () => watchers.every((w) => s.done(w.stdout()))),
        Promise.all(watchers.map((w) => w.status)),
      ]);
      await sleep(300);
      for (const w of watchers) {
        if (s.stop === "stdin") await w.closeStdin();
        else w.kill(s.stop ?? "SIGINT");
      }
    }
    const [a, b] = await Promise.all(watchers.map((w) => w.finish()));
    if (s.stop === "exit") {
      assert.ok(
        s.exitCode !== undefined,
        `${s.name}: a scenario that waits for the exit says its code`,
      );
      assert.equal(a.end, `exit ${s.exitCode}`, `${s.name}: how etcdctl ended\n${a.stderr}`);
      assert.equal(b.end, `exit ${s.exitCode}`, `${s.name}: how detcdctl ended\n${b.stderr}`);
    }
    assert.deepEqual(b, a, `${s.name}: detcdctl differs from etcdctl`);
    if (s.expect !== undefined) assert.equal(a.stdout, s.expect, `${s.name}: etcdctl output`);
    record(member, { scenario: s.name, ...a });
  } finally {
    for (const w of watchers) w.kill("SIGKILL");
    await Promise.all(watchers.map((w) => w.finish(1000).catch(() => {})));
    // The server drops a watcher when it sees its stream end, which can come after the process has
    // exited: the next scenario's base count must not include these watchers.
    await settleWatchers(member, base);
  }
}

/** Waits (best effort, up to 10 s) until the server's watcher count is back to `n` or below. */
async function settleWatchers(member: Member, n: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const count = await watcherCount(member);
    if (count === undefined || count <= n) return;
    await sleep(50);
  }
}

/**
 * One test per scenario: on etcd and then on detcd (each comparing detcdctl with etcdctl), and
 * what etcdctl printed on detcd compared with what it printed on etcd. With one server kind
 * (DETCD_WATCH_LEASE_SERVERS) only that kind runs, without the comparison across servers.
 */
function watchTest(name: string, fn: (m: Member) => Promise<void>): void {
  const both = SERVER_KINDS.includes("etcd") && SERVER_KINDS.includes("detcd");
  for (const kind of both ? ["etcd and detcd"] : SERVER_KINDS) {
    Deno.test({
      name: `${name} [${kind}]`,
      ignore: reference.ignore,
      sanitizeOps: false,
      sanitizeResources: false,
      fn: async () => {
        if (!both) return void await withMember(kind as MemberKind, fn);
        const onEtcd = await withMember("etcd", fn);
        const onDetcd = await withMember("detcd", fn);
        for (let i = 0; i < Math.max(onEtcd.length, onDetcd.length); i++) {
          assert.deepEqual(
            onDetcd[i],
            onEtcd[i],
            `entry ${i + 1}: etcdctl against detcd printed otherwise than against etcd 3.4.23`,
          );
        }
      },
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Watch: the guide's scenarios

watchTest("watch: the guide's single key (PUT, update, DELETE)", async (m) => {
  await runWatchScenario(m, {
    name: "watch foo",
    args: ["watch", "foo"],
    writes: async (m) => {
      await etcdctl(m, "put", "foo", "bar");
      await etcdctl(m, "put", "foo", "bar123");
      await etcdctl(m, "del", "foo");
    },
    done: (out) => out.includes("DELETE"),
    expect: "PUT\nfoo\nbar\nPUT\nfoo\nbar123\nDELETE\nfoo\n\n",
  });
});

watchTest("watch: the guide's prefix watch", async (m) => {
  await runWatchScenario(m, {
    name: "watch --prefix foo",
    args: ["watch", "--prefix", "foo"],
    writes: async (m) => {
      await etcdctl(m, "put", "foo1", "bar1");
      await etcdctl(m, "put", "foo2", "bar2");
      await etcdctl(m, "put", "other", "x");
      await etcdctl(m, "del", "foo1");
    },
    done: (out) => out.includes("DELETE"),
    expect: "PUT\nfoo1\nbar1\nPUT\nfoo2\nbar2\nDELETE\nfoo1\n\n",
  });
});

watchTest("watch: the guide's interactive mode (watch name, watch location)", async (m) => {
  await runWatchScenario(m, {
    name: "watch -i",
    args: ["watch", "-i"],
    stdinLines: ["watch name", "watch location"],
    watchers: 2,
    writes: async (m) => {
      await etcdctl(m, "put", "name", "cuiliang");
      await etcdctl(m, "del", "name");
      await etcdctl(m, "put", "location", "beijing");
    },
    done: (out) => out.includes("beijing"),
    stop: "stdin",
    expect: "PUT\nname\ncuiliang\nDELETE\nname\n\nPUT\nlocation\nbeijing\n",
  });
});

watchTest("watch: the guide's exec mode (watch name -- etcdctl get age)", async (m) => {
  await etcdctl(m, "put", "age", "30");
  await runWatchScenario(m, {
    name: "watch name -- etcdctl get age",
    args: ["watch", "name", "--", "etcdctl", "get", "age"],
    writes: async (m) => {
      await etcdctl(m, "put", "name", "Kevin");
    },
    done: (out) => out.includes("age\n30\n"),
    expect: "PUT\nname\nKevin\nage\n30\n",
  });
});

// ---------------------------------------------------------------------------------------------
// Watch: options, formats, exec environment, cancellation

watchTest("watch: --prev-kv, --rev and range_end in every output format", async (m) => {
  for (const format of ["simple", "json", "fields", "protobuf"]) {
    const rev = (await currentRevision(m)) + 1n;
    await runWatchScenario(m, {
      name: `-w ${format} watch --prev-kv`,
      args: ["-w", format, "watch", "--prev-kv", "--rev", String(rev), "k1", "k3"],
      writes: async (m) => {
        await etcdctl(m, "put", "k1", "v1");
        await etcdctl(m, "put", "k2", 'v\u00e9\n"x"');
        await etcdctl(m, "put", "k1", "v2");
        await etcdctl(m, "del", "k1", "k3");
        await etcdctl(m, "put", "k9", "end");
        await etcdctl(m, "put", "k2", "end");
      },
      done: (out) => out.includes(format === "json" ? "ZW5k" : "end"),
    });
  }
});

watchTest(
  "watch: -w table fails at the first event (exit 4), --hex prints escaped bytes",
  async (m) => {
    await runWatchScenario(m, {
      name: "-w table watch",
      args: ["-w", "table", "watch", "t"],
      writes: (m) => etcdctl(m, "put", "t", "1").then(() => {}),
      done: () => false,
      stop: "exit",
      exitCode: 4,
    });
    await runWatchScenario(m, {
      name: "--hex watch",
      args: ["--hex", "watch", "--prefix", "h"],
      writes: async (m) => {
        await etcdctl(m, "put", "h1", "\u00ff\u0001");
        await etcdctl(m, "put", "h2", "done");
      },
      done: (out) => out.includes("\\x68\\x32"),
    });
  },
);

watchTest(
  "watch: exec mode sets ETCD_WATCH_* and a failing command ends the watch (exit 1)",
  async (m) => {
    await runWatchScenario(m, {
      name: "watch -- sh env",
      args: [
        "watch",
        "--prefix",
        "e",
        "--",
        "sh",
        "-c",
        'env | grep ^ETCD_WATCH_ | sort; echo "args: $0"',
        "zero",
      ],
      writes: async (m) => {
        await etcdctl(m, "put", "e1", 'quote " and \u00e9');
        await etcdctl(m, "del", "e1");
        await etcdctl(m, "put", "e2", "done");
      },
      done: (out) => out.includes("done\nETCD") && (out.match(/args: zero/g) ?? []).length === 3,
    });
    for (const command of [["false"], ["no-such-command-here"], ["./no/such/file"]]) {
      await runWatchScenario(m, {
        name: `watch -- ${command.join(" ")}`,
        args: ["watch", "x", "--", ...command],
        writes: (m) => etcdctl(m, "put", "x", "1").then(() => {}),
        done: () => false,
        stop: "exit",
        exitCode: 1,
      });
    }
  },
);

watchTest("watch: ETCDCTL_WATCH_KEY and ETCDCTL_WATCH_RANGE_END", async (m) => {
  await runWatchScenario(m, {
    name: "ETCDCTL_WATCH_KEY watch",
    args: ["watch"],
    env: { ETCDCTL_WATCH_KEY: "a", ETCDCTL_WATCH_RANGE_END: "c" },
    writes: async (m) => {
      await etcdctl(m, "put", "b", "1");
      await etcdctl(m, "put", "c", "2");
      await etcdctl(m, "put", "a", "3");
    },
    done: (out) => out.includes("3\n"),
  });
  await runWatchScenario(m, {
    name: "ETCDCTL_WATCH_KEY watch -- echo",
    args: ["watch", "--", "echo", "ran"],
    env: { ETCDCTL_WATCH_KEY: "a" },
    writes: (m) => etcdctl(m, "put", "a", "4").then(() => {}),
    done: (out) => out.includes("ran"),
  });
});

watchTest(
  "watch: a compacted start revision is canceled (exit 5; -w table exit 4) in every format",
  async (m) => {
    await etcdctl(m, "put", "c", "1");
    await etcdctl(m, "put", "c", "2");
    const rev = await currentRevision(m);
    await etcdctl(m, "compaction", String(rev));
    for (const format of ["simple", "json", "fields", "protobuf", "table"]) {
      await runWatchScenario(m, {
        name: `-w ${format} watch --rev 1`,
        args: ["-w", format, "watch", "--rev", "1", "c"],
        waitReady: false,
        writes: () => Promise.resolve(),
        done: () => false,
        stop: "exit",
        // table is refused at the first response, before the cancel is looked at.
        exitCode: format === "table" ? 4 : 5,
      });
    }
  },
);

watchTest("watch: interactive mode's errors, progress and exec lines", async (m) => {
  await runWatchScenario(m, {
    name: "watch -i errors",
    args: ["watch", "-i"],
    stdinLines: [
      "",
      "foo",
      "watch",
      "watch a b --prefix",
      "watch --prev-kv p -- echo hi",
      "watch p2",
      "progress",
    ],
    watchers: 2,
    writes: (m) => etcdctl(m, "put", "p", "v").then(() => {}),
    done: (out) => out.includes("hi\n"),
    stop: "stdin",
  });
  for (const line of ["watch a --", "watch --bad a", "watch --rev x a"]) {
    await runWatchScenario(m, {
      name: `watch -i: ${line}`,
      args: ["watch", "-i"],
      stdinLines: [line],
      waitReady: false,
      writes: () => Promise.resolve(),
      done: () => false,
      stop: "exit",
      exitCode: 128,
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Watch and lease errors that need no background process

interface Step {
  args: string[];
  env?: Record<string, string>;
  /** Output that moves with time (a remaining TTL): normalised. */
  ttl?: boolean;
}

interface StepResult {
  args: string;
  stdout: string;
  stderr: string;
  code: number;
}

/** A pseudo-step: revoke every lease (with etcdctl), so that both runs start alike. */
const REVOKE_ALL = "<revoke all leases>";

async function revokeAll(member: Member): Promise<void> {
  const list = await etcdctl(member, "lease", "list");
  for (const id of list.split("\n").slice(1).filter((l) => l !== "")) {
    await etcdctl(member, "lease", "revoke", id);
  }
}

/** Runs steps with one CLI; `{L}` in an argument is the lease most recently granted. */
async function runSteps(ctl: CtlKind, member: Member, steps: Step[]): Promise<StepResult[]> {
  const results: StepResult[] = [];
  const leases: string[] = [];
  for (const step of steps) {
    if (step.args[0] === REVOKE_ALL) {
      await revokeAll(member);
      continue;
    }
    const args = step.args.map((a) => a.replaceAll("{L}", leases[leases.length - 1] ?? "0"));
    const r = await runCtl(ctl, args, {
      env: { ETCDCTL_ENDPOINTS: member.endpoint, ...step.env },
    });
    // A CLI that hangs fails the step, even if the other CLI hangs the same way.
    assert.ok(!r.timedOut, `${ctl} ${args.join(" ")} did not end:\n${r.stderr}`);
    if (step.args.includes("grant") && r.code === 0) {
      const hex = /^lease ([0-9a-f]{16}) granted/m.exec(r.stdout)?.[1];
      const dec = /"ID":(\d+)/.exec(r.stdout)?.[1] ?? /^"ID" : (\d+)$/m.exec(r.stdout)?.[1];
      if (hex) leases.push(hex);
      else if (dec) leases.push(BigInt(dec).toString(16).padStart(16, "0"));
    }
    let stdout = r.stdout;
    if (args.includes("protobuf") && r.stdoutBytes.length > 0 && r.code === 0) {
      // A lease result in protobuf is the header alone: compare it decoded, revision aside.
      const header = fromBinary(ResponseHeaderSchema, r.stdoutBytes);
      header.revision = 0n;
      stdout = `<header ${toJsonString(ResponseHeaderSchema, header)}>`;
    }
    results.push({ args: args.join(" "), stdout, stderr: normaliseLog(r.stderr), code: r.code });
  }
  // Lease IDs differ between runs: replace each (hex and decimal) by its order of grant.
  const normalise = (text: string) => {
    let out = text;
    leases.forEach((hex, i) => {
      out = out.replaceAll(hex, `<L${i + 1}>`).replaceAll(
        BigInt("0x" + hex).toString(),
        `<L${i + 1}>`,
      );
    });
    return out.replace(/"revision":\d+/g, '"revision":<REV>').replace(
      / revision:\d+ /g,
      " revision:<REV> ",
    ).replace(
      /"Revision" : \d+/g,
      '"Revision" : <REV>',
    );
  };
  const ran = steps.filter((st) => st.args[0] !== REVOKE_ALL);
  return results.map((r, i) => {
    let stdout = normalise(r.stdout);
    if (ran[i].ttl) {
      stdout = stdout.replace(/remaining\(\d+s\)/g, "remaining(<TTL>s)").replace(
        /"ttl":\d+/g,
        '"ttl":<TTL>',
      ).replace(/"TTL" : \d+/g, '"TTL" : <TTL>');
    }
    return { ...r, args: normalise(r.args), stdout, stderr: normalise(r.stderr) };
  });
}

async function compareSteps(member: Member, steps: Step[]): Promise<StepResult[]> {
  const a = await runSteps("etcdctl", member, [{ args: [REVOKE_ALL] }, ...steps]);
  const b = await runSteps("detcdctl", member, [{ args: [REVOKE_ALL] }, ...steps]);
  for (let i = 0; i < a.length; i++) {
    assert.deepEqual(b[i], a[i], `step ${i + 1} (${a[i].args}): detcdctl differs from etcdctl`);
  }
  for (const result of a) record(member, result);
  return a;
}

watchTest("watch: argument errors and their exit codes", async (m) => {
  await compareSteps(m, [
    { args: ["watch"] },
    { args: ["watch", "--prefix", "a", "b"] },
    { args: ["watch", "a", "--"] },
    { args: ["watch", "--progress-notify", "a"] },
    { args: ["watch", "--rev", "abc", "x"] },
    { args: ["watch", "foo"], env: { ETCDCTL_WATCH_KEY: "foo" } },
    { args: ["watch", "foo"], env: { ETCDCTL_WATCH_RANGE_END: "z" } },
    { args: ["watch", "foo", "--", "echo", "1"], env: { ETCDCTL_WATCH_KEY: "foo" } },
    { args: ["watch", "--", "echo", "1"] },
    { args: ["watch", "-h"] },
  ]);
});

// ---------------------------------------------------------------------------------------------
// Leases

watchTest(
  "lease: the guide's grant, put --lease, expiry, list, timetolive and revoke",
  async (m) => {
    const out = await compareSteps(m, [
      { args: ["lease", "grant", "60"] },
      { args: ["put", "--lease={L}", "foo", "bar"] },
      { args: ["get", "foo"] },
      { args: ["lease", "revoke", "{L}"] },
      { args: ["get", "foo"] },
      { args: ["lease", "grant", "50"] },
      { args: ["put", "--lease={L}", "name", "cuiliang"] },
      { args: ["lease", "list"] },
      { args: ["lease", "timetolive", "--keys", "{L}"], ttl: true },
      { args: ["lease", "timetolive", "{L}"], ttl: true },
      { args: ["lease", "revoke", "{L}"] },
      { args: ["lease", "grant", "600"] },
      { args: ["put", "--lease={L}", "foo", "bar"] },
      { args: ["lease", "timetolive", "--keys", "{L}"], ttl: true },
      { args: ["lease", "revoke", "{L}"] },
      { args: ["lease", "timetolive", "--keys", "{L}"] },
      { args: ["get", "foo"] },
      { args: ["lease", "list"] },
    ]);
    assert.equal(out[0].stdout, "lease <L1> granted with TTL(60s)\n");
    assert.equal(out[7].stdout, "found 1 leases\n<L2>\n");
    assert.equal(
      out[8].stdout,
      "lease <L2> granted with TTL(50s), remaining(<TTL>s), attached keys([name])\n",
    );
    assert.equal(out[15].stdout, "lease <L3> already expired\n");
    assert.equal(out[16].stdout, "");
  },
);

watchTest("lease: a key attached to a short lease is gone after the TTL", async (m) => {
  for (const ctl of CTLS) {
    const env = { env: { ETCDCTL_ENDPOINTS: m.endpoint } };
    const grant = await runCtl(ctl, ["lease", "grant", "3"], env);
    const id = /^lease ([0-9a-f]{16}) granted with TTL\(3s\)\n$/.exec(grant.stdout)![1];
    assert.equal((await runCtl(ctl, ["put", `--lease=${id}`, "short", "v"], env)).stdout, "OK\n");
    assert.equal((await runCtl(ctl, ["get", "short"], env)).stdout, "short\nv\n");
    await sleep(5000);
    assert.equal((await runCtl(ctl, ["get", "short"], env)).stdout, "", `${ctl}: key expired`);
    assert.equal(
      (await runCtl(ctl, ["lease", "timetolive", id], env)).stdout,
      `lease ${id} already expired\n`,
    );
  }
});

watchTest(
  "lease: every output format of grant, timetolive, list, keep-alive --once, revoke",
  async (m) => {
    const steps: Step[] = [];
    for (const format of ["simple", "json", "fields", "protobuf", "table"]) {
      steps.push(
        { args: ["-w", format, "lease", "grant", "600"] },
        { args: ["lease", "grant", "600"] },
        { args: ["put", "--lease={L}", "zoo", "1"] },
        // etcd lists attached keys in map order: one key keeps the comparison exact.
        { args: ["-w", format, "lease", "timetolive", "{L}"], ttl: true },
        { args: ["-w", format, "lease", "timetolive", "--keys", "{L}"], ttl: true },
        { args: ["-w", format, "lease", "keep-alive", "--once", "{L}"] },
        { args: ["-w", format, "lease", "timetolive", "123abc"] },
        { args: ["-w", format, "lease", "list"] },
        { args: ["-w", format, "lease", "revoke", "{L}"] },
        { args: ["-w", format, "lease", "list"] },
      );
    }
    await compareSteps(m, steps);
  },
);

watchTest("lease: errors, bad IDs and exit codes", async (m) => {
  await compareSteps(m, [
    { args: ["lease", "grant"] },
    { args: ["lease", "grant", "1", "2"] },
    { args: ["lease", "grant", "abc"] },
    { args: ["lease", "grant", "-5"] },
    { args: ["lease", "grant", "99999999999"] },
    { args: ["lease", "revoke"] },
    { args: ["lease", "revoke", "zz"] },
    { args: ["lease", "revoke", "1234"] },
    { args: ["-w", "json", "lease", "revoke", "1234"] },
    { args: ["lease", "timetolive"] },
    { args: ["lease", "timetolive", "xyz"] },
    { args: ["lease", "timetolive", "1234"] },
    { args: ["-w", "json", "lease", "timetolive", "--keys", "1234"] },
    { args: ["lease", "timetolive", "--", "-1"] },
    { args: ["lease", "keep-alive"] },
    { args: ["lease", "keep-alive", "ffffffffffffffffff"] },
    { args: ["lease", "keep-alive", "--once", "1234"] },
    { args: ["-w", "json", "lease", "keep-alive", "--once", "1234"] },
    { args: ["lease", "keep-alive", "1234"] },
    { args: ["-w", "json", "lease", "keep-alive", "1234"] },
    { args: ["lease", "grant", "600"] },
    { args: ["-w", "table", "lease", "keep-alive", "{L}"] },
    { args: ["-w", "protobuf", "lease", "keep-alive", "--once", "{L}"] },
    { args: ["put", "--lease=1234", "k", "v"] },
    { args: ["put", "--lease=zz", "k", "v"] },
    { args: ["lease"] },
    { args: ["lease", "keep-alive", "-h"] },
    { args: ["lease", "timetolive", "--help"] },
  ]);
});

watchTest("lease: keep-alive renews until the lease is revoked, then says so", async (m) => {
  for (const format of ["simple", "json", "fields"]) {
    const started: Background[] = [];
    try {
      const ids: string[] = [];
      for (const ctl of CTLS) {
        const grant = await etcdctl(m, "lease", "grant", "6");
        const id = /^lease ([0-9a-f]{16})/.exec(grant)![1];
        ids.push(id);
        started.push(
          new Background(ctl, ["-w", format, "lease", "keep-alive", id], {
            ETCDCTL_ENDPOINTS: m.endpoint,
          }, false),
        );
      }
      await waitUntil("first keep-alive", () => started.every((w) => w.stdout().length > 0));
      for (const id of ids) await etcdctl(m, "lease", "revoke", id);
      const [a, b] = await Promise.all(started.map((w) => w.finish(10_000)));
      const norm = (s: string, id: string) =>
        s.replaceAll(id, "<L>").replaceAll(BigInt("0x" + id).toString(), "<L>").replace(
          /"revision":\d+/g,
          '"revision":<REV>',
        ).replace(/"Revision" : \d+/g, '"Revision" : <REV>');
      assert.deepEqual(
        { ...b, stdout: norm(b.stdout, ids[1]) },
        { ...a, stdout: norm(a.stdout, ids[0]) },
        `-w ${format} lease keep-alive`,
      );
      if (format === "simple") {
        assert.equal(
          a.stdout.split("\n").at(-2),
          `lease ${ids[0]} expired or revoked.`,
        );
      }
    } finally {
      for (const w of started) w.kill("SIGKILL");
    }
  }
});

watchTest(
  "lease: keep-alive stopped by SIGINT, and a revoke seen by a watcher as DELETE",
  async (m) => {
    const grant = await etcdctl(m, "lease", "grant", "60");
    const id = /^lease ([0-9a-f]{16})/.exec(grant)![1];
    await etcdctl(m, "put", `--lease=${id}`, "leased1", "a");
    await etcdctl(m, "put", `--lease=${id}`, "leased2", "b");
    const keepers = CTLS.map((ctl) =>
      new Background(ctl, ["lease", "keep-alive", id], { ETCDCTL_ENDPOINTS: m.endpoint }, false)
    );
    try {
      await waitUntil("keep-alive", () => keepers.every((w) => w.stdout().includes("keepalived")));
      for (const w of keepers) w.kill("SIGINT");
      const [a, b] = await Promise.all(keepers.map((w) => w.finish()));
      assert.deepEqual(b, a);
      assert.equal(a.stdout, `lease ${id} keepalived with TTL(60)\n`);
    } finally {
      for (const w of keepers) w.kill("SIGKILL");
    }
    await runWatchScenario(m, {
      name: "watch --prefix leased, then lease revoke",
      args: ["watch", "--prefix", "leased"],
      writes: (m) => etcdctl(m, "lease", "revoke", id).then(() => {}),
      done: (out) => (out.match(/DELETE/g) ?? []).length === 2,
    });
  },
);
