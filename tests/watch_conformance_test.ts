/**
 * Watch, side by side: real etcdctl 3.4.23 `watch` against a real etcd 3.4.23 member and against a
 * detcd member (same name and advertised peer URL, so the same IDs), outputs compared byte for byte
 * (simple and json). The scenarios are the user's guide watch chapter (监听命令: one key, --prefix,
 * -i) plus range_end, --rev, --prev-kv, and a compacted --rev. Then a 3-member detcd cluster:
 * watchers on a follower see the same events and revisions as on the leader, and a watcher that
 * reconnects from its last revision + 1 misses nothing and sees nothing twice (#15271).
 */
import assert from "node:assert/strict";
import { startCluster } from "./cluster_harness.ts";
import {
  assertReference,
  KvClient,
  type Member,
  type MemberKind,
  requireDetcd,
  requireReference,
  runCtl,
  SHARED_MEMBER_NAME,
  SHARED_PEER_URL,
  startMember,
  tlsCtlEnv,
} from "./harness.ts";

const reference = requireReference();
const detcd = requireDetcd();
const ignore = reference.ignore || detcd.ignore;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/**
 * Runs `etcdctl watch ARGS` until it printed `lines` lines (or 15 s passed), running `during`
 * once the watch had time to be created; returns stdout.
 */
async function watchOutput(
  member: Member,
  args: string[],
  lines: number,
  during: () => Promise<void> = async () => {},
  stdin?: string,
  settleMs = 1000,
): Promise<string> {
  const child = new Deno.Command("etcdctl", {
    args: [`--endpoints=${member.endpoint}`, "watch", ...args],
    env: tlsCtlEnv(),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  if (stdin !== undefined) await writer.write(encoder.encode(stdin));
  let out = "";
  let err = "";
  const reading = (async () => {
    for await (const chunk of child.stdout) {
      out += decoder.decode(chunk, { stream: true });
      if (out.split("\n").length - 1 >= lines) break;
    }
  })();
  const errReading = (async () => {
    for await (const chunk of child.stderr) err += decoder.decode(chunk, { stream: true });
  })();
  await new Promise((r) => setTimeout(r, settleMs));
  await during();
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([reading, new Promise((r) => (timer = setTimeout(r, 15_000)))]);
  clearTimeout(timer);
  try {
    child.kill("SIGKILL"); // before stdin closes: `watch -i` would report the EOF
  } catch {
    // exited
  }
  await child.status;
  await writer.close().catch(() => {});
  await reading.catch(() => {});
  await errReading.catch(() => {});
  return out + (err ? `<stderr>${err}` : "");
}

async function ctl(member: Member, ...args: string[]): Promise<string> {
  const r = await runCtl("etcdctl", [`--endpoints=${member.endpoint}`, ...args]);
  return r.stdout + r.stderr;
}

interface Scenario {
  name: string;
  /** Writes before the watch starts. */
  before?: string[][];
  args: string[];
  lines: number;
  /** Writes once the watch runs. */
  during?: string[][];
  stdin?: string;
  /**
   * What etcd's output must end with (or, for JSON, contain in its last line): the event of a
   * write made after every write the watch must not see, so that reading stopped after it.
   */
  sentinel?: string;
}

const scenarios: Scenario[] = [
  {
    name: "guide: watch one key (put, update, delete); fox is not seen",
    args: ["foo"],
    // Read until the sentinel: had `fox` been sent, it would stand where the sentinel's lines are.
    lines: 12,
    during: [
      ["put", "foo", "bar"],
      ["put", "foo", "bar123"],
      ["del", "foo"],
      ["put", "fox", "x"],
      ["put", "foo", "sentinel"],
    ],
    sentinel: "PUT\nfoo\nsentinel\n",
  },
  {
    name: "guide: watch --prefix foo; fo is not seen",
    args: ["--prefix", "foo"],
    lines: 12,
    during: [
      ["put", "foo1", "bar1"],
      ["put", "foo2", "bar2"],
      ["del", "foo1"],
      ["put", "fo", "x"],
      ["put", "foo-end", "sentinel"],
    ],
    sentinel: "PUT\nfoo-end\nsentinel\n",
  },
  {
    name: "guide: watch -i (watch name, watch location)",
    args: ["-i"],
    lines: 9,
    stdin: "watch name\nwatch location\n",
    during: [["put", "name", "cuiliang"], ["del", "name"], ["put", "location", "beijing"]],
  },
  {
    name: "watch a range [a, c) in json; c is not seen",
    args: ["a", "c", "-w", "json"],
    // b=4 comes after c=3: had c been sent, the third line would be c's.
    lines: 3,
    during: [["put", "a", "1"], ["put", "b", "2"], ["put", "c", "3"], ["put", "b", "4"]],
    sentinel: '"value":"NA=="',
  },
  {
    name: "watch --rev replays history, with --prev-kv",
    before: [["put", "k", "v1"], ["put", "k", "v2"], ["del", "k"], ["put", "k", "v3"]],
    args: ["k", "--rev=2", "--prev-kv"],
    // The replay (16 lines) and the v4 event with its prev_kv (5): stopping earlier would cut
    // the last event wherever a pipe read happens to split it.
    lines: 21,
    during: [["put", "k", "v4"]],
  },
  {
    name: "watch --prefix --rev in json, with a txn of several keys in one revision",
    before: [["put", "p/a", "1"], ["put", "p/b", "2"]],
    args: ["--prefix", "p/", "--rev=1", "-w", "json"],
    lines: 2,
    during: [["txn"]],
  },
  {
    name: "watch from a compacted revision is canceled",
    before: [["put", "k", "v1"], ["put", "k", "v2"], ["put", "k", "v3"], ["compact", "3"]],
    args: ["k", "--rev=2"],
    lines: 1,
  },
];

async function runScenario(kind: MemberKind, s: Scenario): Promise<string> {
  const member = await startMember({
    kind,
    name: SHARED_MEMBER_NAME,
    advertisePeerUrl: SHARED_PEER_URL,
  });
  try {
    let log = "";
    for (const step of s.before ?? []) log += await ctl(member, ...step);
    const out = await watchOutput(
      member,
      s.args,
      s.lines,
      async () => {
        for (const step of s.during ?? []) {
          if (step[0] === "txn") {
            const r = await runCtl("etcdctl", [`--endpoints=${member.endpoint}`, "txn"], {
              stdin: "\nput p/a 10\nput p/c 30\ndel p/b\n\n\n",
            });
            log += r.stdout + r.stderr;
          } else {
            log += await ctl(member, ...step);
          }
        }
      },
      s.stdin,
      s.stdin === undefined ? 1000 : 3000,
    );
    return `${log}\n----\n${out}`;
  } finally {
    await member.stop();
  }
}

for (const s of scenarios) {
  Deno.test({
    name: `etcdctl watch, etcd vs detcd: ${s.name}`,
    ignore,
    async fn() {
      assertReference();
      const [etcd, ours] = await Promise.all([runScenario("etcd", s), runScenario("detcd", s)]);
      if (s.sentinel !== undefined) {
        const lastLine = etcd.trimEnd().split("\n").at(-1)!;
        assert.ok(
          etcd.endsWith(s.sentinel) || lastLine.includes(s.sentinel),
          `the reference's watch output does not end with the sentinel:\n${etcd}`,
        );
      }
      assert.equal(ours, etcd);
    },
  });
}

/** Events of a `-w json` watch output as "TYPE key=value@rev" (type 0 is omitted in JSON). */
function jsonEvents(out: string): string[] {
  const events: string[] = [];
  for (const line of out.split("\n")) {
    if (!line.startsWith("{")) continue;
    const r = JSON.parse(line) as {
      Events?: { type?: number; kv: { key: string; value?: string; mod_revision: number } }[];
    };
    for (const e of r.Events ?? []) {
      const key = atob(e.kv.key);
      const value = e.kv.value ? atob(e.kv.value) : "";
      events.push(`${e.type === 1 ? "DELETE" : "PUT"} ${key}=${value}@${e.kv.mod_revision}`);
    }
  }
  return events;
}

Deno.test({
  name: "3 detcd members: a follower's watchers see the leader's events and revisions; " +
    "#15271 a watcher resuming from its last revision + 1 misses nothing and repeats nothing",
  ignore: detcd.ignore,
  async fn() {
    const cluster = await startCluster({ kind: "detcd", size: 3 });
    try {
      const leaderId = await cluster.waitForLeader();
      const ids = await Promise.all(cluster.members.map(async (m) => {
        const c = new KvClient(m.endpoint);
        try {
          return (await c.status()).header!.memberId;
        } finally {
          c.close();
        }
      }));
      const leader = cluster.members[ids.indexOf(leaderId)];
      const follower = cluster.members.find((m) => m !== leader)!;
      const writer = new KvClient(leader.endpoint);
      const total = 40;
      try {
        const writes = async () => {
          for (let i = 0; i < total; i++) {
            await writer.put(`w/${i % 5}`, `v${i}`);
          }
        };
        const start = Number((await writer.status()).header!.revision) + 1;
        const args = ["--prefix", "w/", `--rev=${start}`, "-w", "json"];
        const [onLeader, onFollower] = await Promise.all([
          watchOutput(leader, args, total, writes), // one JSON line per revision
          watchOutput(follower, args, total),
        ]);
        const a = jsonEvents(onLeader);
        const b = jsonEvents(onFollower);
        assert.equal(a.length, total, onLeader);
        assert.deepEqual(b, a);

        // Resume: watch the first half, then reconnect from the last revision seen + 1.
        const firstRev = Number(a[0].split("@")[1]);
        const half = jsonEvents(
          await watchOutput(follower, ["--prefix", "w/", `--rev=${firstRev}`, "-w", "json"], 20),
        ).slice(0, 20);
        const last = Number(half[half.length - 1].split("@")[1]);
        const rest = jsonEvents(
          await watchOutput(
            cluster.members.find((m) => m !== leader && m !== follower)!,
            ["--prefix", "w/", `--rev=${last + 1}`, "-w", "json"],
            total - 20,
          ),
        );
        assert.deepEqual([...half, ...rest], a);
      } finally {
        writer.close();
      }
    } finally {
      await cluster.stop();
    }
  },
});
