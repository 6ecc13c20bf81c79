/**
 * `lock` and `elect`: detcdctl against etcdctl 3.4.23, each against etcd 3.4.23 and detcd. The
 * same scenario runs with each CLI on a fresh member; the transcripts (stdout, stderr, exit
 * status of every process, normalised for lease IDs and revisions) must be equal, and the
 * scenario checks the semantics itself (mutual exclusion, hand-over on SIGINT, session expiry).
 */
import assert from "node:assert/strict";
import {
  assertReference,
  type CtlKind,
  type Member,
  type MemberKind,
  requireReference,
  runCtl,
  sleep,
  startMember,
} from "./harness.ts";
import { Proc } from "./cli_process.ts";

const reference = requireReference();

/** Lease IDs (as hex in keys, as decimals in JSON) and revisions vary between runs. */
function normalise(text: string): string {
  return text
    .replace(/\/[0-9a-f]{6,16}\b/g, "/<LEASE>")
    .replace(/"key":"[^"]*"/g, '"key":<KEY>')
    .replace(
      /"(lease|revision|create_revision|mod_revision|cluster_id|member_id)":\d+/g,
      '"$1":<N>',
    )
    .replace(/rev=\d+/g, "rev=<N>");
}

type Scenario = (ctl: CtlKind, member: Member) => Promise<string[]>;

/** Runs a scenario with etcdctl and with detcdctl, each on a fresh member of `kind`. */
async function compareCtls(kind: MemberKind, scenario: Scenario): Promise<string[]> {
  const runs: string[][] = [];
  for (const ctl of ["etcdctl", "detcdctl"] as CtlKind[]) {
    const member = await startMember({ kind });
    try {
      runs.push((await scenario(ctl, member)).map(normalise));
    } finally {
      await member.stop();
    }
  }
  assert.deepEqual(runs[1], runs[0], "detcdctl differs from etcdctl");
  return runs[0];
}

function cliTest(name: string, scenario: Scenario, check: (transcript: string[]) => void): void {
  for (const kind of ["etcd", "detcd"] as MemberKind[]) {
    Deno.test({
      name: `${name} [${kind}]`,
      ignore: reference.ignore,
      sanitizeOps: false,
      sanitizeResources: false,
      fn: async () => {
        assertReference();
        const transcript = await compareCtls(kind, scenario);
        check(transcript);
        if (kind === "detcd") {
          // The server is under test too: etcdctl on detcd prints what it prints on etcd 3.4.23.
          const member = await startMember({ kind: "etcd" });
          try {
            const onEtcd = (await scenario("etcdctl", member)).map(normalise);
            assert.deepEqual(transcript, onEtcd, "etcdctl on detcd differs from etcdctl on etcd");
          } finally {
            await member.stop();
          }
        }
      },
    });
  }
}

cliTest(
  "lock: a second holder waits; SIGINT releases the first, the second runs its command",
  async (ctl, member) => {
    const out: string[] = [];
    const holder = new Proc(ctl, member, ["lock", "m"]);
    let waiter: Proc | undefined;
    try {
      await holder.waitFor("holder", (s) => s.startsWith("m/"));
      waiter = new Proc(ctl, member, [
        "lock",
        "m",
        "--",
        "sh",
        "-c",
        'echo "got $ETCD_LOCK_KEY rev=$ETCD_LOCK_REV"',
      ]);
      await sleep(1500);
      out.push(`waiter done while the lock is held: ${waiter.exited}`);
      holder.kill("SIGINT");
      out.push(await holder.finish());
      out.push(await waiter.finish());
      const after = await runCtl(ctl, [`--endpoints=${member.endpoint}`, "get", "m", "--prefix"]);
      out.push(`keys left under m/: ${JSON.stringify(after.stdout)}`);
    } finally {
      holder.kill("SIGKILL");
      waiter?.kill("SIGKILL");
    }
    return out;
  },
  (t) => {
    assert.equal(t[0], "waiter done while the lock is held: false");
    assert.match(t[1], /^exit 0\n--- stdout\nm\/<LEASE>\n\n--- stderr\n$/);
    assert.match(t[2], /^exit 0\n--- stdout\ngot m\/<LEASE> rev=<N>\n/);
    assert.equal(t[3], 'keys left under m/: ""');
  },
);

cliTest(
  "lock: command failures, bad arguments, -w json, and a revoked session",
  async (ctl, member) => {
    const out: string[] = [];
    const run = async (args: string[]) => {
      const p = new Proc(ctl, member, args);
      out.push(`$ ${args.join(" ")}\n${await p.finish()}`);
    };
    await run(["lock", "m", "--", "sh", "-c", "exit 3"]);
    await run(["lock", "m", "--", "/no/such/program"]);
    await run(["lock", "m", "--", "no-such-program-anywhere"]);
    await run(["lock"]);
    await run(["lock", "--ttl=abc", "m"]);
    const json = new Proc(ctl, member, ["lock", "-w", "json", "--ttl", "5", "j"]);
    await json.waitFor("json holder", (s) => s.includes("}"));
    json.kill("SIGTERM");
    out.push(await json.finish());
    // The session's lease revoked under a holder: "session expired", exit 1.
    const holder = new Proc(ctl, member, ["lock", "r"]);
    try {
      await holder.waitFor("holder", (s) => s.startsWith("r/"));
      const lease = /^r\/([0-9a-f]+)$/m.exec(holder.stdout())![1];
      const revoke = await runCtl("etcdctl", [
        `--endpoints=${member.endpoint}`,
        "lease",
        "revoke",
        lease,
      ]);
      assert.equal(revoke.code, 0, revoke.stderr);
      out.push(await holder.finish());
    } finally {
      holder.kill("SIGKILL");
    }
    return out;
  },
  (t) => {
    assert.match(t[0], /exit 1\n--- stdout\n--- stderr\nError: exit status 3\n$/);
    assert.match(t[3], /exit 128\n[^]*lock takes a lock name argument/);
    assert.match(t[5], /^exit 0\n--- stdout\n\{"header"/);
    assert.match(t[6], /^exit 1\n[^]*Error: session expired\n$/);
  },
);

cliTest(
  "elect: an observer follows campaigns; SIGINT resigns and hands over; argument errors",
  async (ctl, member) => {
    const out: string[] = [];
    const observer = new Proc(ctl, member, ["elect", "-l", "e"]);
    const first = new Proc(ctl, member, ["elect", "e", "p1"]);
    let second: Proc | undefined;
    try {
      await first.waitFor("first", (s) => s.includes("p1"));
      second = new Proc(ctl, member, ["elect", "e", "p2"]);
      await observer.waitFor("observer", (s) => s.includes("p1"));
      await sleep(1500);
      out.push(`second elected while the first leads: ${second.stdout() !== ""}`);
      first.kill("SIGINT");
      out.push(await first.finish());
      await second.waitFor("second", (s) => s.includes("p2"));
      await observer.waitFor("observer", (s) => s.includes("p2"));
      second.kill("SIGINT");
      out.push(await second.finish());
      await sleep(500);
      observer.kill("SIGINT");
      out.push(await observer.finish());
    } finally {
      for (const p of [observer, first, second]) p?.kill("SIGKILL");
    }
    for (
      const args of [["elect"], ["elect", "e"], ["elect", "-l", "e", "p"], ["elect", "a", "b", "c"]]
    ) {
      const p = new Proc(ctl, member, args);
      out.push(`$ ${args.join(" ")}\n${await p.finish()}`);
    }
    return out;
  },
  (t) => {
    assert.equal(t[0], "second elected while the first leads: false");
    assert.match(t[1], /^exit 0\n--- stdout\ne\/<LEASE>\np1\n--- stderr\n$/);
    assert.match(t[2], /^exit 0\n--- stdout\ne\/<LEASE>\np2\n--- stderr\n$/);
    assert.match(t[3], /^exit 0\n--- stdout\ne\/<LEASE>\np1\ne\/<LEASE>\np2\n/);
    assert.match(t[5], /exit 128\n[^]*no proposal argument but -l not set/);
  },
);
