/**
 * `--quota-backend-bytes` and NOSPACE, side by side on etcd 3.4.23 and detcd, with etcdctl 3.4.23
 * as the client: puts of 64 KiB fill a 1 MiB quota; the put that would pass it fails with etcd's
 * error and raises NOSPACE (`alarm list`, `endpoint status` errors); every later put is refused
 * while reads and deletes work; after compaction and `defrag` the alarm still holds until
 * `alarm disarm`, and then writes resume. The transcripts (member IDs and ports made generic) must
 * be the same; only the number of puts that fit may differ (bbolt pages against log records).
 * This is the NOSPACE drill of etcd #16779 and #9992 (compaction, defragment and a manual disarm
 * to recover), on one member and on three.
 */
import assert from "node:assert/strict";
import {
  assertReference,
  type Member,
  type MemberKind,
  requireReference,
  runCtl,
  startMember,
} from "./harness.ts";
import { startCluster } from "./cluster_harness.ts";

const reference = requireReference();
const QUOTA = 1024 * 1024;
const VALUE = "q".repeat(64 * 1024);

async function ctl(member: Member, args: string[], stdin?: string) {
  const r = await runCtl("etcdctl", [`--endpoints=${member.endpoint}`, ...args], { stdin });
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

/** The NOSPACE story on one member: its transcript, and how many puts fitted. */
async function story(kind: MemberKind): Promise<{ lines: string[]; fitted: number }> {
  const member = await startMember({ kind, extraArgs: ["--quota-backend-bytes", String(QUOTA)] });
  const lines: string[] = [];
  const step = async (args: string[]) => {
    const r = await ctl(member, args);
    lines.push(`$ etcdctl ${args.join(" ")}\nexit ${r.code}\n${r.stdout}${r.stderr}`);
    return r;
  };
  try {
    let fitted = 0;
    let failure = null;
    for (let i = 0; i < 64 && failure === null; i++) {
      const r = await ctl(member, ["put", `k${i}`], VALUE);
      if (r.code === 0) fitted++;
      else failure = r;
    }
    assert.ok(failure !== null, `${kind}: the quota never stopped a put`);
    lines.push(`the put past the quota: exit ${failure.code}\n${failure.stdout}${failure.stderr}`);
    await step(["alarm", "list"]);
    await step(["put", "small", "1"]);
    await step(["get", "k0", "--print-value-only", "--hex=false", "-w", "simple"]).then((r) => {
      assert.equal(r.stdout, `${VALUE}\n`, `${kind}: reads go on`);
      lines.pop();
    });
    const deleted = await ctl(member, ["del", "k", "--prefix"]);
    // Every put that fitted is there, and perhaps the one refused: etcd's quota applier applies a
    // put that passed the check before Raft but not the one at apply, then answers NOSPACE (which
    // of the two catches the last put follows when bbolt last committed; detcd applies as etcd).
    assert.ok(
      [`${fitted}\n`, `${fitted + 1}\n`].includes(deleted.stdout),
      `${kind}: every put that fitted is there (${fitted} fitted, deleted ${deleted.stdout})`,
    );
    const rev = JSON.parse((await ctl(member, ["get", "none", "-w", "json"])).stdout).header
      .revision;
    const compacted = await ctl(member, ["compaction", String(rev)]);
    lines.push(`compaction: exit ${compacted.code}`);
    const defrag = await ctl(member, ["defrag"]);
    lines.push(`defrag: exit ${defrag.code}`);
    await step(["put", "small", "1"]);
    await step(["alarm", "disarm"]);
    await step(["put", "small", "1"]);
    await step(["alarm", "list"]);
    const out = lines.map((l) =>
      l.replace(/memberID:\d+/g, "memberID:MEMBER").replaceAll(String(member.clientPort), "PORT")
        // etcdctl's own retry warnings: a timestamp and a client id of their own each time.
        .replace(/"ts":"[^"]*"/g, '"ts":"TS"').replace(/client-[0-9a-f-]+/g, "client-ID")
    );
    return { lines: out, fitted };
  } finally {
    await member.stop();
  }
}

Deno.test({
  name: "--quota-backend-bytes: NOSPACE raised, refused, cleared by disarm, as etcd 3.4.23",
  ignore: reference.ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    assertReference();
    const etcd = await story("etcd");
    const detcd = await story("detcd");
    assert.deepEqual(detcd.lines, etcd.lines);
    assert.match(etcd.lines[0], /^the put past the quota: exit 1\n/);
    assert.match(etcd.lines[0], /code = ResourceExhausted desc = etcdserver: mvcc: database space/);
    assert.match(etcd.lines[0], /\nError: etcdserver: mvcc: database space exceeded\n$/);
    assert.equal(etcd.lines[1], "$ etcdctl alarm list\nexit 0\nmemberID:MEMBER alarm:NOSPACE \n");
    // A 1 MiB quota holds about fifteen 64 KiB values on either (etcd's count follows when bbolt
    // commits and grows its file, which a loaded machine shifts by a few).
    for (const [kind, { fitted }] of [["etcd", etcd], ["detcd", detcd]] as const) {
      assert.ok(fitted >= 8 && fitted <= 24, `${kind}: ${fitted} puts fitted`);
    }
  },
});

/** The NOSPACE story on a 3-member cluster, through every member: normalized transcript lines. */
async function clusterStory(kind: MemberKind): Promise<string[]> {
  const cluster = await startCluster({
    kind,
    size: 3,
    extraArgs: ["--quota-backend-bytes", String(QUOTA)],
  });
  const lines: string[] = [];
  const normalize = (text: string) =>
    text.replace(/memberID:\d+/g, "memberID:MEMBER")
      .replace(/"ts":"[^"]*"/g, '"ts":"TS"').replace(/client-[0-9a-f-]+/g, "client-ID")
      .replace(/127\.0\.0\.1:\d+/g, "127.0.0.1:PORT");
  const at = async (member: Member, args: string[], stdin?: string) => {
    const r = await ctl(member, args, stdin);
    return normalize(`$ etcdctl ${args.join(" ")}\nexit ${r.code}\n${r.stdout}${r.stderr}`);
  };
  try {
    await cluster.waitForLeader();
    const [first] = cluster.members;
    let refused = null;
    for (let i = 0; i < 64 && refused === null; i++) {
      const r = await ctl(first, ["put", `k${i}`], VALUE);
      if (r.code !== 0) refused = r.stderr;
    }
    assert.ok(refused !== null, `${kind}: the quota never stopped a put`);
    // The alarm is the cluster's: each member refuses a put and lists it (same lines everywhere).
    for (const member of cluster.members) {
      lines.push(await at(member, ["put", "small", "1"]));
      const list = await ctl(member, ["alarm", "list"]);
      lines.push(`alarm list: exit ${list.code}\n${
        [...new Set(normalize(list.stdout).split("\n"))]
          .join("\n")
      }`);
    }
    assert.equal((await ctl(first, ["del", "k", "--prefix"])).code, 0);
    const rev = JSON.parse((await ctl(first, ["get", "none", "-w", "json"])).stdout).header
      .revision;
    assert.equal((await ctl(first, ["compaction", String(rev)])).code, 0);
    const all = `--endpoints=${cluster.endpoints()}`;
    const defrag = await runCtl("etcdctl", [all, "defrag"]);
    lines.push(`defrag: exit ${defrag.code}`);
    const disarm = await runCtl("etcdctl", [all, "alarm", "disarm"]);
    lines.push(`disarm: exit ${disarm.code}`);
    for (const member of cluster.members) {
      lines.push(await at(member, ["put", `after-${cluster.members.indexOf(member)}`, "1"]));
      lines.push(await at(member, ["alarm", "list"]));
    }
    return lines;
  } finally {
    await cluster.stop();
  }
}

Deno.test({
  name:
    "--quota-backend-bytes on 3 members: one member's NOSPACE refuses puts on all, a disarm clears it, as etcd 3.4.23",
  ignore: reference.ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    assertReference();
    const etcd = await clusterStory("etcd");
    const detcd = await clusterStory("detcd");
    assert.deepEqual(detcd, etcd);
    assert.match(etcd[0], /\nError: etcdserver: mvcc: database space exceeded\n$/);
    assert.match(etcd[1], /^alarm list: exit 0\nmemberID:MEMBER alarm:NOSPACE \n/);
    assert.match(etcd.at(-2)!, /^\$ etcdctl put after-2 1\nexit 0\nOK\n$/);
  },
});
