import assert from "node:assert/strict";
import { parseWatchArgs } from "./watch.ts";

const opts = () => ({ rev: 0n, prefix: false, prevKv: false });

Deno.test("parseWatchArgs splits key, range and the command after --", () => {
  assert.deepEqual(
    parseWatchArgs(
      ["watch", "foo", "bar", "--", "echo", "hi"],
      ["foo", "bar", "echo", "hi"],
      "",
      "",
      false,
      opts(),
    ),
    { watchArgs: ["foo", "bar"], execArgs: ["echo", "hi"] },
  );
  assert.deepEqual(
    parseWatchArgs(["--rev", "1", "watch", "foo"], ["foo"], "", "", false, opts()),
    { watchArgs: ["foo"], execArgs: [] },
  );
});

Deno.test("parseWatchArgs applies ETCDCTL_WATCH_KEY and its conflicts", () => {
  assert.deepEqual(
    parseWatchArgs(["watch", "--", "echo", "x"], ["echo", "x"], "k", "z", false, opts()),
    { watchArgs: ["k", "z"], execArgs: ["echo", "x"] },
  );
  assert.throws(
    () => parseWatchArgs(["watch", "foo"], ["foo"], "k", "", false, opts()),
    /found conflicting environment key/,
  );
  assert.throws(
    () => parseWatchArgs(["watch", "foo", "--", "echo"], ["foo", "echo"], "k", "", false, opts()),
    /found conflicting environment key/,
  );
  assert.throws(() => parseWatchArgs(["watch"], [], "", "", false, opts()), /^Error: bad number/);
  assert.throws(
    () => parseWatchArgs(["watch", "a", "--"], ["a"], "", "", false, opts()),
    /found separator --, but no commands/,
  );
});

Deno.test("parseWatchArgs in interactive mode reads the line's own flags", () => {
  const o = opts();
  assert.deepEqual(
    parseWatchArgs(
      ["watch", "-i"],
      ["watch", "--prefix", "--rev", "7", "p", "--", "echo"],
      "",
      "",
      true,
      o,
    ),
    { watchArgs: ["p"], execArgs: ["echo"] },
  );
  assert.deepEqual(o, { rev: 7n, prefix: true, prevKv: false });
  assert.throws(
    () => parseWatchArgs(["watch", "-i"], ["watch", "--bad", "a"], "", "", true, o),
    /unknown flag: --bad/,
  );
  assert.deepEqual(o, { rev: 0n, prefix: false, prevKv: false });
});
