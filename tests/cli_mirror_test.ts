/**
 * `make-mirror`: detcdctl against etcdctl 3.4.23, with etcd and with detcd as source and
 * destination. Each CLI mirrors a fresh source into a fresh destination: the keys under the
 * prefix at start (renamed to --dest-prefix), then puts, deletes and a multi-key transaction made
 * while it runs; keys outside the prefix stay behind. The destination's contents, the CLI's
 * output and exit, and the argument errors must be the same for both CLIs.
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

async function ctl(member: Member, ...args: string[]) {
  const r = await runCtl("etcdctl", [`--endpoints=${member.endpoint}`, ...args]);
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** Every key and value of the destination, one `key=value` a line. */
async function contents(member: Member): Promise<string> {
  const out = await ctl(member, "get", "", "--from-key");
  const lines = out.split("\n").filter((l) => l !== "");
  const pairs: string[] = [];
  for (let i = 0; i + 1 < lines.length; i += 2) pairs.push(`${lines[i]}=${lines[i + 1]}`);
  return pairs.join("\n");
}

async function until(dest: Member, what: string, want: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  let seen = "";
  while ((seen = await contents(dest)) !== want) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; saw ${seen}`);
    await sleep(200);
  }
}

async function scenario(ctlKind: CtlKind, kind: MemberKind): Promise<string[]> {
  const [source, dest] = await Promise.all([startMember({ kind }), startMember({ kind })]);
  const out: string[] = [];
  try {
    await ctl(source, "put", "p/a", "1");
    await ctl(source, "put", "p/b", "2");
    await ctl(source, "put", "q/x", "outside");
    const mirror = new Proc(ctlKind, source, [
      "make-mirror",
      "--prefix=p/",
      "--dest-prefix=m/",
      dest.endpoint,
    ]);
    try {
      await until(dest, "the base copy", "m/a=1\nm/b=2");
      await ctl(source, "put", "p/c", "3");
      await ctl(source, "del", "p/a");
      const txn = await runCtl("etcdctl", [`--endpoints=${source.endpoint}`, "txn"], {
        stdin: "\nput p/d 4\nput p/e 5\ndel p/b\n\n\n",
      });
      assert.equal(txn.code, 0, txn.stderr);
      await ctl(source, "put", "q/y", "outside");
      await until(dest, "the updates", "m/c=3\nm/d=4\nm/e=5");
      out.push(`destination:\n${await contents(dest)}`);
      mirror.kill("SIGINT");
      out.push(await mirror.finish());
    } finally {
      mirror.kill("SIGKILL");
    }
    for (
      const args of [
        ["make-mirror"],
        ["make-mirror", "--dest-prefix=x/", "--no-dest-prefix", dest.endpoint],
      ]
    ) {
      const p = new Proc(ctlKind, source, args);
      out.push(`$ ${args.join(" ").replace(dest.endpoint, "<DEST>")}\n${await p.finish()}`);
    }
  } finally {
    await Promise.all([source.stop(), dest.stop()]);
  }
  return out;
}

for (const kind of ["etcd", "detcd"] as MemberKind[]) {
  Deno.test({
    name:
      `make-mirror: base copy, then puts, deletes and a txn, renamed to --dest-prefix [${kind}]`,
    ignore: reference.ignore,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      assertReference();
      const etcdctl = await scenario("etcdctl", kind);
      const detcdctl = await scenario("detcdctl", kind);
      assert.deepEqual(detcdctl, etcdctl);
      if (kind === "detcd") {
        // The server is under test too: etcdctl on detcd prints what it prints on etcd 3.4.23.
        assert.deepEqual(etcdctl, await scenario("etcdctl", "etcd"), "detcd differs from etcd");
      }
      assert.equal(etcdctl[0], "destination:\nm/c=3\nm/d=4\nm/e=5");
      assert.match(etcdctl[2], /exit 128\n[^]*make-mirror takes one destination argument/);
      assert.match(etcdctl[3], /exit 128\n[^]*cannot be set at the same time/);
    },
  });
}
