/**
 * Auto-compaction (`--auto-compaction-mode`, `--auto-compaction-retention`) against etcd 3.4.23:
 * periodic mode with a short retention on both servers while a writer runs (the same log lines,
 * history before the retention window compacted away, recent history kept), the flag errors, and
 * revision mode on detcd (etcd checks only every 5 minutes; detcd's interval is shortened for the
 * test with DETCD_REVISION_COMPACTION_INTERVAL_MS).
 */
import assert from "node:assert/strict";
import {
  assertReference,
  type Member,
  type MemberKind,
  requireReference,
  runCtl,
  serverCommand,
  sleep,
  startMember,
} from "./harness.ts";

const reference = requireReference();

async function ctl(member: Member, ...args: string[]) {
  return await runCtl("etcdctl", [`--endpoints=${member.endpoint}`, ...args]);
}

/** The JSON log lines of `member` whose msg matches. */
function logLines(member: Member, msg: RegExp): Record<string, unknown>[] {
  return member.logTail(256 * 1024).split("\n").flatMap((line) => {
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      return msg.test(String(entry.msg)) ? [entry] : [];
    } catch {
      return [];
    }
  });
}

/** Writes `k` every 200 ms for `ms`; returns the revision of each write. */
async function writeFor(member: Member, ms: number): Promise<number[]> {
  const revisions: number[] = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const r = await ctl(member, "put", "k", `v${revisions.length}`, "-w", "json");
    assert.equal(r.code, 0, r.stderr);
    revisions.push(Number(/"revision":(\d+)/.exec(r.stdout)![1]));
    await sleep(200);
  }
  return revisions;
}

Deno.test({
  name: "auto-compaction periodic 2s: etcd's log lines, old history compacted, recent kept",
  ignore: reference.ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    assertReference();
    const outcomes: string[][] = [];
    for (const kind of ["etcd", "detcd"] as MemberKind[]) {
      const member = await startMember({
        kind,
        extraArgs: ["--logger=zap", "--auto-compaction-retention=2s"],
      });
      try {
        await writeFor(member, 6000);
        const starts = logLines(member, /^starting auto periodic compaction$/);
        const done = logLines(member, /^completed auto periodic compaction$/);
        const out = [
          `starts: ${starts.length > 0}`,
          `completions: ${done.length > 0}`,
          `fields of a start: ${Object.keys(starts[0] ?? {}).filter((k) => k !== "ts").join(",")}`,
          `fields of a completion: ${
            Object.keys(done[0] ?? {}).filter((k) => k !== "ts").join(",")
          }`,
          `compact-period: ${starts[0]?.["compact-period"]}`,
        ];
        // The last compaction's revision is gone from history; the current one is readable.
        const last = Number(done[done.length - 1]?.revision ?? 0);
        const old = await ctl(member, "get", "k", `--rev=${Math.max(1, last - 1)}`);
        out.push(
          `read before the compacted revision: ${old.code} ${old.stderr.trim().split("\n").pop()}`,
        );
        const now = await ctl(member, "get", "k", "--print-value-only");
        out.push(`current read: ${now.code}`);
        outcomes.push(out);
        // Compacting never took the revision of the last 2 seconds.
        const status = await ctl(member, "endpoint", "status", "-w", "json");
        const revision = Number(/"revision":(\d+)/.exec(status.stdout)![1]);
        assert.ok(last < revision, `${kind}: compacted ${last}, revision ${revision}`);
      } finally {
        await member.stop();
      }
    }
    const [etcd, detcd] = outcomes;
    assert.deepEqual(detcd, etcd);
    assert.equal(etcd[0], "starts: true");
    assert.equal(etcd[1], "completions: true");
    assert.match(etcd[5], /^read before the compacted revision: 1 Error: .*compacted/);
  },
});

Deno.test({
  name: "auto-compaction flag errors end the start-up as etcd's do",
  ignore: reference.ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    assertReference();
    for (
      const [args, expect] of [
        [
          ["--auto-compaction-mode=foo"],
          /error verifying flags, unknown auto-compaction-mode "foo"/,
        ],
        [
          ["--auto-compaction-retention=abc"],
          /error parsing CompactionRetention: time: invalid duration \\?"abc\\?"/,
        ],
        [
          ["--auto-compaction-retention=-1"],
          /error parsing CompactionRetention: time: missing unit in duration \\?"-1\\?"/,
        ],
      ] as [string[], RegExp][]
    ) {
      for (const kind of ["etcd", "detcd"] as MemberKind[]) {
        const dir = await Deno.makeTempDir({ prefix: "detcd-autocompact-" });
        try {
          const [program, prefix] = serverCommand(kind);
          const out = await new Deno.Command(program, {
            args: [...prefix, "--data-dir", `${dir}/data`, ...args],
            stdout: "piped",
            stderr: "piped",
          }).output();
          const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
          assert.equal(out.code, 1, `${kind} ${args}: exit ${out.code}\n${text}`);
          assert.match(text, expect, `${kind} ${args}`);
        } finally {
          await Deno.remove(dir, { recursive: true }).catch(() => {});
        }
      }
    }
  },
});

Deno.test({
  name: "auto-compaction revision mode (detcd, shortened interval): keeps the last N revisions",
  ignore: reference.ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const member = await startMember({
      kind: "detcd",
      extraArgs: ["--auto-compaction-mode=revision", "--auto-compaction-retention=5"],
      env: { DETCD_REVISION_COMPACTION_INTERVAL_MS: "300" },
    });
    try {
      for (let i = 0; i < 12; i++) assert.equal((await ctl(member, "put", "k", `v${i}`)).code, 0);
      await sleep(1500);
      const done = logLines(member, /^completed auto revision compaction$/);
      assert.ok(done.length > 0, member.logTail(2000));
      assert.equal(done[done.length - 1].revision, 13 - 5);
      assert.equal(done[done.length - 1]["revision-compaction-retention"], 5);
      const before = await ctl(member, "get", "k", "--rev=7");
      assert.equal(before.code, 1);
      assert.match(before.stderr, /required revision has been compacted/);
      const kept = await ctl(member, "get", "k", "--rev=8", "--print-value-only");
      assert.equal(kept.stdout, "v6\n");
    } finally {
      await member.stop();
    }
  },
});
