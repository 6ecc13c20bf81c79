/**
 * Proves the harness against real etcd before anyone trusts it with detcd: members start, serve
 * etcdctl and survive kill -9; a member that cannot start fails fast with its log; the normaliser
 * hides exactly what differs between two correct runs and nothing more.
 */

import assert from "node:assert/strict";
import {
  assertReference,
  compareRuns,
  compareScript,
  freePort,
  GrpcStatusError,
  KvClient,
  normaliseOutput,
  parseReferenceVersion,
  REFERENCE_VERSION,
  referenceProblem,
  requireReference,
  runCtl,
  type Script,
  SERVER_V8_FLAGS,
  settleEtcdAppliedIndex,
  startMember,
  type StepOutcome,
} from "./harness.ts";
import { MEMBER_V8_FLAG_ARG } from "../server/v8_flags.ts";

const reference = requireReference();

Deno.test("freePort() returns a loopback port that can be bound again", () => {
  const port = freePort();
  assert.ok(port > 0 && port < 65536);
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  listener.close();
});

Deno.test("parseReferenceVersion() reads the first line of etcd --version and etcdctl version", () => {
  const cases: [program: "etcd" | "etcdctl", output: string, expected: string | undefined][] = [
    [
      "etcd",
      "etcd Version: 3.4.23\nGit SHA: Not provided\nGo Version: go1.19.8\n",
      "3.4.23",
    ],
    ["etcdctl", "etcdctl version: 3.4.23\nAPI version: 3.4\n", "3.4.23"],
    ["etcd", "etcd Version: 3.5.9\nGit SHA: bdbbde998\n", "3.5.9"],
    ["etcdctl", "etcdctl version: 3.4.2\nAPI version: 3.4\n", "3.4.2"],
    // etcdctl's line is not etcd's, and a version that is not on the first line does not count.
    ["etcd", "etcdctl version: 3.4.23\n", undefined],
    ["etcdctl", "something else\netcdctl version: 3.4.23\n", undefined],
    ["etcd", "", undefined],
  ];
  for (const [program, output, expected] of cases) {
    assert.equal(parseReferenceVersion(program, output), expected, `${program}: ${output}`);
  }
});

/** A directory with fake `etcd` and `etcdctl` scripts that print the given first lines. */
function fakeReference(etcdLine: string, etcdctlLine: string): string {
  const dir = Deno.makeTempDirSync({ prefix: "detcd-fake-reference-" });
  for (const [name, line] of [["etcd", etcdLine], ["etcdctl", etcdctlLine]]) {
    Deno.writeTextFileSync(`${dir}/${name}`, `#!/bin/sh\necho '${line}'\necho 'more'\n`, {
      mode: 0o755,
    });
  }
  return dir;
}

Deno.test("a reference of another version is refused, also when DETCD_REQUIRE_REFERENCE=true", () => {
  const good = fakeReference(
    `etcd Version: ${REFERENCE_VERSION}`,
    `etcdctl version: ${REFERENCE_VERSION}`,
  );
  const newerServer = fakeReference("etcd Version: 3.5.9", `etcdctl version: ${REFERENCE_VERSION}`);
  const olderCli = fakeReference(`etcd Version: ${REFERENCE_VERSION}`, "etcdctl version: 3.4.2");
  const empty = Deno.makeTempDirSync({ prefix: "detcd-no-reference-" });
  const saved = Deno.env.get("DETCD_REQUIRE_REFERENCE");
  try {
    assert.equal(referenceProblem(good), undefined);
    assert.match(referenceProblem(newerServer) ?? "", /etcd is version 3\.5\.9 .*not 3\.4\.23/);
    assert.match(referenceProblem(olderCli) ?? "", /etcdctl is version 3\.4\.2 .*not 3\.4\.23/);
    assert.match(referenceProblem(empty) ?? "", /reference etcd and etcdctl not on PATH/);

    for (const value of ["1", "true"]) {
      Deno.env.set("DETCD_REQUIRE_REFERENCE", value);
      // Required: the tests run (not ignored) and fail at once with the reason.
      assert.deepEqual(requireReference(good), { ignore: false, reason: "" });
      for (const dir of [newerServer, olderCli, empty]) {
        assert.equal(requireReference(dir).ignore, false, `${value}: ${dir}`);
        assert.throws(() => assertReference(dir), /DETCD_REQUIRE_REFERENCE/);
      }
      assertReference(good);
    }
    // Not required: a wrong reference makes the tests ignored, never compared with it.
    for (const value of [undefined, "0", "false"]) {
      if (value === undefined) Deno.env.delete("DETCD_REQUIRE_REFERENCE");
      else Deno.env.set("DETCD_REQUIRE_REFERENCE", value);
      assert.equal(requireReference(newerServer).ignore, true);
      assert.equal(requireReference(good).ignore, false);
    }
  } finally {
    if (saved === undefined) Deno.env.delete("DETCD_REQUIRE_REFERENCE");
    else Deno.env.set("DETCD_REQUIRE_REFERENCE", saved);
    for (const dir of [good, newerServer, olderCli, empty]) {
      Deno.removeSync(dir, { recursive: true });
    }
  }
});

const normaliseCases: {
  name: string;
  input: string;
  ports?: Record<number, string>;
  expected: string;
}[] = [
  {
    name: "ISO timestamps of JSON log lines",
    input: '{"level":"warn","ts":"2026-11-25T14:20:38.165Z","caller":"x"}',
    expected: '{"level":"warn","ts":"<TS>","caller":"x"}',
  },
  {
    name: "float-seconds timestamps of JSON log lines",
    input: '{"level":"info","ts":1679220752.5883558,"msg":"saved"}',
    expected: '{"level":"info","ts":<TS>,"msg":"saved"}',
  },
  {
    name: "etcdctl's random client id",
    input: '"target":"endpoint://client-4a16a384-9f85-422c-9c31-a5e2708f00e5/127.0.0.1:2379"',
    expected: '"target":"endpoint://client-<UUID>/127.0.0.1:2379"',
  },
  {
    name: "health durations in simple, json and fields output",
    input: "127.0.0.1:1 is healthy: successfully committed proposal: took = 912.345µs\n" +
      '[{"endpoint":"127.0.0.1:1","health":true,"took":"9.126206ms"}]\n' +
      '"Took" : 1.5s',
    expected: "127.0.0.1:1 is healthy: successfully committed proposal: took = <TOOK>\n" +
      '[{"endpoint":"127.0.0.1:1","health":true,"took":"<TOOK>"}]\n' +
      '"Took" : <TOOK>',
  },
  {
    name: "health table reduced to cells",
    input: "+-----------------+--------+------------+-------+\n" +
      "|    ENDPOINT     | HEALTH |    TOOK    | ERROR |\n" +
      "+-----------------+--------+------------+-------+\n" +
      "| 127.0.0.1:23791 |   true | 5.568385ms |       |\n" +
      "+-----------------+--------+------------+-------+\n",
    expected: "+---+\n| ENDPOINT | HEALTH | TOOK | ERROR |\n+---+\n" +
      "| 127.0.0.1:23791 | true | <TOOK> |  |\n+---+\n",
  },
  {
    name: "backend sizes of endpoint status (etcd's own vary with bbolt's commit timing)",
    input: '"dbSize":24576,"leader":1,"raftIndex":4,"dbSizeInUse":16384}\n' +
      '"DBSize" : 20480\n' +
      "127.0.0.1:5, b71f75320dc06a6c, 3.4.23, 25 kB, true, false, 2, 4, 4, \n" +
      "+---------+------------------+---------+---------+-----------+\n" +
      "| ENDPOINT|        ID        | VERSION | DB SIZE | IS LEADER |\n" +
      "+---------+------------------+---------+---------+-----------+\n" +
      "| 1.2:3   | b71f75320dc06a6c |  3.4.23 |   20 kB |      true |\n",
    expected: '"dbSize":<DB_SIZE>,"leader":1,"raftIndex":4,"dbSizeInUse":<DB_SIZE>}\n' +
      '"DBSize" : <DB_SIZE>\n' +
      "127.0.0.1:5, b71f75320dc06a6c, 3.4.23, <DB_SIZE>, true, false, 2, 4, 4, \n" +
      "+---------+------------------+---------+---------+-----------+\n" +
      "| ENDPOINT|        ID        | VERSION | DB SIZE | IS LEADER |\n" +
      "+---------+------------------+---------+---------+-----------+\n" +
      "| 1.2:3   | b71f75320dc06a6c |  3.4.23 |  <SIZE> |      true |\n",
  },
  {
    name: "only the member's own ports, only whole numbers",
    input: "127.0.0.1:41235, http://127.0.0.1:412350, 127.0.0.1:2379",
    ports: { 41235: "CLIENT_PORT" },
    expected: "127.0.0.1:<CLIENT_PORT>, http://127.0.0.1:412350, 127.0.0.1:2379",
  },
  {
    name: "IDs, revisions, terms, indexes and sizes elsewhere are kept",
    input: '{"header":{"cluster_id":15118495548433857066,"member_id":13668033151171901709,' +
      '"revision":11,"raft_term":2},"raftIndex":17,"raftAppliedIndex":17}\n' +
      "| 127.0.0.1:5 | bdae9bbc11dd390d |  3.4.23 |   20 kB |      true |\n" +
      "| 8f097221 |       39 |         47 |      25 kB |",
    expected: '{"header":{"cluster_id":15118495548433857066,"member_id":13668033151171901709,' +
      '"revision":11,"raft_term":2},"raftIndex":17,"raftAppliedIndex":17}\n' +
      "| 127.0.0.1:5 | bdae9bbc11dd390d |  3.4.23 |   20 kB |      true |\n" +
      "| 8f097221 |       39 |         47 |      25 kB |",
  },
  {
    name: "a value that merely looks like a duration outside health output is kept",
    input: "key\n12.5ms\n",
    expected: "key\n12.5ms\n",
  },
];

for (const testCase of normaliseCases) {
  Deno.test(`normaliseOutput(): ${testCase.name}`, () => {
    assert.equal(
      normaliseOutput(testCase.input, { ports: testCase.ports ?? {} }),
      testCase.expected,
    );
  });
}

function outcome(
  args: string[],
  stdout: string,
  code = 0,
  stderr = "",
  timedOut = false,
): StepOutcome {
  const raw = { stdout, stdoutBytes: new TextEncoder().encode(stdout), stderr, code, timedOut };
  return { args, raw, stdout, stderr, code };
}

Deno.test("settleEtcdAppliedIndex() rewrites only an applied index exactly one behind", () => {
  const simple = (index: number, applied: number) =>
    `127.0.0.1:2379, b71f75320dc06a6c, 3.4.23, 20 kB, true, false, 2, ${index}, ${applied}, \n`;
  assert.equal(settleEtcdAppliedIndex(simple(51, 50)), simple(51, 51));
  assert.equal(settleEtcdAppliedIndex(simple(51, 51)), simple(51, 51));
  assert.equal(settleEtcdAppliedIndex(simple(51, 49)), simple(51, 49));
  assert.equal(settleEtcdAppliedIndex(simple(51, 52)), simple(51, 52));
  const json = (index: number, applied: number) =>
    `[{"Status":{"leader":1,"raftIndex":${index},"raftTerm":2,"raftAppliedIndex":${applied}}}]`;
  assert.equal(settleEtcdAppliedIndex(json(4, 3)), json(4, 4));
  assert.equal(settleEtcdAppliedIndex(json(4, 2)), json(4, 2));
  assert.equal(settleEtcdAppliedIndex("put foo 51, 50,\n"), "put foo 51, 50,\n");
});

Deno.test("compareRuns() reports the first differing command with both outputs", () => {
  const a = [outcome(["put", "a", "1"], "OK\n"), outcome(["get", "a"], "a\n1\n")];
  const b = [outcome(["put", "a", "1"], "OK\n"), outcome(["get", "a"], "a\n2\n", 1)];
  const report = compareRuns(["etcd", "detcd"], a, b);
  assert.ok(report !== undefined);
  assert.match(report, /step 2 of 2 differs: etcdctl get a/);
  assert.match(report, /stdout differs at line 2/);
  assert.match(report, /│1/);
  assert.match(report, /│2/);
  assert.match(report, /exit code: etcd 0, detcd 1/);
  assert.equal(compareRuns(["etcd", "detcd"], a, a), undefined);
});

Deno.test("compareRuns() fails a step where both sides hung, though their outputs agree", () => {
  const hung = [outcome(["watch", "k"], "", 137, "\n<killed by harness after 30000 ms>", true)];
  const report = compareRuns(["etcd", "detcd"], hung, hung);
  assert.ok(report !== undefined, "two hung runs must not compare equal");
  assert.match(report, /etcd hung: killed by the harness at its timeout/);
  assert.match(report, /detcd hung/);
});

Deno.test({
  name: "an etcd member serves etcdctl, and kill -9 then restart keeps acknowledged data",
  ignore: reference.ignore,
  async fn() {
    assertReference();
    const member = await startMember({ kind: "etcd", name: "h1" });
    try {
      const put = await runCtl("etcdctl", [`--endpoints=${member.endpoint}`, "put", "k", "v1"]);
      assert.deepEqual([put.stdout, put.code], ["OK\n", 0], put.stderr);
      const fromStdin = await runCtl(
        "etcdctl",
        [`--endpoints=${member.endpoint}`, "put", "k2"],
        { stdin: "from stdin" },
      );
      assert.equal(fromStdin.code, 0, fromStdin.stderr);
      const dataDir = member.dataDir;
      const firstPid = member.pid();

      await member.kill("SIGKILL");
      assert.equal(member.running(), false);
      const down = await runCtl("etcdctl", [
        `--endpoints=${member.endpoint}`,
        "--dial-timeout=500ms",
        "--command-timeout=1s",
        "get",
        "k",
      ]);
      assert.notEqual(down.code, 0, "a killed member must not answer");

      await member.restart();
      assert.notEqual(member.pid(), firstPid);
      assert.equal(member.dataDir, dataDir);
      const get = await runCtl("etcdctl", [`--endpoints=${member.endpoint}`, "get", "k", "k3"]);
      assert.equal(get.stdout, "k\nv1\nk2\nfrom stdin\n", get.stderr);
    } finally {
      await member.stop();
    }
    await assert.rejects(Deno.stat(member.dataDir), Deno.errors.NotFound);
  },
});

Deno.test({
  name: "Member.running() turns false when the process is killed from outside",
  ignore: reference.ignore,
  async fn() {
    assertReference();
    const member = await startMember({ kind: "etcd", name: "crashed" });
    try {
      assert.equal(member.running(), true);
      // A crash the harness did not cause: SIGKILL sent by pid, not through member.kill().
      Deno.kill(member.pid(), "SIGKILL");
      const deadline = Date.now() + 10_000;
      while (member.running() && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(member.running(), false, "a member killed from outside still reports running");
      // It can be started again on the same data dir, and then reports running again.
      await member.restart();
      assert.equal(member.running(), true);
    } finally {
      await member.stop();
    }
    assert.equal(member.running(), false);
  },
});

Deno.test({
  name: "a member that cannot start fails at once with the tail of its log",
  ignore: reference.ignore,
  async fn() {
    assertReference();
    const started = Date.now();
    await assert.rejects(
      startMember({ kind: "etcd", extraArgs: ["--no-such-flag"] }),
      (error: Error) => {
        assert.match(error.message, /etcd member default exited with code/);
        assert.match(error.message, /no-such-flag/);
        return true;
      },
    );
    assert.ok(Date.now() - started < 10_000);
  },
});

Deno.test({
  name: "KvClient puts and ranges over gRPC and surfaces etcd's error status",
  ignore: reference.ignore,
  async fn() {
    assertReference();
    const member = await startMember({ kind: "etcd" });
    const client = new KvClient(member.endpoint);
    try {
      const puts = await Promise.all(
        Array.from({ length: 20 }, (_, i) => client.put(`c/${i}`, `v${i}`)),
      );
      const revisions = puts.map((put) => Number(put.header?.revision)).sort((x, y) => x - y);
      assert.deepEqual(revisions, Array.from({ length: 20 }, (_, i) => i + 2));
      const range = await client.range("c/", "c0");
      assert.equal(range.kvs.length, 20);
      assert.equal(Number(range.header?.revision), 21);
      await assert.rejects(client.put("", "v"), (error: unknown) => {
        assert.ok(error instanceof GrpcStatusError);
        assert.equal(error.code, 3);
        assert.equal(error.message, "grpc status 3: etcdserver: key is not provided");
        return true;
      });
    } finally {
      client.close();
      await member.stop();
    }
  },
});

/**
 * The control experiment: two fresh etcd members, same script. Whatever differs here is noise the
 * normaliser must hide; if this fails, the normaliser is too weak (or etcd is nondeterministic in a
 * new way), and conformance failures against detcd cannot be trusted.
 */
const controlScript: Script = {
  name: "control",
  steps: [
    { args: ["endpoint", "status", "-w", "json"] },
    { args: ["endpoint", "status", "-w", "table"] },
    { args: ["endpoint", "status"] },
    { args: ["endpoint", "status", "-w", "fields"] },
    { args: ["endpoint", "health"] },
    { args: ["endpoint", "health", "-w", "json"] },
    { args: ["endpoint", "health", "-w", "table"] },
    { args: ["endpoint", "health", "-w", "fields"] },
    { args: ["member", "list", "-w", "table"] },
    { args: ["member", "list", "-w", "json"] },
    { args: ["put", "", "v"] },
    { args: ["put", "a", "1", "-w", "json"] },
    { args: ["get", "a", "-w", "fields"] },
  ],
};

Deno.test({
  name: "two fresh etcd members print identical output once normalised (control)",
  ignore: reference.ignore,
  async fn() {
    assertReference();
    const { report, outcomes } = await compareScript(controlScript, ["etcd", "etcd"]);
    assert.equal(report, undefined, report);
    // The script must have reached the server: IDs and the warn line are in the output.
    const statusJson = outcomes[0][0].stdout;
    assert.match(statusJson, /"member_id":\d+/);
    const emptyKey = outcomes[0].findIndex((outcome) => outcome.args[1] === "");
    assert.match(outcomes[0][emptyKey].stderr, /client-<UUID>\/127\.0\.0\.1:<CLIENT_PORT>/);
  },
});

Deno.test("deno task compile includes every worker module the server starts (deno compile leaves them out)", async () => {
  const tasks = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url))).tasks;
  const workers: string[] = [];
  for await (const entry of Deno.readDir(new URL("../server/", import.meta.url))) {
    if (!entry.name.endsWith(".ts") || entry.name.endsWith("_test.ts")) continue;
    const source = await Deno.readTextFile(new URL(`../server/${entry.name}`, import.meta.url));
    if (!source.includes("new Worker(")) continue;
    // The module is named where the worker starts, or in a URL kept for it (a standby's).
    for (const m of source.matchAll(/new URL\("\.\/([a-z_]+_worker\.ts)", import\.meta\.url\)/g)) {
      workers.push(m[1]);
    }
  }
  assert.ok(workers.length >= 3, `the server's workers: ${workers.join(", ")}`);
  for (const worker of workers) {
    assert.ok(
      tasks.compile.includes(`--include server/${worker} `),
      `${worker} in ${tasks.compile}`,
    );
  }
});

Deno.test("members start with the same V8 flags everywhere: deno task start and compile, the harness", async () => {
  const tasks = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url))).tasks;
  assert.match(tasks.start, new RegExp(` ${MEMBER_V8_FLAG_ARG} server/main\\.ts`));
  assert.match(tasks.compile, new RegExp(` ${MEMBER_V8_FLAG_ARG} -o detcd server/main\\.ts`));
  if (Deno.env.get("DETCD_SERVER_V8_FLAGS") === undefined) {
    assert.deepEqual(SERVER_V8_FLAGS, [MEMBER_V8_FLAG_ARG]);
  }
});
