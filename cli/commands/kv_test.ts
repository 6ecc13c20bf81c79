import assert from "node:assert/strict";
import {
  argify,
  getOp,
  GoPanic,
  newGetCommand,
  parseCompare,
  prefixRangeEnd,
  scanCompare,
} from "./kv.ts";
import { Session } from "./global.ts";
import { BufferSink, bytesSource, ExitSignal, StdinReader } from "../io.ts";
import {
  Compare_CompareResult,
  Compare_CompareTarget,
  RangeRequest_SortOrder,
  RangeRequest_SortTarget,
} from "../../gen/etcdserverpb/rpc_pb.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test('scanCompare scans like fmt.Sscanf(line, "%q) %s %q") (results checked against Go)', () => {
  const cases: [string, number, string, string, string][] = [
    ['"k") > "1"', 3, "k", ">", "1"],
    ['"k")  >  "1" trailing', 3, "k", ">", "1"],
    ['"k") >"1"', 2, "k", '>"1"', ""],
    ['"k"  ) > "1"', 1, "k", "", ""],
    ["`k`) > `1`", 3, "k", ">", "1"],
    ['"k\\x41") = "a b"', 3, "kA", "=", "a b"],
    ['k") = "1"', 0, "", "", ""],
    ['"k)', 0, "", "", ""],
  ];
  for (const [input, n, key, op, val] of cases) {
    const got = scanCompare(input);
    assert.deepEqual([got.n, text(got.key), got.op, text(got.val)], [n, key, op, val], input);
  }
});

Deno.test("parseCompare builds compares for every target spelling", () => {
  const cases: [string, Compare_CompareTarget, Compare_CompareResult, string, unknown][] = [
    [
      'mod("key1") > "0"',
      Compare_CompareTarget.MOD,
      Compare_CompareResult.GREATER,
      "modRevision",
      0n,
    ],
    ['m("k") = "7"', Compare_CompareTarget.MOD, Compare_CompareResult.EQUAL, "modRevision", 7n],
    [
      'ver("k") != "2"',
      Compare_CompareTarget.VERSION,
      Compare_CompareResult.NOT_EQUAL,
      "version",
      2n,
    ],
    [
      'version("k") < "2"',
      Compare_CompareTarget.VERSION,
      Compare_CompareResult.LESS,
      "version",
      2n,
    ],
    [
      'c("k") = "3"',
      Compare_CompareTarget.CREATE,
      Compare_CompareResult.EQUAL,
      "createRevision",
      3n,
    ],
    [
      'create("k") = "3"',
      Compare_CompareTarget.CREATE,
      Compare_CompareResult.EQUAL,
      "createRevision",
      3n,
    ],
  ];
  for (const [line, target, result, unionCase, value] of cases) {
    const c = parseCompare(line);
    assert.ok(typeof c !== "string", line);
    assert.equal(c.target, target);
    assert.equal(c.result, result);
    assert.equal(c.targetUnion.case, unionCase);
    assert.equal(c.targetUnion.value, value);
  }
  const v = parseCompare('value("k") = "hello world"');
  assert.ok(typeof v !== "string");
  assert.equal(v.target, Compare_CompareTarget.VALUE);
  assert.equal(text(v.targetUnion.value as Uint8Array), "hello world");
  assert.equal(text(v.key), "k");
});

Deno.test("parseCompare rejects malformed lines with etcdctl's messages", () => {
  const cases: [string, string][] = [
    ["nonsense", "malformed comparison: nonsense"],
    ['mod("k")>"0"', 'malformed comparison: mod("k")>"0"; got mod("k")  ""'],
    ['foo("k") = "0"', 'malformed comparison: foo("k") = "0" (unknown target foo)'],
    ['mod ("k") = "0"', 'malformed comparison: mod ("k") = "0" (unknown target mod )'],
    ['mod("k") = "x"', 'invalid txn compare request: mod("k") = "x"'],
  ];
  for (const [line, msg] of cases) assert.equal(parseCompare(line), msg);
  assert.throws(() => parseCompare('mod("k") >= "0"'), GoPanic);
  assert.throws(() => parseCompare('lease("k") = "0"'), GoPanic);
});

Deno.test("argify splits request lines like etcdctl, including its single-quote slicing", () => {
  assert.deepEqual(argify('put k "a b\\tc"'), ["put", "k", "a b\tc"]);
  assert.deepEqual(argify("get k --prefix"), ["get", "k", "--prefix"]);
  // etcdctl slices a single-quoted word by the number of words: with 3 words, [1:2] -> "q".
  assert.deepEqual(argify("put key4 'quoted value'"), ["put", "key4", "q"]);
  assert.deepEqual(argify("put 'k'"), ["put", ""]);
  assert.throws(() => argify("'k'"), { message: "runtime error: slice bounds out of range [1:0]" });
  assert.throws(() => argify("put a b c 'k'"), {
    message: "runtime error: slice bounds out of range [:4] with length 3",
  });
});

Deno.test("prefixRangeEnd increments the last byte below 0xff", () => {
  const end = (b: number[]) => Array.from(prefixRangeEnd(new Uint8Array(b)));
  assert.deepEqual(end([0x66, 0x6f, 0x6f]), [0x66, 0x6f, 0x70]);
  assert.deepEqual(end([0x61, 0xff]), [0x62]);
  assert.deepEqual(end([0xff, 0xff]), [0]);
});

function session(): { session: Session; stderr: BufferSink } {
  const stderr = new BufferSink();
  const s = new Session({
    stdout: new BufferSink(),
    stderr,
    stdin: new StdinReader(bytesSource("")),
    env: [],
    now: () => new Date(0),
  });
  return { session: s, stderr };
}

Deno.test("getOp builds the RangeRequest clientv3 would send", () => {
  const { session: s } = session();
  const cmd = newGetCommand(() => {});
  cmd.flags().parse([
    "--prefix",
    "--sort-by",
    "value",
    "--order",
    "descend",
    "--limit",
    "2",
    "--rev",
    "5",
    "--consistency",
    "s",
    "--keys-only",
  ]);
  const req = getOp(s, cmd, ["foo"]);
  assert.equal(text(req.key), "foo");
  assert.equal(text(req.rangeEnd), "fop");
  assert.equal(req.sortTarget, RangeRequest_SortTarget.VALUE);
  assert.equal(req.sortOrder, RangeRequest_SortOrder.DESCEND);
  assert.equal(req.limit, 2n);
  assert.equal(req.revision, 5n);
  assert.equal(req.serializable, true);
  assert.equal(req.keysOnly, true);

  const asc = newGetCommand(() => {});
  asc.flags().parse(["--order", "ASCEND"]);
  assert.equal(
    getOp(s, asc, ["k"]).sortOrder,
    RangeRequest_SortOrder.NONE,
    "KEY+ASCEND is sent as NONE",
  );

  const all = newGetCommand(() => {});
  all.flags().parse(["--prefix"]);
  const r = getOp(s, all, [""]);
  assert.deepEqual([Array.from(r.key), Array.from(r.rangeEnd)], [[0], [0]]);
});

Deno.test("getOp exits with etcdctl's codes and messages on bad input", () => {
  const cases: [string[], string[], number, string][] = [
    [[], [], 128, "get command needs one argument as key and an optional argument as range_end"],
    [
      ["--prefix", "--from-key"],
      ["k"],
      128,
      "`--prefix` and `--from-key` cannot be set at the same time, choose one",
    ],
    [
      ["--prefix"],
      ["a", "b"],
      128,
      "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
    ],
    [["--consistency", "x"], ["k"], 4, 'unknown consistency flag "x"'],
    [["--sort-by", "size"], ["k"], 4, "bad sort target size"],
    [["--order", "up"], ["k"], 4, "bad sort order up"],
  ];
  for (const [flags, args, code, msg] of cases) {
    const { session: s, stderr } = session();
    const cmd = newGetCommand(() => {});
    cmd.flags().parse(flags);
    assert.throws(
      () => getOp(s, cmd, args),
      (e: unknown) => e instanceof ExitSignal && e.code === code,
    );
    assert.equal(stderr.text(), `Error: ${msg}\n`);
  }
});
