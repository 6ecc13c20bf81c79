/**
 * Side-by-side conformance of the KV surface: the SAME real etcdctl 3.4.23 commands against a
 * fresh real etcd 3.4.23 and a fresh detcd; stdout, stderr and exit code must be identical after
 * {@link normaliseOutput} (timestamps, client ids, health durations, ports, dbSizeInUse). Member
 * and cluster IDs, revisions, raft terms and indexes are compared as they are.
 *
 * One list of scripts, one test step per script, each on its own fresh pair of members. A failing
 * step shows the first differing command with both outputs.
 *
 * DETCD_CONFORMANCE_SUBJECT=etcd runs the scripts etcd against etcd, which proves the scripts are
 * deterministic (any difference there is noise, not a detcd bug).
 */

import assert from "node:assert/strict";
import {
  assertReference,
  compareScript,
  type Member,
  type MemberKind,
  requireDetcd,
  requireReference,
  runCtl,
  type Script,
  type ScriptStep,
  startMember,
} from "./harness.ts";

const subject: MemberKind = Deno.env.get("DETCD_CONFORMANCE_SUBJECT") === "etcd" ? "etcd" : "detcd";
const reference = requireReference();
const detcd = subject === "detcd" ? requireDetcd() : { ignore: false, reason: "" };
const ignore = reference.ignore || detcd.ignore;

/** Splits a command line written the way the guide writes it; `''` is an empty argument. */
function cmd(line: string, stdin?: string): ScriptStep {
  const args = line.split(" ").filter((word) => word !== "").map((word) =>
    word === "''" ? "" : word
  );
  return stdin === undefined ? { args } : { args, stdin };
}

/** The guide's example data (数据库操作命令 → 增加(put)). */
const guidePuts: ScriptStep[] = [
  cmd("put name cuiliang"),
  cmd("put location -- -beijing"),
  cmd("put foo1 bar1"),
  cmd("put foo2 bar2"),
  cmd("put foo3 bar3"),
];

/**
 * Every get variant of the guide plus the flags its table lists, in one output format.
 * `--print-value-only` only exists for `simple` (etcdctl refuses it otherwise, tested once under
 * errors), so other formats run the same queries without it.
 */
function guideGets(format: string): ScriptStep[] {
  const w = `-w ${format}`;
  const steps = [
    cmd(`get name ${w}`),
    cmd(`get location --print-value-only ${w}`),
    cmd(`get foo foo3 --print-value-only ${w}`),
    cmd(`get --prefix foo --print-value-only ${w}`),
    cmd(`get --prefix --limit=2 foo --print-value-only ${w}`),
    cmd(`get --prefix foo --print-value-only --order DESCEND ${w}`),
    cmd(`get --prefix foo ${w}`),
    cmd(`get --prefix foo --limit 1 ${w}`),
    cmd(`get --prefix foo --keys-only ${w}`),
    cmd(`get --prefix foo --hex ${w}`),
    cmd(`get --prefix foo --hex --print-value-only ${w}`),
    cmd(`get --from-key foo2 ${w}`),
    cmd(`get --from-key '' --keys-only ${w}`),
    cmd(`get --from-key foo2 --limit 2 ${w}`),
    cmd(`get --prefix foo --sort-by=VALUE --order=DESCEND ${w}`),
    cmd(`get --prefix foo --sort-by=CREATE --order=DESCEND ${w}`),
    cmd(`get --prefix foo --sort-by=KEY ${w}`),
    cmd(`get --prefix foo --sort-by=MODIFY --order=ASCEND ${w}`),
    cmd(`get --prefix foo --sort-by=VERSION ${w}`),
    cmd(`get --prefix '' --order=DESCEND --sort-by=KEY ${w}`),
    cmd(`get foo1 foo9 --order DESCEND --limit 2 ${w}`),
    cmd(`get name --consistency=s ${w}`),
    cmd(`get missing ${w}`),
    cmd(`get --prefix nothing-here ${w}`),
  ];
  if (format === "simple") return steps;
  return steps.map((step) => ({ args: step.args.filter((arg) => arg !== "--print-value-only") }));
}

/** Deletes of the guide (删除(del)) and the flags its table lists. */
function guideDeletes(format: string): ScriptStep[] {
  const w = `-w ${format}`;
  return [
    ...guidePuts,
    cmd(`del name ${w}`),
    cmd(`del foo1 foo3 ${w}`),
    cmd(`get --prefix foo ${w}`),
    cmd(`del --prefix foo ${w}`),
    cmd(`del missing ${w}`),
    cmd(`del location --prev-kv ${w}`),
    ...guidePuts,
    cmd(`del --prefix foo --prev-kv ${w}`),
    cmd(`del --from-key location --prev-kv ${w}`),
    cmd(`get --from-key '' ${w}`),
    cmd("put a 1"),
    cmd("put b 2"),
    cmd("put c 3"),
    cmd(`del a c --prev-kv ${w}`),
    cmd(`del --from-key '' ${w}`),
    cmd(`get --from-key '' ${w}`),
  ];
}

const txnInputs = {
  succeeds: 'mod("k") > "0"\ncreate("k") = "2"\nversion("k") = "2"\nvalue("k") = "v2"\n\n' +
    "get k\nput k2 x\nget --prefix k\n\nput k y\n\n",
  fails: 'value("k") = "nope"\n\nput k never\n\nput k3 z\nget k3\ndel k2\n\n',
  noCompares: '\nput "spaced key" "spaced value"\nget "spaced key"\n\n\n',
  rangeCompare: 'version("k") > "0"\n\nget k k9\ndel k2 k4 --prev-kv\n\n\n',
  malformed: "bogus line\n\n\n\n",
  fourOps: "\nput a 1\nput b 2\nput c 3\nput d 4\n\n\n",
  threeOps: "\nput a 1\nput b 2\nput c 3\n\n\n",
};

/** The scripts: each runs on a fresh pair of members. */
export const scripts: Script[] = [
  {
    name: "guide: put, then every get variant (simple)",
    steps: [...guidePuts, ...guideGets("simple")],
  },
  { name: "guide: get variants -w json", steps: [...guidePuts, ...guideGets("json")] },
  { name: "guide: get variants -w fields", steps: [...guidePuts, ...guideGets("fields")] },
  {
    name: "put -w json/fields/table/protobuf, get -w table/protobuf",
    steps: [
      cmd("put name cuiliang -w json"),
      cmd("put location -w fields -- -beijing"),
      cmd("put foo1 bar1 -w table"),
      cmd("put foo1 bar1 -w protobuf"),
      cmd("get name -w protobuf"),
      cmd("get --prefix foo -w table"),
      cmd("get --prefix '' -w protobuf"),
    ],
  },
  {
    name: "update by put: versions, --prev-kv, --ignore-value, values from stdin and with spaces",
    steps: [
      cmd("put k v1"),
      cmd("put k v2 --prev-kv"),
      cmd("put k v3 --prev-kv -w json"),
      cmd("put k v4 --prev-kv -w fields"),
      cmd("get k -w json"),
      cmd("put k --ignore-value"),
      cmd("get k -w json"),
      cmd("put nokey --ignore-value"),
      { args: ["put", "k k", "v v"] },
      { args: ["get", "k k", "-w", "json"] },
      cmd("put fromstdin", "line one\nline two\n"),
      cmd("get fromstdin"),
      cmd("put k v5 --lease=1234"),
      cmd("get --prefix '' -w fields"),
    ],
  },
  { name: "guide: del variants (simple)", steps: guideDeletes("simple") },
  { name: "guide: del variants -w json", steps: guideDeletes("json") },
  { name: "guide: del variants -w fields", steps: guideDeletes("fields") },
  {
    name: "history: get --rev, compaction, compacted and future revisions",
    steps: [
      cmd("put k a"),
      cmd("put k b"),
      cmd("put other x"),
      cmd("put k c"),
      cmd("del other"),
      cmd("get k --rev=2"),
      cmd("get k --rev=3 -w json"),
      cmd("get --prefix '' --rev=4 -w json"),
      cmd("get other --rev=5"),
      cmd("get other --rev=6 -w json"),
      // Pages at older revisions (a paginated list's later pages): the count is of the keys that
      // existed then (`other` was created at 4 and deleted at 6), the page stops at its limit.
      cmd("get --prefix '' --rev=3 --limit=1 -w json"),
      cmd("get --prefix '' --rev=4 --limit=1 -w json"),
      cmd("get --prefix '' --rev=5 --limit=1 -w json"),
      cmd("get --prefix '' --rev=6 --limit=1 -w json"),
      cmd("get --prefix '' --rev=5 --limit=1 --keys-only -w json"),
      cmd("get k --rev=0"),
      cmd("get k --rev=100"),
      cmd("compaction 3"),
      cmd("get k --rev=2"),
      cmd("get k --rev=3 -w json"),
      cmd("get --prefix '' --rev=4"),
      cmd("compaction 3"),
      cmd("compaction 2"),
      cmd("compaction 100"),
      cmd("compaction --physical 5"),
      cmd("get k --rev=4"),
      cmd("get --prefix '' --rev=5 -w json"),
      cmd("get k -w json"),
      cmd("endpoint hashkv -w json"),
      // HashKV over history on both sides of the compact revision, at several revisions.
      cmd("put hk v1"),
      cmd("put hk v2"),
      cmd("put k after"),
      cmd("del hk"),
      cmd("endpoint hashkv --rev=5"),
      cmd("endpoint hashkv --rev=6"),
      cmd("endpoint hashkv --rev=8"),
      cmd("compaction 7"),
      cmd("endpoint hashkv"),
      cmd("endpoint hashkv --rev=9 -w json"),
    ],
  },
  {
    name: "txn from stdin: success, failure, no compares, ranges, malformed (simple/json/fields)",
    steps: [
      cmd("put k v1"),
      cmd("put k v2"),
      cmd("txn", txnInputs.succeeds),
      cmd("txn -w json", txnInputs.fails),
      cmd("txn", txnInputs.noCompares),
      cmd("txn -w fields", txnInputs.rangeCompare),
      cmd("txn -w json", txnInputs.succeeds),
      cmd("txn", txnInputs.fails),
      cmd("txn -w protobuf", txnInputs.noCompares),
      cmd("txn", txnInputs.malformed),
      cmd("txn -w table", txnInputs.threeOps),
      cmd("get --prefix '' -w json"),
    ],
  },
  {
    name: "errors: empty key, unknown sort target and order, bad revisions",
    steps: [
      cmd("put '' v"),
      cmd("get ''"),
      cmd("del ''"),
      cmd("put a 1"),
      cmd("get a --sort-by=FOO"),
      cmd("get a --order=SIDEWAYS"),
      cmd("get a --rev=-1"),
      cmd("get a --limit=-1"),
      cmd("get"),
      cmd("put onlykey"),
      cmd("get a -w yaml"),
      cmd("get a --print-value-only -w json"),
    ],
  },
  {
    name: "limits: --max-txn-ops 3 and --max-request-bytes 1024",
    serverArgs: ["--max-txn-ops", "3", "--max-request-bytes", "1024"],
    steps: [
      cmd("txn", txnInputs.fourOps),
      cmd("txn -w json", txnInputs.threeOps),
      cmd("put small", "v".repeat(900)),
      cmd("put big", "v".repeat(2000)),
      cmd("put huge", "v".repeat(600_000)),
      cmd("get --prefix '' --keys-only"),
    ],
  },
  {
    name: "cluster: endpoint status, endpoint health, member list, alarms (all formats)",
    steps: [
      cmd("endpoint status -w table"),
      cmd("endpoint status -w json"),
      cmd("endpoint status"),
      cmd("endpoint status -w fields"),
      cmd("endpoint health"),
      cmd("endpoint health -w table"),
      cmd("endpoint health -w json"),
      cmd("endpoint health -w fields"),
      cmd("member list"),
      cmd("member list -w table"),
      cmd("member list -w json"),
      cmd("member list -w fields"),
      cmd("alarm list"),
      cmd("alarm disarm"),
      cmd("alarm list -w json"),
      cmd("alarm disarm -w json"),
      ...guidePuts,
      cmd("endpoint status -w table"),
      cmd("endpoint status -w json"),
      cmd("endpoint hashkv"),
    ],
  },
];

Deno.test({
  name: `etcdctl KV conformance: ${subject} prints what etcd prints`,
  ignore,
  async fn(t) {
    assertReference();
    if (detcd.reason !== "") throw new Error(detcd.reason);
    for (const script of scripts) {
      await t.step(script.name, async () => {
        const { report } = await compareScript(script, ["etcd", subject]);
        assert.equal(report, undefined, `${script.name}\n${report}`);
      });
    }
  },
});

/** Reads from a connection until the peer closes it or the deadline passes. */
async function readUntilClosed(
  connection: Deno.Conn,
  timeoutMs: number,
): Promise<{ closed: boolean; received: number }> {
  const buffer = new Uint8Array(16 * 1024);
  let received = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    while (true) {
      const result = await Promise.race([connection.read(buffer), timeout]).catch(() => null);
      if (result === "timeout") return { closed: false, received };
      if (result === null) return { closed: true, received };
      received += result;
    }
  } finally {
    clearTimeout(timer);
  }
}

const garbageProbes: { name: string; bytes: Uint8Array }[] = [
  {
    name: "bytes that are neither HTTP/1 nor HTTP/2",
    bytes: new TextEncoder().encode("\x16\x03\x01garbage that is long enough\x00\xff\r\n\r\nmore"),
  },
  {
    name: "the HTTP/2 preface followed by a malformed frame",
    bytes: new Uint8Array([
      ...new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
      0x00,
      0x00,
      0x05,
      0xfe,
      0xff,
      0xff,
      0xff,
      0xff,
      0xff,
      1,
      2,
      3,
      4,
      5,
      0xde,
      0xad,
    ]),
  },
];

async function probeGarbage(member: Member): Promise<string[]> {
  const problems: string[] = [];
  for (const probe of garbageProbes) {
    const connection = await Deno.connect({ hostname: "127.0.0.1", port: member.clientPort });
    try {
      await connection.write(probe.bytes);
      const { closed, received } = await readUntilClosed(connection, 10_000);
      if (!closed) {
        problems.push(`${member.kind}: ${probe.name}: connection still open after 10 s`);
      }
      console.log(`${member.kind}: ${probe.name}: closed=${closed}, ${received} bytes back`);
    } finally {
      connection.close();
    }
    const put = await runCtl("etcdctl", [`--endpoints=${member.endpoint}`, "put", "after", "ok"]);
    const get = await runCtl("etcdctl", [`--endpoints=${member.endpoint}`, "get", "after"]);
    if (put.code !== 0 || get.stdout !== "after\nok\n") {
      problems.push(
        `${member.kind}: ${probe.name}: not serving afterwards: ${put.stderr}${get.stderr}`,
      );
    }
  }
  return problems;
}

Deno.test({
  name: "garbage on the client port: connection closed, the server keeps serving (" +
    (subject === "etcd" ? "etcd" : `etcd and ${subject}`) + ")",
  ignore,
  async fn() {
    assertReference();
    if (detcd.reason !== "") throw new Error(detcd.reason);
    const kinds: MemberKind[] = subject === "etcd" ? ["etcd"] : ["etcd", subject];
    const problems: string[] = [];
    for (const kind of kinds) {
      const member = await startMember({ kind });
      try {
        problems.push(...await probeGarbage(member));
      } finally {
        await member.stop();
      }
    }
    assert.deepEqual(problems, []);
  },
});
