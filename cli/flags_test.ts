import assert from "node:assert/strict";
import { FlagError, FlagSet, HelpRequested, readCsvRecord } from "./flags.ts";

function newSet(): FlagSet {
  const fs = new FlagSet("test");
  fs.bool("prefix", false, "");
  fs.bool("interactive", false, "", "i");
  fs.string("write-out", "simple", "", "w");
  fs.int64("limit", 0n, "");
  fs.duration("dial-timeout", 2_000_000_000n, "");
  fs.stringSlice("endpoints", ["127.0.0.1:2379"], "");
  return fs;
}

Deno.test("FlagSet.parse follows pflag's syntax rules", () => {
  const cases: { args: string[]; positional: string[]; check: (fs: FlagSet) => void }[] = [
    {
      args: ["k", "--prefix"],
      positional: ["k"],
      check: (fs) => assert.equal(fs.getBool("prefix"), true),
    },
    {
      args: ["--prefix=false", "k"],
      positional: ["k"],
      check: (fs) => assert.equal(fs.getBool("prefix"), false),
    },
    {
      args: ["--prefix", "false"],
      positional: ["false"],
      check: (fs) => assert.equal(fs.getBool("prefix"), true),
    },
    {
      args: ["-w", "json", "k"],
      positional: ["k"],
      check: (fs) => assert.equal(fs.getString("write-out"), "json"),
    },
    {
      args: ["-wjson"],
      positional: [],
      check: (fs) => assert.equal(fs.getString("write-out"), "json"),
    },
    {
      args: ["-w=table"],
      positional: [],
      check: (fs) => assert.equal(fs.getString("write-out"), "table"),
    },
    {
      args: ["-iw", "fields"],
      positional: [],
      check: (fs) => {
        assert.equal(fs.getBool("interactive"), true);
        assert.equal(fs.getString("write-out"), "fields");
      },
    },
    { args: ["--write-out", "json", "a", "b"], positional: ["a", "b"], check: () => {} },
    {
      args: ["--limit=0x10"],
      positional: [],
      check: (fs) => assert.equal(fs.getInt64("limit"), 16n),
    },
    {
      args: ["k", "--", "--prefix", "-w"],
      positional: ["k", "--prefix", "-w"],
      check: (fs) => {
        assert.equal(fs.getBool("prefix"), false);
        assert.equal(fs.argsLenAtDash, 1);
      },
    },
    { args: ["-", ""], positional: ["-", ""], check: () => {} },
    {
      args: ["--dial-timeout", "1m30s"],
      positional: [],
      check: (fs) => assert.equal(fs.getDuration("dial-timeout"), 90_000_000_000n),
    },
    {
      args: ["--endpoints", "a,b", "--endpoints=c"],
      positional: [],
      check: (fs) => assert.deepEqual(fs.getStringSlice("endpoints"), ["a", "b", "c"]),
    },
  ];
  for (const c of cases) {
    const fs = newSet();
    fs.parse(c.args);
    assert.deepEqual(fs.args, c.positional, c.args.join(" "));
    c.check(fs);
  }
});

Deno.test("FlagSet.parse reports errors with pflag's messages", () => {
  const cases: [string[], string][] = [
    [["--bogus"], "unknown flag: --bogus"],
    [["-x"], "unknown shorthand flag: 'x' in -x"],
    [["-ix"], "unknown shorthand flag: 'x' in -x"],
    [["---x"], "bad flag syntax: ---x"],
    [["--=x"], "bad flag syntax: --=x"],
    [["--limit"], "flag needs an argument: --limit"],
    [["-w"], "flag needs an argument: 'w' in -w"],
    [
      ["--limit", "x"],
      'invalid argument "x" for "--limit" flag: strconv.ParseInt: parsing "x": invalid syntax',
    ],
    [
      ["-w=json", "--prefix=maybe"],
      'invalid argument "maybe" for "--prefix" flag: strconv.ParseBool: parsing "maybe": invalid syntax',
    ],
    [
      ["--dial-timeout", "5"],
      'invalid argument "5" for "--dial-timeout" flag: time: missing unit in duration "5"',
    ],
  ];
  for (const [args, message] of cases) {
    const fs = newSet();
    assert.throws(
      () => fs.parse(args),
      (e: unknown) => e instanceof FlagError && e.message === message,
      args.join(" "),
    );
  }
  assert.throws(() => newSet().parse(["--help"]), HelpRequested);
  assert.throws(() => newSet().parse(["-h"]), HelpRequested);
});

Deno.test("Flags remember whether they were set, and keep their printed defaults", () => {
  const fs = newSet();
  fs.parse(["--limit", "3"]);
  assert.equal(fs.changed("limit"), true);
  assert.equal(fs.changed("prefix"), false);
  assert.equal(fs.lookup("endpoints")!.defValue, "[127.0.0.1:2379]");
  assert.equal(fs.lookup("dial-timeout")!.defValue, "2s");
  assert.equal(fs.lookup("prefix")!.noOptDefVal, "true");
  const names: string[] = [];
  fs.visitAll((f) => names.push(f.name));
  assert.deepEqual(names, [
    "dial-timeout",
    "endpoints",
    "interactive",
    "limit",
    "prefix",
    "write-out",
  ]);
});

Deno.test("readCsvRecord splits like encoding/csv", () => {
  assert.deepEqual(readCsvRecord(""), []);
  assert.deepEqual(readCsvRecord("a,b, c"), ["a", "b", " c"]);
  assert.deepEqual(readCsvRecord('"a,b",c'), ["a,b", "c"]);
  assert.deepEqual(readCsvRecord('"a""b"'), ['a"b']);
  assert.throws(() => readCsvRecord('a"b'), /bare "/);
});
