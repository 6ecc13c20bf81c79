/**
 * `defrag`: detcdctl against etcdctl 3.4.23, on etcd and on detcd: the same lines for each
 * endpoint (with and without --cluster), the same failure for an endpoint nobody serves, and the
 * quiet success of --data-dir on a stopped member's directory. On detcd, defragmenting gives back
 * the space compaction freed: DB SIZE falls to what is in use.
 */
import assert from "node:assert/strict";
import {
  assertReference,
  type CtlKind,
  freePort,
  type Member,
  type MemberKind,
  requireReference,
  runCtl,
  startMember,
} from "./harness.ts";

const reference = requireReference();

async function ctl(member: Member, ...args: string[]): Promise<string> {
  const r = await runCtl("etcdctl", [`--endpoints=${member.endpoint}`, ...args]);
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

async function sizes(member: Member): Promise<{ dbSize: number; dbSizeInUse: number }> {
  const [status] = JSON.parse(await ctl(member, "endpoint", "status", "-w", "json"));
  return { dbSize: status.Status.dbSize, dbSizeInUse: status.Status.dbSizeInUse };
}

/** What a CLI printed and how it exited, with the member's ports made generic. */
async function transcript(kind: CtlKind, member: Member, args: string[]): Promise<string> {
  const r = await runCtl(kind, args);
  return `exit ${r.code}\nstdout:\n${r.stdout}stderr:\n${r.stderr}`
    .replaceAll(String(member.clientPort), "PORT");
}

for (const kind of ["etcd", "detcd"] as MemberKind[]) {
  Deno.test({
    name: `defrag: each endpoint, --cluster, and after compaction the space comes back [${kind}]`,
    ignore: reference.ignore,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      assertReference();
      const member = await startMember({ kind });
      try {
        // 200 revisions of 8 KiB on 4 keys, then all but the latest compacted away.
        const value = "v".repeat(8192);
        for (let i = 0; i < 50; i++) {
          const ops = ["a", "b", "c", "d"].map((k) => `put ${k} ${value}${i}`).join("\n");
          const r = await runCtl("etcdctl", [`--endpoints=${member.endpoint}`, "txn"], {
            stdin: `\n${ops}\n\n\n`,
          });
          assert.equal(r.code, 0, r.stderr);
        }
        const rev = JSON.parse(await ctl(member, "get", "a", "-w", "json")).header.revision;
        await ctl(member, "compaction", String(rev));
        const before = await sizes(member);
        assert.ok(before.dbSize > 1_000_000, `dbSize ${before.dbSize} holds the history`);
        // detcd's in-use figure is its live records; etcd's bbolt keeps freed pages in use a while.
        if (kind === "detcd") {
          assert.ok(before.dbSizeInUse < before.dbSize / 4, `in use ${before.dbSizeInUse}`);
        }

        const out: Record<CtlKind, string[]> = { etcdctl: [], detcdctl: [] };
        for (const c of ["etcdctl", "detcdctl"] as CtlKind[]) {
          out[c].push(await transcript(c, member, [`--endpoints=${member.endpoint}`, "defrag"]));
          out[c].push(
            await transcript(c, member, [`--endpoints=${member.endpoint}`, "defrag", "--cluster"]),
          );
        }
        assert.deepEqual(out.detcdctl, out.etcdctl);
        assert.equal(
          out.etcdctl[0],
          "exit 0\nstdout:\nFinished defragmenting etcd member[127.0.0.1:PORT]\nstderr:\n",
        );
        assert.equal(
          out.etcdctl[1],
          "exit 0\nstdout:\nFinished defragmenting etcd member[http://127.0.0.1:PORT]\nstderr:\n",
        );

        const after = await sizes(member);
        const change = `${JSON.stringify(before)} -> ${JSON.stringify(after)}`;
        assert.ok(after.dbSize < before.dbSize / 4, change);
        // On etcd's base of a 20 KiB file with 16 KiB in use, nothing but live records is left.
        if (kind === "detcd") assert.equal(after.dbSize, after.dbSizeInUse + 4096, change);
        // Nothing was lost.
        assert.equal((await ctl(member, "get", "d", "--print-value-only")).trim(), `${value}49`);
      } finally {
        await member.stop();
      }
    },
  });
}

Deno.test({
  name: "defrag: an endpoint nobody serves fails the same way; --data-dir of a stopped member",
  ignore: reference.ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    assertReference();
    const dead = `127.0.0.1:${freePort()}`;
    const args = [`--endpoints=${dead}`, "--command-timeout=2s", "defrag"];
    const etcdctl = await runCtl("etcdctl", args);
    const detcdctl = await runCtl("detcdctl", args);
    const untimed = (text: string) => text.replace(/"ts":"[^"]*"/g, '"ts":"TS"');
    assert.deepEqual(
      [detcdctl.code, detcdctl.stdout, untimed(detcdctl.stderr)],
      [etcdctl.code, etcdctl.stdout, untimed(etcdctl.stderr)],
    );
    assert.equal(etcdctl.code, 1);
    assert.match(etcdctl.stderr, /\nFailed to defragment etcd member\[127\.0\.0\.1:\d+\] \(/);

    // A stopped member's data dir: etcdctl rewrites etcd's bbolt file, detcdctl has nothing to
    // rewrite offline; both succeed without a word.
    for (const [kind, c] of [["etcd", "etcdctl"], ["detcd", "detcdctl"]] as const) {
      const dir = await Deno.makeTempDir();
      const member = await startMember({ kind, dataDir: `${dir}/data` });
      try {
        await ctl(member, "put", "k", "v");
        await member.kill("SIGTERM");
        const r = await runCtl(c, ["defrag", `--data-dir=${dir}/data`]);
        assert.deepEqual([r.code, r.stdout, r.stderr], [0, "", ""], `${c}: ${r.stderr}`);
        await member.restart();
        assert.equal((await ctl(member, "get", "k", "--print-value-only")).trim(), "v");
      } finally {
        await member.stop();
        await Deno.remove(dir, { recursive: true });
      }
    }
    // A directory without a member is refused (etcdctl 3.4.23 panics there instead).
    const empty = await Deno.makeTempDir();
    try {
      const r = await runCtl("detcdctl", ["defrag", `--data-dir=${empty}`]);
      assert.equal(r.code, 1);
      assert.equal(
        r.stderr,
        `Failed to defragment etcd data[${empty}] (open ${empty}/member/meta: no such file or directory)\n`,
      );
    } finally {
      await Deno.remove(empty, { recursive: true });
    }
  },
});
